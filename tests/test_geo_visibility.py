"""The ISS visibility region (geo/visibility.py) and lon/lat areas (geo/lonlat.py)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from geo import (
    footprint_polygon,
    geodesic_area_km2,
    visibility_area_km2,
    visibility_feature,
    visibility_region,
)
from geo.lonlat import WORLD
from geo.visibility import earth_radius_km, horizon_angle_deg, visibility_radius_km

WGS84 = Geod(ellps="WGS84")
EARTH_AREA_KM2 = 510_065_621.7  # WGS84 ellipsoid surface
ANTIMERIDIAN = LineString([(180.0, -90.0), (180.0, 90.0)])

# Biased towards the poles and the antimeridian, where lon/lat outlines need care.
latitudes = st.one_of(
    st.floats(55.0, 90.0), st.floats(-90.0, -55.0), st.floats(-90.0, 90.0), st.sampled_from([90.0, -90.0])
)
longitudes = st.one_of(
    st.floats(165.0, 180.0),
    st.floats(-180.0, -165.0),
    st.floats(-180.0, 180.0),
    st.sampled_from([180.0, -180.0]),
)
altitudes = st.one_of(st.floats(150.0, 2000.0), st.just(420.0))
elevations = st.one_of(st.just(0.0), st.floats(0.0, 40.0))


def rim_points(lat, lon, alt_km, min_elevation_deg, fraction, count=12):
    """Points at ``fraction`` of the region's angular radius from the sub-point (on its sphere)."""
    radius_m = earth_radius_km(lat) * 1000.0
    angle = math.radians(horizon_angle_deg(lat, alt_km, min_elevation_deg))
    azimuths = np.linspace(0, 360, count, endpoint=False)
    lons, lats, _ = Geod(a=radius_m, b=radius_m).fwd(
        np.full(count, lon), np.full(count, lat), azimuths, np.full(count, radius_m * angle * fraction)
    )
    return shapely.points(lons, lats)


@settings(max_examples=150, deadline=None)
@given(lat=latitudes, lon=longitudes, alt_km=altitudes, min_elevation_deg=elevations)
def test_region_is_a_valid_cap_near_poles_and_antimeridian(lat, lon, alt_km, min_elevation_deg):
    region = visibility_region(lat, lon, alt_km, min_elevation_deg)
    assert region.is_valid and WORLD.covers(region)
    # covers, not contains: a sub-point on the antimeridian or at a pole lies on the outline.
    assert region.covers(Point(lon, lat))
    cap_area = visibility_area_km2(lat, alt_km, min_elevation_deg)
    assert geodesic_area_km2(region) == pytest.approx(cap_area, rel=0.01)
    assert shapely.covers(region, rim_points(lat, lon, alt_km, min_elevation_deg, 0.98)).all()
    assert not shapely.intersects(region, rim_points(lat, lon, alt_km, min_elevation_deg, 1.02)).any()
    pole = Point(0.0, math.copysign(90.0, lat))
    to_pole = 90.0 - abs(lat)
    angle = horizon_angle_deg(lat, alt_km, min_elevation_deg)
    if to_pole < angle - 0.01:
        assert all(region.covers(Point(pole_lon, pole.y)) for pole_lon in (-180.0, 0.0, 180.0))
    elif to_pole > angle + 0.01:
        assert not region.intersects(pole)
        if region.intersects(ANTIMERIDIAN):  # split at ±180 into pieces on both sides
            assert isinstance(region, MultiPolygon)
            assert (region.bounds[0], region.bounds[2]) == (-180.0, 180.0)


def test_iss_region_size_from_horizon_geometry():
    # The Gaussian radius of curvature is b at the equator and a²/b at the poles.
    assert earth_radius_km(0.0) == pytest.approx(WGS84.b / 1000.0)
    assert earth_radius_km(-90.0) == pytest.approx(WGS84.a**2 / WGS84.b / 1000.0)
    radius = WGS84.b / 1000.0
    assert horizon_angle_deg(0.0, 420.0) == pytest.approx(math.degrees(math.acos(radius / (radius + 420.0))))
    assert horizon_angle_deg(0.0, 420.0) == pytest.approx(20.28, abs=0.01)
    assert visibility_radius_km(0.0, 420.0) == pytest.approx(2250, abs=5)
    assert visibility_area_km2(0.0, 420.0) == pytest.approx(15.74e6, rel=0.002)
    # Above 10° of elevation only: acos(R cos 10° / (R + h)) - 10°.
    expected = math.degrees(math.acos(radius * math.cos(math.radians(10)) / (radius + 420.0))) - 10.0
    assert horizon_angle_deg(0.0, 420.0, 10.0) == pytest.approx(expected)
    low = visibility_region(0.0, 0.0, 420.0, min_elevation_deg=10.0)
    assert visibility_region(0.0, 0.0, 420.0).contains(low)


def test_region_at_the_equator_is_a_round_disc():
    region = visibility_region(0.0, 30.0, 420.0)
    assert isinstance(region, Polygon)
    angle = horizon_angle_deg(0.0, 420.0)
    west, south, east, north = region.bounds
    assert (west, south, east, north) == pytest.approx((30.0 - angle, -angle, 30.0 + angle, angle), abs=0.01)


