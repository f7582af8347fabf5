"""Photos: upload checks (decoded once), files on disk under their sha256, and what GET /photos answers
(footprints found by bbox or point, one photo's record, its footprint picture)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from shapely.geometry import MultiPolygon, Point, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from geo.geojson import feature_collection, to_feature
from service import crud
from service.config import Settings
from service.errors import InvalidInput
from service.limits import ServiceBusy
from service.models import Footprint, Photo, PhotoStatus

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif"}
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}


class ImageRejected(InvalidInput):
    """A photo we refuse, with the HTTP status the API answers (413 too big, 415 not an image,
    422 corrupt) and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status)


@dataclass(frozen=True)
class CheckedImage:
    """A photo's bytes that decode, with what the one decode gave."""

    format: str  # JPEG | PNG | TIFF, from the bytes, not from the client's word
    width: int  # of the file
    height: int
    rgb: np.ndarray  # (h, w, 3) uint8, at most max_side px on its longer side when one was given


def check_image(data: bytes, max_pixels: int, max_side: int | None = None) -> CheckedImage:
    """Decode a photo's bytes in full, once (so truncated files and decompression bombs are caught
    here, before anything is stored), or ImageRejected.

    With ``max_side`` the pixels come back at most that size: a JPEG is decoded at a reduced DCT
    scale (PIL draft, 1/2 to 1/8, memory shrinks with it), other formats are reduced right after
    decoding, before the RGB copy, so a 60 MP upload never costs several full-size arrays.
    """
    if not data:
        raise ImageRejected(422, "the image file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            if image_format not in IMAGE_FORMATS:
                raise ImageRejected(415, f"unsupported image format {image_format}; send JPEG, PNG or TIFF")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(413, f"image of {width}x{height} pixels exceeds {max_pixels} pixels")
            return CheckedImage(image_format, width, height, _decoded_rgb(image, max_side))
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


def store_image(data_dir: Path, data: bytes, image_format: str, sha256: str) -> str:
    """Write the photo once under its sha256 (:func:`image_sha256`; atomic); returns its stored
    name, relative to ``data_dir`` (what the database and the job keep: :func:`stored_photo_path`
    resolves it, so the data dir may move or be served from another working directory)."""
    name = f"photos/{sha256[:2]}/{sha256}{EXTENSIONS[image_format]}"
    path = Path(data_dir) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".partial") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    return name


def stored_photo_path(data_dir: Path, image_path: str | Path) -> Path:
    """Where a stored photo lies: its name from :func:`store_image` under ``data_dir``. Rows
    written before names were relative hold the path as it was then: an absolute one is kept, a
    relative one (``var/photos/...``, from the working directory of that day) keeps its part from
    ``photos/`` on."""
    path = Path(image_path)
    if path.is_absolute():
        return path
    if "photos" in path.parts[1:]:
        path = Path(*path.parts[path.parts.index("photos", 1):])
    return Path(data_dir) / path


