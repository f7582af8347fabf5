"""Where jobs go to run: Redis + RQ workers (production) or a thread pool in the API (embedded)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from service import crud
from service.config import Settings
from service.db import session_scope
from service.models import Job
from worker.runner import recover_abandoned_jobs, run_job

log = logging.getLogger(__name__)

QUEUES = ("default", "localize", "train")


class JobQueue(Protocol):
    def submit(self, job: Job) -> None: ...

    def recover(self) -> dict[str, list[str]]: ...

    def describe(self) -> dict: ...


class InlineJobQueue:
    """Runs jobs in threads of the current process (``queue_mode=inline``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(settings.inline_workers, thread_name_prefix="job")

    def submit(self, job: Job) -> None:
        future = self._pool.submit(run_job, job.id, self.settings)
        future.add_done_callback(_log_crash)

    def recover(self) -> dict[str, list[str]]:
        """At start-up nothing of a previous process runs: re-submit its queued jobs too."""
        outcome = recover_abandoned_jobs(self.settings, self.submit)
        with session_scope(self.settings.resolved_database_url) as session:
            for job in crud.queued_jobs(session):
                self.submit(job)
        return outcome

    def describe(self) -> dict:
        return {"mode": "inline", "ok": True, "threads": self.settings.inline_workers}


class RQJobQueue:
    """Hands job ids to RQ workers (``astroloc worker``) through Redis (``queue_mode=rq``)."""

    def __init__(self, settings: Settings) -> None:
        from redis import Redis

        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)

    def _queue(self, name: str):  # noqa: ANN202
        from rq import Queue

        return Queue(name, connection=self.redis)

    def submit(self, job: Job) -> None:
        # One RQ job per attempt: RQ keeps the dead attempt's bookkeeping, ours stays in `jobs`.
        self._queue(job.queue).enqueue(
            "worker.runner.run_job",
            job.id,
            job_id=f"{job.id}-{job.attempts + 1}",
            job_timeout=self.settings.job_timeout_s,
            result_ttl=3600,
            failure_ttl=24 * 3600,
        )

    def recover(self) -> dict[str, list[str]]:
        from rq.job import Job as RQJob

        outcome = recover_abandoned_jobs(self.settings, self.submit)
        # A Redis restart loses what was queued: put back the queued jobs RQ no longer knows.
        with session_scope(self.settings.resolved_database_url) as session:
            for job in crud.queued_jobs(session):
                if not RQJob.exists(f"{job.id}-{job.attempts + 1}", connection=self.redis):
                    self.submit(job)
                    outcome.setdefault("resubmitted", []).append(job.id)
        return outcome

    def describe(self) -> dict:
        try:
            self.redis.ping()
        except Exception as exc:  # reported by /health, not raised
            return {"mode": "rq", "ok": False, "error": str(exc)}
        from rq import Worker

        return {
            "mode": "rq",
            "ok": True,
            "queued": {name: len(self._queue(name)) for name in QUEUES},
            "workers": len(Worker.all(connection=self.redis)),
        }


def _log_crash(future) -> None:  # noqa: ANN001
    if future.exception() is not None:
        log.error("inline job runner crashed", exc_info=future.exception())


_queues: dict[int, JobQueue] = {}
_lock = threading.Lock()


def get_job_queue(settings: Settings) -> JobQueue:
    """The process-wide queue for these settings (one thread pool / Redis client each)."""
    with _lock:
        queue = _queues.get(id(settings))
        if queue is None:
            queue = RQJobQueue(settings) if settings.queue_mode == "rq" else InlineJobQueue(settings)
            _queues[id(settings)] = queue
        return queue


def enqueue(settings: Settings, kind: str, params: dict, *, queue: str = "default",
            photo_id: str | None = None) -> str:
    """Create the job row and hand it to the queue; returns the job id."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")
    with session_scope(settings.resolved_database_url) as session:
        job = crud.create_job(
            session, kind, params, queue=queue, max_attempts=settings.job_max_attempts,
            photo_id=photo_id,
        )
        session.commit()
        submit_job(settings, job)
        return job.id


def submit_job(settings: Settings, job: Job) -> None:
    """Hand a committed job row to the queue; if the queue is down the row stays 'queued'."""
    try:
        get_job_queue(settings).submit(job)
    except Exception as exc:
        # The next recovery pass (worker start, periodic) submits it.
        log.error("job %s stored but not submitted (queue unavailable): %s", job.id, exc)
