"""Sun elevation (geo/sun.py), computed offline from skyfield-data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from skyfield.api import wgs84

from geo import sun_elevation
from geo.sky import ephemeris, timescale

UTC = timezone.utc
SOLSTICE = datetime(2021, 6, 21, 3, 32, tzinfo=UTC)  # June solstice: solar declination +23.44°
OBLIQUITY = 23.44


def test_polar_day_and_night_at_the_solstice():
    lons = np.array([-150.0, -20.0, 0.0, 75.0, 180.0])
    # From a pole the Sun circles at an elevation equal to its declination.
    assert sun_elevation(np.full(5, 90.0), lons, SOLSTICE) == pytest.approx(np.full(5, OBLIQUITY), abs=0.02)
    assert sun_elevation(np.full(5, -90.0), lons, SOLSTICE) == pytest.approx(np.full(5, -OBLIQUITY), abs=0.02)


def test_sun_is_overhead_somewhere_on_the_tropic_and_opposite_below():
    lons = np.arange(-180.0, 180.0, 0.1)
    overhead = sun_elevation(np.full(lons.shape, OBLIQUITY), lons, SOLSTICE)
    underfoot = sun_elevation(np.full(lons.shape, -OBLIQUITY), lons, SOLSTICE)
    assert overhead.shape == lons.shape
    assert overhead.max() > 89.9 and underfoot.min() < -89.9
    # The subsolar and antisolar points are 180° apart in longitude.
    gap = abs(lons[overhead.argmax()] - lons[underfoot.argmin()])
    assert gap == pytest.approx(180.0, abs=0.2)


def test_noon_and_midnight_in_greenwich():
    # Solar noon at Greenwich on 21 June 2021 is at 12:01:47 UTC: elevation 90 - 51.48 + 23.44.
    noon = sun_elevation(51.4779, 0.0, datetime(2021, 6, 21, 12, 1, 47, tzinfo=UTC))
    assert isinstance(noon, float) and noon == pytest.approx(90.0 - 51.4779 + OBLIQUITY, abs=0.05)
    assert sun_elevation(51.4779, 0.0, datetime(2021, 6, 21, 0, 0, tzinfo=UTC)) < -10.0
    in_tokyo = datetime(2021, 6, 21, 21, 1, 47, tzinfo=timezone(timedelta(hours=9)))
    assert sun_elevation(51.4779, 0.0, in_tokyo) == pytest.approx(noon)


def test_agrees_with_skyfield_topocentric_altaz():
    planets = ephemeris()
    rng = np.random.default_rng(3)
    for _ in range(5):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        when = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=float(rng.uniform(0, 9000)))
        site = planets["earth"] + wgs84.latlon(lat, lon)
        altitude, _, _ = site.at(timescale().from_datetime(when)).observe(planets["sun"]).apparent().altaz()
        assert sun_elevation(lat, lon, when) == pytest.approx(altitude.degrees, abs=0.001)


@pytest.mark.parametrize(
    ("lat", "lon", "when", "message"),
    [
        (10.0, 20.0, datetime(2021, 6, 21, 12), "no timezone"),
        (10.0, 20.0, datetime(2100, 1, 1, tzinfo=UTC), "outside the DE421 ephemeris"),
        (95.0, 20.0, SOLSTICE, "latitude must lie in"),
        (10.0, -200.0, SOLSTICE, "longitude must lie in"),
        ([10.0, 20.0], [1.0, 2.0, 3.0], SOLSTICE, "same shape"),
    ],
)
def test_bad_input_is_refused_with_a_message(lat, lon, when, message):
    with pytest.raises(ValueError, match=message):
        sun_elevation(lat, lon, when)
