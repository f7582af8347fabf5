from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool
from shapely.geometry import mapping

from service import crud
from service.api.deps import SessionDep, SettingsDep
from service.models import Footprint, Photo
from service.photos import decode_rgb, parse_bbox, parse_point

router = APIRouter(prefix="/photos", tags=["photos"])


def footprint_feature(photo: Photo | None, footprint: Footprint) -> dict:
    return {
        "type": "Feature",
        "geometry": mapping(footprint.geom),
        "properties": {
            "photo_id": footprint.photo_id,
            "captured_at": photo.captured_at.isoformat() if photo and photo.captured_at else None,
            "method": footprint.method,
            "confidence": footprint.confidence,
            "inliers": footprint.inliers,
            "model_version": footprint.model_version,
            "created_at": footprint.created_at.isoformat(),
        },
    }


@router.get("")
def find_photos(
    session: SessionDep,
    bbox: Annotated[str | None, Query(description="W,S,E,N in degrees (W > E crosses 180°).")] = None,
    contains: Annotated[str | None, Query(description="lat,lon: footprints containing it.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict:
    """Footprints intersecting a box or containing a point, as a GeoJSON FeatureCollection."""
    if (bbox is None) == (contains is None):
        raise HTTPException(422, "give exactly one of bbox=W,S,E,N or contains=lat,lon")
    region = parse_bbox(bbox) if bbox is not None else parse_point(contains)
    footprints = crud.footprints_intersecting(session, region, limit=limit)
    photos = {p.photo_id: p for p in crud.photos_by_id(session, {f.photo_id for f in footprints})}
    return {
        "type": "FeatureCollection",
        "features": [footprint_feature(photos.get(f.photo_id), f) for f in footprints],
    }


@router.get("/{photo_id}")
def get_photo(photo_id: str, session: SessionDep) -> dict:
    """A photo's metadata and its latest footprint (GeoJSON Feature, or null)."""
    photo = crud.get_photo(session, photo_id)
    if photo is None:
        raise HTTPException(404, f"no photo with id {photo_id!r}")
    footprint = crud.latest_footprint(session, photo_id)
    reference = crud.reference_footprint(session, photo_id)
    return {
        "photo_id": photo.photo_id,
        "status": photo.status,
        "captured_at": photo.captured_at,
        "nadir": None if photo.nadir_lat is None else {"lat": photo.nadir_lat, "lon": photo.nadir_lon},
        "image_sha256": photo.image_sha256,
        "meta": photo.meta,
        "created_at": photo.created_at,
        "footprint": footprint_feature(photo, footprint) if footprint else None,
        "reference_footprint": footprint_feature(photo, reference) if reference else None,
    }


@router.get(
    "/{photo_id}/footprint.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "No photo or no footprint yet."}},
)
async def footprint_png(photo_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The photo warped onto its map context with its footprint drawn (catalogue reference, if
    any, in a second colour): a picture a person can check at a glance."""
    from index.overlay import footprint_picture
    from index.sources import LocalXYZSource

    photo = crud.get_photo(session, photo_id)
    if photo is None:
        raise HTTPException(404, f"no photo with id {photo_id!r}")
    footprint = crud.latest_footprint(session, photo_id)
    if footprint is None:
        raise HTTPException(404, f"photo {photo_id!r} has no footprint (not localized yet, or not found)")
    reference = crud.reference_footprint(session, photo_id)
    truth = reference.geom if reference is not None else None
    with open(photo.image_path, "rb") as handle:
        rgb = decode_rgb(handle.read())
    png = await run_in_threadpool(
        footprint_picture, rgb, footprint.geom, LocalXYZSource(settings.resolved_tiles_dir), truth=truth
    )
    return Response(png, media_type="image/png")
