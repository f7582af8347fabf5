"""index.database (zoom ranges, tiles a local XYZ directory serves), model.identity, model.describer."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from index.database import grid_tiles, local_tiles, parse_zooms
from model.describer import load_descriptor_model, tile_describer
from model.identity import weights_identity as model_version
from index.sources import LocalXYZSource
from index.tiles import Tile


def test_parse_zooms():
    assert parse_zooms("3-6") == [3, 4, 5, 6]
    assert parse_zooms("6, 3-4,4") == [3, 4, 6]
    assert parse_zooms("0") == [0]
    for bad in ("6-3", "a", "3-", "31", ""):
        with pytest.raises(ValueError):
            parse_zooms(bad)


def _tile_dir(root, z, columns_rows):
    rng = np.random.default_rng(0)
    for x, y in columns_rows:
        path = root / str(z) / str(x) / f"{y}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
    return LocalXYZSource(root)


def test_local_tiles_plain_and_overlapping_over_a_sparse_directory(tmp_path):
    source = _tile_dir(tmp_path, 2, [(x, y) for x in (0, 1) for y in (0, 1)])  # a 2 x 2 block of 4 x 4
    assert local_tiles(source, [2]) == sorted([Tile(2, x, y) for x in (0, 1) for y in (0, 1)], key=lambda t: (t.y, t.x))
    overlapping = local_tiles(source, [2], steps=2)
    # Half-step positions 0..2 in each direction lie wholly on the 2 x 2 block; 3 would need column/row 2.
    assert {(t.x, t.y) for t in overlapping} == {(x, y) for x in range(3) for y in range(3)}
    assert all(t.steps == 2 for t in overlapping)
    assert all(source.read_tile(t).shape == (256, 256, 3) for t in overlapping)
    assert local_tiles(source, [3]) == []  # no such zoom in the directory


def test_local_tiles_wrap_across_the_antimeridian(tmp_path):
    source = _tile_dir(tmp_path, 2, [(3, 0), (0, 0)])
    overlapping = local_tiles(tmp_path, [2], steps=2)  # a path works too
    assert Tile(2, 7, 0, 2) in overlapping  # straddles x=3 and x=0
    assert source.read_tile(Tile(2, 7, 0, 2)).shape == (256, 256, 3)
    assert len(grid_tiles([1], steps=2)) == 4 * 3


def test_model_versions(tmp_path):
    assert model_version("astroloc-nano") == "astroloc-nano:random-init-seed0"
    assert model_version("astroloc-nano", seed=3) == "astroloc-nano:random-init-seed3"
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"some weights")
    assert model_version("earthloc-nano", weights) == f"earthloc-nano:{hashlib.sha256(b'some weights').hexdigest()}"
    with pytest.raises(ValueError):
        model_version(None)
    with pytest.raises(ValueError, match="not found"):
        load_descriptor_model("astroloc-nano", tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown architecture"):
        load_descriptor_model("no-such-net")


def test_model_describer_describes_4_rotations_and_skips_missing_tiles(tmp_path):
    source = _tile_dir(tmp_path, 1, [(0, 0), (1, 0)])
    describer = tile_describer(load_descriptor_model("astroloc-nano"), source, batch_size=8, workers=2)
    answer = describer([Tile(1, 0, 0), Tile(1, 1, 1), Tile(1, 1, 0)])
    assert answer.tiles == [Tile(1, 0, 0), Tile(1, 1, 0)]
    assert answer.descriptors.shape == (2, 4, 256)
    assert list(answer.skipped) == [Tile(1, 1, 1)] and answer.skipped[Tile(1, 1, 1)].startswith("missing")
    # Same seed, same network: an index built with it can be searched by a network made later.
    again = tile_describer(load_descriptor_model("astroloc-nano"), source, batch_size=8)([Tile(1, 0, 0)])
    np.testing.assert_allclose(again.descriptors[0], answer.descriptors[0], atol=1e-5)
