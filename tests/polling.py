"""Waiting on a job through the API, as a client would (shared by the localization tests)."""

from __future__ import annotations

import time


def wait_for_job(client, url: str, timeout_s: float = 180.0, poll_s: float = 0.3) -> dict:  # noqa: ANN001
    """Poll GET ``url`` until the job is finished or failed; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in ("finished", "failed"):
            return job
        time.sleep(poll_s)
    raise AssertionError(f"job {url} did not end within {timeout_s} s: {job}")
