"""The job lifecycle through a real Redis and real `astroloc worker` processes, kills included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service import crud
from service.config import Settings
from service.db import session_scope
from service.jobs import SelftestParams, enqueue

ASTROLOC = str(Path(sys.executable).parent / "astroloc")


@pytest.fixture
def rq_settings(postgis_url, redis_url, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=postgis_url,
        queue_mode="rq",
        redis_url=redis_url,
        job_heartbeat_s=0.3,
        job_stale_after_s=2.0,
        job_max_attempts=2,
    )


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ASTROLOC_DATA_DIR=str(settings.data_dir),
        ASTROLOC_DATABASE_URL=settings.database_url,
        ASTROLOC_QUEUE_MODE="rq",
        ASTROLOC_REDIS_URL=settings.redis_url,
        ASTROLOC_JOB_HEARTBEAT_S=str(settings.job_heartbeat_s),
        ASTROLOC_JOB_STALE_AFTER_S=str(settings.job_stale_after_s),
        ASTROLOC_JOB_MAX_ATTEMPTS=str(settings.job_max_attempts),
    )
    return env


def _start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    # A session of its own, so that a kill takes the whole worker down like a crash would.
    return subprocess.Popen(
        [ASTROLOC, "worker", "--queues", "default"],
        env=_env(settings),
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=120)  # a loaded machine stops a worker slowly


def _wait_for(settings: Settings, job_id: str, predicate, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope(settings.resolved_database_url) as session:
            job = crud.get_job(session, job_id)
            if predicate(job):
                return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the expected state; last: {job.status}")


def test_job_runs_on_a_real_worker(rq_settings, tmp_path):
    worker = _start_worker(rq_settings, tmp_path / "worker.log")
    try:
        job_id = enqueue(rq_settings, "selftest", SelftestParams(seconds=0.6, steps=3))
        job = _wait_for(rq_settings, job_id, lambda j: j.status in ("finished", "failed"))
    finally:
        _stop(worker)
    assert job.status == "finished", (tmp_path / "worker.log").read_text()
    assert job.progress == 1.0 and job.attempts == 1
    assert job.result["steps"] == 3 and job.started_at <= job.finished_at


def test_killed_worker_job_is_retried(rq_settings, tmp_path):
    log = tmp_path / "worker.log"
    worker = _start_worker(rq_settings, log)
    job_id = enqueue(rq_settings, "selftest", SelftestParams(seconds=30, steps=60))
    try:
        _wait_for(rq_settings, job_id, lambda j: j.status == "started" and j.progress > 0)
    finally:
        _stop(worker, signal.SIGKILL)  # dies mid-job, no clean-up of any kind
    # Shorter second attempt: the parameters are the job's, so patch them for test speed.
    with session_scope(rq_settings.resolved_database_url) as session:
        crud.get_job(session, job_id).params = {"seconds": 0.5, "steps": 2}
    replacement = _start_worker(rq_settings, log)
    try:
        job = _wait_for(rq_settings, job_id, lambda j: j.status in ("finished", "failed"))
    finally:
        _stop(replacement)
    assert job.status == "finished", log.read_text()
    assert job.attempts == 2


def test_killed_worker_job_fails_when_attempts_run_out(rq_settings, tmp_path):
    settings = rq_settings.model_copy(update={"job_max_attempts": 1})
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, log)
    job_id = enqueue(settings, "selftest", SelftestParams(seconds=30, steps=60))
    try:
        _wait_for(settings, job_id, lambda j: j.status == "started" and j.progress > 0)
    finally:
        _stop(worker, signal.SIGKILL)
    replacement = _start_worker(settings, log)
    try:
        job = _wait_for(settings, job_id, lambda j: j.status in ("finished", "failed"))
    finally:
        _stop(replacement)
    assert job.status == "failed"
    assert "stopped responding" in job.error and "no attempts left" in job.error
    assert job.attempts == 1


def test_unknown_job_kind_fails_with_reason(rq_settings, tmp_path):
    worker = _start_worker(rq_settings, tmp_path / "worker.log")
    try:
        job_id = enqueue(rq_settings, "no-such-kind", {})
        job = _wait_for(rq_settings, job_id, lambda j: j.status in ("finished", "failed"))
    finally:
        _stop(worker)
    assert job.status == "failed" and "no handler" in job.error