def test_region_across_the_antimeridian_is_split():
    region = visibility_region(-20.0, 175.0, 420.0)
    assert isinstance(region, MultiPolygon) and len(region.geoms) == 2
    east, west = sorted(region.geoms, key=lambda p: -p.bounds[2])
    assert east.bounds[2] == 180.0 and west.bounds[0] == -180.0
    assert region.covers(Point(-170.0, -20.0)) and region.covers(Point(170.0, -20.0))
    assert not region.intersects(Point(0.0, -20.0))  # no band wrapped across the whole map
    shifted = visibility_region(-20.0, -5.0, 420.0)  # same latitude, same shape elsewhere
    assert geodesic_area_km2(region) == pytest.approx(geodesic_area_km2(shifted), rel=1e-6)


def test_region_holding_a_pole_covers_the_polar_cap():
    region = visibility_region(80.0, -100.0, 420.0)
    angle = horizon_angle_deg(80.0, 420.0)
    assert isinstance(region, Polygon) and region.bounds == pytest.approx((-180.0, 80.0 - angle, 180.0, 90.0))
    # Across the pole the cap reaches down to 90 - (angle - 10) on the opposite meridian (80°E).
    far = 90.0 - (angle - 10.0)
    assert region.covers(Point(80.0, far + 0.3)) and not region.covers(Point(80.0, far - 0.3))
    assert region.covers(box(-180.0, 89.0, 180.0, 90.0))
    south = visibility_region(-88.0, 180.0, 420.0)
    assert south.covers(box(-180.0, -90.0, 180.0, -80.0)) and south.bounds[1] == -90.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((91.0, 0.0, 420.0), "latitude must lie in"),
        ((0.0, 181.0, 420.0), "longitude must lie in"),
        ((float("nan"), 0.0, 420.0), "finite"),
        ((0.0, 0.0, 0.0), "altitude must be a positive"),
        ((0.0, 0.0, -400.0), "altitude must be a positive"),
        ((0.0, 0.0, float("inf")), "altitude must be a positive"),
        ((0.0, 0.0, 420.0, 90.0), "minimum elevation"),
        ((0.0, 0.0, 420.0, -5.0), "minimum elevation"),
        (("north", 0.0, 420.0), "must be numbers"),
    ],
)
def test_bad_input_is_refused_with_a_message(args, message):
    with pytest.raises(ValueError, match=message):
        visibility_region(*args)
    if len(args) == 3 and isinstance(args[0], float) and not math.isnan(args[0]) and abs(args[0]) > 90:
        with pytest.raises(ValueError, match=message):
            visibility_area_km2(args[0], args[2])


def test_visibility_feature_is_json_geojson_with_its_figures():
    feature = json.loads(json.dumps(visibility_feature(10.0, 179.0, 420.0, 5.0, properties={"time": "T"})))
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "MultiPolygon"
    properties = feature["properties"]
    assert properties["sub_point"] == {"lat": 10.0, "lon": 179.0, "alt_km": 420.0}
    assert properties["area_km2"] == pytest.approx(visibility_area_km2(10.0, 420.0, 5.0))
    assert properties["radius_km"] == pytest.approx(visibility_radius_km(10.0, 420.0, 5.0))
    assert properties["min_elevation_deg"] == 5.0 and properties["time"] == "T"
    with pytest.raises(ValueError, match="latitude"):
        visibility_feature(-91.0, 0.0, 420.0)


def test_geodesic_area_of_lon_lat_shapes():
    assert geodesic_area_km2(box(-180.0, 0.0, 180.0, 90.0)) == pytest.approx(EARTH_AREA_KM2 / 2, rel=1e-6)
    clockwise = Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])
    assert geodesic_area_km2(clockwise) == pytest.approx(geodesic_area_km2(clockwise.reverse()))
    assert geodesic_area_km2(clockwise) == pytest.approx(12_308, rel=0.001)  # 1°x1° at the equator
    holed = Polygon([(0, 0), (3, 0), (3, 3), (0, 3)], [[(1, 1), (1, 2), (2, 2), (2, 1)]])
    assert geodesic_area_km2(holed) == pytest.approx(geodesic_area_km2(box(0, 0, 3, 3)) * 8 / 9, rel=0.001)
    split = MultiPolygon([box(179.0, 0.0, 180.0, 1.0), box(-180.0, 0.0, -179.0, 1.0).reverse()])
    assert geodesic_area_km2(split) == pytest.approx(2 * geodesic_area_km2(clockwise))


def test_real_footprints_lie_inside_the_region_seen_from_their_nadir(shared_data):
    """EOL footprints vs visibility_region(NADIR, 420 km): >= 99.9% inside; the rest are
    metadata errors (a corner thousands of km from the recorded nadir)."""
    outside = []
    with (shared_data / "eol_footprints.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        corners = [(float(row[f"{c}_LAT"]), float(row[f"{c}_LON"])) for c in ("LL", "UL", "UR", "LR")]
        nadir_lat, nadir_lon = float(row["NADIR_LAT"]), float(row["NADIR_LON"])
        if not visibility_region(nadir_lat, nadir_lon, 420.0).covers(footprint_polygon(corners)):
            lats, lons = zip(*corners)
            _, _, distances = WGS84.inv([nadir_lon] * 4, [nadir_lat] * 4, lons, lats)
            photo = f"{row['MISSION']}-{row['ROLL']}-{row['FRAME']}"
            outside.append((photo, nadir_lat, nadir_lon, max(distances) / 1e3))
    print(f"{len(outside)} of {len(rows)} footprints leave the 420-km visibility region of their nadir:")
    for photo, lat, lon, farthest_km in outside:
        print(f"  {photo}: nadir ({lat}, {lon}), farthest corner {farthest_km:,.0f} km away")
    assert len(outside) <= 0.001 * len(rows)
    assert all(farthest_km > visibility_radius_km(lat, 420.0) for _, lat, _, farthest_km in outside)
