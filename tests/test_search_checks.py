"""Metadata checks (geo/checks.py) against real TLEs and the real catalogue."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import box

from geo import iss_position, parse_tles
from geo.checks import (
    NADIR_ORBIT_MAX_KM,
    check_capture_time,
    check_footprint_horizon,
    check_nadir_vs_orbit,
    check_tle_age,
    ground_distance_km,
)
from geo.eol import row_corners
from geo.footprint import footprint_polygon

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_capture_time_in_the_future_or_before_the_iss_is_flagged():
    assert check_capture_time(NOW - timedelta(days=1), now=NOW).ok
    assert check_capture_time(NOW + timedelta(seconds=60), now=NOW).ok  # a clock a little ahead
    future = check_capture_time(NOW + timedelta(days=2), now=NOW)
    assert not future.ok and "future" in future.detail and future.name == "capture_time"
    early = check_capture_time(datetime(1998, 11, 19, tzinfo=UTC), now=NOW)
    assert not early.ok and "1998-11-20" in early.detail
    assert check_capture_time(datetime(1998, 11, 20, 6, 40, tzinfo=UTC), now=NOW).ok


def test_tle_age_against_the_trust_window():
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    assert check_tle_age(3.2, 14.0, epoch).ok
    old = check_tle_age(40.5, 14.0, epoch)
    assert not old.ok and "40.5 days" in old.detail and "14-day" in old.detail


def test_nadir_vs_orbit_with_a_real_tle(shared_data):
    tles = parse_tles((shared_data / "iss_tles.txt").read_text()).tles
    when = tles[5].epoch + timedelta(hours=3)
    orbit = iss_position(when, tles)
    sub = (orbit.lat, orbit.lon)
    assert check_nadir_vs_orbit((orbit.lat + 0.05, orbit.lon), sub).ok  # 0.1-deg catalogue rounding
    # 20 degrees along the meridian: ~2,200 km, a metadata error.
    wrong = check_nadir_vs_orbit((orbit.lat - 20.0 if orbit.lat > 0 else orbit.lat + 20.0, orbit.lon), sub)
    assert not wrong.ok and "both visibility regions" in wrong.detail
    assert float(wrong.detail.split(" km from")[0].rsplit(" ", 1)[1]) == pytest.approx(2_215, rel=0.02)


def test_ground_distance_is_geodesic():
    # One degree of latitude at the equator is 110.57 km on WGS84.
    assert ground_distance_km((0.0, 10.0), (1.0, 10.0)) == pytest.approx(110.57, abs=0.01)
    assert ground_distance_km((0.0, 179.9), (0.0, -179.9)) == pytest.approx(22.26, abs=0.01)
    assert NADIR_ORBIT_MAX_KM > 20 * 7.3  # well beyond the catalogue's p90 disagreement


def test_catalogue_footprints_beyond_the_horizon_are_exactly_the_metadata_errors(shared_data):
    flagged = 0
    with (shared_data / "eol_footprints.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            footprint = footprint_polygon(row_corners(row))
            check = check_footprint_horizon(footprint, (float(row["NADIR_LAT"]), float(row["NADIR_LON"])), 420.0)
            flagged += not check.ok
    assert flagged == 10  # README: 10 rows have a corner over 2,300 km away


def test_footprint_horizon_detail():
    near = check_footprint_horizon(box(1.0, 1.0, 3.0, 3.0), (0.0, 0.0), 420.0)
    assert near.ok and near.name == "footprint_horizon"
    far = check_footprint_horizon(box(40.0, 1.0, 42.0, 3.0), (0.0, 0.0), 420.0)
    assert not far.ok and "beyond" in far.detail
