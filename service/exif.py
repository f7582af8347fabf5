"""What a photo's EXIF says that localization can use: how to turn it upright, when it was taken,
through which lens.

NASA's catalogue JPEGs come straight from the crew's Nikon bodies: ``Orientation`` says how the
camera was held (the pixels are stored as the sensor saw them), ``DateTimeOriginal`` is the
capture time (the ISS cameras' clocks run on GMT, so a time without ``OffsetTimeOriginal`` is
read as UTC), ``FocalLength`` and ``FocalLengthIn35mmFilm`` give the lens. The form's fields win;
EXIF fills in what the form leaves out (service.localize.submit).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from PIL import Image

_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_FOCAL_LENGTH = 0x920A
_FOCAL_LENGTH_35MM = 0xA405


@dataclass(frozen=True)
class PhotoExif:
    orientation: int = 1  # EXIF 1..8; 1: stored upright
    captured_at: datetime | None = None  # timezone-aware
    focal_mm: float | None = None
    focal_35mm: float | None = None  # the full-frame equivalent, when the camera wrote it

    def to_json(self) -> dict:
        return {"orientation": self.orientation,
                "captured_at": self.captured_at.isoformat() if self.captured_at else None,
                "focal_mm": self.focal_mm, "focal_35mm": self.focal_35mm}


def read_exif(data: bytes) -> PhotoExif:
    """The EXIF fields above, from a photo's bytes (empty when it has none or they are unreadable)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
    except Exception:  # noqa: BLE001 (not an image: the upload check says so, not this)
        return PhotoExif()
    if not exif:
        return PhotoExif()
    details = exif.get_ifd(_EXIF_IFD)
    orientation = exif.get(_ORIENTATION, 1)
    return PhotoExif(
        orientation=int(orientation) if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
        captured_at=_capture_time(details.get(_DATETIME_ORIGINAL), details.get(_OFFSET_TIME_ORIGINAL)),
        focal_mm=_positive(details.get(_FOCAL_LENGTH)),
        focal_35mm=_positive(details.get(_FOCAL_LENGTH_35MM)),
    )


def upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as the photographer saw them (EXIF orientation 1..8 applied, as PIL's
    ImageOps.exif_transpose does, on an already decoded array)."""
    steps = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    step = steps.get(int(orientation))
    return rgb if step is None else np.ascontiguousarray(step(rgb))


def _capture_time(value, offset) -> datetime | None:  # noqa: ANN001
    if not isinstance(value, str):
        return None
    try:
        when = datetime.strptime(value.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = timezone.utc
    if isinstance(offset, str) and len(offset.strip()) >= 6:
        try:
            sign = -1 if offset.strip()[0] == "-" else 1
            hours, minutes = offset.strip()[1:6].split(":")
            zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
        except ValueError:
            zone = timezone.utc
    return when.replace(tzinfo=zone)


def _positive(value) -> float | None:  # noqa: ANN001
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 else None
