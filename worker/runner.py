"""Running one job, keeping it alive, and recovering jobs whose worker died.

Every job is a row in ``jobs``; the queue (RQ or the inline thread pool) only carries its id. A
running job sends heartbeats; a started job that stays silent longer than ``job_stale_after_s`` was
lost with its worker (killed, out of memory, machine gone) and is retried, up to ``max_attempts``
runs, or marked failed with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from datetime import timedelta

from service import crud
from service.config import Settings, get_settings
from service.db import session_scope
from service.models import utcnow
from worker.tasks import JOB_HANDLERS, JobContext

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class Heartbeat:
    """A daemon thread refreshing the job's heartbeat while the handler runs."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self._settings = settings
        self._job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._settings.job_heartbeat_s):
            try:
                with session_scope(self._settings.resolved_database_url) as session:
                    crud.record_progress(session, self._job_id)
            except Exception:  # a missed beat is not fatal; the next one may pass
                log.exception("heartbeat of job %s failed", self._job_id)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_job(job_id: str, settings: Settings | None = None) -> str:
    """Claim the job, run its handler, store the result or the error. Returns the final status.

    This is the function the RQ worker executes (by name) and the inline pool calls directly.
    """
    settings = settings or get_settings()
    url = settings.resolved_database_url
    with session_scope(url) as session:
        job = crud.claim_job(session, job_id, worker_name())
        if job is None:
            return "skipped"  # finished, failed or claimed by someone else already
        kind, params = job.kind, dict(job.params or {})

    handler = JOB_HANDLERS.get(kind)
    if handler is None:
        with session_scope(url) as session:
            crud.fail_job(session, job_id, f"no handler for job kind {kind!r}")
        return "failed"

    try:
        with Heartbeat(settings, job_id):
            result = handler(JobContext(job_id=job_id, settings=settings), params)
    except Exception as exc:  # the job failed, not the worker: record why and move on
        log.warning("job %s (%s) failed: %s", job_id, kind, exc)
        log.debug("%s", traceback.format_exc())
        with session_scope(url) as session:
            crud.fail_job(session, job_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    with session_scope(url) as session:
        crud.finish_job(session, job_id, result)
    return "finished"


def recover_abandoned_jobs(settings: Settings, submit) -> dict[str, list[str]]:  # noqa: ANN001
    """Retry or fail the started jobs whose heartbeat stopped; ``submit(job)`` re-queues one."""
    cutoff = utcnow() - timedelta(seconds=settings.job_stale_after_s)
    outcome: dict[str, list[str]] = {"retried": [], "failed": []}
    with session_scope(settings.resolved_database_url) as session:
        for job in crud.abandoned_jobs(session, cutoff):
            lost = (
                f"attempt {job.attempts}/{job.max_attempts} lost: worker {job.worker} stopped "
                f"responding (last heartbeat {job.heartbeat_at:%Y-%m-%dT%H:%M:%SZ})"
            )
            if job.attempts >= job.max_attempts:
                crud.fail_job(session, job.id, f"{lost}; no attempts left")
                outcome["failed"].append(job.id)
            else:
                crud.requeue_job(session, job.id, f"{lost}; retrying")
                submit(job)
                outcome["retried"].append(job.id)
    for status, ids in outcome.items():
        for job_id in ids:
            log.warning("abandoned job %s %s", job_id, status)
    return outcome
