"""What the web map draws: the service's own tiles as its basemap, and a photo warped onto it.

The basemap is the tile database the service searches (settings.resolved_tiles_dir; the demo
world's Blue Marble tiles by default), so the map works offline. Tiles are files served as they are
with validators (ETag, Last-Modified) and a day of browser caching.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from geo import geodesic_area_km2
from index.sources import LocalXYZSource
from service import crud
from service.api.deps import SessionDep, SettingsDep
from service.photos import decode_rgb, footprint_feature

router = APIRouter(tags=["map"])

TILE_CACHE = "public, max-age=86400"
TILE_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
OVERLAY_MAX_SIDE_PX = 1024


def _tile_source(settings) -> LocalXYZSource | None:  # noqa: ANN001
    try:
        return LocalXYZSource(settings.resolved_tiles_dir)
    except FileNotFoundError:
        return None


@router.get("/tiles.json")
def tile_info(settings: SettingsDep) -> dict:
    """The basemap: URL template, zoom levels present in the tile database, tile size."""
    source = _tile_source(settings)
    return {
        "url": "/tiles/{z}/{x}/{y}.jpg",
        "zooms": source.zooms() if source else [],
        "tile_size": source.tile_size if source else 256,
        "reason": None if source else f"no tile database at {settings.resolved_tiles_dir}",
    }


@router.get(
    "/tiles/{z}/{x}/{y}.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such tile in the database."}},
)
def get_tile(
    request: Request,
    settings: SettingsDep,
    z: Annotated[int, Path(ge=0, le=30)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
) -> Response:
    """A basemap tile of the service's tile database (Web-Mercator XYZ)."""
    if x >= 2**z or y >= 2**z:
        raise HTTPException(404, f"tile {z}/{x}/{y} is outside the zoom-{z} grid")
    source = _tile_source(settings)
    path = source.tile_path(z, x, y) if source else None
    if path is None:
        raise HTTPException(404, f"no tile {z}/{x}/{y} in the tile database")
    stat = path.stat()
    headers = {"Cache-Control": TILE_CACHE, "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    media_type = TILE_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=headers, stat_result=stat)


def _localized_photo(session, photo_id: str):  # noqa: ANN001, ANN202
    photo = crud.get_photo(session, photo_id)
    if photo is None:
        raise HTTPException(404, f"no photo with id {photo_id!r}")
    footprint = crud.latest_footprint(session, photo_id)
    if footprint is None:
        raise HTTPException(404, f"photo {photo_id!r} has no footprint (not localized yet, or not found)")
    return photo, footprint


@router.get("/photos/{photo_id}/footprint.geojson", responses={404: {"description": "No photo or footprint."}})
def footprint_geojson(photo_id: str, session: SessionDep) -> Response:
    """The photo's latest footprint (and the catalogue's, when given) as a GeoJSON FeatureCollection."""
    import json

    photo, footprint = _localized_photo(session, photo_id)
    features = [footprint_feature(photo, footprint)]
    features[0]["properties"]["area_km2"] = round(geodesic_area_km2(footprint.geom), 1)
    reference = crud.reference_footprint(session, photo_id)
    if reference is not None:
        features.append(footprint_feature(photo, reference))
    body = json.dumps({"type": "FeatureCollection", "features": features})
    return Response(body, media_type="application/geo+json")


@router.get("/photos/{photo_id}/overlay.json", responses={404: {"description": "No photo or footprint."}})
def overlay_info(photo_id: str, session: SessionDep) -> dict:
    """Where the map lays the photo: the overlay image's URL and its bounds (south, west, north,
    east; east > west, continuous across 180), the footprint's area."""
    from index.overlay import photo_overlay_bounds

    _photo, footprint = _localized_photo(session, photo_id)
    south, west, north, east = photo_overlay_bounds(footprint.geom)
    return {
        "photo_id": photo_id,
        "footprint_id": footprint.id,
        "image_url": f"/photos/{photo_id}/overlay.png?footprint={footprint.id}",
        "bounds": {"south": south, "west": west, "north": north, "east": east},
        "area_km2": round(geodesic_area_km2(footprint.geom), 1),
    }


@router.get(
    "/photos/{photo_id}/overlay.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "No photo or footprint."}},
)
async def overlay_png(photo_id: str, session: SessionDep) -> Response:
    """The photo warped into Web-Mercator pixels over its footprint's bounds (overlay.json), RGBA,
    transparent outside the photo: for a web map to lay on its tiles."""
    from index.overlay import photo_overlay

    photo, footprint = _localized_photo(session, photo_id)
    try:
        with open(photo.image_path, "rb") as handle:
            data = handle.read()
    except OSError:
        raise HTTPException(404, f"the image of photo {photo_id!r} is no longer stored") from None
    rgb = decode_rgb(data)
    png = await run_in_threadpool(photo_overlay, rgb, footprint.geom, OVERLAY_MAX_SIDE_PX)
    # A footprint never changes (a new localization adds a new one, with a new id in the URL).
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})
