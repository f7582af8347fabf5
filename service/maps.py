"""What the web map shows (routes in service/api/routes/maps.py): the basemap, a photo laid on it.

The basemap is the tile database the service searches (settings.resolved_tiles_dir; the demo
world's Blue Marble tiles by default), so the map works offline. A photo is laid on the map as an
image warped into Web-Mercator pixels over its footprint's bounding box (index.overlay).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from geo import geodesic_area_km2
from geo.geojson import feature_collection
from index.overlay import photo_overlay, photo_overlay_bounds
from index.sources import LocalXYZSource
from service import crud
from service.config import Settings
from service.photos import PhotoNotFound, footprint_feature, localized_photo, read_rgb, stored_photo_path

TILE_URL = "/tiles/{z}/{x}/{y}.jpg"
TILE_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class TileNotFound(LookupError):
    """No such tile in the tile database (a 404 with the reason)."""


@dataclass(frozen=True)
class TileFile:
    path: Path
    media_type: str
    etag: str  # changes when the file does


def _tile_source(settings: Settings) -> LocalXYZSource | None:
    try:
        return LocalXYZSource(settings.resolved_tiles_dir)
    except FileNotFoundError:
        return None


def tile_info(settings: Settings) -> dict:
    """The basemap: URL template, zoom levels present in the tile database, tile size; or why
    there is none."""
    source = _tile_source(settings)
    return {
        "url": TILE_URL,
        "zooms": source.zooms() if source else [],
        "tile_size": source.tile_size if source else 256,
        "reason": None if source else f"no tile database at {settings.resolved_tiles_dir}",
    }


def tile_file(settings: Settings, z: int, x: int, y: int) -> TileFile:
    """The file of basemap tile ``z/x/y``; TileNotFound when it is outside the grid or absent."""
    if x >= 2**z or y >= 2**z:
        raise TileNotFound(f"tile {z}/{x}/{y} is outside the zoom-{z} grid")
    source = _tile_source(settings)
    path = source.tile_path(z, x, y) if source else None
    if path is None:
        raise TileNotFound(f"no tile {z}/{x}/{y} in the tile database")
    stat = path.stat()
    media_type = TILE_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return TileFile(path, media_type, f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"')


def footprint_collection(session: Session, photo_id: str) -> dict:
    """The photo's latest footprint (with its area) and the catalogue's, when given, as GeoJSON."""
    photo, footprint = localized_photo(session, photo_id)
    feature = footprint_feature(photo, footprint)
    feature["properties"]["area_km2"] = round(geodesic_area_km2(footprint.geom), 1)
    features = [feature]
    reference = crud.reference_footprint(session, photo_id)
    if reference is not None:
        features.append(footprint_feature(photo, reference))
    return feature_collection(features)


def overlay_placement(session: Session, photo_id: str) -> dict:
    """Where the map lays the photo: the overlay image's URL (naming the footprint, so that a new
    localization is a new URL) and its bounds (east > west, west in [-180, 180)), the area, and
    what the job that found the footprint said of its corners (per-corner uncertainty, km; None
    when it gave none)."""
    _photo, footprint = localized_photo(session, photo_id)
    south, west, north, east = photo_overlay_bounds(footprint.geom)
    job = crud.get_job(session, footprint.job_id) if footprint.job_id else None
    result = (job.result or {}) if job is not None else {}
    return {
        "photo_id": photo_id,
        "footprint_id": footprint.id,
        "job_id": footprint.job_id,
        "image_url": f"/photos/{photo_id}/overlay.png?footprint={footprint.id}",
        "bounds": {"south": south, "west": west, "north": north, "east": east},
        "area_km2": round(geodesic_area_km2(footprint.geom), 1),
        "corner_uncertainty_km": result.get("corner_uncertainty_km"),
    }


def overlay_png(settings: Settings, session: Session, photo_id: str, max_side_px: int = 1024) -> bytes:
    """The photo warped over its footprint's bounds (RGBA PNG, transparent outside the photo)."""
    photo, footprint = localized_photo(session, photo_id)
    try:
        # Decoded near the overlay's size (a JPEG at a reduced DCT scale), never in full.
        rgb = read_rgb(stored_photo_path(settings.data_dir, photo.image_path), max_side_px)
    except OSError:
        raise PhotoNotFound(f"the image of photo {photo_id!r} is no longer stored") from None
    return photo_overlay(rgb, footprint.geom, max_side_px)
