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
