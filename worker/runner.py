"""Running one job: claim its row, keep it alive with heartbeats, run its handler, store the outcome.

``run_job`` is what the queues run by name (service.jobs.JOB_RUNNER): the RQ worker process, or a
thread of the API in inline mode. Retrying jobs whose worker died is the submit side's
(service.jobs.recover_abandoned_jobs).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from service import crud
from service.config import Settings, get_settings
from service.db import session_scope
from service.jobs import JobContext
from service.models import JobStatus
from worker.handlers import HANDLERS

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


def run_job(job_id: str, settings: Settings | None = None) -> JobStatus | None:
    """Claim the job, run its handler, store the result or the error. Returns the final status;
    None when the job was not there to claim (finished, failed or claimed by someone else)."""
    settings = settings or get_settings()
    url = settings.resolved_database_url
    with session_scope(url) as session:
        job = crud.claim_job(session, job_id, worker_name())
        if job is None:
            return None
        kind, params = job.kind, dict(job.params or {})

    handler = HANDLERS.get(kind)
    if handler is None:
        with session_scope(url) as session:
            crud.fail_job(session, job_id, f"no handler for job kind {kind!r}")
        return JobStatus.FAILED

    try:
        with Heartbeat(settings, job_id):
            result = handler(JobContext(job_id=job_id, settings=settings), params)
    except Exception as exc:  # the job failed, not the worker: record why and move on
        log.warning("job %s (%s) failed: %s", job_id, kind, exc)
        log.debug("%s", traceback.format_exc())
        with session_scope(url) as session:
            crud.fail_job(session, job_id, f"{type(exc).__name__}: {exc}")
        return JobStatus.FAILED
    with session_scope(url) as session:
        crud.finish_job(session, job_id, result)
    return JobStatus.FINISHED
