"""Recall of a retrieval network on a world's held-out photos, as the service searches them.

Two figures per split (AstroLoc Sec. 5, EarthLoc Sec. 4):

- **in-region**: only the tiles whose footprint meets the ISS visibility region at the photo's
  capture time (the ground track from the shipped TLEs, as ``POST /localize`` does with a
  timestamp) are ranked: about a hundred tiles of the demo world, ~120,000 at real scale;
- **world-wide**: every tile is ranked.

A retrieved tile is correct when it contains the centre of the photo's true footprint (the
benchmarks' rule); a tile counts once, at its best rotation. The database is described at four
rotations (the service's index); ``rotate="query"`` turns the photos instead and describes each
tile once, four times cheaper for model selection during training (the ranking it gives differs
slightly: rotating a photo is not rotating its tile back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import shapely
from PIL import Image
from shapely.geometry import Point

from geo import locate_iss, visibility_region
from index.search import meets, prepare_region

RECALL_AT = (1, 5, 10, 100)
ROTATIONS = (0, 90, 180, 270)


@dataclass
class RetrievalSet:
    """Held-out photos at the network's input size, with what a correct answer is."""

    split: str
    images: np.ndarray  # (N, S, S, 3) uint8
    centres: list[Point]  # centre of each photo's true footprint
    region_tiles: list[np.ndarray]  # per photo: indices of the tiles meeting its search region

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, count: int) -> RetrievalSet:
        """The first ``count`` photos (all for 0)."""
        if not count or count >= len(self):
            return self
        return RetrievalSet(self.split, self.images[:count], self.centres[:count], self.region_tiles[:count])


def visibility_region_at(capture_time: str, tles: Sequence[object], min_elevation_deg: float = 0.0):  # noqa: ANN201
    """The ground that sees the ISS at ``capture_time`` (ISO 8601), from ``tles`` (a shapely geometry)."""
    fix = locate_iss(datetime.fromisoformat(capture_time), tles)
    if not fix.trusted:
        raise ValueError(f"no ISS position at {capture_time}: {fix.fallback_reason}")
    point = fix.position
    return visibility_region(point.lat, point.lon, point.alt_km, min_elevation_deg)


def visibility_tiles(capture_time: str, tile_geometries: np.ndarray, tles: Sequence[object],
                     min_elevation_deg: float = 0.0) -> np.ndarray:
    """Indices of the tiles meeting the ground that sees the ISS at ``capture_time`` (ISO 8601)."""
    region = prepare_region(visibility_region_at(capture_time, tles, min_elevation_deg))
    return np.flatnonzero(meets(tile_geometries, region))


def load_retrieval_set(world_dir: Path | str, split: str, size: int, tile_polygons: Sequence,
                       limit: int = 0) -> RetrievalSet:
    """The Earth-only photos of ``split`` (the first ``limit``; all for 0) at ``size`` px."""
    from world.catalogue import read_photos
    from world.sampling import sample_tles

    photos = read_photos(world_dir, split, limit=limit or None)
    tiles = np.asarray(tile_polygons, dtype=object)
    tles = sample_tles()
    images = [load_rgb(p.image_path, size) for p in photos]
    return RetrievalSet(
        split=split,
        images=np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
        centres=[p.truth.centroid for p in photos],
        region_tiles=[visibility_tiles(p.capture_time, tiles, tles) for p in photos],
    )


def describe_tiles(net, tile_images: np.ndarray, rotate: str = "database", batch_size: int = 64) -> np.ndarray:  # noqa: ANN001
    """Database descriptors (T, R, D): four rotations, or one when the queries turn instead."""
    import model as models

    rotations = ROTATIONS if rotate == "database" else (0,)
    return models.describe(net, list(tile_images), rotations=rotations, batch_size=batch_size)


def retrieval_recall(net, tile_images: np.ndarray, tile_polygons: Sequence, photos: RetrievalSet,  # noqa: ANN001
                     rotate: str = "database", database: np.ndarray | None = None) -> dict:
    """In-region and world-wide recall@1/5/10/100 of ``photos`` (keys ``region_recall@k``,
    ``recall@k``), with ``queries``. ``database``: descriptors from :func:`describe_tiles`
    (computed here when None)."""
    import model as models

    if rotate not in ("database", "query"):
        raise ValueError(f"rotate must be 'database' or 'query', got {rotate!r}")
    if not len(photos):
        return {}
    if database is None:
        database = describe_tiles(net, tile_images, rotate)
    query_rotations = (0,) if rotate == "database" else ROTATIONS
    queries = models.describe(net, list(photos.images), rotations=query_rotations)  # (Q, Rq, D)
    return recall_of_descriptors(queries, database, tile_polygons, photos)


def recall_of_descriptors(queries: np.ndarray, database: np.ndarray, tile_polygons: Sequence,
                          photos: RetrievalSet) -> dict:
    """:func:`retrieval_recall` from descriptors: queries (Q, Rq, D), database (T, Rt, D), one
    of Rq and Rt being 1."""
    # Best rotation per (photo, tile): one of the two sides has a single rotation.
    scores = np.einsum("qad,tbd->qtab", queries, database).reshape(len(queries), len(database), -1).max(axis=2)
    geometries = np.asarray(tile_polygons, dtype=object)
    metrics: dict = {"queries": len(photos)}
    region_hits, world_hits = [], []
    for row, centre, region in zip(scores, photos.centres, photos.region_tiles):
        world_hits.append(_hits(np.argsort(-row)[: max(RECALL_AT)], geometries, centre))
        ranked = region[np.argsort(-row[region], kind="stable")][: max(RECALL_AT)]
        region_hits.append(_hits(ranked, geometries, centre))
    for name, hits in (("region_recall", region_hits), ("recall", world_hits)):
        for k in RECALL_AT:
            metrics[f"{name}@{k}"] = round(float(np.mean([h[:k].any() for h in hits])), 4)
    metrics["region_tiles_mean"] = round(float(np.mean([len(r) for r in photos.region_tiles])), 1)
    return metrics


def _hits(ranked: np.ndarray, geometries: np.ndarray, centre: Point) -> np.ndarray:
    hits = np.zeros(max(RECALL_AT), bool)
    if len(ranked):
        hits[: len(ranked)] = shapely.covers(geometries[ranked], centre)
    return hits


def load_rgb(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
