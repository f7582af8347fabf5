"""HTTP API on the embedded default: job lifecycle, auth, and every malformed request is a 4xx."""

from __future__ import annotations

import io
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.api.main import create_app


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def _head_revision() -> str:
    """The newest Alembic revision in migrations/ (the one `astroloc db upgrade` reaches)."""
    from pathlib import Path

    from alembic.script import ScriptDirectory

    import migrations

    return ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


def test_health_reports_dependencies(api_client):
    body = api_client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "backend": "sqlite", "revision": _head_revision()}
    assert body["queue"]["mode"] == "inline"


def test_openapi_and_docs(api_client):
    assert api_client.get("/docs").status_code == 200
    paths = api_client.get("/openapi.json").json()["paths"]
    assert {"/localize", "/star-id", "/jobs/{job_id}", "/health"} <= set(paths)


def test_selftest_job_goes_queued_to_finished(api_client):
    created = api_client.post("/jobs/selftest", json={"seconds": 0.3, "steps": 3})
    assert created.status_code == 202
    status_url = created.json()["status_url"]
    seen = []
    for _ in range(100):
        job = api_client.get(status_url).json()
        seen.append(job["status"])
        if job["status"] in ("finished", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "finished", job
    assert job["result"]["steps"] == 3 and job["progress"] == 1.0
    assert set(job) >= {"id", "kind", "status", "progress", "created_at", "started_at",
                        "finished_at", "result", "error"}


def test_unknown_job_is_404_json(api_client):
    response = api_client.get("/jobs/0123456789abcdef")
    assert response.status_code == 404
    assert "no job" in response.json()["detail"]


@pytest.mark.parametrize(
    ("files", "data", "code", "fragment"),
    [
        ({"image": ("a.txt", b"hello", "text/plain")}, {}, 415, "media type"),
        ({"image": ("a.png", b"not an image at all", "image/png")}, {}, 415, "not an image"),
        ({"image": ("a.png", b"", "image/png")}, {}, 422, "empty"),
        ({"image": ("a.png", png_bytes()[:60], "image/png")}, {}, 422, "decoded"),
        ({"image": ("a.png", png_bytes(), "image/png")}, {"timestamp": "yesterday"}, 422, "ISO 8601"),
        ({"image": ("a.png", png_bytes(), "image/png")}, {"timestamp": "2020-01-01T10:00:00"}, 422,
         "needs a zone"),
        ({"image": ("a.png", png_bytes(), "image/png")}, {"nadir_lat": "91", "nadir_lon": "0"}, 422,
         "less than or equal"),
        ({"image": ("a.png", png_bytes(), "image/png")}, {"nadir_lat": "10"}, 422, "both"),
        ({"image": ("a.png", png_bytes(), "image/png")}, {"search": "moon"}, 422, "auto"),
        ({"image": ("a.png", png_bytes(), "image/png")}, {"top_k": "0"}, 422, "greater"),
        ({}, {}, 422, "image"),
    ],
)
def test_localize_rejects_bad_input(api_client, files, data, code, fragment):
    response = api_client.post("/localize", files=files, data=data)
    assert response.status_code == code, response.text
    assert fragment in response.text


def test_localize_refuses_decompression_bomb(sqlite_settings):
    settings = sqlite_settings.model_copy(update={"max_image_pixels": 100 * 100})
    with TestClient(create_app(settings)) as client:
        response = client.post("/localize", files={"image": ("big.png", png_bytes(400, 300), "image/png")})
    assert response.status_code == 413 and "pixels" in response.json()["detail"]


def test_upload_size_cap_is_413(sqlite_settings):
    settings = sqlite_settings.model_copy(update={"max_upload_bytes": 1000})
    with TestClient(create_app(settings)) as client:
        response = client.post("/localize", files={"image": ("a.png", b"\x89PNG" + b"0" * 5000, "image/png")})
        assert response.status_code == 413
        # Declared too big: refused before the body is read.
        response = client.post("/localize", content=b"x" * 10, headers={"content-length": str(10**10)})
        assert response.status_code == 413


def test_write_endpoints_need_api_key_when_configured(sqlite_settings):
    settings = sqlite_settings.model_copy(update={"api_keys": ["s3cret"]})
    with TestClient(create_app(settings)) as client:
        assert client.post("/jobs/selftest", json={}).status_code == 401
        assert client.post("/jobs/selftest", json={}, headers={"X-API-Key": "wrong"}).status_code == 401
        ok = client.post("/jobs/selftest", json={"seconds": 0}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 202
        assert client.get("/health").status_code == 200  # reads stay open


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "Invalid JSON"),
        ('{"stars": [{"x": 1, "y": 2}], "image_width": 10, "image_height": 10, "fov_deg": 10}',
         "at least 3 stars"),
        ('{"stars": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 4}], "image_width": 10}',
         "needs image_height, fov_deg"),
        ('{"stars": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 4}], "vectors": [[0, 0, 1]],'
         ' "image_width": 10, "image_height": 10, "fov_deg": 10}', "either"),
        ('{"stars": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 50, "y": 4}], "image_width": 10,'
         ' "image_height": 10, "fov_deg": 10}', "outside"),
        ('{"stars": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 4}], "image_width": 10,'
         ' "image_height": 10, "fov_deg": 180}', "fov_deg"),
        ('{"stars": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": NaN}], "image_width": 10,'
         ' "image_height": 10, "fov_deg": 10}', "NaN or infinite"),
        ('{"vectors": [[0, 0, 1], [0, 1, 0]]}', "at least 3"),
        ('{"vectors": [[0, 0, 1], [0, 1, 0], [0, 0, 0]]}', "zero length"),
        ("[1, 2, 3]", "should be an object"),
    ],
)
def test_star_id_rejects_bad_input(api_client, body, fragment):
    response = api_client.post("/star-id", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert fragment in response.text


def test_photo_queries(api_client, sqlite_settings):
    from datetime import UTC, datetime

    from shapely.geometry import box

    from service import crud
    from service.db import session_scope
    from service.models import Photo

    with session_scope(sqlite_settings.resolved_database_url) as session:
        for photo_id, geom in [("ISS064-E-1", box(170, -10, 179.5, 0)), ("ISS064-E-2", box(5, 40, 8, 44))]:
            session.add(Photo(photo_id=photo_id, status="localized",
                              captured_at=datetime(2020, 12, 1, tzinfo=UTC)))
            session.flush()
            crud.add_footprint(session, photo_id, geom, method="test")
    hits = api_client.get("/photos", params={"contains": "42,6"}).json()
    assert [f["properties"]["photo_id"] for f in hits["features"]] == ["ISS064-E-2"]
    across = api_client.get("/photos", params={"bbox": "175,-5,-170,5"}).json()  # crosses 180°
    assert [f["properties"]["photo_id"] for f in across["features"]] == ["ISS064-E-1"]
    photo = api_client.get("/photos/ISS064-E-2").json()
    assert photo["footprint"]["geometry"]["type"] == "Polygon"
    assert api_client.get("/photos/NOPE").status_code == 404
    for params in ({"contains": "91,0"}, {"bbox": "1,2,3"}, {}, {"bbox": "0,10,5,5"}):
        response = api_client.get("/photos", params=params)
        assert response.status_code == 422, (params, response.text)


def test_footprint_picture_without_tiles_or_photo_is_503_not_500(api_client, sqlite_settings):
    from datetime import UTC, datetime

    from shapely.geometry import box

    from service import crud
    from service.db import session_scope
    from service.models import Photo

    with session_scope(sqlite_settings.resolved_database_url) as session:
        session.add(Photo(photo_id="ISS064-E-9", status="localized", image_path="gone.jpg",
                          captured_at=datetime(2020, 12, 1, tzinfo=UTC)))
        session.flush()
        crud.add_footprint(session, "ISS064-E-9", box(5, 40, 8, 44), method="test")
    response = api_client.get("/photos/ISS064-E-9/footprint.png")
    assert response.status_code == 503, response.text
    assert "tile database" in response.json()["detail"]
    assert str(sqlite_settings.data_dir) not in response.text  # no server path in the answer
