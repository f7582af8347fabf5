"""Weak-to-full labelling (AstroLoc Sec. 3.1): a photo whose catalogue row has only a point (the
nadir, or a "centre point" estimate) gets a full 4-corner footprint.

The candidates are the tiles containing the point at every zoom level of the tile store, each at
the 4 rotations. On AstroLoc's half-overlapping grid (``steps=2``) a point lies in 4 tiles per
zoom: 5 zooms x 4 tiles x 4 rotations = 80 candidates on the real database, 64 on the demo world's
4 zooms. Each is refined with EarthMatch (the same `refine_candidates` the service
runs) and the best accepted match gives the footprint. Unlike the service, no early stop: this
is offline labelling, so every candidate is tried and the one with most inliers wins.

Output: the input CSV, every column kept, with the four corners and SQ_KM_AREA filled in for the
labelled rows and LABEL_STATUS / LABEL_INLIERS / LABEL_REASON added (EOL layout: `astroloc
ingest` and NASA's tools read it back).
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import replace
from pathlib import Path

from shapely.geometry import Point

from geo import geodesic_area_km2
from geo.eol import CORNER_COLUMNS, CORNER_NAMES, footprint_corners
from geo.refine import RefineParams, RefineResult, refine_candidates
from service.localize.refine import refine_params
from index.files import write_csv
from index.sources import LocalXYZSource
from index.surroundings import surrounding_image
from index.tiles import Tile, tiles_covering
from service.config import Settings
from service.ingest import CatalogueRow, ImageFinder, Reject, read_catalogue
from service.photos import decode_rgb

ROTATIONS = (0, 90, 180, 270)
LABEL_COLUMNS = ["LABEL_STATUS", "LABEL_INLIERS", "LABEL_REASON"]


def weak_label_candidates(lat: float, lon: float, zooms: list[int], steps: int = 2) -> list[tuple[Tile, int]]:
    """(tile, rotation): every tile containing the point at each zoom, at each of 4 rotations."""
    point = Point(lon, lat)
    return [(tile, rotation) for z in zooms for tile in tiles_covering(point, z, steps) for rotation in ROTATIONS]


def label_photo(settings: Settings, image_bytes: bytes, lat: float, lon: float, steps: int = 2,
                params: RefineParams | None = None) -> RefineResult:
    """Refine the photo against every weak-label candidate; the best accepted match wins."""
    source = LocalXYZSource(settings.resolved_tiles_dir)
    params = replace(params or refine_params(settings), stop_at_inliers_factor=math.inf)
    image = decode_rgb(image_bytes)
    surroundings: dict[Tile, object] = {}
    candidates = []
    for tile, rotation in weak_label_candidates(lat, lon, source.zooms(), steps):
        if tile not in surroundings:  # one neighbourhood per tile, shared by its 4 rotations
            surroundings[tile] = surrounding_image(source, tile)
        candidates.append((surroundings[tile], rotation))
    return refine_candidates(image, candidates, params)


def label_weak(settings: Settings, catalogue: Path, out: Path, finder: ImageFinder, steps: int = 2,
               column_map: dict[str, str] | None = None, progress: bool = True) -> dict:
    """Label every valid row of ``catalogue`` that has a point and an image; write ``out``."""
    from tqdm import tqdm

    started = time.monotonic()
    with catalogue.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        raw = list(reader)
    names = {c: (column_map or {}).get(c, c) for c in CORNER_COLUMNS}
    columns = header + [c for c in [*names.values(), "SQ_KM_AREA", *LABEL_COLUMNS] if c not in header]
    counts = {"rows": len(raw), "labelled": 0, "not_labelled": 0, "skipped": 0}
    outcome: dict[int, dict] = {}
    for item in tqdm(list(read_catalogue(catalogue, column_map)), unit="photo", disable=not progress):
        line = item.line
        if isinstance(item, Reject):
            outcome[line] = {"LABEL_STATUS": "skipped", "LABEL_REASON": item.reason}
            counts["skipped"] += 1
            continue
        outcome[line] = _label_row(settings, item, finder, names, steps)
        counts[outcome[line]["LABEL_STATUS"]] += 1
    write_csv(out, columns, (row | outcome.get(index + 2, {}) for index, row in enumerate(raw)))  # line 1: header
    return counts | {"seconds": round(time.monotonic() - started, 1)}


def _label_row(settings: Settings, row: CatalogueRow, finder: ImageFinder, names: dict[str, str],
               steps: int) -> dict:
    if row.nadir is None:
        return {"LABEL_STATUS": "skipped", "LABEL_REASON": "no point (NADIR_LAT/NADIR_LON) to start from"}
    try:
        image_bytes = Path(finder.find(row)).read_bytes()
    except (FileNotFoundError, OSError) as exc:
        return {"LABEL_STATUS": "skipped", "LABEL_REASON": str(exc)}
    try:
        result = label_photo(settings, image_bytes, *row.nadir, steps=steps)
    except ValueError as exc:  # an undecodable image
        return {"LABEL_STATUS": "skipped", "LABEL_REASON": str(exc)}
    if not result.localized:
        best = max((m.inliers for m in result.matches), default=0)
        return {"LABEL_STATUS": "not_labelled", "LABEL_INLIERS": best, "LABEL_REASON": result.reason}
    filled = {"LABEL_STATUS": "labelled", "LABEL_INLIERS": result.best.inliers, "LABEL_REASON": "",
              "SQ_KM_AREA": round(geodesic_area_km2(result.best.footprint))}
    for corner, (lat, lon) in zip(CORNER_NAMES, footprint_corners(result.best.footprint)):
        filled[names[f"{corner}_LAT"]], filled[names[f"{corner}_LON"]] = lat, lon
    return filled
