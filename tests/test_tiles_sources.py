"""Tile sources: the Blue Marble renderer (world/bluemarble.py) and a local XYZ directory (index/sources.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pyproj import Transformer
from scipy.ndimage import map_coordinates

from index.sources import CorruptTileError, LocalXYZSource, TileNotFoundError, encode_jpeg
from index.tiles import Tile, tile_at, tile_pixel_lonlat, lonlat_to_tile_pixel
from world.bluemarble import BlueMarbleTileSource, EquirectangularTexture, blue_marble, blue_marble_path


@pytest.fixture(scope="module")
def renderer() -> BlueMarbleTileSource:
    return BlueMarbleTileSource()  # in memory, lossless


def test_blue_marble_is_found_and_loaded():
    texture = blue_marble()
    assert blue_marble_path().name == "bmng.jpg"
    assert (texture.width, texture.height) == (5400, 2700)


def test_tile_matches_an_independent_reprojection_of_blue_marble(renderer):
    """At zoom 5 a tile pixel is smaller than a Blue Marble pixel, so the tile must equal plain
    bilinear interpolation of the image at each pixel's lon/lat (computed here with pyproj)."""
    tile = Tile(5, 17, 11)  # central Europe
    rendered = renderer.read_tile(tile).astype(float)
    # Pixel centres in EPSG:3857 metres, back to lon/lat with pyproj.
    half_world = np.pi * 6_378_137.0
    size = 256
    centres = (np.arange(size) + 0.5) / size
    x_m = ((tile.x + centres) / 2**5 * 2 - 1) * half_world
    y_m = (1 - (tile.y + centres) / 2**5 * 2) * half_world
    grid_x, grid_y = np.meshgrid(x_m, y_m)
    lon, lat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform(grid_x, grid_y)
    image = cv2.cvtColor(cv2.imread(str(blue_marble_path())), cv2.COLOR_BGR2RGB).astype(float)
    columns = (lon + 180) / 360 * 5400 - 0.5
    rows = (90 - lat) / 180 * 2700 - 0.5
    expected = np.stack(
        [map_coordinates(image[..., c], [rows, columns], order=1) for c in range(3)], axis=-1
    )
    assert np.abs(rendered - expected).mean() < 0.5  # one pixel off would give ~3
    assert np.abs(rendered - expected).max() <= 2


@pytest.mark.parametrize(
    ("lon", "lat", "what"),
    [(10.0, 23.0, "sahara"), (-150.0, 0.0, "pacific"), (-40.0, 75.0, "greenland ice")],
)
def test_known_places_have_their_colours(renderer, lon, lat, what):
    tile = tile_at(lon, lat, 4)
    u, v = lonlat_to_tile_pixel(tile, lon, lat)
    r, g, b = renderer.read_tile(tile)[int(v), int(u)].astype(int)
    if what == "sahara":
        assert r > b + 50 and r > 150
    elif what == "pacific":
        assert b > r + 30 and r < 40
    else:
        assert min(r, g, b) > 180


def test_coarse_tiles_are_averages_of_fine_tiles(renderer):
    """Mip-mapping: a zoom-3 tile looks like the 8 x 8 zoom-6 tiles beneath it, shrunk."""
    coarse = renderer.read_tile(Tile(3, 4, 3)).astype(float)
    fine = np.block(
        [[[renderer.read_tile(Tile(6, 32 + i, 24 + j))] for i in range(8)] for j in range(8)]
    ).reshape(8 * 256, 8 * 256, 3)
    shrunk = cv2.resize(fine.astype(np.float32), (256, 256), interpolation=cv2.INTER_AREA)
    assert np.abs(coarse - shrunk).mean() < 3.0  # two pixels off would give ~7.5


def test_tiles_at_the_antimeridian_join_up(renderer):
    """The last column's east edge continues into the first column's west edge."""
    east_edge = renderer.read_tile(Tile(4, 15, 7))[:, -1].astype(float)
    west_edge = renderer.read_tile(Tile(4, 0, 7))[:, 0].astype(float)
    inner = renderer.read_tile(Tile(4, 0, 7))[:, 1].astype(float)
    assert np.abs(east_edge - west_edge).mean() < np.abs(west_edge - inner).mean() + 4.0


