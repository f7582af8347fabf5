"""A built world's files and its catalogue (queries.csv): the layout, the writer and the one reader.

``queries.csv`` is the EOL layout (:mod:`geo.eol`) followed by our ground-truth columns
(:data:`EXTRA_COLUMNS`); :func:`read_photos` is how training, the demo and the benchmarks read it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from functools import cached_property
from pathlib import Path

import numpy as np
from shapely.geometry.base import BaseGeometry

from geo.eol import EOL_COLUMNS, corner_cells, row_corners, row_photo_id, split_photo_id
from geo.eol import photo_id as eol_photo_id
from geo.footprint import footprint_polygon
from index.files import write_csv
from world.split import SPLITS
from world.view import RenderedView, land_fraction, matching_zoom

# Our ground-truth columns, after EOL's.
EXTRA_COLUMNS = (
    "SPLIT", "CAPTURE_TIME", "NADIR_ALT_KM", "TLE_EPOCH", "CENTER_LAT", "CENTER_LON",
    "TILT_DEG", "AZIMUTH_DEG", "CAMERA_ROLL_DEG", "FOCAL_MM", "SENSOR_WIDTH_MM", "FOCAL_PX",
    "IMAGE_WIDTH", "IMAGE_HEIGHT", "EARTH_LIMB", "CLOUD_FRACTION", "LAND_FRACTION",
    "MATCHING_ZOOM", "HAZE_OPTICAL_DEPTH", "SHUTTLE_FILM", "VIGNETTING", "CORNER_DISTORTION",
    "K1", "OCCLUDED_CORNER", "JPEG_QUALITY", "SEED",
)  # fmt: skip
CSV_COLUMNS = EOL_COLUMNS + EXTRA_COLUMNS
SIMULATED_MISSION = "SIM"


def simulated_photo_id(frame: int, roll: str = "E") -> str:
    """The id of simulated photo ``frame``: roll E for a world's photos, X for an explicit view."""
    return eol_photo_id(SIMULATED_MISSION, roll, frame)


@dataclass(frozen=True)
class WorldPaths:
    """Layout of a built world directory."""

    root: Path

    @property
    def tiles(self) -> Path:
        return self.root / "tiles"  # {z}/{x}/{y}.jpg, readable by index.sources.LocalXYZSource

    @property
    def queries(self) -> Path:
        return self.root / "queries"  # photos and their per-photo ground truth (.json)

    @property
    def csv(self) -> Path:
        return self.root / "queries.csv"

    @property
    def manifest(self) -> Path:
        return self.root / "world.json"


def truth_row(rendered: RenderedView, photo_id: str, frame: int, split: str, image: Path | str) -> dict:
    """Ground truth of one photo as a row of the world's CSV (EOL columns, then ours)."""
    view, fp, nuisances = rendered.view, rendered.footprint, rendered.view.nuisances
    camera = view.camera()
    row: dict = corner_cells((_number(lat, 6), _number(lon, 6)) for lon, lat in fp.corners)
    mission, roll, _ = split_photo_id(photo_id)
    row.update(
        MISSION=mission,
        ROLL=roll,
        FRAME=frame,
        YYYYMMDD=view.capture_time.strftime("%Y%m%d"),
        NADIR_LAT=round(view.nadir_lat, 6),
        NADIR_LON=round(view.nadir_lon, 6),
        SQ_KM_AREA=_number(fp.area_km2, 0),
        ORIENTATION=round(fp.orientation_deg, 1),
        URL=str(image),
        SPLIT=split,
        CAPTURE_TIME=view.capture_time.astimezone(timezone.utc).isoformat(),
        NADIR_ALT_KM=round(view.alt_km, 3),
        TLE_EPOCH=view.tle_epoch.isoformat() if view.tle_epoch else "",
        CENTER_LAT=round(fp.centre[1], 6),
        CENTER_LON=round(fp.centre[0], 6),
        TILT_DEG=round(view.tilt_deg, 3),
        AZIMUTH_DEG=round(view.azimuth_deg, 3),
        CAMERA_ROLL_DEG=round(view.roll_deg, 3),
        FOCAL_MM=round(view.focal_mm, 3),
        SENSOR_WIDTH_MM=view.sensor_width_mm,
        FOCAL_PX=round(view.focal_px, 3),
        IMAGE_WIDTH=view.width,
        IMAGE_HEIGHT=view.height,
        EARTH_LIMB=int(fp.earth_limb),
        CLOUD_FRACTION=round(rendered.cloud_fraction, 4),
        LAND_FRACTION=round(land_fraction(camera), 4),
        MATCHING_ZOOM=matching_zoom(fp),
        HAZE_OPTICAL_DEPTH=round(nuisances.haze_optical_depth, 4),
        SHUTTLE_FILM=int(nuisances.shuttle_film),
        VIGNETTING=round(nuisances.vignetting, 4),
        CORNER_DISTORTION=round(nuisances.corner_distortion, 4),
        K1=round(camera.k1, 8),
        OCCLUDED_CORNER=nuisances.occluded_corner or "",
        JPEG_QUALITY=nuisances.jpeg_quality,
        SEED=view.seed,
    )
    return {column: row[column] for column in CSV_COLUMNS}


