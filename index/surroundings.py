"""The "surrounding image" of a candidate tile (EarthMatch): the tile and its 8 neighbours,
stitched, with the Web-Mercator bounds that georeference every pixel.

A photo retrieved by one tile often spills over its edges; matching against the 3x3 neighbourhood
lets the refinement find the whole footprint. Columns wrap across the antimeridian (the bounds
then run past +/-180); rows beyond the poles of the Mercator square are black.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from geo.refine import GeoImage
from index.sources import TileError, TileSource
from index.tiles import Tile, tile_at, tile_xy_to_lonlat


def surrounding_image(source: TileSource, tile: Tile, size: int = 3) -> GeoImage:
    """``size`` x ``size`` plain tiles centred on ``tile`` (missing ones black), georeferenced."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the neighbourhood must be an odd number of tiles wide, got {size}")
    half = size // 2
    n = 2**tile.z
    # The plain tile under the candidate's top-left corner (an overlapping-grid tile starts there).
    x0, y0 = tile.x // tile.steps - half, tile.y // tile.steps - half
    side = source.tile_size
    canvas = np.zeros((size * side, size * side, 3), np.uint8)
    for row in range(size):
        for column in range(size):
            y = y0 + row
            if not 0 <= y < n:
                continue  # beyond the Mercator square: nothing there
            try:
                image = source.read_tile(Tile(tile.z, (x0 + column) % n, y))
            except (TileError, OSError):
                continue  # a missing neighbour leaves a black square; the match still works
            canvas[row * side : (row + 1) * side, column * side : (column + 1) * side] = image
    west, north = tile_xy_to_lonlat(x0, y0, tile.z)
    east, south = tile_xy_to_lonlat(x0 + size, y0 + size, tile.z)
    return GeoImage(canvas, (float(west), float(south), float(east), float(north)))


def turned_tile_images(source: TileSource, tile: Tile, turns_deg: Sequence[float]) -> list[np.ndarray]:
    """``tile`` turned counter-clockwise by each of ``turns_deg`` about its centre, as the ground
    around it would look: its 3x3 surroundings (read once for all turns) turned and the
    tile-sized square at the centre kept, so the corners a turn uncovers hold the neighbours'
    ground, not padding (the index describes tiles at turns between the quarter turns this way:
    ``index.shards.rotations_with_turns``)."""
    if not turns_deg:
        return []
    surrounding = surrounding_image(source, tile)
    side = source.tile_size
    # The tile's centre on the canvas, in plain-tile units from the canvas's top-left tile.
    centre_x = (tile.x / tile.steps - (tile.x // tile.steps - 1) + 0.5) * side
    centre_y = (tile.y / tile.steps - (tile.y // tile.steps - 1) + 0.5) * side
    turned = []
    for degrees in turns_deg:
        # OpenCV puts pixel centres at integer coordinates: the tile's centre is half a pixel up-left.
        matrix = cv2.getRotationMatrix2D((centre_x - 0.5, centre_y - 0.5), float(degrees), 1.0)
        # Shift so that the tile's centre lands at the output's centre: one warp, no second crop.
        matrix[:, 2] += (side / 2 - centre_x, side / 2 - centre_y)
        turned.append(cv2.warpAffine(surrounding.image, matrix, (side, side), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT))
    return turned


def zoom_in_surrounding(source: TileSource, corners_lonlat: np.ndarray, max_zoom: int,
                        span: float = 1.5) -> GeoImage | None:
    """A finer surrounding image around a photo already found on a coarse one (coarse-to-fine):
    the 3x3 neighbourhood of the finest zoom (at most ``max_zoom``) at which the photo spans at
    most ``span`` tiles (1.5: half the neighbourhood, so it stays inside), around the photo's
    centre (the caller checks it is finer than what it had).

    ``corners_lonlat``: (4, 2) lon/lat of the photo's corners on the coarse image."""
    import math

    corners = np.asarray(corners_lonlat, float)
    if not np.isfinite(corners).all():
        return None
    lon = corners[:, 0]
    middle = float(lon.mean())
    lon = (lon - middle + 180.0) % 360.0 - 180.0 + middle  # across the antimeridian
    centre_lon, centre_lat = float(lon.mean()), float(corners[:, 1].mean())
    width_deg = max(float(np.ptp(lon)), float(np.ptp(corners[:, 1])) / max(math.cos(math.radians(centre_lat)), 0.05))
    if width_deg <= 0:
        return None
    zoom = min(max_zoom, int(math.floor(math.log2(360.0 * span / width_deg))))
    if zoom < 0:
        return None
    centre_lon = (centre_lon + 180.0) % 360.0 - 180.0
    return surrounding_image(source, tile_at(centre_lon, max(-85.0, min(85.0, centre_lat)), zoom))
