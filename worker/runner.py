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
from service.jobs import Heartbeat, JobContext
from service.models import JobStatus
from worker.handlers import HANDLERS

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


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
