"""A picture to check a footprint at a glance: the photo warped onto its map, outline drawn.

The map context is stitched from database tiles around the footprint at a zoom where it spans a
few hundred pixels; the photo is warped onto it through the homography its 4 corners define and
blended in; the footprint is outlined in yellow, a reference footprint (the catalogue's, or the
truth) in cyan.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.lonlat import unwrap_longitudes
from index.sources import TileError, TileSource
from index.tiles import MAX_ZOOM, lonlat_to_tile_xy

FOOTPRINT_COLOUR = (255, 220, 0)  # RGB
REFERENCE_COLOUR = (0, 230, 255)
TARGET_SPAN_PX = 420  # the footprint's larger side on the picture


def _outline(footprint: BaseGeometry) -> np.ndarray:
    """Exterior lon/lat ring with continuous longitudes (a MultiPolygon split at 180 rejoined)."""
    if isinstance(footprint, MultiPolygon):
        ring = np.concatenate([np.asarray(p.exterior.coords) for p in footprint.geoms])
    else:
        ring = np.asarray(Polygon(footprint).exterior.coords)
    lon = unwrap_longitudes(ring[:, 0], float(ring[0, 0]))
    return np.column_stack([lon, ring[:, 1]])


def _tile_xy(lonlat: np.ndarray, zoom: int) -> np.ndarray:
    n = 2.0**zoom
    wrapped = ((lonlat[:, 0] + 180.0) % 360.0) - 180.0
    tx, ty = lonlat_to_tile_xy(wrapped, lonlat[:, 1], zoom)
    tx = tx + np.round((lonlat[:, 0] - wrapped) / 360.0) * n  # keep continuous across 180
    return np.column_stack([tx, ty])


def _warp_photo(photo_rgb: np.ndarray, corners_px: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo warped onto a ``shape`` (rows, columns) canvas whose pixels hold the footprint's
    4 vertices at ``corners_px``, and the mask of the pixels it covers (255 inside).

    The footprint's vertices come in EOL order LL, UL, UR, LR (geo.footprint_polygon: the ring
    starts at lower-left), i.e. the image's BL, TL, TR, BR corners.
    """
    ll, ul, ur, lr = np.float32(corners_px)
    height, width = photo_rgb.shape[:2]
    source_corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(source_corners, np.float32([ul, ur, lr, ll]))
    size = (int(shape[1]), int(shape[0]))
    warped = cv2.warpPerspective(photo_rgb, matrix, size)
    mask = cv2.warpPerspective(np.full((height, width), 255, np.uint8), matrix, size)
    return warped, mask


def footprint_picture(
    photo_rgb: np.ndarray,
    footprint: BaseGeometry,
    source: TileSource,
    zoom: int | None = None,
    truth: BaseGeometry | None = None,
) -> bytes:
    """PNG bytes of the photo warped onto the map around ``footprint`` (lon/lat); ``zoom``
    defaults to the source's zoom level closest to a ~420-px footprint."""
    ring = _outline(footprint)
    if zoom is None:
        span = np.ptp(_tile_xy(ring, 0), axis=0).max()  # in zoom-0 tiles
        zoom = int(np.clip(round(math.log2(TARGET_SPAN_PX / (source.tile_size * max(span, 1e-9)))), 0, MAX_ZOOM))
        available = source.zooms() if hasattr(source, "zooms") else []
        if available:  # a local tile directory holds only some zoom levels
            zoom = min(available, key=lambda z: abs(z - zoom))
    side = source.tile_size
    n = 2**zoom
    outline_tiles = _tile_xy(ring, zoom)
    lo = np.floor(outline_tiles.min(axis=0) - 0.5).astype(int)
    hi = np.ceil(outline_tiles.max(axis=0) + 0.5).astype(int)
    lo[1], hi[1] = max(lo[1], 0), min(hi[1], n)
    columns, rows = int(hi[0] - lo[0]), int(hi[1] - lo[1])
    if columns * rows > 64:
        raise ValueError(f"footprint too large to draw at zoom {zoom} ({columns} x {rows} tiles)")
    canvas = np.zeros((rows * side, columns * side, 3), np.uint8)
    for row in range(rows):
        for column in range(columns):
            try:
                tile = source.read_plain_tile(zoom, int(lo[0] + column) % n, int(lo[1] + row))
            except (TileError, OSError):
                continue
            canvas[row * side : (row + 1) * side, column * side : (column + 1) * side] = tile

    def to_px(lonlat: np.ndarray) -> np.ndarray:
        return (_tile_xy(lonlat, zoom) - lo) * side

    outline_px = to_px(ring)
    if len(ring) == 5:
        warped, mask = _warp_photo(photo_rgb, outline_px[:4], canvas.shape[:2])
        inside = mask > 0
        canvas[inside] = (0.35 * canvas[inside] + 0.65 * warped[inside]).astype(np.uint8)
    if truth is not None:
        cv2.polylines(canvas, [np.int32(np.round(to_px(_outline(truth))))], True, REFERENCE_COLOUR, 2, cv2.LINE_AA)
    cv2.polylines(canvas, [np.int32(np.round(outline_px))], True, FOOTPRINT_COLOUR, 2, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def photo_overlay(photo_rgb: np.ndarray, footprint: BaseGeometry, max_side_px: int = 1024) -> bytes:
    """The photo warped into Web-Mercator pixels over the footprint's bounding box
    (:func:`photo_overlay_bounds`), for a web map to lay on its tiles: RGBA PNG bytes,
    transparent outside the photo.

    The larger side of the box is ``max_side_px`` pixels. A footprint that is not 4 corners (no
    homography to undo) gives an empty, fully transparent image over its box.
    """
    ring = _outline(footprint)
    world_px = _tile_xy(ring, 0)  # zoom-0 tile units: Web Mercator up to a scale
    lo, hi = world_px.min(axis=0), world_px.max(axis=0)
    scale = max_side_px / max(float((hi - lo).max()), 1e-12)
    columns, rows = (max(1, int(math.ceil(v))) for v in (hi - lo) * scale)
    rgba = np.zeros((rows, columns, 4), np.uint8)
    if len(ring) == 5:
        warped, mask = _warp_photo(photo_rgb, (world_px[:4] - lo) * scale, (rows, columns))
        rgba[..., :3] = warped
        rgba[..., 3] = mask
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def photo_overlay_bounds(footprint: BaseGeometry) -> tuple[float, float, float, float]:
    """(south, west, north, east) of :func:`photo_overlay`'s image, degrees; east > west (a box
    across 180 has east beyond 180, west is in [-180, 180))."""
    ring = _outline(footprint)
    west, east = float(ring[:, 0].min()), float(ring[:, 0].max())
    shift = 360.0 * math.floor((west + 180.0) / 360.0)
    return float(ring[:, 1].min()), west - shift, float(ring[:, 1].max()), east - shift
