"""A train / val / test split by geography: no footprint overlaps one from another split."""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry.base import BaseGeometry

from world.bluemarble import land_mask
from world.view import Footprint


SPLITS = ("train", "val", "test")
# ISS photos (51.6 deg inclination, footprints up to the horizon) stay within these latitudes.
_ISS_PHOTO_LATITUDE = 75.0


class GeographicSplit:
    """Assigns photos to train / val / test by the block of the globe their centre falls in.

    The globe is cut into ``block_deg`` blocks, dealt to the splits in a seeded random order so
    that each split gets about its ``fractions`` share of the land within the ISS's reach (where
    the photos are). A photo whose footprint overlaps an accepted photo of another split is
    refused (the caller draws another), so no test footprint overlaps a training footprint.
    """

    def __init__(
        self, seed: int, block_deg: float = 30.0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    ) -> None:
        if len(fractions) != len(SPLITS) or not math.isclose(sum(fractions), 1.0) or min(fractions) < 0:
            raise ValueError(f"split fractions must be 3 numbers >= 0 summing to 1, got {fractions}")
        if not 0 < block_deg <= 180:
            raise ValueError(f"block size must lie in (0, 180] degrees, got {block_deg}")
        self.seed, self.block_deg, self.fractions = seed, block_deg, fractions
        self._block_split = self._deal_blocks()
        self._accepted: dict[str, list[BaseGeometry]] = {s: [] for s in SPLITS}
        self._bounds: dict[str, list[tuple[float, ...]]] = {s: [] for s in SPLITS}

    def _grid_shape(self) -> tuple[int, int]:
        return math.ceil(360.0 / self.block_deg), math.ceil(180.0 / self.block_deg)

    def _block_of(self, lon: float, lat: float) -> tuple[int, int]:
        columns, rows = self._grid_shape()
        column = min(int((lon + 180.0) // self.block_deg), columns - 1)
        return column, min(int((lat + 90.0) // self.block_deg), rows - 1)

    def _deal_blocks(self) -> dict[tuple[int, int], str]:
        """Give each block, in random order, to the split furthest below its share of land."""
        mask = land_mask()
        lat = (np.arange(mask.shape[0]) + 0.5) / mask.shape[0] * 180.0 - 90.0
        lon = (np.arange(mask.shape[1]) + 0.5) / mask.shape[1] * 360.0 - 180.0
        # Land cell areas (cos lat), within the latitudes ISS photos reach.
        weight = (mask == 1) * (np.cos(np.radians(lat)) * (np.abs(lat) < _ISS_PHOTO_LATITUDE))[:, None]
        columns, rows = self._grid_shape()
        block_column = np.minimum(((lon + 180.0) // self.block_deg).astype(int), columns - 1)
        block_row = np.minimum(((lat + 90.0) // self.block_deg).astype(int), rows - 1)
        flat_block = (block_row[:, None] * columns + block_column[None, :]).ravel()
        land = np.bincount(flat_block, weights=weight.ravel(), minlength=columns * rows)
        blocks = {(int(b % columns), int(b // columns)): float(land[b]) for b in np.flatnonzero(land)}
        keys = sorted(blocks)
        order = np.random.default_rng([self.seed, 0x5B17]).permutation(len(keys))
        dealt: dict[tuple[int, int], str] = {}
        totals = np.zeros(len(SPLITS))
        for index in order:
            key = keys[index]
            deficit = np.asarray(self.fractions) * (totals.sum() + blocks[key]) - totals
            chosen = int(np.argmax(deficit))
            totals[chosen] += blocks[key]
            dealt[key] = SPLITS[chosen]
        return dealt

    def split_of(self, lon: float, lat: float) -> str:
        """The split owning the block of a point (blocks without land go to training)."""
        return self._block_split.get(self._block_of(lon, lat), SPLITS[0])

    def try_accept(self, footprint: Footprint) -> str | None:
        """The footprint's split, recorded; or None when it overlaps another split's footprint."""
        split = self.split_of(*footprint.centre)
        polygon = footprint.polygon
        west, south, east, north = polygon.bounds
        for other in SPLITS:
            if other == split or not self._accepted[other]:
                continue
            bounds = np.array(self._bounds[other])
            near = (bounds[:, 0] <= east) & (bounds[:, 2] >= west) & (bounds[:, 1] <= north) & (bounds[:, 3] >= south)
            if any(polygon.intersects(self._accepted[other][i]) for i in np.flatnonzero(near)):
                return None
        self._accepted[split].append(polygon)
        self._bounds[split].append(polygon.bounds)
        return split
