"""Where the ISS was: SGP4 propagation of the nearest TLE to a WGS84 sub-satellite point.

SGP4 (sgp4 via skyfield) gives positions in the TEME frame; skyfield turns them into ITRS with
the IAU precession-nutation, Earth rotation from the IERS UT1-UTC table and polar motion
(skyfield-data, offline), and into WGS84 geodetic latitude, longitude and height.

A TLE is trusted for a limited time around its epoch (SGP4 errors grow by kilometres a day,
and more with drag): :func:`iss_position` refuses older ones, :func:`locate_iss` instead
returns the reason to fall back to a worldwide search.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
from skyfield.api import EarthSatellite, wgs84
from skyfield.timelib import Time

from geo.lonlat import check_lat_lon, unit_vectors
from geo.sky import require_aware, timescale
from geo.tle import TLE, as_tles, nearest_tle

DEFAULT_MAX_TLE_AGE_DAYS = 14.0
# A typical ISS altitude (it flies at 370-430 km): the default wherever no TLE gives the actual one.
ISS_ALTITUDE_KM = 420.0
DEFAULT_TRACK_STEP_S = 60.0
MAX_TRACK_SAMPLES = 1_000_000
# Radius of the sphere on which distances to a ground track are measured (IUGG mean radius).
MEAN_EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class SubPoint:
    """The satellite's WGS84 sub-point and height, and the element set that placed it."""

    lat: float
    lon: float
    alt_km: float
    tle_epoch: datetime
    tle_age_days: float

    def as_json(self) -> dict:
        """JSON-ready fields, the epoch in ISO 8601."""
        return {
            "lat": self.lat,
            "lon": self.lon,
            "alt_km": self.alt_km,
            "tle_epoch": self.tle_epoch.isoformat(),
            "tle_age_days": self.tle_age_days,
        }


