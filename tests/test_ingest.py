"""Batch ingestion through the real service (API + RQ worker + PostGIS + Redis), kills included;
the EOL catalogue in dry run; export and re-import."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from shapely.geometry import box
from sqlalchemy import func

from service import crud
from service.db import session_scope
from geo.eol import footprint_corners
from service.export import export
from service.ingest import ImageFinder, IngestOptions, Reject, ingest, read_catalogue
from service.models import Job, Photo

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_service(localize_world, postgis_url, redis_url, tmp_path):
    """`astroloc serve` and `astroloc worker` processes over PostGIS and Redis."""
    settings = localize_world(data_dir=tmp_path / "var", database_url=postgis_url, queue_mode="rq",
                              redis_url=redis_url)
    env = dict(os.environ, ASTROLOC_DATA_DIR=str(settings.data_dir), ASTROLOC_DATABASE_URL=postgis_url,
               ASTROLOC_QUEUE_MODE="rq", ASTROLOC_REDIS_URL=redis_url, ASTROLOC_WORLD_DIR=str(settings.world_dir),
               ASTROLOC_INDEX_DIR=str(settings.index_dir), ASTROLOC_MODEL_STORE_DIR=str(settings.model_store_dir))
    port = _free_port()
    log = (tmp_path / "service.log").open("ab")
    processes = [
        subprocess.Popen([BIN / "astroloc", "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True),
        subprocess.Popen([BIN / "astroloc", "worker", "--queues", "localize"], env=env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True),
    ]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.3)
    yield settings, base, env
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=120)  # a loaded machine stops a worker slowly


def _catalogue_with_bad_rows(world_dir: Path, out: Path) -> Path:
    """The world's catalogue plus three rows that cannot be processed."""
    rows = list(csv.DictReader((world_dir / "queries.csv").open()))
    good = rows[0]
    bad = [dict(good, FRAME="90001", URL="queries/missing.jpg"),
           dict(good, FRAME="90002", CAPTURE_TIME="yesterday"),
           dict(good, FRAME="90003", NADIR_LAT="95")]
    path = world_dir / "catalogue-with-bad-rows.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(good))
        writer.writeheader()
        writer.writerows(rows + bad)
    return path


def test_ingest_resumes_after_a_kill_without_duplicates(live_service, tmp_path):
    settings, base, env = live_service
    catalogue = _catalogue_with_bad_rows(settings.world_dir, tmp_path)
    out = tmp_path / "ingest"
    total = sum(1 for _ in csv.DictReader(catalogue.open())) - 3
    assert total >= 50

    ingester = subprocess.Popen(
        [BIN / "astroloc", "ingest", str(catalogue), "--api", base, "--out", str(out), "--no-refine",
         "--concurrency", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = out / "state.jsonl"
    deadline = time.monotonic() + 120
    while not (state.is_file() and state.read_text().count('"not_localized"') >= 10):
        assert time.monotonic() < deadline and ingester.poll() is None, "the ingester made no progress"
        time.sleep(0.2)
    os.killpg(ingester.pid, signal.SIGKILL)  # half-way, as a crash would
    ingester.wait()

    summary = ingest(catalogue, out, ImageFinder(catalogue), IngestOptions(api_url=base, refine=False, concurrency=2),
                     progress=False)
    assert summary["valid"] == total and summary["rejected"] == 3
    assert summary["not_localized"] + summary["localized"] == total and summary["failed"] == 0

    results = list(csv.DictReader((out / "results.csv").open()))
    assert len(results) == total and len({r["photo_id"] for r in results}) == total
    rejects = {r["line"]: r["reason"] for r in csv.DictReader((out / "rejects.csv").open())}
    assert set(rejects) == {str(total + 2), str(total + 3), str(total + 4)}
    assert "image not found" in rejects[str(total + 2)] and "capture time" in rejects[str(total + 3)]
    assert "out of range" in rejects[str(total + 4)]
    with session_scope(settings.resolved_database_url) as session:
        assert session.query(Photo).count() == total
        jobs_per_photo = {p: n for p, n in session.query(Job.photo_id, func.count()).group_by(Job.photo_id)}
        assert set(jobs_per_photo.values()) == {1}  # never a second job for a photo

    again = ingest(catalogue, out, ImageFinder(catalogue), IngestOptions(api_url=base, refine=False), progress=False)
    # Everything already done: nothing submitted again.
    assert again["already_done"] == total and again["not_localized"] == total and again["failed"] == 0


def test_eol_catalogue_dry_run_flags_the_ten_metadata_errors(shared_data, tmp_path):
    summary = ingest(shared_data / "eol_footprints.csv", tmp_path, ImageFinder(shared_data / "eol_footprints.csv"),
                     IngestOptions(), dry_run=True, progress=False)
    assert summary == summary | {"rows": 17763, "valid": 17763, "rejected": 0, "flagged": 10}
    flags = list(csv.DictReader((tmp_path / "flags.csv").open()))
    assert len(flags) == 10 and all("km from the nadir" in f["flag"] for f in flags)


def test_rows_are_validated_with_line_numbers(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        "MISSION,ROLL,FRAME,YYYYMMDD,PTIME,NADIR_LAT,NADIR_LON\n"
        "ISS047,E,1,20160409,120000,10,20\n"
        "ISS047,E,2,20161309,120000,10,20\n"
        "ISS047,E,3,20160409,120000,abc,20\n"
        ",E,4,20160409,120000,10,20\n"
    )
    items = list(read_catalogue(path))
    assert items[0].photo_id == "ISS047-E-1" and items[0].captured_at == datetime(2016, 4, 9, 12, tzinfo=UTC)
    assert [(i.line, type(i)) for i in items[1:]] == [(3, Reject), (4, Reject), (5, Reject)]
    with pytest.raises(ValueError, match="unknown column"):
        list(read_catalogue(path, {"NOT_A_COLUMN": "x"}))


@pytest.mark.parametrize("fmt", ["csv", "geojson", "gpkg"])
def test_export_reimports(postgis_url, tmp_path, fmt):
    from geo import footprint_polygon

    truth = [(29.0, 30.0), (31.0, 30.2), (31.2, 32.5), (29.1, 32.3)]  # LL UL UR LR (lat, lon)
    photo_id = f"ISS064-E-{fmt[:3].upper()}1"
    with session_scope(postgis_url) as session:
        session.add(Photo(photo_id=photo_id, status="localized", captured_at=datetime(2020, 12, 9, 12, tzinfo=UTC),
                          nadir_lat=30.0, nadir_lon=31.0))
        session.flush()
        crud.add_footprint(session, photo_id, footprint_polygon(truth), method="earthmatch-sift", inliers=80)
        session.commit()
        out = tmp_path / f"footprints.{fmt}"
        count = export(session, out, fmt, bbox=box(29, 28, 34, 33))
        assert count >= 1
        assert export(session, tmp_path / f"none.{fmt}", fmt, bbox=box(-10, -10, -9, -9)) == 0
    if fmt == "csv":
        rows = [r for r in read_catalogue(out) if getattr(r, "photo_id", None) == photo_id]
        assert len(rows) == 1 and not isinstance(rows[0], Reject)
        assert rows[0].reference == [pytest.approx(c, abs=1e-6) for c in truth]
    elif fmt == "geojson":
        import json

        features = json.loads(out.read_text())["features"]
        assert photo_id in {f["properties"]["photo_id"] for f in features}
    else:
        import geopandas

        frame = geopandas.read_file(out)
        assert photo_id in set(frame["photo_id"])
    assert footprint_corners(footprint_polygon(truth)) == [pytest.approx(c, abs=1e-6) for c in truth]
