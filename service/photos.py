"""Photo files on disk and the geometry of photo queries (bbox, point)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from shapely.geometry import MultiPolygon, Point, box
from shapely.geometry.base import BaseGeometry

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif"}
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}


class ImageRejected(ValueError):
    """A photo we refuse, with the HTTP status the API answers (413 too big, 415 not an image,
    422 corrupt) and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_image(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) of a photo's bytes, decoded in full once (so truncated files and
    decompression bombs are caught here, before anything is stored), or ImageRejected."""
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
            return image.format, width, height
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected(415, "not an image (JPEG, PNG or TIFF expected)") from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected(413, f"image refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(422, f"the image could not be decoded (corrupt or truncated): {exc}") from None


def store_image(data_dir: Path, data: bytes, image_format: str) -> tuple[str, Path]:
    """Write the photo once under its sha256 (atomic); returns (sha256, path)."""
    sha = hashlib.sha256(data).hexdigest()
    path = Path(data_dir) / "photos" / sha[:2] / f"{sha}{EXTENSIONS[image_format]}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".partial") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    return sha, path


def decode_rgb(data: bytes) -> np.ndarray:
    """A photo's bytes as an RGB uint8 array (uploads are checked to decode before this)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


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
