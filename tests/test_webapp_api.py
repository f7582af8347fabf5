"""The endpoints behind the web map: basemap tiles, a photo's overlay and GeoJSON, the app's config
and API-key check, the page itself (over the embedded store; the browser tests are in
tests/test_webapp.py)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from geo import footprint_polygon
from service import crud
from service.api.main import create_app
from service.db import session_scope
from service.models import Photo


def _client(settings) -> TestClient:  # noqa: ANN001
    return TestClient(create_app(settings))


@pytest.fixture
def tiles_settings(sqlite_settings, tmp_path):
    tiles = tmp_path / "tiles"
    for x, y in ((4, 2), (5, 2)):
        (tiles / "3" / str(x)).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (256, 256), (10 * x, 20, 200)).save(tiles / "3" / str(x) / f"{y}.jpg", "JPEG")
    return sqlite_settings.model_copy(update={"tiles_dir": tiles})


def test_tiles_are_served_from_the_tile_database_with_caching(tiles_settings):
    with _client(tiles_settings) as client:
        info = client.get("/tiles.json").json()
        assert info["zooms"] == [3] and info["url"] == "/tiles/{z}/{x}/{y}.jpg"
        tile = client.get("/tiles/3/4/2.jpg")
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
        assert "max-age" in tile.headers["cache-control"]
        assert Image.open(io.BytesIO(tile.content)).size == (256, 256)
        again = client.get("/tiles/3/4/2.jpg", headers={"If-None-Match": tile.headers["etag"]})
        assert again.status_code == 304
        missing = client.get("/tiles/3/6/2.jpg")
        assert missing.status_code == 404 and "no tile 3/6/2" in missing.json()["detail"]
        outside = client.get("/tiles/3/8/2.jpg")
        assert outside.status_code == 404 and "outside the zoom-3 grid" in outside.json()["detail"]
        assert client.get("/tiles/-1/0/0.jpg").status_code == 422


def test_without_a_tile_database_the_map_says_why(sqlite_settings, tmp_path):
    settings = sqlite_settings.model_copy(update={"tiles_dir": tmp_path / "nowhere"})
    with _client(settings) as client:
        info = client.get("/tiles.json").json()
        assert info["zooms"] == [] and "no tile database" in info["reason"]
        assert client.get("/tiles/0/0/0.jpg").status_code == 404


def _store_photo(settings, tmp_path, corners, photo_id="P1", corner_uncertainty_km=None):  # noqa: ANN001, ANN202
    """A photo whose top-left quarter is red (the rest blue) and its footprint from 4 corners,
    found by a finished localize job (that gave ``corner_uncertainty_km``)."""
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[...] = (0, 0, 255)
    rgb[:100, :150] = (255, 0, 0)
    path = tmp_path / f"{photo_id}.png"
    Image.fromarray(rgb).save(path)
    with session_scope(settings.resolved_database_url) as session:
        session.add(Photo(photo_id=photo_id, image_path=str(path), image_sha256="0" * 64, status="localized"))
        session.flush()
        job = crud.create_job(session, "localize", {}, photo_id=photo_id)
        job.status = "finished"
        job.result = {"localized": True, "corner_uncertainty_km": corner_uncertainty_km}
        crud.add_footprint(session, photo_id, footprint_polygon(corners), method="earthmatch-sift",
                           confidence=0.8, inliers=40, job_id=job.id)
        session.commit()


def test_a_photo_overlay_lies_on_its_footprint(sqlite_settings, tmp_path):
    # LL, UL, UR, LR: an upright box 10..20 N, 30..42 E.
    _store_photo(sqlite_settings, tmp_path, [(10, 30), (20, 30), (20, 42), (10, 42)], corner_uncertainty_km=[3.5, 4, 6.25, 5])
    with _client(sqlite_settings) as client:
        placement = client.get("/photos/P1/overlay.json").json()
        assert placement["bounds"] == pytest.approx({"south": 10, "west": 30, "north": 20, "east": 42})
        assert placement["corner_uncertainty_km"] == [3.5, 4, 6.25, 5] and placement["job_id"]
        assert 1_000_000 < placement["area_km2"] < 1_600_000
        answer = client.get(placement["image_url"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        overlay = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_UNCHANGED)
        rows, columns, channels = overlay.shape
        assert channels == 4 and max(rows, columns) == 1024
        # Mercator stretches the box north-south a little more than its degrees say.
        assert rows / columns == pytest.approx(0.855, abs=0.02)
        alpha = overlay[..., 3]
        assert alpha[rows // 2, columns // 2] == 255 and (alpha > 0).mean() > 0.97  # the box is the photo
        b, g, r = overlay[rows // 4, columns // 4, :3]
        assert r > 200 and b < 60  # the photo's top-left quarter is the map's north-west
        b, g, r = overlay[3 * rows // 4, 3 * columns // 4, :3]
        assert b > 200 and r < 60

        geojson = client.get("/photos/P1/footprint.geojson")
        assert geojson.headers["content-type"] == "application/geo+json"
        feature = geojson.json()["features"][0]
        assert feature["properties"]["photo_id"] == "P1" and feature["properties"]["area_km2"] == placement["area_km2"]

        assert client.get("/photos/NOPE/overlay.json").status_code == 404
        assert client.get("/photos/NOPE/overlay.png").status_code == 404


def test_an_overlay_across_the_antimeridian_is_placed_east_beyond_180(sqlite_settings, tmp_path):
    _store_photo(sqlite_settings, tmp_path, [(-20, 175), (-10, 175), (-10, -173), (-20, -173)], photo_id="FIJI")
    with _client(sqlite_settings) as client:
        placement = client.get("/photos/FIJI/overlay.json").json()
        assert placement["corner_uncertainty_km"] is None  # the job gave none
        bounds = placement["bounds"]
        assert bounds["west"] == pytest.approx(175) and bounds["east"] == pytest.approx(187)
        overlay = cv2.imdecode(np.frombuffer(client.get("/photos/FIJI/overlay.png").content, np.uint8), cv2.IMREAD_UNCHANGED)
        # Stored split at 180, the footprint no longer says which vertex is which photo corner:
        # the overlay is a transparent image over the right box (the outline is still drawn).
        assert overlay.shape[1] == 1024 and overlay.shape[2] == 4


def test_app_config_and_api_key_check(sqlite_settings):
    with _client(sqlite_settings) as client:
        assert client.get("/app/config.json").json()["api_keys_required"] is False
        assert client.get("/app/key").status_code == 204
    keyed = sqlite_settings.model_copy(update={"api_keys": ["k1"]})
    with _client(keyed) as client:
        config = client.get("/app/config.json").json()
        assert config["api_keys_required"] is True and config["read_keys_required"] is True
        assert client.get("/app/key", headers={"X-API-Key": "nope"}).status_code == 401
        assert client.get("/app/key").status_code == 401
        assert client.get("/app/key", headers={"X-API-Key": "k1"}).status_code == 204
    public = keyed.model_copy(update={"public_reads": True})
    with _client(public) as client:
        assert client.get("/app/config.json").json()["read_keys_required"] is False


def test_the_page_at_root_or_how_to_build_it(sqlite_settings, tmp_path, monkeypatch):
    from service.api.routes import webapp

    built = tmp_path / "dist"
    (built / "static").mkdir(parents=True)
    (built / "index.html").write_text('<script type="module" src="/static/app.js"></script>')
    (built / "static" / "app.js").write_text("console.log('astroloc')")
    monkeypatch.setattr(webapp, "WEB_DIST", built)
    with _client(sqlite_settings) as client:
        page = client.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert page.headers["cache-control"] == "no-cache"
        assert client.get("/static/app.js").text == "console.log('astroloc')"
        assert client.get("/docs").status_code == 200  # Swagger stays where it was
    monkeypatch.setattr(webapp, "WEB_DIST", tmp_path / "not-built")
    with _client(sqlite_settings) as client:
        page = client.get("/")
        assert page.status_code == 503 and "make install" in page.text
