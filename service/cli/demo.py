"""`astroloc demo`: the main job on the embedded default (SQLite + inline jobs, no server needed).

It starts the API as a real HTTP server in a child process, talks to it over HTTP like a user would,
and stops it at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import httpx
import typer

from service.config import get_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_api(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Start `astroloc serve` on a free port; yield its base URL; stop it afterwards."""
    port = _free_port()
    astroloc = str(Path(sys.executable).parent / "astroloc")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [astroloc, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the API exited at start; see {log_path}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer within 120 s; see {log_path}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_job(client: httpx.Client, status_url: str, echo=typer.echo, timeout_s: float = 600) -> dict:
    """Poll a job until it ends, echoing each change of status or progress."""
    last = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(status_url).json()
        state = (job["status"], round(job["progress"], 2))
        if state != last:
            echo(f"  job {job['id'][:8]}: {job['status']:<8} progress {job['progress']:.0%}")
            last = state
        if job["status"] in ("finished", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job at {status_url} did not end within {timeout_s} s")


def demo() -> None:
    """Run the demo end to end on the embedded default and print what happens."""
    settings = get_settings()
    env = dict(os.environ, ASTROLOC_QUEUE_MODE="inline")
    env.pop("ASTROLOC_DATABASE_URL", None)  # the embedded store, whatever the shell says
    log_path = settings.data_dir / "demo-api.log"
    typer.echo(f"starting the API on the embedded store in {settings.data_dir.resolve()} ...")
    with running_api(env, log_path) as base, httpx.Client(base_url=base, timeout=60) as client:
        health = client.get("/health").json()
        typer.echo(f"API up at {base} (docs: {base}/docs): {health['status']}, "
                   f"database {health['database']['backend']} rev {health['database']['revision']}, "
                   f"queue {health['queue']['mode']}")
        created = client.post("/jobs/selftest", json={"seconds": 2, "steps": 4})
        created.raise_for_status()
        typer.echo(f"queued a self-test job: {created.json()['job_id'][:8]} (status: queued)")
        job = wait_for_job(client, created.json()["status_url"])
        if job["status"] != "finished":
            typer.echo(f"job failed: {job['error']}", err=True)
            raise typer.Exit(1)
        typer.echo(f"result: {job['result']}")
