"""`earthloc2` (model/architectures.py): EarthLoc2's published layout loads strictly and gives the
descriptors of its reference forward pass (timm's ``forward_features`` of a DINOv2 ViT with
registers, the patch tokens after the class and 4 register tokens, SALAD), in torch and in ONNX.

The checkpoints here are made by our code from a random initialisation: every key of the
published layout (a plain state_dict of EarthLoc2's ``DINOv2FeatureExtractor``) is present."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import model
from model.aggregators import SALAD
from model.backbones import DinoV2Backbone
from model.config import ModelConfig
from model.network import RetrievalNet


class _Reference(torch.nn.Module):
    """EarthLoc2's forward pass as published: ``backbone`` is timm's ViT itself, whose
    ``forward_features`` gives [class, 4 registers, patches]; SALAD takes the patch grid and the
    class token. Keys: ``backbone.*`` (timm's), ``aggregator.*``."""

    def __init__(self, depth: int | None = None, image_size: int = 518) -> None:
        super().__init__()
        overrides = {"depth": depth} if depth else {}
        self.backbone = timm.create_model("vit_base_patch14_reg4_dinov2", pretrained=False, num_classes=0,
                                          img_size=image_size, **overrides)
        self.aggregator = SALAD(num_channels=768, num_clusters=32, cluster_dim=64, token_dim=1024)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        tokens = self.backbone.forward_features(images)
        grid = tokens[:, 5:].reshape(batch, height // 14, width // 14, 768).permute(0, 3, 1, 2)
        from model.backbones import Features

        return self.aggregator(Features(grid=grid, token=tokens[:, 0]))


def _ours(depth: int, image_size: int) -> RetrievalNet:
    """earthloc2 with fewer blocks (the full one is tested for its layout, not run twice)."""
    backbone = DinoV2Backbone("vit_base_patch14_reg4_dinov2", img_size=image_size, depth=depth)
    aggregator = SALAD(num_channels=768, num_clusters=32, cluster_dim=64, token_dim=1024)
    return RetrievalNet(ModelConfig("earthloc2", image_size, aggregator.output_dim), backbone, aggregator, None).eval()


def test_the_published_layout_is_ours_key_for_key():
    reference_keys = set(_Reference().state_dict())
    net = model.create_model("earthloc2")
    assert set(net.state_dict()) == reference_keys
    assert {"backbone.reg_token", "backbone.pos_embed", "aggregator.dust_bin"} <= reference_keys
    assert not any(k.startswith("projection.") for k in net.state_dict())
    assert (net.config.input_size, net.config.descriptor_dim) == (518, 3072)


def test_a_checkpoint_of_that_layout_loads_strictly_and_gives_the_reference_descriptors(tmp_path):
    torch.manual_seed(0)
    reference = _Reference(depth=2, image_size=98).eval()
    path = tmp_path / "earthloc2.pth"
    torch.save(reference.state_dict(), path)
    ours = _ours(depth=2, image_size=98)
    from model.weights import load_weights

    assert load_weights(ours, path) == []  # our own layout: nothing converted
    images = torch.rand(2, 3, 98, 98)
    with torch.no_grad():
        expected, found = reference(images), ours(images)
    assert found.shape == (2, 3072)
    assert torch.allclose(found, expected, atol=1e-4)
    # A layout without the registers is refused, naming the key.
    state = reference.state_dict()
    del state["backbone.reg_token"]
    with pytest.raises(ValueError, match="reg_token"):
        load_weights(_ours(depth=2, image_size=98), state)


def test_other_input_sizes_resample_the_embedding_as_timm_does():
    torch.manual_seed(1)
    ours = _ours(depth=1, image_size=98)
    reference = _Reference(depth=1, image_size=98).eval()
    reference.load_state_dict(ours.state_dict())
    reference.backbone.set_input_size(img_size=126)  # timm resamples its stored embedding
    images = torch.rand(1, 3, 126, 126)
    with torch.no_grad():
        assert torch.allclose(ours(images), reference(images), atol=1e-4)


def test_onnx_export_agrees_with_torch(tmp_path):
    ours = _ours(depth=1, image_size=98)
    path = model.export_onnx(ours, tmp_path / "earthloc2.onnx")
    exported = model.load_onnx(path)
    images = [np.random.default_rng(0).integers(0, 255, (120, 90, 3), np.uint8)]
    torch_out = model.describe(ours, images, rotations=(0,))
    onnx_out = model.describe(exported, images, rotations=(0,))
    assert np.abs(torch_out - onnx_out).max() <= 1e-4


def test_an_imported_earthloc2_indexes_tiles_and_serves_post_localize(sqlite_settings, tmp_path, monkeypatch):
    """The published layout, full size, through the service: `astroloc model import --activate`
    (and refused for another architecture), an index of its descriptors built (two Blue Marble
    tiles: 8 inputs at 518 px), and ``POST /localize`` describing a photo with it and ranking
    that photo's tile first."""
    import io
    import json

    from fastapi.testclient import TestClient
    from PIL import Image
    from typer.testing import CliRunner

    from index.build import build_index
    from index.tiles import Tile
    from model.describer import tile_describer
    from service.api.main import create_app
    from service.cli import app
    from service.config import get_settings
    from service.localize.retrieval import active_model
    from world.bluemarble import BlueMarbleTileSource

    monkeypatch.setenv("ASTROLOC_DATA_DIR", str(sqlite_settings.data_dir))
    get_settings.cache_clear()
    torch.manual_seed(3)
    path = tmp_path / "earthloc2.pth"
    torch.save(_Reference().state_dict(), path)  # the published layout, full size
    runner = CliRunner()
    try:
        imported = runner.invoke(app, ["model", "import", str(path), "--arch", "earthloc2", "--name", "earthloc2-test",
                                       "--activate"])
        assert imported.exit_code == 0, imported.output
        assert json.loads(imported.output)["architecture"] == "earthloc2"
        wrong = runner.invoke(app, ["model", "import", str(path), "--arch", "astroloc"])
        assert wrong.exit_code != 0 and "does not load into astroloc" in wrong.output
    finally:
        get_settings.cache_clear()

    ref = active_model(sqlite_settings)
    assert ref.architecture == "earthloc2"
    source = BlueMarbleTileSource()
    tiles = [Tile(2, 1, 2), Tile(2, 2, 1)]
    net = model.create_model(ref.architecture, weights=ref.path)
    build_index(sqlite_settings.resolved_index_dir, tiles, tile_describer(net, source, batch_size=4, workers=1),
                model_version=ref.index_key, rotations=sqlite_settings.index_rotations, progress=False)
    del net

    photo = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(source.read_tile(tiles[1]), 1))).save(photo, "JPEG", quality=95)
    with TestClient(create_app(sqlite_settings)) as client:
        answer = client.post("/localize", files={"image": ("p.jpg", photo.getvalue(), "image/jpeg")},
                             data={"refine": "false", "top_k": "2"})
    assert answer.status_code == 202, answer.text
    best = answer.json()["candidates"][0]
    assert best["tile"] == "2/2/1" and best["rotation"] in (90, 270), best