@dataclass(frozen=True)
class IssFix:
    """Result of :func:`locate_iss`: a position, or why the search must be worldwide instead."""

    position: SubPoint | None
    fallback_reason: str | None

    @property
    def trusted(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class GroundTrack:
    """Sub-points at regular times: ``times`` (UTC datetimes) and matching ``lat``/``lon``/``alt_km``."""

    times: list[datetime]
    lat: np.ndarray
    lon: np.ndarray
    alt_km: np.ndarray


@lru_cache(maxsize=4096)
def _satellite(line1: str, line2: str) -> EarthSatellite:
    return EarthSatellite(line1, line2, ts=timescale())


def _sub_points(tle: TLE, t: Time) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geodetic lat, lon (degrees) and height (km) of the satellite at skyfield time(s) ``t``."""
    position = _satellite(tle.line1, tle.line2).at(t)
    if np.isnan(position.position.km).any():
        reason = getattr(position, "message", None) or "no position"
        raise ValueError(f"SGP4 cannot propagate the TLE of epoch {tle.epoch:%Y-%m-%d %H:%M}Z: {reason}")
    where = wgs84.geographic_position_of(position)
    if (where.elevation.km <= 0).any():  # SGP4 extrapolates decay without flagging it
        raise ValueError(f"the TLE of epoch {tle.epoch:%Y-%m-%d %H:%M}Z puts the satellite below ground")
    return where.latitude.degrees, where.longitude.degrees, where.elevation.km


def _too_old(age_days: float, max_age_days: float, tle: TLE, when: datetime) -> str | None:
    if age_days <= max_age_days:
        return None
    return (
        f"the nearest TLE (epoch {tle.epoch:%Y-%m-%dT%H:%M:%SZ}) is {age_days:.1f} days from "
        f"{when:%Y-%m-%dT%H:%M:%SZ}, beyond the {max_age_days:g}-day limit: the ISS position is unknown"
    )


def iss_position(
    when: datetime, tles: Iterable[object], max_age_days: float = DEFAULT_MAX_TLE_AGE_DAYS
) -> SubPoint:
    """The ISS sub-satellite point at ``when`` (timezone-aware), from the TLE of nearest epoch.

    ``tles``: :class:`~geo.tle.TLE` objects, ``(line1, line2)`` string pairs, or objects with
    ``line1``/``line2`` attributes. ValueError for a naive ``when``, no TLEs, invalid ones, or
    a nearest TLE more than ``max_age_days`` from ``when``.
    """
    when = require_aware(when, "capture time")
    tle, age_days = nearest_tle(when, tles)
    problem = _too_old(age_days, max_age_days, tle, when)
    if problem:
        raise ValueError(problem)
    lat, lon, alt_km = _sub_points(tle, timescale().from_datetime(when))
    return SubPoint(float(lat), float(lon), float(alt_km), tle.epoch, age_days)


def locate_iss(
    when: datetime | None, tles: Iterable[object], max_age_days: float = DEFAULT_MAX_TLE_AGE_DAYS
) -> IssFix:
    """The ISS position for a photo, or the reason the service must search worldwide: no
    capture time, no TLEs, or none within ``max_age_days`` of it. A naive ``when`` or an invalid
    TLE is still a ValueError (bad input, not a fallback)."""
    if when is None:
        return IssFix(None, "the photo has no capture time")
    when = require_aware(when, "capture time")
    tles = as_tles(tles)
    if not tles:
        return IssFix(None, "no TLE is stored for the ISS")
    tle, age_days = nearest_tle(when, tles)
    problem = _too_old(age_days, max_age_days, tle, when)
    if problem:
        return IssFix(None, problem)
    return IssFix(iss_position(when, [tle], max_age_days), None)


def ground_track(
    start: datetime,
    end: datetime,
    tles: Iterable[object],
    step_s: float = DEFAULT_TRACK_STEP_S,
    max_age_days: float = DEFAULT_MAX_TLE_AGE_DAYS,
) -> GroundTrack:
    """Sub-points every ``step_s`` seconds from ``start`` to ``end`` (both included when the step
    divides the interval), each from the TLE of nearest epoch. ValueError if some time of the
    interval is more than ``max_age_days`` from every TLE."""
    start, end = require_aware(start, "track start"), require_aware(end, "track end")
    if not end >= start:
        raise ValueError(f"track end {end.isoformat()} is before its start {start.isoformat()}")
    if not step_s > 0:
        raise ValueError(f"track step must be positive, got {step_s}")
    count = int((end - start).total_seconds() // step_s) + 1
    if count > MAX_TRACK_SAMPLES:
        raise ValueError(f"{count} track samples requested; at most {MAX_TRACK_SAMPLES}: use a longer step")
    tles = as_tles(tles)
    if not tles:
        raise ValueError("no TLEs given: cannot place the satellite")
    ts = timescale()
    times = [start + timedelta(seconds=k * step_s) for k in range(count)]
    t = ts.from_datetimes(times)
    epochs_tt = np.array([ts.from_datetime(tle.epoch).tt for tle in tles])
    gaps = np.abs(t.tt[:, None] - epochs_tt[None, :])
    nearest = gaps.argmin(axis=1)
    worst = int(gaps.min(axis=1).argmax())
    oldest_tle, oldest_age = tles[nearest[worst]], float(gaps[worst, nearest[worst]])
    problem = _too_old(oldest_age, max_age_days, oldest_tle, times[worst])
    if problem:
        raise ValueError(problem)
    lat, lon, alt_km = np.empty(count), np.empty(count), np.empty(count)
    for index in np.unique(nearest):
        chosen = nearest == index
        lat[chosen], lon[chosen], alt_km[chosen] = _sub_points(tles[index], t[chosen])
    return GroundTrack(times, lat, lon, alt_km)


def distance_to_track_km(track: GroundTrack, lat: float, lon: float) -> float:
    """Shortest ground distance (km) from a point to the track, between samples following the
    great circle through consecutive sub-points (a spherical-Earth measure, good to ~0.5%;
    with 60-s samples the path between them is off the true track by < 0.5 km)."""
    check_lat_lon(lat, lon, "point")
    if len(track.lat) == 0:
        raise ValueError("the ground track is empty")
    point = unit_vectors(lat, lon)
    samples = unit_vectors(track.lat, track.lon)
    closest = np.arctan2(np.linalg.norm(np.cross(samples, point), axis=1), samples @ point).min()
    a, b = samples[:-1], samples[1:]
    normals = np.cross(a, b)
    lengths = np.linalg.norm(normals, axis=1)
    usable = lengths > 1e-12  # repeated samples have no great circle
    normals = normals[usable] / lengths[usable, None]
    a, b = a[usable], b[usable]
    offsets = normals @ point  # sine of the angle from each segment's great circle
    foot = point - offsets[:, None] * normals  # the point projected onto that great circle
    between = (np.einsum("ij,ij->i", np.cross(a, foot), normals) >= 0) & (
        np.einsum("ij,ij->i", np.cross(foot, b), normals) >= 0
    )
    if between.any():
        closest = min(closest, float(np.arcsin(np.clip(np.abs(offsets[between]), 0.0, 1.0)).min()))
    return float(closest) * MEAN_EARTH_RADIUS_KM
