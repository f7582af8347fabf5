"""Photos: upload checks (decoded once), files on disk under their sha256, and what GET /photos answers
(footprints found by bbox or point, one photo's record, its footprint picture)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from shapely.geometry import MultiPolygon, Point, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from geo.geojson import feature_collection, to_feature
from service import crud
from service.config import Settings
from service.models import Footprint, Photo

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif"}
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}


class ImageRejected(ValueError):
    """A photo we refuse, with the HTTP status the API answers (413 too big, 415 not an image,
    422 corrupt) and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CheckedImage:
    """A photo's bytes that decode, with what the one decode gave."""

    format: str  # JPEG | PNG | TIFF, from the bytes, not from the client's word
    width: int
    height: int
    rgb: np.ndarray  # (H, W, 3) uint8


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Decode a photo's bytes in full, once (so truncated files and decompression bombs are caught
    here, before anything is stored), or ImageRejected."""
    if not data:
        raise ImageRejected(422, "the image file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                raise ImageRejected(415, f"unsupported image format {image.format}; send JPEG, PNG or TIFF")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(413, f"image of {width}x{height} pixels exceeds {max_pixels} pixels")
            image.load()  # decodes everything: truncated data fails here
            return CheckedImage(image.format, width, height, np.asarray(image.convert("RGB")))
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected(415, "not an image (JPEG, PNG or TIFF expected)") from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected(413, f"image refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(422, f"the image could not be decoded (corrupt or truncated): {exc}") from None


def image_sha256(data: bytes) -> str:
    """The photo's identity: sha256 of its bytes (the file name it is stored under)."""
    return hashlib.sha256(data).hexdigest()


def store_image(data_dir: Path, data: bytes, image_format: str, sha256: str) -> Path:
    """Write the photo once under its sha256 (:func:`image_sha256`; atomic); returns its path."""
    path = Path(data_dir) / "photos" / sha256[:2] / f"{sha256}{EXTENSIONS[image_format]}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".partial") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    return path


def decode_rgb(data: bytes) -> np.ndarray:
    """A photo's bytes as an RGB uint8 array (uploads are checked to decode before this)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def read_rgb(path: Path | str) -> np.ndarray:
    """A stored photo as an RGB uint8 array."""
    return decode_rgb(Path(path).read_bytes())


def parse_bbox(text: str) -> BaseGeometry:
    """``W,S,E,N`` in degrees -> polygon; W > E means the box crosses the antimeridian."""
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"bbox must be W,S,E,N (4 numbers), got {text!r}") from None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south < north <= 90):
        raise ValueError(f"bbox {text!r} is out of range (lon in [-180,180], lat in [-90,90], S < N)")
    if west > east:
        return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])
    if west == east:
        raise ValueError("bbox has zero width")
    return box(west, south, east, north)


def parse_point(text: str) -> Point:
    """``lat,lon`` in degrees -> shapely Point(lon, lat)."""
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"contains must be lat,lon (2 numbers), got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"point {text!r} is out of range (lat in [-90,90], lon in [-180,180])")
    return Point(lon, lat)


# --- what GET /photos answers ------------------------------------------------------------------


class PhotoNotFound(LookupError):
    """No such photo, or no footprint of it yet (a 404 with the reason)."""


def footprint_feature(photo: Photo | None, footprint: Footprint) -> dict:
    """A stored footprint as a GeoJSON Feature, with how it was found."""
    return to_feature(footprint.geom, {
        "photo_id": footprint.photo_id,
        "captured_at": photo.captured_at.isoformat() if photo and photo.captured_at else None,
        "method": footprint.method,
        "confidence": footprint.confidence,
        "inliers": footprint.inliers,
        "model_version": footprint.model_version,
        "created_at": footprint.created_at.isoformat(),
    })


def find_footprints(session: Session, bbox: str | None, contains: str | None, limit: int) -> dict:
    """Footprints intersecting ``bbox`` (W,S,E,N) or containing ``contains`` (lat,lon), as a
    FeatureCollection; ValueError unless exactly one is given, or when it does not parse."""
    if (bbox is None) == (contains is None):
        raise ValueError("give exactly one of bbox=W,S,E,N or contains=lat,lon")
    region = parse_bbox(bbox) if bbox is not None else parse_point(contains)
    footprints = crud.footprints_intersecting(session, region, limit=limit)
    photos = {p.photo_id: p for p in crud.photos_by_id(session, {f.photo_id for f in footprints})}
    return feature_collection(footprint_feature(photos.get(f.photo_id), f) for f in footprints)


def photo_record(session: Session, photo_id: str) -> dict:
    """A photo's metadata with its latest footprint and its catalogue reference (Features or None)."""
    photo = crud.get_photo(session, photo_id)
    if photo is None:
        raise PhotoNotFound(f"no photo with id {photo_id!r}")
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


def footprint_picture_png(settings: Settings, session: Session, photo_id: str) -> bytes:
    """The photo warped onto its map context with its footprint drawn (catalogue reference, if
    any, in a second colour)."""
    from index.overlay import footprint_picture
    from index.sources import LocalXYZSource

    photo = crud.get_photo(session, photo_id)
    if photo is None:
        raise PhotoNotFound(f"no photo with id {photo_id!r}")
    footprint = crud.latest_footprint(session, photo_id)
    if footprint is None:
        raise PhotoNotFound(f"photo {photo_id!r} has no footprint (not localized yet, or not found)")
    reference = crud.reference_footprint(session, photo_id)
    truth = reference.geom if reference is not None else None
    return footprint_picture(read_rgb(photo.image_path), footprint.geom,
                             LocalXYZSource(settings.resolved_tiles_dir), truth=truth)
