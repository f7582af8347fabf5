"""POST /localize end to end: validation, retrieval, the refinement job, footprints in PostGIS."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from shapely.geometry import shape

from geo import footprint_iou
from service import crud
from service.db import session_scope
from service.demo_stack import world_photos
from service.models import Photo
from tests.polling import wait_for_job

ASTROLOC = str(Path(sys.executable).parent / "astroloc")


def _client(settings):
    from fastapi.testclient import TestClient

    from service.api.main import create_app

    return TestClient(create_app(settings))


def _photo_count(settings) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.query(Photo).count()


def _jpeg(size=(64, 64), color=(40, 90, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def _wait(client, url: str, timeout_s: float = 180.0) -> dict:
    return wait_for_job(client, url, timeout_s)


def _held_out(settings):
    """A held-out photo whose footprint suits the world's zooms (what retrieval can find)."""
    zooms = range(settings.world_min_zoom, settings.world_max_zoom + 1)
    photos = [p for split in ("test", "val") for p in world_photos(settings, split) if p.matching_zoom in zooms]
    assert photos, "the test world has no held-out photo at its zooms"
    return photos


# --- bad input: refused before anything is stored ----------------------------------------------


@pytest.mark.parametrize(
    ("files", "data", "status", "message"),
    [
        ({"image": ("a.txt", b"hello", "text/plain")}, {}, 415, "media type"),
        ({"image": ("a.jpg", b"not an image at all", "image/jpeg")}, {}, 415, "not an image"),
        ({"image": ("a.jpg", b"", "image/jpeg")}, {}, 422, "empty"),
        ({"image": ("a.jpg", _jpeg()[:200], "image/jpeg")}, {}, 422, "corrupt or truncated"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"timestamp": "yesterday"}, 422, "timestamp"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"timestamp": "2016-04-09T12:00:00"}, 422, "zone"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"nadir_lat": "91", "nadir_lon": "0"}, 422, "nadir_lat"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"nadir_lat": "10"}, 422, "both"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"search": "everywhere"}, 422, "search"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"photo_id": "../etc/passwd"}, 422, "photo_id"),
        ({"image": ("a.jpg", _jpeg(), "image/jpeg")}, {"reference_footprint": "{oops"}, 422, "reference_footprint"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_is_stored(sqlite_settings, files, data, status, message):
    with _client(sqlite_settings) as client:
        answer = client.post("/localize", files=files, data=data)
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert _photo_count(sqlite_settings) == 0


def test_decompression_bomb_is_refused(sqlite_settings):
    buffer = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buffer, "PNG")  # ~110 kB on the wire, 900 Mpx decoded
    with _client(sqlite_settings) as client:
        answer = client.post("/localize", files={"image": ("bomb.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 413 and "pixels" in answer.text
    assert _photo_count(sqlite_settings) == 0


def test_without_a_retrieval_model_the_service_says_so(sqlite_settings):
    with _client(sqlite_settings) as client:
        answer = client.post("/localize", files={"image": ("a.jpg", _jpeg(), "image/jpeg")})
    assert answer.status_code == 503 and "retrieval model" in answer.json()["detail"]
    assert _photo_count(sqlite_settings) == 0


# --- the embedded default: retrieval, idempotency, refine=false ------------------------------


def test_retrieval_only_and_idempotent_resubmission(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var")
    photo = _held_out(settings)[0]
    image = photo.image_path.read_bytes()
    with _client(settings) as client:
        form = {"photo_id": photo.photo_id, "timestamp": photo.capture_time, "refine": "false", "top_k": "5"}
        first = client.post("/localize", files={"image": ("p.jpg", image, "image/jpeg")}, data=form)
        assert first.status_code == 202, first.text
        body = first.json()
        assert body["search"]["mode"] == "visibility" and body["search"]["iss_position"]["tle_epoch"]
        assert 1 <= len(body["candidates"]) <= 5
        assert {"tile", "zoom", "rotation", "score", "footprint"} <= set(body["candidates"][0])
        job = _wait(client, body["status_url"])
        assert job["status"] == "finished" and job["result"]["localized"] is False
        assert "refine=false" in job["result"]["reason"]

        again = client.post("/localize", files={"image": ("p.jpg", image, "image/jpeg")}, data=form)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert again.json()["job_id"] == body["job_id"]

        other = client.post("/localize", files={"image": ("q.jpg", _jpeg(), "image/jpeg")}, data=form)
        assert other.status_code == 409 and "different image" in other.json()["detail"]
    assert _photo_count(settings) == 1


def test_identical_submissions_racing_each_other_get_one_job(localize_world, tmp_path):
    """A client killed mid-request and restarted (the ingester after kill -9) sends a photo again
    while the first request is still being served: both must get the one job, never a refusal."""
    import threading

    from service.models import Job

    settings = localize_world(data_dir=tmp_path / "var")
    photos = _held_out(settings)[:3]
    senders = 4
    start = threading.Barrier(senders * len(photos))
    answers: dict[str, list] = {p.photo_id: [] for p in photos}

    def send(client, photo) -> None:  # noqa: ANN001
        form = {"photo_id": photo.photo_id, "timestamp": photo.capture_time, "refine": "false"}
        image = photo.image_path.read_bytes()
        start.wait()
        answer = client.post("/localize", files={"image": ("p.jpg", image, "image/jpeg")}, data=form)
        answers[photo.photo_id].append((answer.status_code, answer.json()))

    with _client(settings) as client:
        threads = [threading.Thread(target=send, args=(client, p)) for p in photos for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    for photo_id, got in answers.items():
        assert len(got) == senders and {code for code, _ in got} <= {200, 202}, got
        assert len({body["job_id"] for _, body in got}) == 1, got
        assert sum(not body["duplicate"] for _, body in got) == 1  # one created it, the others were told so
    with session_scope(settings.resolved_database_url) as session:
        assert session.query(Job).filter(Job.photo_id.in_(list(answers))).count() == len(photos)


def test_a_corrupt_timestamp_falls_back_to_worldwide_search(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var")
    photo = _held_out(settings)[0]
    with _client(settings) as client:
        answer = client.post(
            "/localize",
            files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
            data={"timestamp": "2090-01-01T00:00:00Z", "refine": "false"},  # a flipped digit in the year
        )
    assert answer.status_code == 202, answer.text
    search = answer.json()["search"]
    assert search["mode"] == "worldwide" and search["region"] is None
    assert "TLE" in search["reason"] or "tle" in search["reason"]
    assert any(c["name"] == "capture_time" and not c["ok"] for c in search["checks"]), search["checks"]


# --- through a real PostGIS and a real RQ worker -----------------------------------------------


def _start_worker(settings, tmp_path) -> subprocess.Popen:
    """A real `astroloc worker` on the localize queue, over ``settings``' PostGIS and Redis."""
    env = dict(os.environ)
    env.update(
        ASTROLOC_DATA_DIR=str(settings.data_dir), ASTROLOC_DATABASE_URL=settings.database_url,
        ASTROLOC_QUEUE_MODE="rq", ASTROLOC_REDIS_URL=settings.redis_url, ASTROLOC_WORLD_DIR=str(settings.world_dir),
        ASTROLOC_INDEX_DIR=str(settings.index_dir), ASTROLOC_MODEL_STORE_DIR=str(settings.model_store_dir),
    )
    log_path = tmp_path / "worker.log"
    return subprocess.Popen(
        [ASTROLOC, "worker", "--queues", "localize"], env=env, stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=120)  # a loaded machine stops a worker slowly


@pytest.fixture
def rq_worker(localize_world, postgis_url, redis_url, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var", database_url=postgis_url, queue_mode="rq", redis_url=redis_url)
    worker = _start_worker(settings, tmp_path)
    yield settings
    _stop_worker(worker)


def test_photo_is_localized_end_to_end_and_found_by_a_spatial_query(rq_worker):
    settings = rq_worker
    photo = _held_out(settings)[0]
    with _client(settings) as client:
        answer = client.post(
            "/localize",
            files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
            data={"photo_id": photo.photo_id, "timestamp": photo.capture_time, "top_k": "10"},
        )
        assert answer.status_code == 202, answer.text
        job = _wait(client, answer.json()["status_url"])
        assert job["status"] == "finished", job
        result = job["result"]
        assert result["localized"] is True, result
        footprint = shape(result["footprint"])
        iou = footprint_iou(footprint, photo.truth)
        assert iou >= 0.5, f"IoU {iou:.2f} with the truth"
        assert result["inliers"] >= 1 and result["area_km2"] > 0 and len(result["homography"]) == 3

        centre = result["center"]
        found = client.get("/photos", params={"contains": f"{centre['lat']},{centre['lon']}"}).json()
        assert photo.photo_id in {f["properties"]["photo_id"] for f in found["features"]}
        picture = client.get(f"/photos/{photo.photo_id}/footprint.png")
        assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"
    with session_scope(settings.resolved_database_url) as session:
        stored = crud.latest_footprint(session, photo.photo_id)
        assert stored is not None and stored.job_id == job["id"] and stored.method.startswith("earthmatch")
        assert crud.get_photo(session, photo.photo_id).status == "localized"


def test_a_job_that_fails_leaves_its_photo_failed_with_the_reason(localize_world, postgis_url, redis_url, tmp_path):
    """The job raises (its stored image vanished before a worker took it): the job and its photo
    both say failed, with the error, instead of the photo waiting as queued for ever."""
    from service.photos import stored_photo_path

    settings = localize_world(data_dir=tmp_path / "var", database_url=postgis_url, queue_mode="rq", redis_url=redis_url)
    photo = _held_out(settings)[0]
    with _client(settings) as client:
        answer = client.post("/localize", files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
                             data={"photo_id": photo.photo_id, "timestamp": photo.capture_time})
        assert answer.status_code == 202, answer.text
        assert client.get(f"/photos/{photo.photo_id}").json()["status"] == "queued"
        with session_scope(settings.resolved_database_url) as session:
            stored_photo_path(settings.data_dir, crud.get_photo(session, photo.photo_id).image_path).unlink()
        worker = _start_worker(settings, tmp_path)
        try:
            job = _wait(client, answer.json()["status_url"])
        finally:
            _stop_worker(worker)
        assert job["status"] == "failed" and job["error"], job
        record = client.get(f"/photos/{photo.photo_id}").json()
    assert record["status"] == "failed" and record["job_id"] == job["id"]
    assert record["error"] == job["error"]


def test_the_job_contract_is_typed():
    from pydantic import ValidationError

    from service.localize.contracts import LocalizeJobParams

    params = LocalizeJobParams.model_validate({
        "photo_id": "P1", "image_path": "/p.jpg",
        "candidates": [{"tile": "5/17/11", "zoom": 5, "rotation": 90, "score": 0.8}],
    })
    assert params.candidates[0].rotation == 90 and params.refine is True
    with pytest.raises(ValidationError, match="tile"):
        LocalizeJobParams.model_validate({"photo_id": "P1", "image_path": "/p.jpg",
                                          "candidates": [{"zoom": 5, "rotation": 90, "score": 0.8}]})
