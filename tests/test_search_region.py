"""search_region (service/localize/region.py): checks, the union region, the Sun at the sub-point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import Point

from geo import iss_position, sun_elevation, visibility_area_km2
from service.db import session_scope
from service.demo_stack import ensure_tles
from service.localize.region import DAYLIGHT_MIN_SUN_ELEVATION_DEG, search_region
from world.sampling import sample_tles

GREENWICH = (51.4779, 0.0)
NOON = datetime(2021, 6, 21, 12, 1, 47, tzinfo=UTC)  # solar noon at Greenwich: the Sun 62 deg up


def _region(settings, **kwargs):
    with session_scope(settings.resolved_database_url) as session:
        return search_region(settings, session, **kwargs)


def test_day_and_night_at_the_nadir_when_no_tle_places_the_iss(sqlite_settings):
    day = _region(sqlite_settings, timestamp=NOON, nadir=GREENWICH)
    assert day.sun_elevation_deg == pytest.approx(90.0 - 51.4779 + 23.44, abs=0.05) and day.daylight is True
    night = _region(sqlite_settings, timestamp=NOON + timedelta(hours=12), nadir=GREENWICH)
    assert night.sun_elevation_deg < -10 and night.daylight is False
    assert [c.name for c in day.checks] == ["capture_time"]  # no TLE stored: nothing to compare with
    unknown = _region(sqlite_settings, timestamp=None, nadir=GREENWICH)
    assert unknown.sun_elevation_deg is None and unknown.daylight is None and unknown.checks == []
    assert day.to_dict()["daylight"] is True and DAYLIGHT_MIN_SUN_ELEVATION_DEG == pytest.approx(-0.833)


def test_orbit_position_checks_and_the_sun_there(sqlite_settings):
    ensure_tles(sqlite_settings)
    tle = sample_tles()[0]
    when = tle.epoch + timedelta(hours=2)
    orbit = iss_position(when, [tle])
    region = _region(sqlite_settings, timestamp=when, nadir=None)
    assert region.mode == "visibility" and region.iss_position["source"] == "tle"
    assert {c.name: c.ok for c in region.checks} == {"capture_time": True, "tle_age": True}
    assert region.sun_elevation_deg == pytest.approx(sun_elevation(orbit.lat, orbit.lon, when), abs=1e-3)
    assert region.sub_points == [(pytest.approx(orbit.lat, abs=1e-5), pytest.approx(orbit.lon, abs=1e-5))]


def test_a_nadir_off_the_orbit_searches_both_regions(sqlite_settings):
    ensure_tles(sqlite_settings)
    tle = sample_tles()[0]
    when = tle.epoch + timedelta(hours=2)
    orbit = iss_position(when, [tle])
    wrong = (orbit.lat - 20.0 if orbit.lat > 0 else orbit.lat + 20.0, orbit.lon)
    region = _region(sqlite_settings, timestamp=when, nadir=wrong)
    check = {c.name: c for c in region.checks}["nadir_vs_orbit"]
    assert not check.ok and "km from the ISS sub-point" in check.detail
    assert len(region.sub_points) == 2 and "disagrees" in region.reason
    assert region.region.contains(Point(orbit.lon, orbit.lat)) and region.region.contains(Point(wrong[1], wrong[0]))
    one_disc = visibility_area_km2(orbit.lat, orbit.alt_km)
    assert 1.3 * one_disc < region.area_km2 < 2.0 * one_disc  # two discs ~2,200 km apart overlap a little
    # The Sun is where the orbit puts the ISS at that time, not at the doubtful nadir.
    assert region.sun_elevation_deg == pytest.approx(sun_elevation(orbit.lat, orbit.lon, when), abs=1e-3)
    agreeing = _region(sqlite_settings, timestamp=when, nadir=(orbit.lat + 0.05, orbit.lon))
    assert {c.name: c.ok for c in agreeing.checks}["nadir_vs_orbit"] and len(agreeing.sub_points) == 1


def test_impossible_times_do_not_place_the_iss(sqlite_settings):
    ensure_tles(sqlite_settings)
    future = _region(sqlite_settings, timestamp=datetime.now(UTC) + timedelta(days=3), nadir=None)
    assert future.mode == "worldwide" and "future" in future.reason and "TLE" in future.reason
    assert future.sun_elevation_deg is None and not future.checks[0].ok
    with pytest.raises(ValueError, match="cannot restrict"):
        _region(sqlite_settings, timestamp=datetime(1995, 1, 1, tzinfo=UTC), nadir=None, mode="visibility")
