"""Export the stored footprints: GeoJSON, EOL-layout CSV (NASA's tools read it back), GeoPackage.

Each photo's latest footprint computed by us (catalogue references excluded), optionally only
those meeting a bounding box. The CSV has the EOL columns (4 corners, MISSION/ROLL/FRAME,
YYYYMMDD, nadir, SQ_KM_AREA) plus ours (confidence, inliers, method, model version), so
`astroloc ingest` reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path

from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo import feature_collection, geodesic_area_km2, to_feature
from geo.eol import EOL_COLUMNS, corner_cells, footprint_corners, split_photo_id
from index.files import write_csv
from service import crud
from service.models import Footprint, Photo

FORMATS = ("geojson", "csv", "gpkg")
OUR_COLUMNS = ("CAPTURE_TIME", "CONFIDENCE", "INLIERS", "METHOD", "MODEL_VERSION")


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


def _eol_row(photo: Photo, footprint: Footprint) -> dict:
    mission, roll, frame = split_photo_id(photo.photo_id)
    row = corner_cells(footprint_corners(footprint.geom))
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
        write_csv(Path(path), EOL_COLUMNS + OUR_COLUMNS, (_eol_row(p, f) for p, f in pairs))
    elif fmt == "geojson":
        # The corners and the nadir are left out of the properties: the geometry carries the footprint.
        features = [to_feature(f.geom, {k: v for k, v in _eol_row(p, f).items() if not k.endswith(("_LAT", "_LON"))}
                               | {"photo_id": p.photo_id}) for p, f in pairs]
        Path(path).write_text(json.dumps(feature_collection(features)))
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
