"""The index build as jobs (service/index_jobs.py): chunks described by the embedded default's
threads or by real `astroloc worker --queues index` processes over real Redis and PostGIS, one of
them SIGKILLed mid-chunk; the index the same as an uninterrupted build, file for file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.chunks import StoredDescriber, plan_chunks, read_chunk, write_chunk
from index.build import DescribedTiles
from index.shards import Manifest
from index.tiles import Tile

ASTROLOC = str(Path(sys.executable).parent / "astroloc")
ARCH = "astroloc-lite-gem2s"  # random init from a seed: no file to ship to the workers


@pytest.fixture(scope="module")
def tiles_dir(tmp_path_factory):
    from world.bluemarble import BlueMarbleTileSource

    root = tmp_path_factory.mktemp("index-jobs") / "tiles"
    BlueMarbleTileSource(root).fill_cache([3])
    return root


def _settings(root: Path, **overrides):
    from service.config import Settings
    from service.db import upgrade_database

    values = dict(data_dir=root / "var", queue_mode="inline", api_keys=[], index_build_chunk_tiles=8,
                  model_threads=1, index_factories="Flat") | overrides
    settings = Settings(**values)
    upgrade_database(settings.resolved_database_url)
    return settings


def _build(settings, tiles_dir: Path, index_dir: Path) -> dict:
    from index.database import grid_tiles
    from service.index_jobs import ModelRecipe, build_with_jobs
    from service.indexing import SourceRecipe

    return build_with_jobs(settings, SourceRecipe(tiles_dir=str(tiles_dir)), grid_tiles([3]),
                           ModelRecipe(arch=ARCH, seed=5), index_dir=index_dir, progress=False)


def _shards(index_dir: Path) -> dict:
    """Each shard's files by checksum: equal for equal indexes."""
    return {name: (entry.tiles, entry.vectors, {f: v["sha256"] for f, v in entry.files.items()})
            for name, entry in Manifest.load(index_dir).shards.items()}


def test_chunks_are_stored_whole_and_answer_any_grouping(tmp_path):
    tiles = [Tile(3, x, 2) for x in range(5)]
    chunks = plan_chunks(tiles, 2)
    assert [len(c) for c in chunks] == [2, 2, 1]
    rng = np.random.default_rng(0)
    for number, chunk in enumerate(chunks):
        kept = [t for t in chunk if t != Tile(3, 3, 2)]
        write_chunk(tmp_path, number, DescribedTiles(kept, rng.normal(size=(len(kept), 4, 6)).astype(np.float32),
                                                     {t: "corrupt: x" for t in chunk if t not in kept}))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"chunk-00000{n}.npz" for n in range(3)]  # nothing else
    answer = StoredDescriber(tmp_path, chunks, cached=1)([Tile(3, 4, 2), Tile(3, 3, 2), Tile(3, 0, 2)])
    assert answer.tiles == [Tile(3, 4, 2), Tile(3, 0, 2)] and answer.skipped == {Tile(3, 3, 2): "corrupt: x"}
    assert np.array_equal(answer.descriptors[1], read_chunk(tmp_path, 0).descriptors[0])
    with pytest.raises(ValueError, match="not in the planned build"):
        StoredDescriber(tmp_path, chunks)([Tile(3, 7, 7)])


def test_the_embedded_default_runs_the_chunk_jobs_in_process_and_a_rerun_adds_nothing(tiles_dir, tmp_path):
    from service import crud
    from service.db import session_scope

    settings = _settings(tmp_path)
    first = _build(settings, tiles_dir, tmp_path / "index")
    assert first["chunks"] == 8 and first["tiles_added"] == 64 and first["vectors_added"] == 256
    with session_scope(settings.resolved_database_url) as session:
        job = crud.get_job(session, first["job_id"])
        assert job.status == "finished" and job.detail["chunks_done"] == job.detail["chunks_total"] == 8
        assert job.detail["tiles_per_s"] > 0
    again = _build(settings, tiles_dir, tmp_path / "index")
    assert again["chunks"] == 0 and again["tiles_added"] == 0 and again["tiles_already_indexed"] == 64
    assert not (tmp_path / "index" / ".build" / "chunks").exists()


def _worker(settings, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, ASTROLOC_DATA_DIR=str(settings.data_dir), ASTROLOC_DATABASE_URL=settings.database_url,
               ASTROLOC_QUEUE_MODE="rq", ASTROLOC_REDIS_URL=settings.redis_url, ASTROLOC_MODEL_THREADS="1",
               ASTROLOC_JOB_HEARTBEAT_S="0.5", ASTROLOC_JOB_STALE_AFTER_S="4")
    return subprocess.Popen([ASTROLOC, "worker", "--queues", "index"], env=env, stdout=log_path.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_a_worker_killed_mid_chunk_loses_and_duplicates_nothing(tiles_dir, tmp_path, postgis_url, redis_url):
    """Two real workers; one is SIGKILLed while it describes a chunk. Its job is retried by the
    other's recovery; every chunk is described once into the index, which is file for file the
    index of an uninterrupted build."""
    from service import crud
    from service.db import session_scope
    from service.index_jobs import CHUNK_JOB
    from service.models import JobStatus

    reference = _build(_settings(tmp_path / "reference"), tiles_dir, tmp_path / "reference-index")
    settings = _settings(tmp_path / "rq", database_url=postgis_url, queue_mode="rq", redis_url=redis_url,
                         job_heartbeat_s=0.5, job_stale_after_s=4)
    workers = [_worker(settings, tmp_path / f"worker-{n}.log") for n in range(2)]
    outcome: dict = {}
    coordinator = threading.Thread(target=lambda: outcome.update(result=_build(settings, tiles_dir, tmp_path / "index")))
    coordinator.start()
    killed = None
    try:
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline:
            with session_scope(settings.resolved_database_url) as session:
                started = [j for j in crud.jobs_of_kind(session, CHUNK_JOB, JobStatus.STARTED) if j.worker]
            for job in started:
                victim = next((w for w in workers if f":{w.pid}:" in job.worker), None)
                if victim is not None:
                    os.kill(victim.pid, signal.SIGKILL)
                    killed = job.id
                    break
            time.sleep(0.05)
        assert killed, "no chunk job was seen running"
        coordinator.join(timeout=300)
        assert not coordinator.is_alive() and "result" in outcome
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=120)
    result = outcome["result"]
    assert result["chunks"] == 8 and result["tiles_added"] == 64 and result["tiles_skipped"] == 0
    with session_scope(settings.resolved_database_url) as session:
        retried = crud.get_job(session, killed)
        assert retried.status == "finished" and retried.attempts == 2, (retried.status, retried.attempts)
    assert _shards(tmp_path / "index") == _shards(tmp_path / "reference-index")
    assert reference["vectors_added"] == result["vectors_added"] == 256
