"""The EOL catalogue layout (NASA's astronaut-photo catalogue): columns, photo id, corner order.

One definition for everything that reads or writes it: the demo world's queries.csv, the export,
the batch ingest and the weak labeller. The layout (../shared/data/README.md): the 4 footprint
corners ``LL_LAT, LL_LON, UL_LAT, ..., LR_LON`` (degrees), then ``MISSION, ROLL, FRAME`` (the
photo id is ``MISSION-ROLL-FRAME``, e.g. ``ISS047-E-55412``), ``YYYYMMDD`` (UTC date),
``NADIR_LAT, NADIR_LON``, ``SQ_KM_AREA``, ``ORIENTATION`` (degrees) and ``URL``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.lonlat import unwrap_longitudes

# The image corners in EOL's column order: lower-left, upper-left, upper-right, lower-right.
CORNER_NAMES = ("LL", "UL", "UR", "LR")
CORNER_COLUMNS = tuple(f"{corner}_{axis}" for corner in CORNER_NAMES for axis in ("LAT", "LON"))
PHOTO_ID_COLUMNS = ("MISSION", "ROLL", "FRAME")
NADIR_COLUMNS = ("NADIR_LAT", "NADIR_LON")
EOL_COLUMNS = (
    CORNER_COLUMNS + PHOTO_ID_COLUMNS + ("YYYYMMDD",) + NADIR_COLUMNS + ("SQ_KM_AREA", "ORIENTATION", "URL")
)


def photo_id(mission: str, roll: str, frame: str | int) -> str:
    """The photo id EOL gives a row: ``MISSION-ROLL-FRAME``."""
    return f"{mission}-{roll}-{frame}"


def split_photo_id(photo_id: str) -> tuple[str, str, str]:
    """``(MISSION, ROLL, FRAME)`` of a photo id; an id without two dashes is all MISSION."""
    if photo_id.count("-") < 2:
        return photo_id, "", ""
    mission, roll, frame = photo_id.split("-", 2)
    return mission, roll, frame


def row_photo_id(row: Mapping[str, object]) -> str:
    """The photo id of a catalogue row (its MISSION, ROLL and FRAME cells)."""
    return photo_id(*(row[column] for column in PHOTO_ID_COLUMNS))


def row_corners(row: Mapping[str, str]) -> list[tuple[float, float]]:
    """The 4 footprint corners of a catalogue row, ``(lat, lon)`` in LL, UL, UR, LR order
    (ValueError on an empty or non-numeric cell)."""
    return [(float(row[f"{c}_LAT"]), float(row[f"{c}_LON"])) for c in CORNER_NAMES]


def corner_cells(corners: Iterable[tuple[float, float]]) -> dict[str, float]:
    """The corner columns of a row from 4 ``(lat, lon)`` corners in LL, UL, UR, LR order."""
    cells: dict[str, float] = {}
    for name, (lat, lon) in zip(CORNER_NAMES, corners, strict=True):
        cells[f"{name}_LAT"], cells[f"{name}_LON"] = lat, lon
    return cells


def footprint_corners(geometry: BaseGeometry) -> list[tuple[float, float]]:
    """A footprint's 4 corners as EOL lists them (LL, UL, UR, LR; ``(lat, lon)``, 6 decimals); a
    polygon with more vertices (split at 180) is summarised by its minimum rotated rectangle."""
    if isinstance(geometry, Polygon) and len(geometry.exterior.coords) == 5:
        ring = np.asarray(geometry.exterior.coords)[:4]
    else:
        parts = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
        ring = np.concatenate([np.asarray(p.exterior.coords) for p in parts])
        ring[:, 0] = unwrap_longitudes(ring[:, 0], float(ring[0, 0]))
        ring = np.asarray(Polygon(ring).minimum_rotated_rectangle.exterior.coords)[:4]
    lon = ((ring[:, 0] + 180.0) % 360.0) - 180.0
    return [(round(float(lat), 6), round(float(x), 6)) for x, lat in zip(lon, ring[:, 1])]