def test_half_step_tiles_are_cut_from_the_plain_ones(renderer):
    left, right = renderer.read_tile(Tile(3, 2, 3)), renderer.read_tile(Tile(3, 3, 3))
    offset = renderer.read_tile(Tile(3, 5, 6, steps=2))  # origin at tile units (2.5, 3)
    np.testing.assert_array_equal(offset, np.concatenate([left[:, 128:], right[:, :128]], axis=1))
    # The last half-step column straddles the antimeridian: east half of x=7, west half of x=0.
    straddling = renderer.read_tile(Tile(3, 15, 6, steps=2))
    np.testing.assert_array_equal(straddling[:, :128], renderer.read_tile(Tile(3, 7, 3))[:, 128:])
    np.testing.assert_array_equal(straddling[:, 128:], renderer.read_tile(Tile(3, 0, 3))[:, :128])


def test_disk_cache_returns_the_same_tile_and_is_an_xyz_directory(tmp_path):
    source = BlueMarbleTileSource(tmp_path / "tiles")
    first = source.read_tile(Tile(4, 8, 5))
    assert (tmp_path / "tiles" / "4" / "8" / "5.jpg").is_file()
    np.testing.assert_array_equal(BlueMarbleTileSource(tmp_path / "tiles").read_tile(Tile(4, 8, 5)), first)
    np.testing.assert_array_equal(LocalXYZSource(tmp_path / "tiles").read_tile(Tile(4, 8, 5)), first)
    # JPEG at quality 90 stays close to the lossless render.
    assert np.abs(first.astype(int) - source.render_plain_tile(4, 8, 5)).mean() < 3.0
    assert source.fill_cache([1]) == 4 and source.fill_cache([1]) == 0
    with pytest.raises(ValueError, match="other settings"):
        BlueMarbleTileSource(tmp_path / "tiles", jpeg_quality=70)


def test_local_xyz_directory(tmp_path):
    red = np.zeros((256, 256, 3), np.uint8)
    red[..., 0] = 200
    (tmp_path / "3" / "1").mkdir(parents=True)
    (tmp_path / "3" / "1" / "2.jpg").write_bytes(encode_jpeg(red, 95))
    big = cv2.resize(red, (512, 512))
    cv2.imwrite(str(tmp_path / "3" / "1" / "3.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    (tmp_path / "3" / "1" / "4.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "3" / "1" / "notes.txt").write_text("ignored")
    source = LocalXYZSource(tmp_path)
    assert source.zooms() == [3]
    assert list(source.list_tiles(3)) == [Tile(3, 1, 2), Tile(3, 1, 3), Tile(3, 1, 4)]
    assert abs(int(source.read_tile(Tile(3, 1, 2))[100, 100, 0]) - 200) <= 2
    assert source.read_tile(Tile(3, 1, 3)).shape == (256, 256, 3)  # 512-px tiles are resized
    with pytest.raises(CorruptTileError, match="cannot decode"):
        source.read_tile(Tile(3, 1, 4))
    with pytest.raises(TileNotFoundError, match="no tile 3/5/5"):
        source.read_tile(Tile(3, 5, 5))
    with pytest.raises(FileNotFoundError):
        LocalXYZSource(tmp_path / "missing")


def test_texture_sampling_and_bad_input():
    # A float texture whose red channel is the longitude: bilinear sampling returns it exactly.
    lon_grid = (np.arange(360) + 0.5) - 180.0
    image = np.zeros((180, 360, 3), np.float32)
    image[..., 0] = lon_grid[None, :]
    texture = EquirectangularTexture(image)
    lon = np.linspace(-100.0, 100.0, 201)[None, :].repeat(3, axis=0)
    lat = np.zeros_like(lon)
    np.testing.assert_allclose(texture.sample(lon, lat)[..., 0], lon, atol=0.02)
    nan = texture.sample(np.full((2, 2), np.nan), np.zeros((2, 2)))
    assert not nan.any()
    with pytest.raises(ValueError, match="twice as wide"):
        EquirectangularTexture(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 or float32"):
        EquirectangularTexture(np.zeros((100, 200), np.uint8))
    with pytest.raises(ValueError, match="latitude"):
        texture.sample(np.zeros((2, 2)), np.full((2, 2), 91.0))


def test_tile_pixel_lonlat_matches_the_renderer_grid(renderer):
    lon, lat = tile_pixel_lonlat(Tile(2, 0, 1))
    assert lon[0] > -180.0 and lon[-1] < -90.0 and lat[0] < 66.6 and lat[-1] > 0.0
