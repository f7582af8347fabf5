"""What the web map draws (service.maps): the service's own tiles as its basemap, a photo warped
onto it, its footprint as GeoJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from service import maps
from service.api.deps import ReadKeyDep, SessionDep, SettingsDep
from service.photos import PhotoNotFound

router = APIRouter(tags=["map"])

TILE_CACHE = "public, max-age=86400"  # tiles change only when the tile database is rebuilt
OVERLAY_CACHE = "public, max-age=3600"  # its URL names the footprint: a new one is a new URL
OVERLAY_MAX_SIDE_PX = 1024
NOT_FOUND = {404: {"description": "No photo, or no footprint yet."}}


@router.get("/tiles.json")
def tile_info(settings: SettingsDep) -> dict:
    """The basemap: URL template, zoom levels present in the tile database, tile size."""
    return maps.tile_info(settings)


@router.get(
    "/tiles/{z}/{x}/{y}.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified."},
               404: {"description": "No such tile in the database."}},
)
def get_tile(
    request: Request,
    settings: SettingsDep,
    z: Annotated[int, Path(ge=0, le=30)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
) -> Response:
    """A basemap tile of the service's tile database (Web-Mercator XYZ), with an ETag."""
    try:
        tile = maps.tile_file(settings, z, x, y)
    except maps.TileNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    headers = {"Cache-Control": TILE_CACHE, "ETag": tile.etag}
    if request.headers.get("if-none-match") == tile.etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(tile.path, media_type=tile.media_type, headers=headers)


@router.get("/photos/{photo_id}/footprint.geojson", response_class=Response, dependencies=[ReadKeyDep],
            responses={200: {"content": {"application/geo+json": {}}}, **NOT_FOUND})
def footprint_geojson(photo_id: str, session: SessionDep) -> Response:
    """The photo's latest footprint (and the catalogue's, when given) as a GeoJSON FeatureCollection."""
    import json

    try:
        collection = maps.footprint_collection(session, photo_id)
    except PhotoNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(json.dumps(collection), media_type="application/geo+json")


@router.get("/photos/{photo_id}/overlay.json", responses=NOT_FOUND, dependencies=[ReadKeyDep])
def overlay_info(photo_id: str, session: SessionDep) -> dict:
    """Where the map lays the photo: the overlay image's URL and its bounds (south, west, north,
    east; east > west, continuous across 180), the footprint's area."""
    try:
        return maps.overlay_placement(session, photo_id)
    except PhotoNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/photos/{photo_id}/overlay.png", response_class=Response, dependencies=[ReadKeyDep],
            responses={200: {"content": {"image/png": {}}}, **NOT_FOUND})
async def overlay_png(photo_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The photo warped into Web-Mercator pixels over its footprint's bounds (overlay.json), RGBA,
    transparent outside the photo: for a web map to lay on its tiles."""
    try:
        png = await run_in_threadpool(maps.overlay_png, settings, session, photo_id, OVERLAY_MAX_SIDE_PX)
    except PhotoNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": OVERLAY_CACHE})
