"""Where to search for a photo: the ground visible from the ISS at capture time, or the world.

The rules, in order (mode ``auto``): a nadir point given with the photo (the catalogue knows the
ISS position) gives the visibility region around it; else the capture time and the TLE of the
nearest epoch give the ISS position, trusted up to ``tle_max_age_days`` from the epoch; else the
whole world, with the reason. ``visibility`` insists on a region (422 when none can be had);
``worldwide`` always searches everything.

The metadata checks itself (geo.checks), and the answer says so in ``checks``: a capture time in
the future or before the ISS existed is not used to place the ISS; a nadir that disagrees with
the orbit at the capture time (beyond ``nadir_orbit_max_km``) is flagged and both visibility
regions are searched (their union); a TLE beyond the trust window and a reference footprint far
beyond the horizon are flagged. ``sun_elevation_deg`` is the Sun's elevation at the ISS
sub-point at the capture time (null without a time or a position) and ``daylight`` whether it is
above the horizon there (:data:`DAYLIGHT_MIN_SUN_ELEVATION_DEG`): night photos can take the star
path. ``sub_points`` are where the obliquity prior (service.localize.ranking) is centred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from geo import ISS_ALTITUDE_KM, nearest_tle, sun_elevation, visibility_area_km2, visibility_region
from geo.checks import (
    MetadataCheck,
    check_capture_time,
    check_footprint_horizon,
    check_nadir_vs_orbit,
    check_tle_age,
)
from geo.lonlat import geodesic_area_km2
from service.config import Settings
from service.orbit import locate_iss_skipping, stored_tles
from service.errors import InvalidInput

SEARCH_MODES = ("auto", "visibility", "worldwide")
EARTH_AREA_KM2 = 510_065_600.0
# Sunrise/sunset at the sub-point: the Sun's centre 50' below the horizon (34' of refraction
# and its 16' radius), the almanac convention; geo.sun gives the geometric elevation.
DAYLIGHT_MIN_SUN_ELEVATION_DEG = -0.833


@dataclass
class SearchRegion:
    mode: str  # visibility | worldwide
    reason: str
    region: BaseGeometry | None  # None: worldwide
    iss_position: dict | None
    area_km2: float
    checks: list[MetadataCheck] = field(default_factory=list)
    sub_points: list[tuple[float, float]] = field(default_factory=list)  # (lat, lon): the prior's centres
    sun_elevation_deg: float | None = None
    daylight: bool | None = None

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "reason": self.reason,
            "region": mapping(self.region) if self.region is not None else None,
            "iss_position": self.iss_position,
            "area_km2": round(self.area_km2, 1),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "sun_elevation_deg": None if self.sun_elevation_deg is None else round(self.sun_elevation_deg, 3),
            "daylight": self.daylight,
        }

    @property
    def alt_km(self) -> float:
        return float(self.iss_position["alt_km"]) if self.iss_position else ISS_ALTITUDE_KM


def search_region(
    settings: Settings,
    session: Session,
    *,
    timestamp: datetime | None,
    nadir: tuple[float, float] | None,
    mode: str = "auto",
    alt_km: float = ISS_ALTITUDE_KM,
    reference: BaseGeometry | None = None,
) -> SearchRegion:
    """The region to search for a photo (see the module docstring); InvalidInput when ``mode`` is
    ``visibility`` and no region can be had, or the inputs are out of range."""
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"unknown search mode {mode!r}; expected one of {SEARCH_MODES}")
    if nadir is not None:
        lat, lon = nadir
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidInput(f"nadir ({lat}, {lon}) is out of range")
    checks: list[MetadataCheck] = []
    orbit, no_orbit_reason = _orbit_position(settings, session, timestamp, checks)
    if nadir is not None:
        given = {"lat": nadir[0], "lon": nadir[1], "alt_km": orbit["alt_km"] if orbit else alt_km,
                 "source": "nadir", "tle_epoch": None, "tle_age_days": None}
    else:
        given = None
    position = given or orbit
    if orbit is not None and given is not None:
        checks.append(check_nadir_vs_orbit(nadir, (orbit["lat"], orbit["lon"]), settings.nadir_orbit_max_km))
    if reference is not None and position is not None:
        checks.append(check_footprint_horizon(reference, (position["lat"], position["lon"]), position["alt_km"]))
    sun, daylight = _sun(timestamp if _time_ok(checks) else None, orbit or given)

    if mode == "worldwide":
        return _worldwide("worldwide search requested", checks, sun, daylight)
    if position is None:
        reason = "no capture timestamp: searching worldwide" if timestamp is None else f"{no_orbit_reason}: searching worldwide"
        if mode == "visibility":
            raise InvalidInput(f"cannot restrict the search to the ISS visibility region: {reason}")
        return _worldwide(reason, checks, sun, daylight)
    disagree = any(c.name == "nadir_vs_orbit" and not c.ok for c in checks)
    if disagree:
        reason = "ISS nadir given with the photo disagrees with the orbit at the capture time: both visibility regions"
        positions = [given, orbit]
    elif given is not None:
        reason, positions = "ISS nadir given with the photo", [given]
    else:
        reason, positions = "ISS position from the capture time and the nearest TLE", [orbit]
    return _visible(positions, reason, settings, checks, sun, daylight)


def _time_ok(checks: list[MetadataCheck]) -> bool:
    return all(c.ok for c in checks if c.name == "capture_time")


def _orbit_position(
    settings: Settings, session: Session, timestamp: datetime | None, checks: list[MetadataCheck]
) -> tuple[dict | None, str]:
    """The ISS position at ``timestamp`` from the stored TLEs, or None and why; appends the
    capture-time and TLE-age checks."""
    if timestamp is None:
        return None, "no capture timestamp"
    time_check = check_capture_time(timestamp)
    checks.append(time_check)
    if not time_check.ok:
        return None, f"{time_check.detail}, so no TLE can place the ISS then"
    tles = stored_tles(session, settings.norad_id)
    if not tles:
        return None, f"no TLE of NORAD {settings.norad_id} in the database"
    tle, age_days = nearest_tle(timestamp, tles)
    checks.append(check_tle_age(age_days, settings.tle_max_age_days, tle.epoch))
    fix = locate_iss_skipping(settings, timestamp, tles)  # a stored TLE that fails to propagate is skipped
    if not fix.trusted:
        return None, fix.fallback_reason
    point = fix.position
    return {
        "lat": round(point.lat, 6), "lon": round(point.lon, 6), "alt_km": round(point.alt_km, 3),
        "source": "tle", "tle_epoch": point.tle_epoch.isoformat(), "tle_age_days": round(point.tle_age_days, 3),
    }, ""


def _sun(timestamp: datetime | None, position: dict | None) -> tuple[float | None, bool | None]:
    """Sun elevation at the sub-point and whether it is day there (None without time or place)."""
    if timestamp is None or position is None:
        return None, None
    try:
        elevation = float(sun_elevation(position["lat"], position["lon"], timestamp))
    except ValueError:  # outside the ephemeris (a time the capture-time check flagged)
        return None, None
    return elevation, elevation > DAYLIGHT_MIN_SUN_ELEVATION_DEG


def _visible(positions: list[dict], reason: str, settings: Settings, checks: list[MetadataCheck],
             sun: float | None, daylight: bool | None) -> SearchRegion:
    elevation = settings.visibility_min_elevation_deg
    regions = [visibility_region(p["lat"], p["lon"], p["alt_km"], elevation) for p in positions]
    if len(regions) == 1:
        region, area = regions[0], visibility_area_km2(positions[0]["lat"], positions[0]["alt_km"], elevation)
    else:
        region = regions[0].union(regions[1])
        area = geodesic_area_km2(region)
    return SearchRegion("visibility", reason, region, positions[0], area, checks,
                        [(p["lat"], p["lon"]) for p in positions], sun, daylight)


def _worldwide(reason: str, checks: list[MetadataCheck], sun: float | None, daylight: bool | None) -> SearchRegion:
    return SearchRegion("worldwide", reason, None, None, EARTH_AREA_KM2, checks, [], sun, daylight)
