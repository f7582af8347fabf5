"""TLEs and the ISS: GET/POST /tles, GET /iss/position, GET /iss/visibility."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from geo import ISS_ALTITUDE_KM
from service import orbit
from service.api.deps import ApiKeyDep, SessionDep, SettingsDep
from service.api.schemas import NORAD_ID_MAX, CaptureTime, Invalid, Message

router = APIRouter(tags=["orbit"])

MAX_TLE_TEXT_BYTES = 20_000_000  # ~100k element sets: a Space-Track history dump of the ISS


@router.post(
    "/tles",
    dependencies=[ApiKeyDep],
    responses={413: {"model": Message}, 415: {"model": Message}, 422: {"model": Invalid}},
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}},
                                               "application/json": {"schema": {"type": "object",
                                                                               "properties": {"text": {"type": "string"}}}}}}},
)
async def import_tles(request: Request, session: SessionDep) -> dict:
    """Import TLE text (2- or 3-line form, many objects): as text/plain, or JSON ``{"text": ...}``.

    Idempotent (an element set already stored is counted, not added). Invalid lines, and
    element sets that fail the sanity checks (eccentricity < 1, mean motion of a low-Earth orbit,
    a valid epoch, SGP4 propagates at the epoch), are listed with their line number and reason;
    the valid element sets are imported regardless, and 422 when none is valid.
    """
    body = await request.body()
    if len(body) > MAX_TLE_TEXT_BYTES:
        raise HTTPException(413, f"TLE text larger than {MAX_TLE_TEXT_BYTES} bytes")
    media_type = (request.headers.get("content-type") or "text/plain").split(";")[0].strip().lower()
    try:
        if media_type == "application/json":
            payload = json.loads(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
                raise HTTPException(422, 'JSON body must be {"text": "<TLE lines>"}')
            text = payload["text"]
        elif media_type == "text/plain":
            text = body.decode("utf-8")
        else:
            raise HTTPException(415, f"send the TLEs as text/plain or application/json, not {media_type!r}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(422, f"unreadable body: {exc}") from None
    report = orbit.import_tle_text(session, text)
    if report["imported"] == 0 and report["already_present"] == 0:
        return JSONResponse({"detail": "no valid TLE in the text", "rejected": report["rejected"]}, status_code=422)
    session.commit()
    return report


@router.get("/tles")
def list_tles(session: SessionDep, settings: SettingsDep,
              norad_id: Annotated[int | None, Query(ge=1, le=NORAD_ID_MAX)] = None) -> dict:
    """How many element sets are stored for a satellite (default: the ISS), and their epochs."""
    return orbit.tle_summary(session, norad_id or settings.norad_id)


@router.get("/iss/position", responses={422: {"model": Invalid}})
def iss_position(session: SessionDep, settings: SettingsDep,
                 time: Annotated[CaptureTime, Query(description="ISO 8601 with a zone, e.g. 2020-12-09T12:40:00Z")]) -> dict:
    """The ISS sub-point at a time (SGP4, nearest stored TLE that propagates), with the TLE epoch and its age."""
    when = time
    position = orbit.iss_position_at(settings, when, orbit.stored_tles(session, settings.norad_id))
    return {"time": when.isoformat(), **position.as_json()}


@router.get("/iss/visibility", responses={422: {"model": Invalid}})
def iss_visibility(
    session: SessionDep,
    settings: SettingsDep,
    time: Annotated[CaptureTime | None, Query(description="ISO 8601 with a zone; or give nadir_lat/nadir_lon")] = None,
    nadir_lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    nadir_lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    alt_km: Annotated[float, Query(ge=100, le=2000)] = ISS_ALTITUDE_KM,
    min_elevation: Annotated[float | None, Query(ge=0, lt=90)] = None,
) -> dict:
    """GeoJSON Feature of the ground that sees the ISS (area_km2, sub-point, the TLE used)."""
    if (time is None) == (nadir_lat is None or nadir_lon is None):
        raise HTTPException(422, "give either time=... or both nadir_lat and nadir_lon")
    if time is not None:
        when = time
        position = orbit.iss_position_at(settings, when, orbit.stored_tles(session, settings.norad_id))
        return orbit.visibility_at(settings, position.lat, position.lon, position.alt_km, min_elevation,
                                   {"time": when.isoformat(), "tle_epoch": position.tle_epoch.isoformat(),
                                    "tle_age_days": position.tle_age_days})
    return orbit.visibility_at(settings, nadir_lat, nadir_lon, alt_km, min_elevation, {"source": "nadir"})
