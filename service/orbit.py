"""The ISS orbit as the service knows it: TLEs in the database, positions and visibility regions.

Thin glue between geo/ (pure orbit and geometry functions) and the `tles` table, shared by the
HTTP routes, the CLI and the search-region logic of POST /localize.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from geo import TLE, IssFix, SubPoint, locate_iss, parse_tles, visibility_feature
from geo.sky import require_aware

log = logging.getLogger(__name__)
from service import crud
from service.config import Settings
from service.errors import InvalidInput


def import_tle_text(session: Session, text: str) -> dict:
    """Store every valid element set of a TLE file (2- or 3-line form, many objects), once.

    Returns ``{imported, already_present, rejected: [{line, reason}]}``; invalid lines, and
    element sets that are no possible low-Earth orbit (geo.tle.orbit_problem), are reported with
    their line number and do not stop the valid ones.
    """
    parsed = parse_tles(text)
    added, present = crud.import_tles(session, [(t.norad_id, t.name, t.epoch, t.line1, t.line2) for t in parsed.tles])
    return {
        "imported": added,
        "already_present": present,
        "rejected": [{"line": e.line_number, "reason": e.reason} for e in parsed.errors],
    }


def stored_tles(session: Session, norad_id: int) -> list[TLE]:
    return [TLE(t.norad_id, t.name, t.epoch, t.line1, t.line2) for t in crud.list_tles(session, norad_id)]


def tle_summary(session: Session, norad_id: int) -> dict:
    tles = crud.list_tles(session, norad_id)
    epochs = sorted(t.epoch for t in tles)
    return {
        "norad_id": norad_id,
        "count": len(tles),
        "first_epoch": epochs[0].isoformat() if epochs else None,
        "last_epoch": epochs[-1].isoformat() if epochs else None,
    }


def iss_position_at(settings: Settings, when: datetime, tles: list[TLE]) -> SubPoint:
    """The ISS sub-point at ``when`` from the nearest TLE that propagates; InvalidInput (with
    why) when the TLEs cannot place it (none stored, or the nearest usable one beyond ``tle_max_age_days``)."""
    fix = locate_iss_skipping(settings, when, tles)
    if not fix.trusted:
        raise InvalidInput(f"no trusted ISS position: {fix.fallback_reason}")
    return fix.position


def locate_iss_skipping(settings: Settings, when: datetime | None, tles: Sequence[TLE]) -> IssFix:
    """geo.locate_iss from the nearest TLE that SGP4 can propagate to ``when``: one that fails
    (diverges, or puts the ISS below ground; stored before the import checks, say) is skipped for
    the next nearest, within ``tle_max_age_days``."""
    if when is None or not tles:
        return locate_iss(when, tles, max_age_days=settings.tle_max_age_days)
    when = require_aware(when, "capture time")
    skipped: list[str] = []
    for tle in sorted(tles, key=lambda candidate: abs(when - candidate.epoch)):
        try:
            fix = locate_iss(when, [tle], max_age_days=settings.tle_max_age_days)
        except ValueError as exc:
            log.warning("skipping a stored TLE: %s", exc)
            skipped.append(str(exc))
            continue
        if fix.trusted or not skipped:
            return fix
        return IssFix(None, f"{fix.fallback_reason} (nearer TLEs skipped: {'; '.join(skipped[:3])})")
    return IssFix(None, f"no stored TLE propagates to {when:%Y-%m-%dT%H:%M:%SZ}: {'; '.join(skipped[:3])}")


def visibility_at(settings: Settings, lat: float, lon: float, alt_km: float, min_elevation_deg: float | None,
                  extra: dict | None = None) -> dict:
    """GeoJSON Feature of the ground that sees the ISS above ``min_elevation_deg``."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"sub-point ({lat}, {lon}) is out of range (lat in [-90, 90], lon in [-180, 180])")
    if not 100 <= alt_km <= 2000:
        raise InvalidInput(f"altitude {alt_km} km is not a low-Earth orbit (100-2000 km)")
    elevation = settings.visibility_min_elevation_deg if min_elevation_deg is None else min_elevation_deg
    if not 0 <= elevation < 90:
        raise InvalidInput(f"min_elevation must lie in [0, 90) degrees, got {elevation}")
    return visibility_feature(lat, lon, alt_km, elevation, properties=extra or {})
