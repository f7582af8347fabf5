"""Lost in space: a photo with neither a capture time nor a nadir, searched world-wide, coarse to fine.

1. **coarse**: the whole world at the index's coarse zooms (its lower half), the ``coarse_k``
   most similar tiles;
2. **fine**: the finer zooms, only around those tiles (each grown by ``grow`` of its width on
   every side, so a photo astride a tile edge stays inside);
3. both lists merged by similarity, the best ``k`` kept.

A fine tile far from every coarse match is usually a look-alike somewhere else, so the coarse
pass both narrows the search and vets the fine hits. The refinement job then tries the
candidates in order within a time budget per photo (``lost_in_space_budget_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from index.search import SearchResult, ShardedIndex
from index.shards import ShardKey
from index.tiles import MAX_LATITUDE, tile_bounds


@dataclass(frozen=True)
class CoarseToFine:
    coarse_zooms: tuple[int, ...]
    fine_zooms: tuple[int, ...]
    coarse_k: int = 10
    grow: float = 0.5  # each coarse tile grown by this share of its width on every side

    @classmethod
    def for_index(cls, index: ShardedIndex, coarse_k: int = 10, grow: float = 0.5) -> CoarseToFine:
        """The index's zooms split in two: the coarser half first (one zoom: no fine pass)."""
        zooms = sorted({ShardKey.parse(name).zoom for name in index.manifest.shards})
        half = max(1, len(zooms) // 2)
        return cls(tuple(zooms[:half]), tuple(zooms[half:]), coarse_k, grow)


def neighbourhood(tiles: Sequence, grow: float) -> BaseGeometry:
    """Union of lon/lat boxes around tiles, each grown by ``grow`` of its size (longitudes may
    pass +/-180: the index folds them; latitudes stop at the Mercator edge)."""
    boxes = []
    for tile in tiles:
        b = tile_bounds(tile)
        dx, dy = (b.east - b.west) * grow, (b.north - b.south) * grow
        boxes.append(box(b.west - dx, max(b.south - dy, -MAX_LATITUDE), b.east + dx, min(b.north + dy, MAX_LATITUDE)))
    return shapely.union_all(boxes)


def coarse_to_fine_search(
    index: ShardedIndex, descriptor: np.ndarray, k: int, plan: CoarseToFine, nprobe: int
) -> SearchResult:
    """The ``k`` best tiles world-wide for one photo descriptor, coarse zooms first."""
    [coarse] = index.search(descriptor, None, k=max(k, plan.coarse_k), nprobe=nprobe, zooms=plan.coarse_zooms)
    if not plan.fine_zooms or not coarse.hits:
        coarse.hits = coarse.hits[:k]
        return coarse
    region = neighbourhood([h.tile for h in coarse.hits[: plan.coarse_k]], plan.grow)
    [fine] = index.search(descriptor, region, k=k, nprobe=nprobe, zooms=plan.fine_zooms)
    merged = sorted(coarse.hits + fine.hits, key=lambda h: -h.score)[:k]
    return SearchResult(hits=merged, reason=fine.reason if not merged else None,
                        shards_searched=coarse.shards_searched + fine.shards_searched)
