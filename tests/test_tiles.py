"""Web-Mercator XYZ tile math (index/tiles.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from index.tiles import (
    MAX_LATITUDE,
    Tile,
    grid_shape,
    ground_resolution_m,
    lonlat_to_tile_pixel,
    lonlat_to_tile_xy,
    tile_area_km2,
    tile_at,
    tile_bounds,
    tile_pixel_lonlat,
    tile_polygon,
    tile_xy_to_lonlat,
    tiles_at_zoom,
    tiles_covering,
    wrap_longitudes,
)

longitudes = st.floats(-180.0, 180.0, allow_nan=False)
mercator_latitudes = st.floats(-MAX_LATITUDE, MAX_LATITUDE, allow_nan=False)
zooms = st.integers(0, 20)


@given(longitudes, mercator_latitudes, zooms)
def test_lonlat_tile_xy_round_trip(lon, lat, z):
    tx, ty = lonlat_to_tile_xy(lon, lat, z)
    back_lon, back_lat = tile_xy_to_lonlat(tx, ty, z)
    assert back_lon == pytest.approx(lon, abs=1e-9)
    assert back_lat == pytest.approx(lat, abs=1e-9)


def test_tile_coordinates_agree_with_pyproj_web_mercator():
    rng = np.random.default_rng(1)
    lon = rng.uniform(-180, 180, 500)
    lat = rng.uniform(-85, 85, 500)
    x_m, y_m = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    half_world = math.pi * 6_378_137.0
    tx, ty = lonlat_to_tile_xy(lon, lat, 7)
    np.testing.assert_allclose(tx, (x_m + half_world) / (2 * half_world) * 2**7, atol=1e-7)
    np.testing.assert_allclose(ty, (half_world - y_m) / (2 * half_world) * 2**7, atol=1e-7)


def test_known_tiles_and_bounds():
    assert tile_at(0.0, 0.0, 1) == Tile(1, 1, 1)
    assert tile_at(-0.1, 0.1, 1) == Tile(1, 0, 0)
    assert tile_at(2.35, 48.86, 10) == Tile(10, 518, 352)  # Paris, as on OSM's z10 tile
    b = tile_bounds(Tile(1, 0, 0))
    assert (b.west, b.south, b.east) == (-180.0, 0.0, 0.0)
    assert b.north == pytest.approx(MAX_LATITUDE)
    assert tile_bounds(Tile(0, 0, 0)).south == pytest.approx(-MAX_LATITUDE)


def test_poles_are_clipped_to_the_mercator_edge():
    _, ty_north = lonlat_to_tile_xy(0.0, 90.0, 4)
    _, ty_south = lonlat_to_tile_xy(0.0, -89.0, 4)
    assert float(ty_north) == pytest.approx(0.0)
    assert float(ty_south) == pytest.approx(16.0)
    assert tile_at(10.0, 89.9, 4) == Tile(4, 8, 0)
    assert tile_at(10.0, -90.0, 4) == Tile(4, 8, 15)
    # A cap around the north pole touches every tile of the top row.
    cap = box(-180.0, 86.0, 180.0, 90.0)
    assert tiles_covering(cap, 3) == [Tile(3, x, 0) for x in range(8)]


def test_tile_ids_validate_and_parse():
    assert Tile.parse("5/3/4") == Tile(5, 3, 4)
    assert Tile.parse(str(Tile(5, 63, 61, 2))) == Tile(5, 63, 61, 2)
    for bad in ("5/3", "a/b/c", "5/3/4@x", ""):
        with pytest.raises(ValueError, match="not a tile id"):
            Tile.parse(bad)
    with pytest.raises(ValueError, match="outside"):
        Tile(2, 4, 0)
    with pytest.raises(ValueError, match="outside"):
        Tile(2, 0, 7, steps=2)  # the last half-step row is 6: the tile must end on the map
    with pytest.raises(ValueError, match="zoom"):
        Tile(31, 0, 0)
    with pytest.raises(TypeError):
        Tile(2, 1.5, 0)


def test_bad_coordinates_are_refused_with_a_message():
    with pytest.raises(ValueError, match="latitude"):
        lonlat_to_tile_xy(0.0, 95.0, 3)
    with pytest.raises(ValueError, match="finite"):
        lonlat_to_tile_xy(float("nan"), 0.0, 3)
    with pytest.raises(ValueError, match="latitudes"):
        tiles_covering(box(0, 80, 10, 100), 3)
    with pytest.raises(ValueError, match="invalid geometry"):
        tiles_covering(Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), 3)  # a bow tie
    with pytest.raises(TypeError):
        tiles_covering([(0, 0), (1, 1)], 3)


def test_tiles_covering_a_box():
    assert tiles_covering(box(-10, -10, 10, 10), 2) == [
        Tile(2, 1, 1), Tile(2, 1, 2), Tile(2, 2, 1), Tile(2, 2, 2)
    ]  # fmt: skip
    # Sharing only an edge with a tile does not count for an area...
    assert tiles_covering(box(0, 0, 90, 40), 2) == [Tile(2, 2, 1)]
    # ...but a point on a corner lies in all four tiles that meet there.
    assert len(tiles_covering(Point(0.0, 0.0), 1)) == 4
    assert tiles_covering(Polygon(), 3) == []


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-179, 170), st.floats(-80, 70), st.floats(0.1, 60), st.floats(0.1, 40), st.integers(0, 4),
    st.sampled_from([1, 2]),
)
def test_tiles_covering_matches_brute_force(west, south, width, height, z, steps):
    # Coordinates on a 0.001 deg grid: slivers of 1e-85 deg are beyond the brute force's area test.
    west, south, width, height = (round(a, 3) for a in (west, south, width, height))
    region = box(west, south, min(west + width, 180.0), min(south + height, 85.0))
    expected = sorted(
        t for t in tiles_at_zoom(z, steps) if tile_polygon(t).intersection(region).area > 1e-9
    )
    assert tiles_covering(region, z, steps) == expected


def test_antimeridian_region_either_way_gives_the_same_tiles():
    continuous = box(170.0, -5.0, 190.0, 5.0)
    split = MultiPolygon([box(170.0, -5.0, 180.0, 5.0), box(-180.0, -5.0, -170.0, 5.0)])
    found = tiles_covering(continuous, 3)
    assert found == tiles_covering(split, 3)
    assert {t.x for t in found} == {0, 7}
    assert shapely.equals(wrap_longitudes(continuous), split)


def test_half_step_grid_covers_every_point_four_times():
    rng = np.random.default_rng(3)
    for lon, lat in zip(rng.uniform(-180, 180, 40), rng.uniform(-80, 80, 40)):
        z = 3
        found = tiles_covering(Point(lon, lat), z, steps=2)
        assert len(found) == 4, (lon, lat, found)
        assert all(tile_polygon(t).intersects(Point(lon, lat)) for t in found)


def test_half_step_tile_straddling_the_antimeridian():
    columns, rows = grid_shape(2, steps=2)
    assert (columns, rows) == (8, 7)
    straddling = Tile(2, columns - 1, 0, steps=2)
    polygon = tile_polygon(straddling)
    assert isinstance(polygon, MultiPolygon)
    west, _, east, _ = polygon.bounds
    assert (west, east) == (-180.0, 180.0)
    assert sum(p.bounds[2] - p.bounds[0] for p in polygon.geoms) == pytest.approx(90.0)
    assert straddling in tiles_covering(Point(-179.0, 75.0), 2, steps=2)
    assert straddling in tiles_covering(Point(179.0, 75.0), 2, steps=2)
    assert Tile(2, columns - 1, 1, steps=2) in tiles_covering(Point(-179.0, 60.0), 2, steps=2)
    assert tile_area_km2(straddling) == pytest.approx(tile_area_km2(Tile(2, 0, 0, steps=2)))


def test_tile_areas_add_up_to_the_mercator_world():
    # WGS84 surface 510.07e6 km²; Mercator keeps |lat| < 85.05 deg: sin(85.05 deg) of it on a sphere.
    expected = 510.0656e6 * math.sin(math.radians(MAX_LATITUDE))
    assert tile_area_km2(Tile(0, 0, 0)) == pytest.approx(expected, rel=3e-3)
    assert sum(tile_area_km2(t) for t in tiles_at_zoom(3)) == pytest.approx(tile_area_km2(Tile(0, 0, 0)))
    # Tiles near the equator are the largest; poleward they shrink (by cos² lat).
    assert tile_area_km2(Tile(3, 0, 3)) > 10 * tile_area_km2(Tile(3, 0, 0))


def test_pixel_geometry_of_a_tile():
    tile = Tile(4, 9, 5)
    b = tile_bounds(tile)
    lon, lat = tile_pixel_lonlat(tile, 256)
    assert lon.shape == lat.shape == (256,)
    assert lon[0] == pytest.approx(b.west + (b.east - b.west) / 512)
    assert lat[0] < b.north and lat[-1] > b.south and np.all(np.diff(lat) < 0)
    u, v = lonlat_to_tile_pixel(tile, [b.west, b.east], [b.north, b.south], 256)
    np.testing.assert_allclose(u, [0, 256], atol=1e-9)
    np.testing.assert_allclose(v, [0, 256], atol=1e-9)
    # Just across the antimeridian from a tile of the last column: just beyond its east edge.
    u, _ = lonlat_to_tile_pixel(Tile(2, 3, 1), -179.0, 0.0, 256)
    assert 256 < float(u) < 260
    assert ground_resolution_m(0.0, 0) == pytest.approx(156_543.03, abs=0.01)
    assert ground_resolution_m(60.0, 1) == pytest.approx(156_543.03 / 4, abs=0.01)


def test_lines_find_the_tiles_they_cross():
    found = tiles_covering(LineString([(-100, 10), (100, 10)]), 1)
    assert found == [Tile(1, 0, 0), Tile(1, 1, 0)]
