"""`astroloc model centre`: a retrieval model's linear head re-centred on a database's imagery
(model.whitening.centre_head), published as a new version the index build and the API can use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import model
from index.sources import LocalXYZSource
from index.tiles import Tile
from model.whitening import HeadInputs, centre_head, centre_on_tiles


def test_centring_moves_the_bias_only_and_zeroes_the_heads_mean_over_the_tiles():
    torch.manual_seed(0)
    net = model.create_model("astroloc-lite-gem2s", pretrained=True)
    weight = net.projection.weight.detach().clone()
    rng = np.random.default_rng(1)
    tiles = [rng.integers(0, 255, (96, 96, 3), np.uint8) for _ in range(6)]
    assert centre_on_tiles(net, [tiles[:4], [], tiles[4:]], rotations=(0, 90, 180, 270), batch_size=8) == 24
    assert torch.equal(net.projection.weight, weight)
    inputs = model.describe(HeadInputs.of(net), tiles, rotations=(0, 90, 180, 270)).reshape(-1, 1392)
    projected = inputs @ weight.numpy().T.astype(np.float64) + net.projection.bias.detach().numpy()
    assert np.abs(projected.mean(axis=0)).max() < 1e-4  # head(f) = W (f - mean): zero on average


def test_a_network_without_a_linear_head_cannot_be_centred():
    net = model.create_model("lite0-gem", pretrained=True)
    with pytest.raises(ValueError, match="no linear head"):
        HeadInputs.of(net)
    assert centre_on_tiles(model.create_model("astroloc-lite-gem2s"), [[]], rotations=(0,)) == 0
    with pytest.raises(ValueError, match="finite"):
        centre_head(model.create_model("astroloc-lite-gem2s"), np.full(1392, np.nan))


def test_astroloc_model_centre_publishes_a_centred_version(sqlite_settings, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from service.cli import app
    from service.config import get_settings
    from service.demo_stack import ensure_demo_model
    from service.localize.retrieval import active_model
    from world.bluemarble import BlueMarbleTileSource

    tiles_dir = tmp_path / "tiles"
    source = BlueMarbleTileSource()
    tiles = [Tile(2, x, y) for x in range(4) for y in (1, 2)]
    for tile in tiles:
        (tiles_dir / "2" / str(tile.x)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(source.read_tile(tile)).save(tiles_dir / "2" / str(tile.x) / f"{tile.y}.jpg", quality=95)
    (tiles_dir / "2" / "0" / "1.jpg").write_bytes(b"not a jpeg")  # counted, not averaged
    parent = ensure_demo_model(sqlite_settings)

    monkeypatch.setenv("ASTROLOC_DATA_DIR", str(sqlite_settings.data_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        answer = runner.invoke(app, ["model", "centre", "--tiles-dir", str(tiles_dir), "--zooms", "2", "--sample", "8",
                                     "--name", "demo-on-bm", "--activate", "--no-progress"])
        assert answer.exit_code == 0, answer.output
        nothing = runner.invoke(app, ["model", "centre", "--tiles-dir", str(tmp_path), "--zooms", "2"])
        assert nothing.exit_code != 0 and "no tiles" in nothing.output
    finally:
        get_settings.cache_clear()
    version = json.loads(answer.output)
    assert version["name"] == "demo-on-bm" and version["active"] is True
    assert version["config"]["centred_from_sha256"] == parent.sha256
    assert version["config"]["centred_on"]["tiles"] == 7 and version["config"]["centred_on"]["unreadable"] == 1

    centred = active_model(sqlite_settings)
    assert centred.sha256 == version["sha256"] != parent.sha256
    net = model.create_model(centred.architecture, weights=centred.path)  # loads strictly
    original = model.create_model(parent.architecture, weights=parent.path)
    assert torch.equal(net.projection.weight, original.projection.weight)
    stored = LocalXYZSource(tiles_dir)
    readable = [stored.read_tile(t) for t in tiles if (t.x, t.y) != (0, 1)]
    centre_on_tiles(original, [readable], rotations=sqlite_settings.index_rotations)
    assert torch.allclose(net.projection.bias, original.projection.bias, atol=1e-5)


def test_the_index_build_describes_through_the_models_onnx_export(sqlite_settings, tmp_path):
    """ensure_index (the demo's and the tests' index builds) exports the active model to ONNX
    (parity-checked), publishes it for serving, and describes the tiles with it: a tile described
    by torch finds itself at a cosine similarity of 1 (to ONNX's parity)."""
    from index.search import ShardedIndex
    from service import artifacts
    from service.demo_stack import ensure_demo_model, ensure_index
    from service.localize.retrieval import describing_model
    from world.bluemarble import BlueMarbleTileSource

    tiles_dir = tmp_path / "tiles"
    source = BlueMarbleTileSource(tiles_dir)
    source.fill_cache([1])
    ref = ensure_demo_model(sqlite_settings)
    assert describing_model(sqlite_settings, ref)[1] == "torch"  # nothing exported yet
    assert ensure_index(sqlite_settings, ref, zooms=[1], tiles_dir=tiles_dir) == 4
    version, _path = artifacts.active_artifact(sqlite_settings, "retrieval-onnx")
    assert version.config["source_sha256"] == ref.sha256
    assert describing_model(sqlite_settings, ref)[1] == "onnxruntime"
    on_cpu, _runtime = describing_model(sqlite_settings.model_copy(update={"model_device": "cpu"}), ref)
    assert on_cpu.session.get_providers() == ["CPUExecutionProvider"]  # settings.model_device is obeyed

    torch_net = model.create_model(ref.architecture, weights=ref.path)
    query = model.describe(torch_net, [np.rot90(LocalXYZSource(tiles_dir).read_tile(Tile(1, 1, 0)), 1)], rotations=(0,))[:, 0]
    index = ShardedIndex.open(sqlite_settings.resolved_index_dir, ref.index_key)
    [found] = index.search(query, None, k=1)
    assert found.hits[0].tile == Tile(1, 1, 0) and found.hits[0].score > 0.999