def _decoded_rgb(image: Image.Image, max_side: int | None) -> np.ndarray:
    """Every byte of ``image`` decoded (truncated data fails here), as RGB at most ``max_side``."""
    if max_side and max(image.size) > max_side and image.format == "JPEG":
        scale = max_side / max(image.size)
        image.draft("RGB", (max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    image.load()
    if max_side and max(image.size) > max_side:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)  # reduce() first, then resample
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


class DecodeBusy(ServiceBusy):
    """No decode slot or memory freed up within ``decode_wait_s``: 503 with Retry-After."""


class DecodeBudget:
    """At most ``slots`` decodes at once whose estimated memory fits ``budget_bytes`` together: many
    JPEGs (decoded at a reduced DCT scale: small) run side by side, a 60 MP PNG (decoded in full
    before it is reduced: ~240 MB) runs alone. One decode larger than the budget runs alone."""

    def __init__(self, slots: int, budget_bytes: int) -> None:
        self._condition = threading.Condition()
        self._slots, self._budget = slots, budget_bytes
        self._running, self._reserved = 0, 0

    def acquire(self, cost: int, timeout_s: float) -> int | None:
        cost = min(cost, self._budget)
        with self._condition:
            if not self._condition.wait_for(
                    lambda: self._running < self._slots and self._reserved + cost <= self._budget, timeout_s):
                return None
            self._running += 1
            self._reserved += cost
            return cost

    def release(self, cost: int) -> None:
        with self._condition:
            self._running -= 1
            self._reserved -= cost
            self._condition.notify_all()


@lru_cache(maxsize=8)
def _decode_budget(slots: int, budget_bytes: int) -> DecodeBudget:
    return DecodeBudget(slots, budget_bytes)


# Peak memory of one decode per decoded pixel (RGB + PIL's working copies), measured on 60 MP
# PNG and JPEG files by `astroloc bench load` (docs/benchmarks.md, "API under load").
DECODE_BYTES_PER_PIXEL = 4.1


def estimated_decode_bytes(data: bytes, max_side: int) -> int:
    """What decoding ``data`` at most ``max_side`` px costs in memory, from its header alone."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height, image_format = image.width, image.height, image.format
    except Exception:  # not an image: check_image refuses it at once
        return len(data)
    if image_format == "JPEG":  # draft decodes at 1/2, 1/4 or 1/8 scale
        scale = 1
        while scale < 8 and max(width, height) / (scale * 2) >= max_side:
            scale *= 2
        width, height = -(-width // scale), -(-height // scale)
    return int(width * height * DECODE_BYTES_PER_PIXEL) + len(data)


def decode_upload(settings: Settings, data: bytes) -> CheckedImage:
    """:func:`check_image` for an upload at ``decode_max_side_px``, within this process's decode
    budget (``max_concurrent_decodes`` at once, ``decode_memory_mb`` together)."""
    budget = _decode_budget(settings.max_concurrent_decodes, settings.decode_memory_mb * 1024 * 1024)
    cost = budget.acquire(estimated_decode_bytes(data, settings.decode_max_side_px), settings.decode_wait_s)
    if cost is None:
        raise DecodeBusy(f"the API is decoding other uploads ({settings.max_concurrent_decodes} at once, "
                         f"{settings.decode_memory_mb} MB together); retry shortly", max(1, round(settings.decode_wait_s)))
    try:
        return check_image(data, settings.max_image_pixels, settings.decode_max_side_px)
    finally:
        budget.release(cost)


def decode_rgb(data: bytes, max_side: int | None = None) -> np.ndarray:
    """A photo's bytes as an RGB uint8 array, at most ``max_side`` px when given (uploads are
    checked to decode before this)."""
    with Image.open(io.BytesIO(data)) as image:
        return _decoded_rgb(image, max_side)


def read_rgb(path: Path | str, max_side: int | None = None) -> np.ndarray:
    """A stored photo as an RGB uint8 array, at most ``max_side`` px when given."""
    return decode_rgb(Path(path).read_bytes(), max_side)


def parse_bbox(text: str) -> BaseGeometry:
    """``W,S,E,N`` in degrees -> polygon; W > E means the box crosses the antimeridian."""
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(f"bbox must be W,S,E,N (4 numbers), got {text!r}") from None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south < north <= 90):
        raise InvalidInput(f"bbox {text!r} is out of range (lon in [-180,180], lat in [-90,90], S < N)")
    if west > east:
        return MultiPolygon([box(west, south, 180, north), box(-180, south, east, north)])
    if west == east:
        raise InvalidInput("bbox has zero width")
    return box(west, south, east, north)


def parse_point(text: str) -> Point:
    """``lat,lon`` in degrees -> shapely Point(lon, lat)."""
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(f"contains must be lat,lon (2 numbers), got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"point {text!r} is out of range (lat in [-90,90], lon in [-180,180])")
    return Point(lon, lat)


# --- what GET /photos answers ------------------------------------------------------------------


class PictureUnavailable(RuntimeError):
    """A stored footprint whose picture cannot be drawn here (tiles or photo file missing): a 503."""


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
    FeatureCollection; InvalidInput unless exactly one is given, or when it does not parse."""
    if (bbox is None) == (contains is None):
        raise InvalidInput("give exactly one of bbox=W,S,E,N or contains=lat,lon")
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
    job = crud.latest_job_of_photo(session, photo_id, "localize")
    return {
        "photo_id": photo.photo_id,
        "status": photo.status,
        "job_id": job.id if job is not None else None,
        "error": job.error if job is not None and photo.status == PhotoStatus.FAILED else None,
        "captured_at": photo.captured_at,
        "nadir": None if photo.nadir_lat is None else {"lat": photo.nadir_lat, "lon": photo.nadir_lon},
        "image_sha256": photo.image_sha256,
        "meta": photo.meta,
        "created_at": photo.created_at,
        "footprint": footprint_feature(photo, footprint) if footprint else None,
        "reference_footprint": footprint_feature(photo, reference) if reference else None,
    }


def localized_photo(session: Session, photo_id: str) -> tuple[Photo, Footprint]:
    """A photo and its latest footprint; PhotoNotFound when either is missing."""
    photo = crud.get_photo(session, photo_id)
    if photo is None:
        raise PhotoNotFound(f"no photo with id {photo_id!r}")
    footprint = crud.latest_footprint(session, photo_id)
    if footprint is None:
        raise PhotoNotFound(f"photo {photo_id!r} has no footprint (not localized yet, or not found)")
    return photo, footprint


def footprint_picture_png(settings: Settings, session: Session, photo_id: str) -> bytes:
    """The photo warped onto its map context with its footprint drawn (catalogue reference, if
    any, in a second colour)."""
    from index.overlay import footprint_picture
    from index.sources import LocalXYZSource

    photo, footprint = localized_photo(session, photo_id)
    reference = crud.reference_footprint(session, photo_id)
    truth = reference.geom if reference is not None else None
    try:
        tiles = LocalXYZSource(settings.resolved_tiles_dir)
        # The picture is ~420 px across: the photo is decoded at the retrieval size, not in full.
        rgb = read_rgb(stored_photo_path(settings.data_dir, photo.image_path), settings.decode_max_side_px)
    except FileNotFoundError:
        # Say what is missing without naming a server path.
        what = "the tile database" if not settings.resolved_tiles_dir.is_dir() else "the stored photo"
        raise PictureUnavailable(f"the footprint picture of {photo_id!r} cannot be drawn: {what} is "
                                 "not on this server") from None
    return footprint_picture(rgb, footprint.geom, tiles, truth=truth)
