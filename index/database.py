"""Which tiles make a tile database: zoom ranges, and the tiles a local XYZ directory can serve.

- :func:`parse_zooms`: ``"3-6"`` / ``"3,5,6"`` -> sorted zoom levels;
- :func:`local_tiles`: the tiles of a zoom range that a local XYZ directory can serve, on a plain
  (``steps=1``) or overlapping (``steps=2``: every half tile) grid;
- :func:`grid_tiles`: every tile of a zoom range (for sources that render any tile).

The descriptor network that describes them is model/describer.py's; nothing here reads settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from index.sources import LocalXYZSource
from index.tiles import MAX_ZOOM, Tile, grid_shape, tiles_at_zoom


def parse_zooms(text: str) -> list[int]:
    """Zoom levels from ``"6"``, ``"3-6"`` or ``"3,5-6"``, sorted and without duplicates."""
    zooms: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise ValueError(f"not a zoom range (want e.g. 3-6 or 3,5,6): {text!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if first > last or last > MAX_ZOOM:
            raise ValueError(f"zoom range {part!r} must go upwards within 0..{MAX_ZOOM}")
        zooms.update(range(first, last + 1))
    return sorted(zooms)


def grid_tiles(zooms: Iterable[int], steps: int = 1) -> list[Tile]:
    """Every tile of the zooms on a grid of ``steps`` positions per tile width."""
    return [tile for z in zooms for tile in tiles_at_zoom(z, steps)]


def local_tiles(source: LocalXYZSource | Path | str, zooms: Iterable[int], steps: int = 1) -> list[Tile]:
    """The tiles of ``zooms`` a local XYZ directory can serve, on a grid of ``steps`` per tile.

    ``steps=1``: the plain tiles present. ``steps > 1``: the overlapping tiles all of whose
    plain tiles beneath are present (the source cuts them from those), so a sparse directory
    (one region) gives the overlapping grid over that region only.
    """
    if steps < 1:
        raise ValueError(f"steps per tile must be >= 1, got {steps}")
    if not isinstance(source, LocalXYZSource):
        source = LocalXYZSource(source)
    found: list[Tile] = []
    for z in zooms:
        plain = {(t.x, t.y) for t in source.list_tiles(z)}
        if steps == 1:
            found += [Tile(z, x, y) for x, y in sorted(plain, key=lambda p: (p[1], p[0]))]
            continue
        n = 2**z
        columns, rows = grid_shape(z, steps)
        candidates = {(x * steps + i, y * steps + j) for x, y in plain for i in range(steps) for j in range(steps)}
        for gx, gy in sorted(candidates, key=lambda p: (p[1], p[0])):
            if gy >= rows:
                continue
            # An offset tile spans the plain tiles under its origin and, when offset, the next ones.
            x0, y0 = gx // steps, gy // steps
            need_x = [x0, (x0 + 1) % n] if gx % steps else [x0]
            need_y = [y0, y0 + 1] if gy % steps else [y0]
            if all((x, y) in plain for x in need_x for y in need_y):
                found.append(Tile(z, gx % columns, gy, steps))
    return found