def write_queries_csv(path: Path, rows: Sequence[dict]) -> None:
    """Write rows in the world CSV layout (EOL's columns first), atomically."""
    write_csv(path, CSV_COLUMNS, rows)


def _number(value: float, digits: int):
    """A rounded number, or an empty cell for NaN (EOL leaves unknown values empty)."""
    if value is None or not np.isfinite(value):
        return ""
    return int(round(value)) if digits == 0 else round(float(value), digits)


# --- reading the catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldPhoto:
    """A simulated photo of a built world and its ground truth (one row of queries.csv)."""

    photo_id: str  # MISSION-ROLL-FRAME
    image_path: Path  # the world directory joined with the row's URL
    split: str  # train / val / test
    capture_time: str  # ISO 8601 with zone, as written (what a client sends as the timestamp)
    nadir: tuple[float, float]  # (lat, lon) of the ISS sub-point
    corners: tuple[tuple[float, float], ...] | None  # (lat, lon) LL, UL, UR, LR; None: Earth limb
    orientation_deg: float  # compass bearing of the image's "up" at its centre
    matching_zoom: int
    columns: Mapping[str, str]  # the whole row as read, for the other ground-truth columns

    @property
    def earth_limb(self) -> bool:
        """True when a corner sees past the Earth (the photo has no 4-corner footprint)."""
        return self.corners is None

    @cached_property
    def truth(self) -> BaseGeometry:
        """The lon/lat 4-corner footprint (ValueError for an Earth-limb photo)."""
        if self.corners is None:
            raise ValueError(f"{self.photo_id} sees the Earth's limb: it has no 4-corner footprint")
        return footprint_polygon(list(self.corners))


def read_photos(
    world_dir: Path | str,
    split: str | Iterable[str] | None = None,
    include_limb: bool = False,
    limit: int | None = None,
) -> list[WorldPhoto]:
    """The photos of a built world's ``split`` (one name, several, or None for all), in CSV order;
    Earth-limb photos only with ``include_limb``; at most ``limit`` of them."""
    paths = WorldPaths(Path(world_dir))
    wanted = set(SPLITS) if split is None else {split} if isinstance(split, str) else set(split)
    if not wanted <= set(SPLITS):
        raise ValueError(f"unknown split(s) {sorted(wanted - set(SPLITS))}; the world's are {list(SPLITS)}")
    if not paths.csv.is_file():
        raise FileNotFoundError(f"no built world in {paths.root} (queries.csv missing): build it first")
    photos: list[WorldPhoto] = []
    with paths.csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            earth_limb = row["EARTH_LIMB"] == "1"
            if row["SPLIT"] not in wanted or (earth_limb and not include_limb):
                continue
            if limit is not None and len(photos) >= limit:
                break
            photos.append(
                WorldPhoto(
                    photo_id=row_photo_id(row),
                    image_path=paths.root / row["URL"],
                    split=row["SPLIT"],
                    capture_time=row["CAPTURE_TIME"],
                    nadir=(float(row["NADIR_LAT"]), float(row["NADIR_LON"])),
                    corners=None if earth_limb else tuple(row_corners(row)),
                    orientation_deg=float(row["ORIENTATION"]),
                    matching_zoom=int(row["MATCHING_ZOOM"]),
                    columns=row,
                )
            )
    return photos
