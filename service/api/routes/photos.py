"""GET /photos (footprints by bbox or point), GET /photos/{id} and its footprint picture (service.photos)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from service import photos
from service.api.deps import ReadKeyDep, SessionDep, SettingsDep
from service.jobs import redact_paths

# Reads of photos need a key when keys are set (unless ASTROLOC_PUBLIC_READS): they show pixels and hashes.
router = APIRouter(prefix="/photos", tags=["photos"], dependencies=[ReadKeyDep])


@router.get("")
def find_photos(
    session: SessionDep,
    bbox: Annotated[str | None, Query(description="W,S,E,N in degrees (W > E crosses 180°).")] = None,
    contains: Annotated[str | None, Query(description="lat,lon: footprints containing it.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict:
    """Footprints intersecting a box or containing a point, as a GeoJSON FeatureCollection."""
    return photos.find_footprints(session, bbox, contains, limit)


@router.get("/{photo_id}", responses={404: {"description": "No such photo."}})
def get_photo(photo_id: str, session: SessionDep, settings: SettingsDep) -> dict:
    """A photo's metadata, its status (with its job's error when that failed) and its latest
    footprint (GeoJSON Feature, or null)."""
    try:
        return redact_paths(settings, photos.photo_record(session, photo_id))
    except photos.PhotoNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get(
    "/{photo_id}/footprint.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "No photo or no footprint yet."},
               503: {"description": "The tile database or the stored photo is not on this server."}},
)
async def footprint_png(photo_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The photo warped onto its map context with its footprint drawn (catalogue reference, if
    any, in a second colour): a picture a person can check at a glance."""
    try:
        png = await run_in_threadpool(photos.footprint_picture_png, settings, session, photo_id)
    except photos.PhotoNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except photos.PictureUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return Response(png, media_type="image/png")
