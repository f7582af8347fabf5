"""The tile index built by jobs: chunks described by any number of `astroloc worker --queues index`
processes (machines sharing Redis, the database, the tile source and the index directory), then
assembled into the sharded index (index/chunks.py).

`astroloc index build` (:func:`build_with_jobs`) is the coordinator:

1. it plans the tiles not yet indexed into chunks of ``index_build_chunk_tiles`` and writes the
   plan beside the index (``<index>/.build/chunks/plan.json``); a rerun with the same plan resumes;
2. it queues one ``index-chunk`` job per chunk not described yet on the ``index`` queue (in
   the embedded default the same jobs run in this process's thread pool), and records its own
   progress in an ``index-build`` job: chunks done / total, tiles/s and ETA in ``GET /jobs/<id>``;
3. a worker killed mid-chunk leaves no chunk file (each is written whole, then renamed); its job's
   heartbeat stops and the recovery pass of any worker (or of this coordinator) runs it again;
4. when every chunk is there, :func:`index.build.build_index` assembles the index from them:
   each shard's quantiser trained once, on a sample of its vectors, as an in-process build does.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from index.chunks import StoredDescriber, chunk_done, plan_chunks, tiles_array, tiles_from_array, write_chunk
from index.files import write_atomically
from service import crud, jobs
from service.config import Settings
from service.db import session_scope
from service.indexing import IndexingError, ResolvedModel, SourceRecipe, resolve_model
from service.models import JobStatus

log = logging.getLogger(__name__)

INDEX_QUEUE = "index"
CHUNK_JOB = "index-chunk"
BUILD_JOB = "index-build"


class ModelRecipe(BaseModel):
    """How a worker loads the describing model again (service.indexing.resolve_model's arguments)."""

    model_config = ConfigDict(extra="forbid")

    version_id: int | None = None
    arch: str | None = None
    weights: str | None = None
    seed: int = 0

    def resolve(self, settings: Settings) -> ResolvedModel:
        weights = Path(self.weights) if self.weights else None
        return resolve_model(settings, self.arch, weights, self.version_id, self.seed)


class IndexBuildPlan(BaseModel):
    """What the build describes and with what; stored as plan.json beside the chunks."""

    model_config = ConfigDict(extra="forbid")

    index_dir: str
    index_key: str  # the model identity the index records
    model: ModelRecipe
    tiles_dir: str | None = None
    url_template: str | None = None
    rotations: list[int]
    turns_deg: list[int]
    chunks: list[list[list[int]]]  # per chunk, rows z, x, y, steps

    @property
    def source(self) -> SourceRecipe:
        return SourceRecipe(self.tiles_dir, self.url_template)

    def chunk_tiles(self, number: int):  # noqa: ANN201
        import numpy as np

        return tiles_from_array(np.asarray(self.chunks[number], np.int64).reshape(-1, 4))


class IndexChunkParams(BaseModel):
    """Params of an ``index-chunk`` job: the plan file and the chunk's number in it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    plan: str
    chunk: int


def chunk_dir(index_dir: Path | str) -> Path:
    return Path(index_dir) / ".build" / "chunks"


def load_plan(path: Path | str) -> IndexBuildPlan:
    return IndexBuildPlan.model_validate_json(Path(path).read_text())


# --- the worker's side ----------------------------------------------------------------------------


_describers: dict[tuple[str, int], object] = {}
_describers_lock = threading.Lock()  # the embedded default runs chunks in threads: one model load


def _describer(settings: Settings, plan_path: Path):  # noqa: ANN202
    """The describer of a plan, loaded once per worker process (the model stays in memory)."""
    from model.describer import tile_describer

    key = (str(plan_path.resolve()), plan_path.stat().st_mtime_ns)
    with _describers_lock:
        if key not in _describers:
            plan = load_plan(plan_path)
            resolved = plan.model.resolve(settings)
            if resolved.version != plan.index_key:
                raise IndexingError(f"the model resolves to {resolved.version}, the build was planned for "
                                    f"{plan.index_key}")
            _describers.clear()  # one build at a time per worker: the previous plan's model goes
            _describers[key] = tile_describer(resolved.net, plan.source.open(settings),
                                              batch_size=settings.describe_batch_size,
                                              workers=settings.index_load_workers, turns_deg=plan.turns_deg)
        return _describers[key]


def describe_chunk(settings: Settings, params: IndexChunkParams) -> dict:
    """An ``index-chunk`` job: describe one chunk of a planned build into its chunk file (nothing
    to do when the file is there already: a job run again after its worker was presumed lost)."""
    plan_path = Path(params.plan)
    plan = load_plan(plan_path)
    if not 0 <= params.chunk < len(plan.chunks):
        raise IndexingError(f"chunk {params.chunk} is not in the plan ({len(plan.chunks)} chunks)")
    directory = plan_path.parent
    if chunk_done(directory, params.chunk):
        return {"chunk": params.chunk, "already_described": True}
    started = time.perf_counter()
    describer = _describer(settings, plan_path)
    described = describer(plan.chunk_tiles(params.chunk))
    write_chunk(directory, params.chunk, described)
    return {"chunk": params.chunk, "tiles": len(described.tiles), "skipped": len(described.skipped),
            "seconds": round(time.perf_counter() - started, 2)}


# --- the coordinator ------------------------------------------------------------------------------


def plan_build(settings: Settings, recipe: SourceRecipe, tiles, model_recipe: ModelRecipe,  # noqa: ANN001
               resolved: ResolvedModel, index_dir: Path) -> Path:
    """Write (or keep, when the same) the plan of the tiles not yet in ``index_dir``; its path."""
    from index.build import unindexed_tiles

    pending = unindexed_tiles(index_dir, tiles)
    plan = IndexBuildPlan(
        index_dir=str(Path(index_dir).resolve()), index_key=resolved.version, model=model_recipe,
        tiles_dir=recipe.tiles_dir, url_template=recipe.url_template,
        rotations=list(settings.index_rotations), turns_deg=list(settings.index_turns_deg),
        chunks=[tiles_array(chunk).tolist() for chunk in plan_chunks(pending, settings.index_build_chunk_tiles)],
    )
    directory = chunk_dir(index_dir)
    path = directory / "plan.json"
    if path.is_file() and load_plan(path) == plan:
        return path  # an interrupted build of the same tiles: its chunks are kept
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    write_atomically(path, plan.model_dump_json().encode())
    return path


def _chunk_jobs(directory: Path) -> dict[int, str]:
    path = directory / "jobs.json"
    return {int(k): v for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def queue_missing_chunks(settings: Settings, plan_path: Path) -> int:
    """Queue an ``index-chunk`` job for every chunk neither described nor waiting in a live job."""
    plan = load_plan(plan_path)
    directory = plan_path.parent
    known = _chunk_jobs(directory)
    queued = 0
    with session_scope(settings.resolved_database_url) as session:
        live = {number for number, job_id in known.items()
                if (job := crud.get_job(session, job_id)) is not None
                and job.status in (JobStatus.QUEUED, JobStatus.STARTED)}
    for number in range(len(plan.chunks)):
        if number in live or chunk_done(directory, number):
            continue
        known[number] = jobs.enqueue(settings, CHUNK_JOB, IndexChunkParams(plan=str(plan_path), chunk=number),
                                     queue=INDEX_QUEUE)
        queued += 1
    write_atomically(directory / "jobs.json", json.dumps(known).encode())
    return queued


def wait_for_chunks(settings: Settings, plan_path: Path, progress: bool, job_id: str | None = None,
                    poll_s: float = 1.0) -> None:
    """Until every chunk is described: the progress bar, the build job's progress, recovery of
    the chunk jobs whose worker died (RQ), and IndexingError when a chunk job failed for good."""
    from tqdm import tqdm

    plan = load_plan(plan_path)
    directory = plan_path.parent
    total = len(plan.chunks)
    sizes = [len(chunk) for chunk in plan.chunks]
    started, last_recovery = time.monotonic(), time.monotonic()
    tiles_at_start = sum(sizes[n] for n in range(total) if chunk_done(directory, n))
    with tqdm(total=sum(sizes), unit="tile", desc="index chunks", disable=not progress, smoothing=0.1) as bar:
        while True:
            done = [n for n in range(total) if chunk_done(directory, n)]
            tiles_done = sum(sizes[n] for n in done)
            bar.update(tiles_done - bar.n)
            elapsed = time.monotonic() - started
            rate = (tiles_done - tiles_at_start) / elapsed if tiles_done > tiles_at_start else None
            if job_id is not None:
                eta = (sum(sizes) - tiles_done) / rate if rate else None
                with session_scope(settings.resolved_database_url) as session:
                    crud.record_progress(session, job_id, tiles_done / max(1, sum(sizes)), {
                        "chunks_done": len(done), "chunks_total": total, "tiles_done": tiles_done,
                        "tiles_total": sum(sizes), "tiles_per_s": round(rate, 2) if rate else None,
                        "eta_s": round(eta) if eta is not None else None})
            if len(done) == total:
                return
            _raise_failed_chunk(settings, directory)
            if settings.queue_mode == "rq" and time.monotonic() - last_recovery > settings.job_stale_after_s / 2:
                jobs.recover_jobs(settings)  # retries the chunks of a worker that died
                queue_missing_chunks(settings, plan_path)
                last_recovery = time.monotonic()
            time.sleep(poll_s)


def _raise_failed_chunk(settings: Settings, directory: Path) -> None:
    chunk_of = {job_id: number for number, job_id in _chunk_jobs(directory).items()}
    with session_scope(settings.resolved_database_url) as session:  # one query a poll, not one a chunk
        for job in crud.jobs_of_kind(session, CHUNK_JOB, JobStatus.FAILED):
            number = chunk_of.get(job.id)
            if number is not None and not chunk_done(directory, number):
                raise IndexingError(f"chunk {number} failed: {job.error}")


def assemble(settings: Settings, plan_path: Path, factories: str | None = None, progress: bool = True,
             tiles=None) -> dict:  # noqa: ANN001
    """The index from the described chunks (every one must be there); the chunk files removed after.
    ``tiles``: the build's whole tile list (those already indexed are counted as such); default
    the planned ones."""
    from dataclasses import asdict

    from index.build import build_index

    plan = load_plan(plan_path)
    chunks = [plan.chunk_tiles(n) for n in range(len(plan.chunks))]
    report = build_index(
        plan.index_dir, tiles if tiles is not None else [t for chunk in chunks for t in chunk],
        StoredDescriber(plan_path.parent, chunks),
        model_version=plan.index_key, rotations=plan.rotations, shard_zoom=settings.index_shard_zoom,
        factories=factories or settings.index_factories, chunk_tiles=settings.index_build_chunk_tiles,
        progress=progress,
    )
    shutil.rmtree(plan_path.parent, ignore_errors=True)
    return {"index_dir": plan.index_dir, "model_version": plan.index_key, "chunks": len(chunks), **asdict(report)}


def build_with_jobs(settings: Settings, recipe: SourceRecipe, tiles, model_recipe: ModelRecipe,  # noqa: ANN001
                    *, index_dir: Path | None = None, factories: str | None = None, progress: bool = True) -> dict:
    """`astroloc index build`: plan, queue the chunks, follow them (an ``index-build`` job shows the
    progress), assemble. Resumable: run it again after any interruption."""
    from service.db import upgrade_database

    upgrade_database(settings.resolved_database_url)  # the jobs' rows
    index_dir = Path(index_dir or settings.resolved_index_dir)
    tiles = list(tiles)
    resolved = model_recipe.resolve(settings)  # here first: an ONNX export is made once, not per worker
    plan_path = plan_build(settings, recipe, tiles, model_recipe, resolved, index_dir)
    with session_scope(settings.resolved_database_url) as session:
        job = crud.create_job(session, BUILD_JOB, {"plan": str(plan_path)}, queue=INDEX_QUEUE, max_attempts=1)
        session.commit()
        crud.claim_job(session, job.id, "astroloc index build")
        job_id = job.id
    log.info("index build %s: %d chunks planned in %s", job_id, len(load_plan(plan_path).chunks), plan_path.parent)
    try:
        queue_missing_chunks(settings, plan_path)
        wait_for_chunks(settings, plan_path, progress, job_id)
        with jobs.Heartbeat(settings, job_id):  # assembling a large index takes a while
            result = assemble(settings, plan_path, factories, progress, tiles) | {"job_id": job_id}
    except BaseException as exc:
        with session_scope(settings.resolved_database_url) as session:
            crud.fail_job(session, job_id, f"{type(exc).__name__}: {exc}")
        raise
    with session_scope(settings.resolved_database_url) as session:
        crud.finish_job(session, job_id, result)
    return result
