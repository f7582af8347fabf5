"""The ``selftest`` job: sleeps ``seconds`` in ``steps``, reporting progress.

Operators use it to check that workers consume jobs (``POST /jobs/selftest``); the demo and the
killed-worker tests use it because its duration is under control.
"""

from __future__ import annotations

import time

from service.jobs import JobContext, SelftestParams


def run(context: JobContext, raw: dict) -> dict:
    params = SelftestParams.model_validate(raw)
    started = time.monotonic()
    for step in range(params.steps):
        time.sleep(params.seconds / params.steps)
        context.progress((step + 1) / params.steps, step=step + 1, steps=params.steps)
    return {"slept_s": round(time.monotonic() - started, 3), "steps": params.steps}
