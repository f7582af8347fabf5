"""What a job does, by kind. Each handler is a plain function ``(context, params) -> result dict``.

Handlers register themselves with ``@job_handler("kind")``; the runner (worker/runner.py) looks them
up. Kinds of later features (localization refinement, training) live in their own modules, imported
at the bottom so that the registry is complete wherever the runner runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from service import crud
from service.config import Settings
from service.db import session_scope


@dataclass
class JobContext:
    """Handed to a handler: who it is, and how to report progress."""

    job_id: str
    settings: Settings
    detail: dict = field(default_factory=dict)

    def progress(self, fraction: float, **detail: object) -> None:
        """Record progress (0..1) and optional structured detail, visible in GET /jobs/{id}."""
        self.detail.update(detail)
        with session_scope(self.settings.resolved_database_url) as session:
            crud.record_progress(session, self.job_id, fraction, dict(self.detail) or None)


JobHandler = Callable[[JobContext, dict], dict]
JOB_HANDLERS: dict[str, JobHandler] = {}


def job_handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(handler: JobHandler) -> JobHandler:
        JOB_HANDLERS[kind] = handler
        return handler

    return register


@job_handler("selftest")
def selftest(context: JobContext, params: dict) -> dict:
    """Exercises the queue end to end: sleeps ``seconds`` in ``steps``, reporting progress.

    Operators use it to check that workers consume jobs (``POST /jobs/selftest``); the demo and the
    killed-worker tests use it because its duration is under control.
    """
    seconds = float(params.get("seconds", 1.0))
    steps = max(1, int(params.get("steps", 5)))
    started = time.monotonic()
    for step in range(steps):
        time.sleep(seconds / steps)
        context.progress((step + 1) / steps, step=step + 1, steps=steps)
    return {"slept_s": round(time.monotonic() - started, 3), "steps": steps}


# Handlers of later features register themselves on import; keep the registry complete wherever the
# runner runs (API process in inline mode, RQ workers).
from worker import localize, train  # noqa: E402,F401
