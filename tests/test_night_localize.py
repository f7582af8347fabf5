"""POST /localize for night photos: the star path through the API, the queue and PostGIS (issue 20)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import shape

from geo import footprint_iou
from service import crud
from service.db import session_scope
from service.demo_stack import ensure_tles
from world.night import NightSampling, Sky, render_night, sample_night_view
from world.sampling import sample_tles
from tests.polling import wait_for_job

ASTROLOC = str(Path(sys.executable).parent / "astroloc")
SMALL = NightSampling(width=640, height=427, lenses_mm=(35.0,))


@pytest.fixture(scope="module")
def night_photo():
    from service.night_world import night_sky

    view = sample_night_view(np.random.default_rng([7, 0]), sample_tles(), SMALL)
    return view, render_night(view, night_sky(), SMALL)


def _client(settings):
    from fastapi.testclient import TestClient

    from service.api.main import create_app

    return TestClient(create_app(settings))


def _wait(client, url: str, timeout_s: float = 300.0) -> dict:
    return wait_for_job(client, url, timeout_s)


@pytest.fixture
def rq_night(postgis_url, redis_url, tmp_path):
    """Settings over PostGIS and Redis with the ISS TLEs imported, and a real RQ worker process."""
    from service.config import Settings

    settings = Settings(data_dir=tmp_path / "var", database_url=postgis_url, queue_mode="rq", redis_url=redis_url,
                        api_keys=[])
    ensure_tles(settings)
    env = dict(os.environ, ASTROLOC_DATA_DIR=str(settings.data_dir), ASTROLOC_DATABASE_URL=postgis_url,
               ASTROLOC_QUEUE_MODE="rq", ASTROLOC_REDIS_URL=redis_url)
    worker = subprocess.Popen([ASTROLOC, "worker", "--queues", "localize"], env=env,
                              stdout=(tmp_path / "worker.log").open("ab"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    yield settings
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=120)  # a loaded machine stops a worker slowly


def test_night_photo_is_localized_by_its_stars_end_to_end(rq_night, night_photo):
    settings = rq_night
    view, rendered = night_photo
    form = {"photo_id": "SIM-N-7", "timestamp": view.reported_time.isoformat(), "method": "stars",
            "focal_mm": "35", "sensor_width_mm": "36"}
    with _client(settings) as client:
        answer = client.post("/localize", files={"image": ("n.jpg", rendered.jpeg, "image/jpeg")}, data=form)
        assert answer.status_code == 202, answer.text
        assert answer.json()["method"] == "stars"
        job = _wait(client, answer.json()["status_url"])
        assert job["status"] == "finished", job
        result = job["result"]
        assert result["localized"] is True and result["method"] == "stars", result
        assert footprint_iou(shape(result["footprint"]), rendered.ground_footprint) >= 0.8
        attitude = result["attitude"]
        assert attitude["frame"] == "ICRS" and len(attitude["quaternion_wxyz"]) == 4
        assert -90 <= attitude["dec_deg"] <= 90 and 0 <= attitude["roll_deg"] < 360
        assert len(result["stars_used"]) >= 6 and all(star["hip"] > 0 for star in result["stars_used"])
        # Top-left and top-right corners see the sky; the bottom ones have an uncertainty in km.
        top_left, top_right, bottom_right, bottom_left = result["corner_uncertainty_km"]
        assert top_left is None and top_right is None and 0 < bottom_right < 50 and 0 < bottom_left < 50
        assert all(check["ok"] for check in result["star_path"]["checks"])

        centre = result["center"]
        found = client.get("/photos", params={"contains": f"{centre['lat']},{centre['lon']}"}).json()
        assert "SIM-N-7" in {f["properties"]["photo_id"] for f in found["features"]}
    with session_scope(settings.resolved_database_url) as session:
        stored = crud.latest_footprint(session, "SIM-N-7")
        assert stored is not None and stored.method == "stars" and stored.job_id == job["id"]
        assert crud.get_photo(session, "SIM-N-7").status == "localized"


def test_auto_takes_the_star_path_for_a_night_photo_with_stars(sqlite_settings, night_photo):
    """No retrieval model is installed here: matching could not run, the stars suffice."""
    ensure_tles(sqlite_settings)
    view, rendered = night_photo
    with _client(sqlite_settings) as client:
        answer = client.post("/localize", files={"image": ("n.jpg", rendered.jpeg, "image/jpeg")},
                             data={"timestamp": view.reported_time.isoformat(), "focal_mm": "35"})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["method"] == "stars" and body["search"]["daylight"] is False
        result = _wait(client, body["status_url"])["result"]
    assert result["localized"] is True and result["method"] == "stars"
    assert result["star_path"]["fov_source"] == "form"


def test_stars_that_do_not_suffice_are_refused_with_the_reason(sqlite_settings, night_photo):
    ensure_tles(sqlite_settings)
    view, _ = night_photo
    starless = render_night(view, Sky(np.zeros((0, 3)), np.zeros(0)), SMALL)
    with _client(sqlite_settings) as client:
        form = {"timestamp": view.reported_time.isoformat(), "method": "stars", "focal_mm": "35"}
        answer = client.post("/localize", files={"image": ("n.jpg", starless.jpeg, "image/jpeg")}, data=form)
        assert answer.status_code == 202, answer.text
        result = _wait(client, answer.json()["status_url"])["result"]
        assert result["localized"] is False and "footprint" not in result
        assert "stars detected above the limb" in result["reason"]

        # Without a capture time the star path cannot run at all: a clear 422, nothing stored.
        refused = client.post("/localize", files={"image": ("n.jpg", starless.jpeg, "image/jpeg")},
                              data={"method": "stars"})
        assert refused.status_code == 422 and "capture time" in refused.json()["detail"]
        bad_lens = client.post("/localize", files={"image": ("n.jpg", starless.jpeg, "image/jpeg")},
                               data={"method": "stars", "focal_mm": "-3", "timestamp": view.reported_time.isoformat()})
        assert bad_lens.status_code == 422 and "focal_mm" in bad_lens.text
