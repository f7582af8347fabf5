"""Where to search for a photo: the ground visible from the ISS at capture time, or the world.

The rules, in order (mode ``auto``): a nadir point given with the photo (the catalogue knows the
ISS position) gives the visibility region around it; else the capture time and the TLE of the
nearest epoch give the ISS position, trusted up to ``tle_max_age_days`` from the epoch; else the
whole world, with the reason. ``visibility`` insists on a region (422 when none can be had);
``worldwide`` always searches everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from geo import ISS_ALTITUDE_KM, locate_iss, visibility_area_km2, visibility_region
from service.config import Settings
from service.orbit import stored_tles

SEARCH_MODES = ("auto", "visibility", "worldwide")
EARTH_AREA_KM2 = 510_065_600.0


@dataclass
class SearchRegion:
    mode: str  # visibility | worldwide
    reason: str
    region: BaseGeometry | None  # None: worldwide
    iss_position: dict | None
    area_km2: float

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "reason": self.reason,
            "region": mapping(self.region) if self.region is not None else None,
            "iss_position": self.iss_position,
            "area_km2": round(self.area_km2, 1),
        }


def search_region(
    settings: Settings,
    session: Session,
    *,
    timestamp: datetime | None,
    nadir: tuple[float, float] | None,
    mode: str = "auto",
    alt_km: float = ISS_ALTITUDE_KM,
) -> SearchRegion:
    """The region to search for a photo (see the module docstring); ValueError when ``mode`` is
    ``visibility`` and no region can be had, or the inputs are out of range."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; expected one of {SEARCH_MODES}")
    if mode == "worldwide":
        return _worldwide("worldwide search requested")
    if nadir is not None:
        lat, lon = nadir
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"nadir ({lat}, {lon}) is out of range")
        position = {"lat": lat, "lon": lon, "alt_km": alt_km, "source": "nadir", "tle_epoch": None, "tle_age_days": None}
        return _visible(position, "ISS nadir given with the photo", settings)

    reason = _no_position_reason(settings, session, timestamp)
    if isinstance(reason, dict):  # a trusted position
        return _visible(reason, "ISS position from the capture time and the nearest TLE", settings)
    if mode == "visibility":
        raise ValueError(f"cannot restrict the search to the ISS visibility region: {reason}")
    return _worldwide(reason)


def _no_position_reason(settings: Settings, session: Session, timestamp: datetime | None) -> dict | str:
    """The ISS position at ``timestamp`` (a dict), or why there is none (a string)."""
    if timestamp is None:
        return "no capture timestamp: searching worldwide"
    tles = stored_tles(session, settings.norad_id)
    if not tles:
        return f"no TLE of NORAD {settings.norad_id} in the database: searching worldwide"
    fix = locate_iss(timestamp, tles, max_age_days=settings.tle_max_age_days)
    if not fix.trusted:
        return f"{fix.fallback_reason}: searching worldwide"
    point = fix.position
    return {
        "lat": round(point.lat, 6), "lon": round(point.lon, 6), "alt_km": round(point.alt_km, 3),
        "source": "tle", "tle_epoch": point.tle_epoch.isoformat(), "tle_age_days": round(point.tle_age_days, 3),
    }


def _visible(position: dict, reason: str, settings: Settings) -> SearchRegion:
    region = visibility_region(position["lat"], position["lon"], position["alt_km"], settings.visibility_min_elevation_deg)
    area = visibility_area_km2(position["lat"], position["alt_km"], settings.visibility_min_elevation_deg)
    return SearchRegion("visibility", reason, region, position, area)


def _worldwide(reason: str) -> SearchRegion:
    return SearchRegion("worldwide", reason, None, None, EARTH_AREA_KM2)
