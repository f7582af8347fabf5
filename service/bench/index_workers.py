"""`astroloc bench index-workers`: the index build on 1, 2, ... `astroloc worker --queues index`
processes (real RQ over Redis), each held to one compute thread (model and tile decoding), so
that the figure measures the distribution of the chunks, not intra-op threading.

The demo model (its parity-checked ONNX export, as builds use it) describes the demo world's tiles
at the zooms asked; each run builds a fresh index from the same plan, and the indexes are
compared file for file (the same vectors for the same tiles).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from service.config import Settings


def _shards(index_dir: Path) -> dict:
    from index.shards import Manifest

    return {name: {f: v["sha256"] for f, v in entry.files.items()} for name, entry in Manifest.load(index_dir).shards.items()}


def run(settings: Settings, workers: list[int], zooms: list[int]) -> str:
    from index.database import grid_tiles
    from service import crud
    from service.db import session_scope, upgrade_database
    from service.demo_stack import ensure_demo_model
    from service.index_jobs import ModelRecipe, build_with_jobs
    from service.indexing import SourceRecipe

    tiles_dir = settings.resolved_tiles_dir
    tiles = grid_tiles(zooms)
    missing = [t for t in tiles[:: max(1, len(tiles) // 50)] if not (tiles_dir / f"{t.z}/{t.x}/{t.y}.jpg").is_file()]
    if missing:
        raise ValueError(f"the demo world's tiles of zooms {zooms} are not in {tiles_dir}: run `astroloc demo` first")
    rows, indexes = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-index-workers-") as tmp:
        root = Path(tmp)
        bench = settings.model_copy(update={
            "data_dir": root, "database_url": f"sqlite:///{root / 'jobs.db'}", "queue_mode": "rq",
            "model_store_dir": root / "models", "model_threads": 1, "index_load_workers": 1})
        upgrade_database(bench.resolved_database_url)
        ref = ensure_demo_model(bench)
        recipe = ModelRecipe(version_id=ref.version_id)
        recipe.resolve(bench)  # the ONNX export, once, before any worker starts
        env = dict(os.environ, ASTROLOC_DATA_DIR=str(root), ASTROLOC_DATABASE_URL=bench.database_url,
                   ASTROLOC_QUEUE_MODE="rq", ASTROLOC_REDIS_URL=bench.redis_url,
                   ASTROLOC_MODEL_STORE_DIR=str(bench.model_store_dir), ASTROLOC_MODEL_THREADS="1",
                   ASTROLOC_INDEX_LOAD_WORKERS="1", OMP_NUM_THREADS="1")
        astroloc = str(Path(sys.executable).parent / "astroloc")
        for count in workers:
            processes = [subprocess.Popen([astroloc, "worker", "--queues", "index"], env=env,
                                          stdout=(root / f"worker-{count}-{n}.log").open("ab"),
                                          stderr=subprocess.STDOUT, start_new_session=True) for n in range(count)]
            try:
                time.sleep(3)  # the workers up before the clock starts
                index_dir = root / f"index-{count}"
                started = time.perf_counter()
                result = build_with_jobs(bench, SourceRecipe(tiles_dir=str(tiles_dir)), tiles, recipe,
                                         index_dir=index_dir, progress=False)
                seconds = time.perf_counter() - started
            finally:
                for process in processes:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=120)
            with session_scope(bench.resolved_database_url) as session:
                detail = crud.get_job(session, result["job_id"]).detail or {}
            indexes[count] = _shards(index_dir)
            rows.append((count, detail.get("tiles_per_s"), seconds, result["chunks"]))
    base = rows[0][1]
    same = all(index == indexes[workers[0]] for index in indexes.values())
    lines = [
        f"{len(tiles):,} tiles of the demo world (zooms {zooms}) x 4 rotations, the demo model through its ONNX "
        f"export, chunks of {settings.index_build_chunk_tiles} tiles on the 'index' queue (RQ, Redis); each worker "
        "`ASTROLOC_MODEL_THREADS=1 ASTROLOC_INDEX_LOAD_WORKERS=1`; the coordinator (`astroloc index build`) "
        "in this process. Tiles/s: the describing phase (the build job's own figure); wall: plan to assembled index.",
        "",
        "| workers | tiles/s describing | speed-up | wall s (incl. assembly) | chunks |",
        "|---|---|---|---|---|",
    ]
    for count, rate, seconds, chunks in rows:
        lines.append(f"| {count} | {rate:.1f} | {rate / base:.2f}x | {seconds:.1f} | {chunks} |")
    lines += ["", f"Indexes of every run identical file for file (shard checksums): {'yes' if same else 'NO'}."]
    return "\n".join(lines)
