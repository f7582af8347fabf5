"""`astroloc bench ingest`: photos per hour through the whole service, as NASA would run it.

One `astroloc serve` process (upload checks, search region, retrieval) and ``workers`` `astroloc
worker` processes (EarthMatch refinement, footprint into PostGIS), over PostgreSQL and Redis; the
batch ingester (`service.ingest.ingest`, what `astroloc ingest` runs) submits held-out demo-world
photos with ``concurrency`` requests in flight. A fresh PostGIS database is created for the run
(so no photo is a duplicate of an earlier run) and dropped afterwards.

The profile comes from the jobs themselves: retrieval seconds (measured in the API), queue wait
(created -> started), refinement seconds and candidates tried.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from service.config import Settings
from service.db import upgrade_database
from service.demo_stack import ensure_demo_model, ensure_tles, prepare_demo, world_photos
from service.ingest import ImageFinder, IngestOptions, ingest

TARGET_PER_DAY = 10_000  # the ISS's daily output of photos


def run(settings: Settings, photos: int = 60, workers: int = 2, concurrency: int = 4,
        admin_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        photo_size: tuple[int, int] | None = None) -> str:
    """Ingest ``photos`` held-out photos through API + workers; returns the markdown report.

    ``photo_size`` (width, height): each photo is first enlarged into a JPEG of that size (the
    square render scaled to the height, black borders left and right, as a scan's), so that the
    decoding and resizing of catalogue-sized files is in the measurement."""
    stack = prepare_demo(settings, progress=True)  # world, model, index (reused when present)
    chosen = {p.photo_id for p in world_photos(settings, "test", limit=photos)}
    name = f"astroloc_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    database_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="astroloc-bench-") as scratch:
            root = Path(scratch)
            # A scratch data dir (uploads, model store) over the same world and index.
            bench = settings.model_copy(update={
                "database_url": database_url, "queue_mode": "rq", "data_dir": root / "var",
                "world_dir": settings.resolved_world_dir.resolve(), "tiles_dir": settings.resolved_tiles_dir.resolve(),
                "index_dir": settings.resolved_index_dir.resolve()})
            upgrade_database(database_url)
            ensure_tles(bench)
            ensure_demo_model(bench)
            catalogue = _catalogue(settings, chosen, root / "catalogue.csv", photo_size)
            summary, jobs, wall = _ingest_through_service(bench, catalogue, root, workers, concurrency)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
    return _report(settings, stack, summary, jobs, wall, workers, concurrency, photo_size)


def _catalogue(settings: Settings, photo_ids: set[str], out: Path, photo_size: tuple[int, int] | None = None) -> Path:
    """The world's catalogue rows of the chosen photos, image paths made absolute (or, with
    ``photo_size``, pointing at enlarged copies next to the catalogue)."""
    from index.files import write_csv
    from world.catalogue import CSV_COLUMNS, read_photos

    world = settings.resolved_world_dir.resolve()  # the catalogue lives elsewhere: absolute paths
    chosen = [p for p in read_photos(world, include_limb=True) if p.photo_id in photo_ids]
    rows = [dict(p.columns, URL=str(p.image_path)) for p in chosen]
    if photo_size is not None:
        folder = out.parent / "large"
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            row["URL"] = str(_enlarged(Path(row["URL"]), folder, photo_size))
    write_csv(out, list(CSV_COLUMNS), rows)
    return out


def _ingest_through_service(settings: Settings, catalogue: Path, root: Path, workers: int,
                            concurrency: int) -> tuple[dict, list[dict], float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", ASTROLOC_DATABASE_URL=settings.database_url,
               ASTROLOC_QUEUE_MODE="rq", ASTROLOC_REDIS_URL=settings.redis_url,
               ASTROLOC_DATA_DIR=str(settings.data_dir), ASTROLOC_WORLD_DIR=str(settings.resolved_world_dir),
               ASTROLOC_INDEX_DIR=str(settings.resolved_index_dir), ASTROLOC_TILES_DIR=str(settings.resolved_tiles_dir),
               ASTROLOC_MODEL_STORE_DIR=str(settings.resolved_model_store_dir), ASTROLOC_API_KEYS="")
    command = str(Path(sys.executable).parent / "astroloc")
    port = _free_port()
    log = (root / "service.log").open("ab")
    processes = [subprocess.Popen([command, "serve", "--port", str(port)], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)]
    processes += [subprocess.Popen([command, "worker", "--queues", "localize"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True) for _ in range(workers)]
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, processes)
        started = time.monotonic()
        summary = ingest(catalogue, root / "ingest", ImageFinder(catalogue),
                         IngestOptions(api_url=base, refine=True, concurrency=concurrency), progress=True)
        wall = time.monotonic() - started
        if not summary["valid"]:
            reasons = [r["reason"] for r in csv.DictReader((root / "ingest" / "rejects.csv").open())][:3]
            raise RuntimeError(f"no photo could be ingested; first rejects: {reasons}")
        if summary["failed"] == summary["valid"]:
            reasons = [r["reason"] for r in csv.DictReader((root / "ingest" / "results.csv").open())][:3]
            raise RuntimeError(f"every photo failed; first reasons: {reasons}")
        with httpx.Client(base_url=base, timeout=60) as client:
            jobs = [client.get(f"/jobs/{row['job_id']}").json()
                    for row in csv.DictReader((root / "ingest" / "results.csv").open()) if row["job_id"]]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    return summary, jobs, wall


def _enlarged(image_path: Path, folder: Path, size: tuple[int, int]) -> Path:
    """A catalogue-sized JPEG of a world photo: scaled to the height, centred on black."""
    from PIL import Image

    width, height = size
    with Image.open(image_path) as image:
        scale = height / image.height
        scaled = image.convert("RGB").resize((round(image.width * scale), height), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(scaled, ((width - scaled.width) // 2, 0))
    path = folder / image_path.name
    canvas.save(path, "JPEG", quality=90)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(base: str, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a service process exited at start-up (see its log)")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not answer /health within 120 s")


def _seconds(job: dict, start: str, end: str) -> float | None:
    from datetime import datetime

    if not job.get(start) or not job.get(end):
        return None
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def _mean(values: list) -> float:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")


def _report(settings: Settings, stack, summary: dict, jobs: list[dict], wall: float, workers: int, concurrency: int,  # noqa: ANN001
            photo_size: tuple[int, int] | None = None) -> str:
    done = len(jobs)
    per_hour = done / wall * 3600 if wall else 0.0
    results = [j.get("result") or {} for j in jobs]
    retrieval = [(r.get("retrieval") or {}).get("seconds") for r in results]
    refinement = [r.get("runtime_s") for r in results]
    tried = [len(r.get("tried") or []) for r in results]
    waits = [_seconds(j, "created_at", "started_at") for j in jobs]
    per_candidate = sum(v for v in refinement if v) / max(1, sum(tried))
    busy = sum(v for v in refinement if v) + sum(v for v in retrieval if v)
    verdict = "meets" if per_hour * 24 >= TARGET_PER_DAY else "falls short of"
    return "\n".join([
        f"{done} held-out demo-world photos"
        + (f" as {photo_size[0]}x{photo_size[1]} JPEGs (the 512-px renders enlarged, black borders)" if photo_size else "")
        + f" through `astroloc ingest` -> 1 API process + {workers} RQ "
        f"workers, PostgreSQL/PostGIS + Redis, {concurrency} requests in flight; model "
        f"{stack.model.label()}, index of {stack.tiles_indexed} tiles x {len(settings.index_rotations)} rotations; {os.cpu_count()} cores.",
        "",
        "| photos | localized | wall s | photos/hour | photos/day | target 10,000/day |",
        "|---|---|---|---|---|---|",
        f"| {done} | {summary.get('localized', 0)} | {wall:.0f} | {per_hour:.0f} | {per_hour * 24:.0f} | "
        f"{verdict} it ({per_hour * 24 / TARGET_PER_DAY:.1f}x) |",
        "",
        "Where the time goes (means per photo, from the jobs):",
        "",
        "| retrieval in the API (s) | queue wait (s) | refinement in a worker (s) | candidates tried | s per candidate |",
        "|---|---|---|---|---|",
        f"| {_mean(retrieval):.2f} | {_mean(waits):.1f} | {_mean(refinement):.2f} | {_mean(tried):.1f} | "
        f"{per_candidate:.2f} |",
        "",
        f"Busy CPU-seconds per photo (retrieval + refinement): {busy / max(1, done):.2f}; with "
        f"{os.cpu_count()} cores the ceiling is {os.cpu_count() * 3600 / max(1e-9, busy / max(1, done)):.0f} "
        "photos/hour. Refinement dominates: each candidate is SIFT on a 768x768 neighbourhood plus "
        "4 EarthMatch iterations, so the early stop at a clear winner and the candidate count "
        "(`ASTROLOC_LOCALIZE_MAX_CANDIDATES`) set the throughput.",
    ])
