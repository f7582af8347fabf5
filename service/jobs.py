"""Jobs, submit side: queue modes (inline thread pool / RQ), enqueue, recovery, progress reporting.

Every job is a row in ``jobs``; a queue only carries its id. The code that runs a job lives in
worker/ and is known here only by its dotted name (:data:`JOB_RUNNER`), which the RQ worker imports
and the inline pool resolves the same way: service/ never imports worker/. A started job that stays
silent longer than ``job_stale_after_s`` was lost with its worker (killed, out of memory, machine
gone) and :func:`recover_abandoned_jobs` retries it, up to ``max_attempts`` runs, or fails it with
the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from queue import SimpleQueue
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service import crud
from service.config import Settings
from service.db import session_scope
from service.limits import ServiceBusy
from service.models import Job, utcnow

log = logging.getLogger(__name__)

QUEUES = ("default", "localize", "train", "index")
# What a queue runs for a job id, by name (RQ imports it in the worker process).
JOB_RUNNER = "worker.runner.run_job"
# The `astroloc worker` process, by name for the same reason.
WORKER_MAIN = "worker.main.run_worker"


def resolve(dotted_name: str) -> Callable[..., Any]:
    """The function a dotted name ``package.module.function`` names (as RQ resolves job functions)."""
    module_name, _, attribute = dotted_name.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


# --- typed params of the jobs defined next to the queue ------------------------------------------


class SelftestParams(BaseModel):
    """Params of a ``selftest`` job (POST /jobs/selftest): sleep ``seconds`` in ``steps``.

    Strict: ``{"seconds": false}`` or ``"5"`` is refused, not read as a number; unknown keys too."""

    model_config = ConfigDict(strict=True, extra="forbid")

    seconds: float = Field(1.0, ge=0, le=600)
    steps: int = Field(5, ge=1, le=1000)


def params_json(params: BaseModel | dict | Any) -> dict:
    """A job's typed params (pydantic model or dataclass) as the JSON stored in ``jobs.params``."""
    if isinstance(params, BaseModel):
        return params.model_dump(mode="json")
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return dataclasses.asdict(params)
    return dict(params)


