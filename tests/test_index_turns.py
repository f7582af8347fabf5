"""Tiles indexed at turns between the quarter turns, their corners filled by the neighbours' ground."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from geo.refine import nearest_quarter_turn
from index.build import SourceDescriber, build_index
from index.search import ShardedIndex
from index.shards import Manifest, rotations_with_turns
from index.sources import LocalXYZSource
from index.surroundings import turned_tile_images
from index.tiles import Tile, tiles_at_zoom
from service.config import Settings

SIDE = 32
MODEL = "test-model-turns"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> LocalXYZSource:
    """Zoom 3 tiles of smooth random ground (a blurred noise field), so that a turned crop is
    recognisably the same ground."""
    root = tmp_path_factory.mktemp("xyz")
    rng = np.random.default_rng(1)
    world = cv2.GaussianBlur(rng.integers(0, 255, (8 * SIDE, 8 * SIDE, 3), dtype=np.uint8), (0, 0), 3)
    world = cv2.normalize(world, None, 20, 235, cv2.NORM_MINMAX)
    for tile in tiles_at_zoom(3):
        path = root / f"3/{tile.x}/{tile.y}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        patch = world[tile.y * SIDE : (tile.y + 1) * SIDE, tile.x * SIDE : (tile.x + 1) * SIDE]
        cv2.imwrite(str(path), cv2.cvtColor(patch, cv2.COLOR_RGB2BGR))
    return LocalXYZSource(root, tile_size=SIDE)


def test_no_turn_is_the_tile_itself_on_both_grids(source):
    for tile in (Tile(3, 2, 3), Tile(3, 5, 6, steps=2), Tile(3, 0, 1, steps=2)):
        assert np.array_equal(turned_tile_images(source, tile, [0])[0], source.read_tile(tile)), tile


def test_a_quarter_turn_is_numpy_rot90(source):
    tile = Tile(3, 3, 4)
    difference = np.abs(turned_tile_images(source, tile, [90])[0].astype(int) - np.rot90(source.read_tile(tile)).astype(int))
    assert difference.max() <= 1


def test_all_turns_come_from_one_read_of_the_surroundings_in_their_order(source):
    reads = []

    class CountingSource(LocalXYZSource):
        def read_tile(self, tile):
            reads.append(tile)
            return super().read_tile(tile)

    counting = CountingSource(source.root, tile_size=SIDE)
    tile = Tile(3, 3, 4)
    turned = turned_tile_images(counting, tile, [30, 0, 60])
    assert len(reads) == 9  # the 3x3 surroundings once, not once per turn
    assert np.array_equal(turned[1], source.read_tile(tile))
    assert np.array_equal(turned[0], turned_tile_images(source, tile, [30])[0])
    assert np.array_equal(turned[2], turned_tile_images(source, tile, [60])[0])
    assert turned_tile_images(counting, tile, []) == [] and len(reads) == 9


def test_an_eighth_turn_fills_its_corners_with_the_neighbours_ground(source):
    tile = Tile(3, 3, 4)
    [turned] = turned_tile_images(source, tile, [45])
    assert turned.shape == (SIDE, SIDE, 3)
    assert turned.min() >= 20  # no black padding anywhere: the ground is in [20, 235]
    # Its centre is the tile's centre; its corner is ground beyond the tile, not the tile's corner.
    plain = source.read_tile(tile).astype(int)
    assert np.abs(turned[SIDE // 2 - 2 : SIDE // 2 + 2, SIDE // 2 - 2 : SIDE // 2 + 2].astype(int).mean()
                  - plain[SIDE // 2 - 2 : SIDE // 2 + 2, SIDE // 2 - 2 : SIDE // 2 + 2].mean()) < 8


def describe_thumbnails(images):
    """A stand-in for the model: 4 rotations of an 8x8 thumbnail, centred."""
    out = []
    for image in images:
        thumb = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32)
        out.append([(np.rot90(thumb, k) - thumb.mean()).ravel() for k in range(4)])
    return np.asarray(out)


def test_an_index_with_eighth_turns_finds_a_photo_turned_by_45_degrees(tmp_path, source):
    tiles = list(tiles_at_zoom(3))
    rotations = rotations_with_turns((45,))
    assert rotations == (0, 90, 180, 270, 45, 135, 225, 315)
    describer = SourceDescriber(source, describe_thumbnails, workers=2, turns_deg=(45,))
    assert describer(tiles[:3]).descriptors.shape == (3, 8, 192)
    build_index(tmp_path, tiles, describer, model_version=MODEL, rotations=rotations, progress=False)
    assert Manifest.load(tmp_path).rotations == list(rotations)
    index = ShardedIndex.open(tmp_path, MODEL)
    target = Tile(3, 3, 4)
    [photo] = turned_tile_images(source, target, [45])  # the ground under a photo turned by 45 deg
    [result] = index.search(describe_thumbnails([photo])[:, 0], None, k=3)
    assert (str(result.hits[0].tile), result.hits[0].rotation) == ("3/3/4", 45)
    # Turned by a further quarter turn, it matches the tile at 135 deg.
    [result] = index.search(describe_thumbnails([np.rot90(photo)])[:, 0], None, k=3)
    assert (str(result.hits[0].tile), result.hits[0].rotation) == ("3/3/4", 135)


@pytest.mark.parametrize("turns", [(0,), (90,), (45, 45), (-10,)])
def test_turns_outside_the_quarter_are_refused(turns):
    with pytest.raises(ValueError, match="strictly between 0 and 90"):
        rotations_with_turns(turns)
    with pytest.raises(ValidationError):
        Settings(index_turns_deg=list(turns))


def test_settings_rotations_and_the_matchers_quarter_turn():
    assert Settings().index_rotations == (0, 90, 180, 270)
    assert Settings(index_turns_deg=[30, 60]).index_rotations == (0, 90, 180, 270, 30, 120, 210, 300, 60, 150, 240, 330)
    assert [nearest_quarter_turn(r) for r in (0, 45, 90, 135, 180, 300, 315, 330)] == [0, 0, 90, 180, 180, 270, 0, 0]
