"""ISS position from TLEs (geo/orbit.py): cross-checked, time rules, fall-back, ground tracks."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod
from sgp4.api import Satrec, jday

import geo
from geo import distance_to_track_km, ground_track, iss_position, locate_iss, parse_time, parse_tles

SAMPLE = Path(__file__).resolve().parents[1] / "geo" / "data" / "iss_sample.tle"
UTC = timezone.utc
_GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def sample_tles():
    return parse_tles(SAMPLE.read_text()).tles


@pytest.fixture(scope="module")
def real_tles(shared_data):
    return parse_tles((shared_data / "iss_tles.txt").read_text()).tles


def independent_sub_point(line1: str, line2: str, when: datetime) -> tuple[float, float, float]:
    """ISS geodetic lat, lon, height (km) without skyfield: raw SGP4 in TEME, rotated about the
    pole by the IAU 1982 Greenwich mean sidereal time (Vallado's gstime) into Earth-fixed axes,
    then converted to WGS84 geodetic coordinates by fixed-point iteration. UT1 is taken as UTC
    and polar motion ignored (< 0.5 km together)."""
    satrec = Satrec.twoline2rv(line1, line2)
    seconds = when.second + when.microsecond / 1e6
    jd, fraction = jday(when.year, when.month, when.day, when.hour, when.minute, seconds)
    error, (x_teme, y_teme, z), _ = satrec.sgp4(jd, fraction)
    assert error == 0
    centuries = (jd + fraction - 2451545.0) / 36525.0
    gmst_s = 67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * centuries + 0.093104 * centuries**2
    theta = math.radians((gmst_s - 6.2e-6 * centuries**3) / 240.0 % 360.0)
    x = math.cos(theta) * x_teme + math.sin(theta) * y_teme
    y = -math.sin(theta) * x_teme + math.cos(theta) * y_teme
    a_km, e2 = 6378.137, 6.69437999014e-3  # WGS84
    p = math.hypot(x, y)
    lat = math.atan2(z, p * (1.0 - e2))
    for _ in range(8):
        n = a_km / math.sqrt(1.0 - e2 * math.sin(lat) ** 2)
        height = p / math.cos(lat) - n
        lat = math.atan2(z, p * (1.0 - e2 * n / (n + height)))
    return math.degrees(lat), math.degrees(math.atan2(y, x)), height


def check_against_independent(tles, offsets_days) -> float:
    """Largest 3-D gap (km) between iss_position and the independent computation."""
    worst = 0.0
    for tle in tles:
        for offset in offsets_days:
            when = tle.epoch + timedelta(days=offset)
            sub = iss_position(when, [tle])
            lat, lon, height = independent_sub_point(tle.line1, tle.line2, when)
            _, _, ground_m = _GEOD.inv(sub.lon, sub.lat, lon, lat)
            across_km = ground_m / 1000.0 * (1.0 + sub.alt_km / 6371.0)  # the offset up at the ISS
            worst = max(worst, math.hypot(across_km, sub.alt_km - height))
    return worst


def test_position_matches_an_independent_sgp4_gmst_computation(sample_tles):
    assert check_against_independent(sample_tles, (-2.3, 0.0, 0.71, 5.5)) < 1.0


def test_real_tles_match_the_independent_computation(real_tles):
    worst = check_against_independent(real_tles, (-1.1, 0.37, 3.9))
    print(f"iss_position vs raw sgp4 + GMST: worst gap {worst * 1000:.0f} m over {len(real_tles) * 3} times")
    assert worst < 1.0


def test_positions_are_physically_plausible(sample_tles):
    for tle in sample_tles:
        for hours in np.linspace(-48, 48, 9):
            sub = iss_position(tle.epoch + timedelta(hours=float(hours)), sample_tles)
            assert 330.0 < sub.alt_km < 440.0
            assert abs(sub.lat) <= 51.7 + 0.2  # the inclination (geodetic latitude runs ~0.2° higher)
            assert -180.0 <= sub.lon <= 180.0
            assert sub.tle_epoch == tle.epoch
            assert sub.tle_age_days == pytest.approx(abs(hours) / 24.0, abs=1e-6)


def test_sub_point_as_json(sample_tles):
    sub = iss_position(sample_tles[0].epoch + timedelta(hours=1), sample_tles)
    fields = json.loads(json.dumps(sub.as_json()))
    assert fields["tle_epoch"] == "2008-09-20T12:25:40.104191+00:00"
    assert (fields["lat"], fields["lon"], fields["alt_km"]) == (sub.lat, sub.lon, sub.alt_km)
    assert fields["tle_age_days"] == pytest.approx(1 / 24)


def test_pairs_and_parsed_tles_give_the_same_position(sample_tles):
    when = sample_tles[3].epoch + timedelta(hours=5)
    pairs = [(t.line1, t.line2) for t in sample_tles]
    assert iss_position(when, pairs) == iss_position(when, sample_tles)
    in_paris = when.astimezone(timezone(timedelta(hours=2)))
    assert iss_position(in_paris, pairs) == iss_position(when, pairs)


def test_naive_times_are_refused(sample_tles):
    with pytest.raises(ValueError, match="no timezone"):
        iss_position(datetime(2018, 5, 15, 12), sample_tles)
    with pytest.raises(ValueError, match="no timezone"):
        locate_iss(datetime(2018, 5, 15, 12), sample_tles)
    with pytest.raises(ValueError, match="must be a datetime"):
        iss_position("2018-05-15T12:00:00Z", sample_tles)


def test_times_far_from_every_tle_are_refused(sample_tles):
    with pytest.raises(ValueError, match=r"is 832\.5 days from 2011-01-01T00:00:00Z, beyond the 14-day"):
        iss_position(datetime(2011, 1, 1, tzinfo=UTC), sample_tles)
    with pytest.raises(ValueError, match="2-day limit"):
        iss_position(sample_tles[0].epoch + timedelta(days=3), sample_tles, max_age_days=2)
    with pytest.raises(ValueError, match="no TLEs"):
        iss_position(datetime(2011, 1, 1, tzinfo=UTC), [])


def test_extrapolated_decay_is_refused(sample_tles):
    # The 2019 element set has positive drag; 14 years on, SGP4 has the ISS underground.
    with pytest.raises(ValueError, match="below ground"):
        iss_position(sample_tles[-1].epoch + timedelta(days=5000), sample_tles[-1:], max_age_days=math.inf)


def test_locate_iss_gives_a_position_or_the_reason_to_search_worldwide(sample_tles):
    fix = locate_iss(sample_tles[1].epoch + timedelta(days=1), sample_tles, max_age_days=14)
    assert fix.trusted and fix.fallback_reason is None and fix.position.tle_age_days == pytest.approx(1.0)
    stale = locate_iss(sample_tles[1].epoch + timedelta(days=20), sample_tles, max_age_days=14)
    assert not stale.trusted and stale.position is None
    assert "20.0 days" in stale.fallback_reason and "14-day limit" in stale.fallback_reason
    assert locate_iss(None, sample_tles).fallback_reason == "the photo has no capture time"
    assert "no TLE" in locate_iss(sample_tles[0].epoch, []).fallback_reason


def test_parse_time_needs_a_zone():
    assert parse_time("2020-12-09T12:40:00Z") == datetime(2020, 12, 9, 12, 40, tzinfo=UTC)
    assert parse_time("2020-12-09T14:40:00+02:00") == datetime(2020, 12, 9, 12, 40, tzinfo=UTC)
    with pytest.raises(ValueError, match="no timezone"):
        parse_time("2020-12-09T12:40:00")
    with pytest.raises(ValueError, match="not ISO 8601"):
        parse_time("yesterday")


def test_ground_track_samples_follow_iss_position(sample_tles):
    start = sample_tles[3].epoch
    track = ground_track(start, start + timedelta(hours=3), sample_tles, step_s=60.0)
    assert len(track.times) == 181 and track.times[-1] == start + timedelta(hours=3)
    for k in (0, 77, 180):
        sub = iss_position(track.times[k], sample_tles)
        expected = (sub.lat, sub.lon, sub.alt_km)
        assert (track.lat[k], track.lon[k], track.alt_km[k]) == pytest.approx(expected, abs=1e-5)
    _, _, steps_m = _GEOD.inv(track.lon[:-1], track.lat[:-1], track.lon[1:], track.lat[1:])
    assert np.all((steps_m > 400e3) & (steps_m < 460e3))  # ~7.2 km/s over the ground


def test_ground_track_switches_to_the_nearest_tle(sample_tles):
    first, second = sample_tles[5], sample_tles[6]  # 23 days apart
    track = ground_track(first.epoch, second.epoch, [first, second], step_s=3600.0)
    for k in (1, len(track.times) - 2):
        sub = iss_position(track.times[k], [first, second])
        assert (track.lat[k], track.lon[k]) == pytest.approx((sub.lat, sub.lon), abs=1e-5)
    assert iss_position(track.times[1], [first, second]).tle_epoch == first.epoch
    assert iss_position(track.times[-2], [first, second]).tle_epoch == second.epoch


def test_ground_track_refuses_bad_intervals(sample_tles):
    start = sample_tles[0].epoch
    with pytest.raises(ValueError, match="before its start"):
        ground_track(start, start - timedelta(hours=1), sample_tles)
    with pytest.raises(ValueError, match="step must be positive"):
        ground_track(start, start + timedelta(hours=1), sample_tles, step_s=0)
    with pytest.raises(ValueError, match="14-day limit"):
        ground_track(start, start + timedelta(days=20), sample_tles[:1], step_s=3600)
    with pytest.raises(ValueError, match="no timezone"):
        ground_track(datetime(2008, 9, 20), start, sample_tles)


def test_distance_to_track_measures_across_the_track(sample_tles):
    start = sample_tles[2].epoch
    track = ground_track(start, start + timedelta(hours=2), sample_tles)
    assert distance_to_track_km(track, track.lat[40], track.lon[40]) < 1e-6
    # 100 km to the side of the track halfway between two samples.
    azimuth, _, step_m = _GEOD.inv(track.lon[40], track.lat[40], track.lon[41], track.lat[41])
    mid_lon, mid_lat, back = _GEOD.fwd(track.lon[40], track.lat[40], azimuth, step_m / 2)
    side_lon, side_lat, _ = _GEOD.fwd(mid_lon, mid_lat, back + 180.0 + 90.0, 100e3)
    assert distance_to_track_km(track, side_lat, side_lon) == pytest.approx(100.0, rel=0.01)
    with pytest.raises(ValueError, match="latitude"):
        distance_to_track_km(track, 95.0, 0.0)


def test_ground_track_passes_over_the_recorded_nadir_of_real_photos(shared_data, real_tles):
    """EOL photos dated within 1.5 days of a TLE: the track over the capture date (the CSV has
    no time of day) passes within 50 km of the recorded nadir for at least 90% of them."""
    by_track: dict[tuple[datetime, geo.TLE], list[tuple[float, float]]] = {}
    with (shared_data / "eol_footprints.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            day = datetime.strptime(row["YYYYMMDD"], "%Y%m%d").replace(tzinfo=UTC)
            tle, age_days = geo.nearest_tle(day + timedelta(hours=12), real_tles)
            if age_days <= 1.5:
                by_track.setdefault((day, tle), []).append((float(row["NADIR_LAT"]), float(row["NADIR_LON"])))
    distances = []
    for (day, tle), nadirs in by_track.items():
        track = ground_track(day, day + timedelta(days=1), [tle], step_s=60.0, max_age_days=2.0)
        distances += [distance_to_track_km(track, lat, lon) for lat, lon in nadirs]
    distances = np.array(distances)
    within = float(np.mean(distances <= 50.0))
    print(
        f"{len(distances)} photos within 1.5 days of a TLE ({len(by_track)} tracks): median "
        f"{np.median(distances):.1f} km, p90 {np.percentile(distances, 90):.1f} km, "
        f"{within:.1%} within 50 km, farthest {distances.max():.0f} km"
    )
    assert len(distances) == 1196
    assert within >= 0.90