def redact_paths(settings: Settings, value: Any) -> Any:
    """``value`` (JSON-like) with the server's directories replaced by their names: a job's error or
    result never shows where the data lives (``<data_dir>/train/...``)."""
    roots = sorted({(str(settings.resolved_model_store_dir.resolve()), "<model_store>"),
                    (str(settings.data_dir.resolve()), "<data_dir>")}, key=lambda root: -len(root[0]))
    if isinstance(value, str):
        for root, name in roots:
            value = value.replace(root, name)
        return value
    if isinstance(value, dict):
        return {key: redact_paths(settings, item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_paths(settings, item) for item in value]
    return value


# --- progress -----------------------------------------------------------------------------------


@dataclass
class JobContext:
    """Handed to a job handler: which job it runs, the settings, and how to report progress."""

    job_id: str
    settings: Settings
    detail: dict = field(default_factory=dict)

    def progress(self, fraction: float, **detail: object) -> None:
        """Record progress (0..1) and optional structured detail, visible in GET /jobs/{id}."""
        self.detail.update(detail)
        with session_scope(self.settings.resolved_database_url) as session:
            crud.record_progress(session, self.job_id, fraction, dict(self.detail) or None)


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


# --- queues -------------------------------------------------------------------------------------


class JobQueue(Protocol):
    def submit(self, job: Job) -> None: ...

    def recover(self) -> dict[str, list[str]]: ...

    def describe(self) -> dict: ...


class _DaemonPool:
    """``threads`` daemon threads taking calls from one FIFO. Unlike ThreadPoolExecutor's, they do
    not hold the process at exit: an embedded server stops at once, and the job it was running is
    recovered at the next start like a killed worker's (its heartbeat stops)."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self._calls: SimpleQueue = SimpleQueue()
        for i in range(threads):
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True).start()

    def submit(self, call: Callable[..., object], *args: object) -> None:
        self._calls.put((call, args))

    def _serve(self) -> None:
        while True:
            call, args = self._calls.get()
            try:
                call(*args)
            except Exception:  # the runner records job failures itself; this is a crash of the runner
                log.exception("inline job runner crashed")


class InlineJobQueue:
    """Runs jobs in threads of the current process (``queue_mode=inline``): one pool per queue, so
    a long training or selftest job never delays a localization."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # An index chunk's model already uses every core: one chunk at a time in this process.
        threads = {"train": settings.inline_train_workers, "index": 1}
        self._pools = {
            name: _DaemonPool(threads.get(name, settings.inline_workers), name=f"job-{name}") for name in QUEUES
        }

    def submit(self, job: Job) -> None:
        self._pools[job.queue].submit(resolve(JOB_RUNNER), job.id, self.settings)

    def recover(self) -> dict[str, list[str]]:
        """At start-up nothing of a previous process runs: re-submit its queued jobs too."""
        outcome = recover_abandoned_jobs(self.settings, self.submit)
        with session_scope(self.settings.resolved_database_url) as session:
            for job in crud.queued_jobs(session):
                self.submit(job)
        return outcome

    def describe(self) -> dict:
        return {"mode": "inline", "ok": True, "threads": {name: pool.threads for name, pool in self._pools.items()}}


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
            JOB_RUNNER,
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


# --- submitting ---------------------------------------------------------------------------------


class QueueFull(ServiceBusy):
    """A queue holds its most waiting jobs: 429 with Retry-After; nothing is stored."""

    status = 429


def queue_bound(settings: Settings, queue: str) -> int:
    """Most jobs waiting in ``queue`` (``ASTROLOC_MAX_QUEUED_<QUEUE>``)."""
    if queue == "index":  # an index build's chunks: planned by the operator, not requested by clients
        return 2**31
    return {"localize": settings.max_queued_localize, "train": settings.max_queued_train}.get(
        queue, settings.max_queued_default)


def require_room(settings: Settings, queue: str, session: Session | None = None) -> None:
    """QueueFull when ``queue`` already holds its bound of waiting jobs. Called before the work of a
    request (cheap refusal) and again when the job row is added; two requests racing for the last
    place may both pass, so the bound is exact to within the API's concurrency."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")
    bound = queue_bound(settings, queue)
    if session is None:
        with session_scope(settings.resolved_database_url) as own:
            waiting = crud.count_waiting_jobs(own, queue)
    else:
        waiting = crud.count_waiting_jobs(session, queue)
    if waiting >= bound:
        raise QueueFull(f"the {queue} queue is full ({waiting} jobs waiting, at most {bound}); retry later",
                        settings.queue_retry_after_s)


def create_job(session: Session, settings: Settings, kind: str, params: BaseModel | dict | Any, *,
               queue: str = "default", photo_id: str | None = None) -> Job:
    """Add the job row in ``session`` (committed by the caller, then :func:`submit_job`);
    QueueFull when the queue is at its bound."""
    require_room(settings, queue, session)
    return crud.create_job(session, kind, params_json(params), queue=queue,
                           max_attempts=settings.job_max_attempts, photo_id=photo_id)


def enqueue(settings: Settings, kind: str, params: BaseModel | dict | Any, *, queue: str = "default",
            photo_id: str | None = None) -> str:
    """Create the job row and hand it to the queue; returns the job id."""
    with session_scope(settings.resolved_database_url) as session:
        job = create_job(session, settings, kind, params, queue=queue, photo_id=photo_id)
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


def recover_jobs(settings: Settings) -> dict[str, list[str]]:
    """One recovery pass of this process's queue (API start-up, worker start, periodically)."""
    return get_job_queue(settings).recover()


def recover_abandoned_jobs(settings: Settings, submit: Callable[[Job], None]) -> dict[str, list[str]]:
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
