"""The ``astroloc worker`` process (run by name, service.jobs.WORKER_MAIN): an RQ worker plus a periodic recovery pass."""

from __future__ import annotations

import logging
import os
import socket
import threading

from service.config import Settings
from service.jobs import QUEUES, RQJobQueue
from service.memory import bound_malloc

log = logging.getLogger(__name__)


def _recovery_loop(queue: RQJobQueue, stop: threading.Event, interval_s: float) -> None:
    while not stop.wait(interval_s):
        try:
            queue.recover()
        except Exception:  # the DB or Redis may blink; try again next round
            log.exception("recovery pass failed")


def run_worker(settings: Settings, queues: list[str], burst: bool = False) -> None:
    """Consume ``queues`` until stopped (or until empty with ``burst``).

    A SimpleWorker runs jobs in this process (no fork per job): models and indexes loaded by one job
    stay in memory for the next. If the process dies, its jobs' heartbeats stop and the recovery
    pass of any worker (this one when restarted, or another one) retries them.
    """
    from rq import Queue, SimpleWorker

    bound_malloc()  # a photo's decode buffers go back to the OS after its job
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise ValueError(f"unknown queue(s) {unknown}; expected some of {list(QUEUES)}")
    job_queue = RQJobQueue(settings)
    outcome = job_queue.recover()
    if any(outcome.values()):
        log.warning("recovered jobs at start: %s", outcome)
    stop = threading.Event()
    threading.Thread(
        target=_recovery_loop,
        args=(job_queue, stop, max(1.0, settings.job_stale_after_s / 2)),
        name="job-recovery",
        daemon=True,
    ).start()
    worker = SimpleWorker(
        [Queue(name, connection=job_queue.redis) for name in queues],
        connection=job_queue.redis,
        name=f"astroloc-{socket.gethostname()}-{os.getpid()}",
    )
    try:
        worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
    finally:
        stop.set()
