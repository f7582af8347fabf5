"""POST /star-id and `astroloc star-id` on simulated star-tracker frames, catalogue from the store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from service import artifacts
from starid import build_catalog
from starid.simulate import simulate_scene


@pytest.fixture(scope="module")
def scene():
    catalog = build_catalog()
    rng = np.random.default_rng(7)
    for _ in range(20):  # a frame with enough stars for a confident answer
        frame = simulate_scene(catalog, rng, position_noise_px=0.5)
        if len(frame.pixels) >= 8:
            return frame
    raise AssertionError("no simulated frame with 8 stars")


def _body(frame) -> dict:
    return {
        "stars": [{"x": float(x), "y": float(y), "mag": float(m)}
                  for (x, y), m in zip(frame.pixels, frame.mags, strict=True)],
        "image_width": 1024, "image_height": 1024, "fov_deg": 14.0,
    }


def test_star_id_identifies_a_simulated_frame(api_client, sqlite_settings, scene):
    response = api_client.post("/star-id", json=_body(scene))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "identified"
    truth = {i: int(h) for i, h in enumerate(scene.hip) if h > 0}
    named = {s["index"]: s["hip"] for s in result["stars"] if s["hip"] is not None}
    assert len(named) >= 3 and all(truth.get(i) == hip for i, hip in named.items())
    assert len(result["attitude"]["quaternion_wxyz"]) == 4
    # The catalogue it used was published to the model store on first use.
    version, _path = artifacts.active_artifact(sqlite_settings, "star-catalog")
    assert version.metrics["stars"] > 4000


def test_star_id_random_dots_give_no_result(api_client):
    rng = np.random.default_rng(1)
    stars = [{"x": float(x), "y": float(y)} for x, y in rng.uniform(0, 1024, (12, 2))]
    body = {"stars": stars, "image_width": 1024, "image_height": 1024, "fov_deg": 14.0}
    result = api_client.post("/star-id", json=body).json()
    assert result["status"] == "no_result" and result["reason"]


def test_star_id_cli(sqlite_settings, scene, tmp_path, monkeypatch):
    from service.cli import app
    from service.config import get_settings

    monkeypatch.setenv("ASTROLOC_DATA_DIR", str(sqlite_settings.data_dir))
    get_settings.cache_clear()
    try:
        frame = tmp_path / "frame.json"
        frame.write_text(json.dumps(_body(scene)))
        result = CliRunner().invoke(app, ["star-id", str(frame)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["status"] == "identified"
        frame.write_text("{oops")
        bad = CliRunner().invoke(app, ["star-id", str(frame)])
        assert bad.exit_code == 2 and "not valid JSON" in bad.output
    finally:
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def rendered():
    from starid.simulate import build_sky, render_frame

    return render_frame(build_sky(), np.random.default_rng(21), snr_at_mag6=10.0)


def _png(frame) -> bytes:
    import cv2

    return cv2.imencode(".png", frame.image)[1].tobytes()


def test_star_id_from_an_uploaded_frame_lists_centroids_with_names(api_client, rendered):
    from service.bench.starid import attitude_errors_deg
    from starid.geometry import quaternion_to_rotation

    files = {"image": ("frame.png", _png(rendered), "image/png")}
    response = api_client.post("/star-id", files=files, data={"fov_deg": "14.0", "psf_sigma_px": "1.2"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "identified"
    rotation = quaternion_to_rotation(tuple(body["attitude"]["quaternion_wxyz"]))
    boresight, roll = attitude_errors_deg(rotation, rendered.scene.rotation)
    assert boresight < 0.05 and roll < 0.2
    named = [c for c in body["centroids"] if c["hip"] is not None]
    assert len(named) >= 8 and {"x", "y", "flux", "saturated", "mag", "index"} <= set(named[0])
    assert body["detection"]["width"] == 1024 and body["detection"]["hot_pixels"] > 0


@pytest.mark.parametrize(
    "files, data, status, message",
    [
        ({"image": ("x.png", b"garbage bytes", "image/png")}, {"fov_deg": "14"}, 422, "not a readable"),
        ({"image": ("x.png", b"", "image/png")}, {"fov_deg": "14"}, 422, "empty"),
        ({"other": ("x.png", b"abc", "image/png")}, {"fov_deg": "14"}, 422, "image"),
        (None, {"fov_deg": "14"}, 422, "image"),
        ("frame", {}, 422, "fov_deg"),
        ("frame", {"fov_deg": "400"}, 422, "fov_deg"),
        ("frame", {"fov_deg": "14", "colour": "red"}, 422, "colour"),
    ],
)
def test_star_id_upload_errors_are_clear_4xx(api_client, rendered, files, data, status, message):
    if files == "frame":
        files = {"image": ("frame.png", _png(rendered), "image/png")}
    if files is None:  # multipart with fields only
        files = {"fov_deg": (None, "14")}
        data = {}
    response = api_client.post("/star-id", files=files, data=data)
    assert response.status_code == status, response.text
    assert message in response.text


def test_star_id_upload_with_a_wrong_field_of_view_says_why(api_client, rendered):
    files = {"image": ("frame.png", _png(rendered), "image/png")}
    body = api_client.post("/star-id", files=files, data={"fov_deg": "30"}).json()
    assert body["status"] == "no_result" and "fov_deg" in body["reason"]
    assert len(body["centroids"]) > 10  # the stars were detected


def test_star_id_other_media_types_are_refused(api_client):
    response = api_client.post("/star-id", content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_star_id_cli_reads_a_frame(sqlite_settings, rendered, tmp_path, monkeypatch):
    from service.cli import app
    from service.config import get_settings

    monkeypatch.setenv("ASTROLOC_DATA_DIR", str(sqlite_settings.data_dir))
    get_settings.cache_clear()
    try:
        path = tmp_path / "frame.png"
        path.write_bytes(_png(rendered))
        result = CliRunner().invoke(app, ["star-id", str(path), "--fov-deg", "14", "--psf-sigma-px", "1.2"])
        assert result.exit_code == 0, result.output
        body = json.loads(result.output)
        assert body["status"] == "identified" and any(c["hip"] for c in body["centroids"])
        missing = CliRunner().invoke(app, ["star-id", str(path)])
        assert missing.exit_code == 2 and "--fov-deg" in missing.output
        path.write_bytes(b"\x89PNG broken")
        broken = CliRunner().invoke(app, ["star-id", str(path), "--fov-deg", "14"])
        assert broken.exit_code == 2 and "not a readable" in broken.output
    finally:
        get_settings.cache_clear()
