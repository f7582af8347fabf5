"""Photo footprints (geo/footprint.py): polygons, WGS84 areas, IoU, GeoJSON."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Point, Polygon, box

from geo import (
    feature_collection,
    footprint_area_km2,
    footprint_iou,
    footprint_ious,
    footprint_polygon,
    from_geojson,
    geodesic_area_km2,
    overlapping_pairs,
    to_feature,
)


def square(lat: float, lon: float, side: float = 1.0) -> list[tuple[float, float]]:
    """EOL-ordered (lat, lon) corners of a lon/lat square whose lower-left corner is (lat, lon)."""
    return [(lat, lon), (lat + side, lon), (lat + side, lon + side), (lat, lon + side)]


def shifted(corners, degrees: float) -> list[tuple[float, float]]:
    """Corners moved east by ``degrees`` of longitude, wrapped into [-180, 180)."""
    return [(lat, (lon + degrees + 180.0) % 360.0 - 180.0) for lat, lon in corners]


def reference_iou(first, second) -> float:
    """IoU from geodesic areas (pyproj Geod) of the lon/lat intersection: slow but direct."""
    overlap = geodesic_area_km2(first.intersection(second))
    return overlap / (geodesic_area_km2(first) + geodesic_area_km2(second) - overlap)


def eol_rows(shared_data):
    with (shared_data / "eol_footprints.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def corners_of(row) -> list[tuple[float, float]]:
    return [(float(row[f"{c}_LAT"]), float(row[f"{c}_LON"])) for c in ("LL", "UL", "UR", "LR")]


def test_corners_make_a_lon_lat_polygon():
    polygon = footprint_polygon(square(10.0, 20.0))
    assert isinstance(polygon, Polygon) and polygon.bounds == (20.0, 10.0, 21.0, 11.0)
    assert footprint_area_km2(square(0.0, 0.0)) == pytest.approx(12_308, rel=0.001)  # 1°x1° at the equator


def test_footprint_across_the_antimeridian_is_split_and_keeps_its_area():
    corners = [(-1.0, 179.5), (1.0, 179.5), (1.0, -179.0), (-1.0, -179.0)]
    polygon = footprint_polygon(corners)
    assert isinstance(polygon, MultiPolygon) and len(polygon.geoms) == 2
    assert polygon.covers(Point(179.9, 0.0)) and polygon.covers(Point(-179.5, 0.0))
    assert not polygon.intersects(Point(0.0, 0.0))
    moved = footprint_polygon(shifted(corners, -179.5))  # the same shape off the antimeridian
    assert geodesic_area_km2(polygon) == pytest.approx(geodesic_area_km2(moved), rel=1e-5)
    assert footprint_area_km2(corners) == pytest.approx(1.5 * 2 * 12_308, rel=0.002)


@pytest.mark.parametrize(
    ("corners", "message"),
    [
        ([(0, 0), (1, 0), (1, 1)], "four"),
        ([(0, 0), (1, 0), (1, 1), ("x", 0)], "number pairs"),
        ([(95, 0), (96, 0), (96, 1), (95, 1)], "latitude must lie in"),
        ([(0, 0), (1, 0), (1, 1), (0, 181)], "longitude must lie in"),
        ([(0, 0), (1, 0), (1, float("nan")), (0, 1)], "finite"),
        ([(0, 0), (1, 1), (1, 0), (0, 1)], "simple quadrilateral"),  # LL, UR, UL, LR: a bow tie
        ([(0, 0), (0, 0), (0, 0), (0, 0)], "simple quadrilateral"),
        ([(0, 0), (10, 90), (10, 180), (0, -90)], "span"),
    ],
)
def test_bad_corners_are_refused_with_a_message(corners, message):
    with pytest.raises(ValueError, match=message):
        footprint_polygon(corners)


def test_every_real_footprint_area_matches_eol(shared_data):
    rows = eol_rows(shared_data)
    ratios = np.array([footprint_area_km2(corners_of(row)) / float(row["SQ_KM_AREA"]) for row in rows])
    worst = int(np.argmax(np.abs(ratios - 1.0)))
    print(
        f"{len(rows)} EOL footprints: geodesic area / SQ_KM_AREA median {np.median(ratios):.4f}, "
        f"worst {ratios[worst]:.4f} ({rows[worst]['MISSION']}-{rows[worst]['ROLL']}-{rows[worst]['FRAME']})"
    )
    assert len(rows) == 17_763
    assert np.all(np.abs(ratios - 1.0) <= 0.01)


def test_iou_of_simple_overlaps():
    a = footprint_polygon(square(60.0, 10.0))
    assert footprint_iou(a, a) == pytest.approx(1.0)
    assert footprint_iou(a, footprint_polygon(square(60.0, 12.0))) == 0.0
    half = footprint_polygon(square(60.0, 10.5))  # shifted by half its width
    assert footprint_iou(a, half) == pytest.approx(1.0 / 3.0, rel=1e-3)
    inside = footprint_polygon(square(60.25, 10.25, 0.5))
    share = geodesic_area_km2(inside) / geodesic_area_km2(a)
    assert footprint_iou(a, inside) == pytest.approx(share, rel=1e-3)


def test_iou_across_the_antimeridian_equals_the_same_pair_elsewhere():
    a_corners = [(-1.0, 179.0), (1.0, 179.0), (1.0, -179.5), (-1.0, -179.5)]
    b_corners = [(-0.5, 179.6), (1.5, 179.6), (1.5, -178.9), (-0.5, -178.9)]
    a, b = footprint_polygon(a_corners), footprint_polygon(b_corners)
    a0, b0 = footprint_polygon(shifted(a_corners, 180.0)), footprint_polygon(shifted(b_corners, 180.0))
    assert isinstance(a, MultiPolygon) and isinstance(b, MultiPolygon)
    assert footprint_iou(a, b) == pytest.approx(footprint_iou(a0, b0), rel=1e-6)
    assert footprint_iou(a, b) == pytest.approx(reference_iou(a0, b0), rel=0.01)
    assert 0.25 < footprint_iou(a, b) < 0.35


def test_batched_iou_matches_geodesic_reference_on_real_overlapping_photos(shared_data):
    """Consecutive frames of a roll overlap: the batched IoU agrees with Geod areas to 1%."""
    rows = sorted(eol_rows(shared_data), key=lambda r: (r["MISSION"], r["ROLL"], int(r["FRAME"])))
    polygons = [footprint_polygon(corners_of(row)) for row in rows[:4000]]
    first, second = np.array(polygons[:-1], dtype=object), np.array(polygons[1:], dtype=object)
    batched = footprint_ious(first, second)
    overlapping = np.flatnonzero(batched > 0.05)
    assert len(overlapping) > 200
    reference = np.array([reference_iou(first[k], second[k]) for k in overlapping])
    assert np.all(np.abs(batched[overlapping] - reference) < 0.01 * np.maximum(reference, 0.1))
    assert np.all(batched[[k for k in range(len(batched)) if not first[k].intersects(second[k])]] == 0.0)


def test_overlapping_pairs_finds_every_pair_above_the_threshold():
    rng = np.random.default_rng(7)
    tile_corners = itertools.product([*range(170, 180), *range(-180, -175)], range(-3, 3))
    tiles = [box(lon, lat, lon + 1.0, lat + 1.0) for lon, lat in tile_corners]
    photos = []
    for _ in range(60):
        corners = square(rng.uniform(-3.0, 2.0), rng.uniform(170.0, 185.0), rng.uniform(0.5, 2.0))
        photos.append(footprint_polygon(shifted(corners, 0.0)))
    i, j, iou = overlapping_pairs(photos, tiles, min_iou=0.2)
    found = {(a, b): value for a, b, value in zip(i.tolist(), j.tolist(), iou.tolist())}
    expected = {
        (a, b)
        for a, b in itertools.product(range(len(photos)), range(len(tiles)))
        if photos[a].intersects(tiles[b]) and reference_iou(photos[a], tiles[b]) > 0.2
    }
    assert set(found) == expected and len(expected) > 20
    for (a, b), value in found.items():
        assert value == pytest.approx(reference_iou(photos[a], tiles[b]), rel=0.01)
    assert any(isinstance(photos[a], MultiPolygon) for a, _ in found)  # photos across ±180 were paired
    with pytest.raises(ValueError, match="min_iou"):
        overlapping_pairs(photos, tiles, min_iou=1.5)


def test_geojson_round_trip_with_properties():
    region = footprint_polygon([(-1.0, 179.5), (1.0, 179.5), (1.0, -179.0), (-1.0, -179.0)])
    feature = to_feature(region, {"photo": "ISS047-E-55412", "area_km2": 12.5}, feature_id=7)
    text = json.dumps(feature_collection([feature]))
    back = json.loads(text)["features"][0]
    assert back["type"] == "Feature" and back["id"] == 7 and back["properties"]["photo"] == "ISS047-E-55412"
    assert back["geometry"]["type"] == "MultiPolygon"
    assert from_geojson(back).equals(region) and from_geojson(back["geometry"]).equals(region)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "must be an object"),
        ({"type": "Polygon"}, "not a GeoJSON geometry"),
        ({"type": "Feature", "geometry": None, "properties": {}}, "not a GeoJSON geometry"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "invalid"),
        ({"type": "Polygon", "coordinates": [[[170, 0], [190, 0], [190, 1], [170, 0]]]}, "leaves lon"),
    ],
)
def test_bad_geojson_is_refused_with_a_message(obj, message):
    with pytest.raises(ValueError, match=message):
        from_geojson(obj)
