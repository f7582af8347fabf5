"""Export the stored footprints: GeoJSON, EOL-layout CSV (NASA's tools read it back), GeoPackage.

Each photo's latest footprint computed by us (catalogue references excluded), optionally only
those meeting a bounding box. The CSV has the EOL columns (4 corners, MISSION/ROLL/FRAME,
YYYYMMDD, nadir, SQ_KM_AREA) plus ours (confidence, inliers, method, model version), so
`astroloc ingest` reads it back.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo import geodesic_area_km2
from geo.lonlat import unwrap_longitudes
from service import crud
from service.models import Footprint, Photo

FORMATS = ("geojson", "csv", "gpkg")
EOL_COLUMNS = ["LL_LAT", "LL_LON", "UL_LAT", "UL_LON", "UR_LAT", "UR_LON", "LR_LAT", "LR_LON", "MISSION", "ROLL",
               "FRAME", "YYYYMMDD", "NADIR_LAT", "NADIR_LON", "SQ_KM_AREA", "ORIENTATION", "URL"]
OUR_COLUMNS = ["CAPTURE_TIME", "CONFIDENCE", "INLIERS", "METHOD", "MODEL_VERSION"]


def latest_footprints(session: Session, bbox: BaseGeometry | None = None) -> list[tuple[Photo, Footprint]]:
    """(photo, its latest footprint of ours) pairs, optionally only footprints meeting ``bbox``."""
    newest = (
        select(Footprint.photo_id, func.max(Footprint.id).label("id"))
        .where(Footprint.method != crud.REFERENCE_METHOD)
        .group_by(Footprint.photo_id)
        .subquery()
    )
    query = select(Photo, Footprint).join(Footprint, Footprint.photo_id == Photo.photo_id).join(
        newest, newest.c.id == Footprint.id
    ).order_by(Photo.photo_id)
    pairs = [(p, f) for p, f in session.execute(query).all()]
    if bbox is not None:
        wanted = {f.id for f in crud.footprints_intersecting(session, bbox, limit=10_000_000)}
        pairs = [(p, f) for p, f in pairs if f.id in wanted]
    return pairs


def corners(geometry: BaseGeometry) -> list[tuple[float, float]]:
    """The footprint's 4 corners as EOL lists them (LL, UL, UR, LR; (lat, lon)); a polygon with
    more vertices (split at 180) is summarised by its minimum rotated rectangle."""
    if isinstance(geometry, Polygon) and len(geometry.exterior.coords) == 5:
        ring = np.asarray(geometry.exterior.coords)[:4]
    else:
        parts = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
        ring = np.concatenate([np.asarray(p.exterior.coords) for p in parts])
        ring[:, 0] = unwrap_longitudes(ring[:, 0], float(ring[0, 0]))
        ring = np.asarray(Polygon(ring).minimum_rotated_rectangle.exterior.coords)[:4]
    lon = ((ring[:, 0] + 180.0) % 360.0) - 180.0
    return [(round(float(lat), 6), round(float(x), 6)) for x, lat in zip(lon, ring[:, 1])]


def _eol_row(photo: Photo, footprint: Footprint) -> dict:
    mission, roll, frame = (photo.photo_id.split("-", 2) + ["", ""])[:3] if photo.photo_id.count("-") >= 2 else (photo.photo_id, "", "")
    row = {}
    for name, (lat, lon) in zip(("LL", "UL", "UR", "LR"), corners(footprint.geom)):
        row[f"{name}_LAT"], row[f"{name}_LON"] = lat, lon
    row.update(
        MISSION=mission, ROLL=roll, FRAME=frame,
        YYYYMMDD=photo.captured_at.strftime("%Y%m%d") if photo.captured_at else "",
        NADIR_LAT=photo.nadir_lat if photo.nadir_lat is not None else "",
        NADIR_LON=photo.nadir_lon if photo.nadir_lon is not None else "",
        SQ_KM_AREA=round(geodesic_area_km2(footprint.geom)), ORIENTATION="", URL="",
        CAPTURE_TIME=photo.captured_at.isoformat() if photo.captured_at else "",
        CONFIDENCE=footprint.confidence if footprint.confidence is not None else "",
        INLIERS=footprint.inliers if footprint.inliers is not None else "",
        METHOD=footprint.method, MODEL_VERSION=footprint.model_version or "",
    )
    return row


def export(session: Session, path: Path, fmt: str, bbox: BaseGeometry | None = None) -> int:
    """Write the footprints to ``path`` in ``fmt``; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    pairs = latest_footprints(session, bbox)
    if fmt == "csv":
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, EOL_COLUMNS + OUR_COLUMNS)
            writer.writeheader()
            writer.writerows(_eol_row(p, f) for p, f in pairs)
    elif fmt == "geojson":
        features = [{"type": "Feature", "geometry": mapping(f.geom),
                     "properties": {k: v for k, v in _eol_row(p, f).items() if not k.endswith(("_LAT", "_LON"))}
                     | {"photo_id": p.photo_id}} for p, f in pairs]
        Path(path).write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    else:
        _write_gpkg(path, pairs)
    return len(pairs)


def _write_gpkg(path: Path, pairs: list[tuple[Photo, Footprint]]) -> None:
    try:
        import geopandas
    except ImportError:
        raise ValueError("GeoPackage export needs geopandas (pip install 'astroloc[gpkg]')") from None
    rows = [_eol_row(p, f) | {"photo_id": p.photo_id} for p, f in pairs]
    frame = geopandas.GeoDataFrame(rows, geometry=[f.geom for _, f in pairs], crs="EPSG:4326")
    frame.to_file(path, driver="GPKG", layer="footprints")
