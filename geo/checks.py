"""Metadata that checks itself: is a photo's capture time, nadir and footprint consistent with the orbit?

Each check is a pure function returning a :class:`MetadataCheck` (name, ok, detail); the service
(service.localize.region) runs those that apply to a request and reports them as ``search.checks``.

Thresholds, and why:

- ``capture_time``: not after now (plus :data:`CLOCK_SKEW_S` for clocks a little ahead) and not
  before :data:`ISS_FIRST_LAUNCH` (Zarya, the first module, 1998-11-20): no ISS photo is older.
- ``tle_age``: the nearest element set must lie within the trust window (``tle_max_age_days``):
  SGP4 errors for the ISS grow by km per day of extrapolation.
- ``nadir_vs_orbit``: the photo's nadir and the SGP4 sub-point at its capture time lie within
  :data:`NADIR_ORBIT_MAX_KM`. Real catalogue photos near a TLE epoch agree to a median 2.6 km
  (p90 7.3 km; the catalogue gives the nadir to 0.1 deg, ~11 km); across the 14-day trust window
  the ISS's along-track error reaches tens of km. 150 km is ~20x that p90 and well beyond the
  trust window's drift, yet only 7% of the visibility radius: a nadir farther off is a metadata
  error (wrong time or wrong nadir), and the service searches both visibility regions.
- ``footprint_horizon``: a catalogue footprint's corners lie within :data:`HORIZON_MARGIN` times
  the horizon distance of the sub-point (see geo.prior: the catalogue's 10 corners beyond it are
  at >= 2,544 km, the farthest plausible one at 1,731 km).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from shapely.geometry.base import BaseGeometry

from geo.lonlat import geodesic_distance_km, polygons_of
from geo.prior import HORIZON_MARGIN, far_beyond_horizon_km

ISS_FIRST_LAUNCH = datetime(1998, 11, 20, tzinfo=UTC)
CLOCK_SKEW_S = 300.0
NADIR_ORBIT_MAX_KM = 150.0

__all__ = [
    "CLOCK_SKEW_S",
    "HORIZON_MARGIN",
    "ISS_FIRST_LAUNCH",
    "NADIR_ORBIT_MAX_KM",
    "MetadataCheck",
    "check_capture_time",
    "check_footprint_horizon",
    "check_nadir_vs_orbit",
    "check_tle_age",
    "ground_distance_km",
]


@dataclass(frozen=True)
class MetadataCheck:
    """One check of a photo's metadata: ``ok`` False flags it; ``detail`` says what was measured."""

    name: str
    ok: bool
    detail: str


def ground_distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """WGS84 geodesic distance (km) between two ``(lat, lon)`` points."""
    return float(geodesic_distance_km(a[0], a[1], b[0], b[1]))


def check_capture_time(when: datetime, now: datetime | None = None) -> MetadataCheck:
    """The capture time lies between the ISS's first launch and now (timezone-aware ``when``)."""
    now = now or datetime.now(UTC)
    stamp = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if when > now + timedelta(seconds=CLOCK_SKEW_S):
        return MetadataCheck("capture_time", False, f"capture time {stamp} is in the future")
    if when < ISS_FIRST_LAUNCH:
        return MetadataCheck(
            "capture_time", False, f"capture time {stamp} is before the ISS existed (first module launched 1998-11-20)"
        )
    return MetadataCheck("capture_time", True, f"capture time {stamp} lies within the ISS's lifetime")


def check_tle_age(age_days: float, max_age_days: float, tle_epoch: datetime) -> MetadataCheck:
    """The element set nearest the capture time is within the trust window."""
    epoch = tle_epoch.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = age_days <= max_age_days
    verdict = "within" if ok else "beyond"
    return MetadataCheck(
        "tle_age", ok, f"nearest TLE (epoch {epoch}) is {age_days:.1f} days from the capture time, "
        f"{verdict} the {max_age_days:g}-day trust window",
    )


def check_nadir_vs_orbit(
    nadir: tuple[float, float], orbit: tuple[float, float], max_km: float = NADIR_ORBIT_MAX_KM
) -> MetadataCheck:
    """The given nadir ``(lat, lon)`` agrees with the orbit's sub-point at the capture time."""
    distance = ground_distance_km(nadir, orbit)
    ok = distance <= max_km
    detail = (
        f"nadir ({nadir[0]:.3f}, {nadir[1]:.3f}) is {distance:.1f} km from the ISS sub-point "
        f"({orbit[0]:.3f}, {orbit[1]:.3f}) at the capture time (threshold {max_km:g} km)"
    )
    return MetadataCheck("nadir_vs_orbit", ok, detail + ("" if ok else ": searching both visibility regions"))


def check_footprint_horizon(
    footprint: BaseGeometry, sub_point: tuple[float, float], alt_km: float
) -> MetadataCheck:
    """No vertex of a (catalogue) footprint lies far beyond the ISS's horizon."""
    vertices = np.concatenate([np.asarray(p.exterior.coords) for p in polygons_of(footprint)])
    farthest = float(np.max(geodesic_distance_km(sub_point[0], sub_point[1], vertices[:, 1], vertices[:, 0])))
    limit = far_beyond_horizon_km(alt_km, sub_point[0])
    ok = farthest <= limit
    return MetadataCheck(
        "footprint_horizon", ok,
        f"the reference footprint's farthest corner is {farthest:.0f} km from the sub-point "
        f"({'within' if ok else 'beyond'} {limit:.0f} km, {HORIZON_MARGIN:.2f}x the horizon at {alt_km:.0f} km)",
    )
