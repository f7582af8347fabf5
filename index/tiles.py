"""Web-Mercator XYZ tile math (the slippy-map grid of OSM, Google, Sentinel-2 mosaics, s2maps).

At zoom ``z`` the square Web-Mercator world (latitudes clipped to +/-85.0511 deg) is cut into
``2**z x 2**z`` tiles; ``x`` grows eastwards from the antimeridian, ``y`` southwards from the top.
Positions inside the grid are written in *tile units*: fractional ``(tx, ty)`` with the world
spanning ``[0, 2**z]`` on both axes.

AstroLoc's database uses overlapping tiles, so a :class:`Tile` may also sit on a finer grid of
``steps`` positions per tile width: ``steps=2`` puts a tile every half tile (every point of the
world then lies in 4 tiles); ``steps=1`` is the plain XYZ grid. Tiles on the last column of an
overlapping grid straddle the antimeridian; their polygons are split into two parts.

Everything is in EPSG:4326 degrees (lon, lat order, like shapely and GeoJSON).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

# Web Mercator stops where the projected world becomes a square: atan(sinh(pi)).
MAX_LATITUDE = math.degrees(math.atan(math.sinh(math.pi)))
MAX_ZOOM = 30
DEFAULT_TILE_SIZE = 256
# WGS84 equatorial radius: Web Mercator projects onto a sphere of this radius.
EQUATORIAL_RADIUS_M = 6_378_137.0

_GEOD = Geod(ellps="WGS84")
# Tile edges along parallels are densified before geodesic area sums (edges are not geodesics).
_AREA_DENSIFY_DEG = 0.25


@dataclass(frozen=True, order=True)
class Tile:
    """One tile: zoom ``z``, column ``x``, row ``y`` on a grid of ``steps`` positions per tile.

    With ``steps=1`` this is the ordinary XYZ tile ``z/x/y``. With ``steps=s`` the tile's top-left
    corner is at tile units ``(x/s, y/s)`` and it is still one tile wide, so neighbours overlap by
    ``1 - 1/s`` of a tile.
    """

    z: int
    x: int
    y: int
    steps: int = 1

    def __post_init__(self) -> None:
        for name in ("z", "x", "y", "steps"):
            if not isinstance(getattr(self, name), (int, np.integer)):
                raise TypeError(f"tile {name} must be an integer, got {getattr(self, name)!r}")
        if not 0 <= self.z <= MAX_ZOOM:
            raise ValueError(f"zoom must be in 0..{MAX_ZOOM}, got {self.z}")
        if self.steps < 1:
            raise ValueError(f"steps per tile must be >= 1, got {self.steps}")
        columns, rows = grid_shape(self.z, self.steps)
        if not 0 <= self.x < columns:
            raise ValueError(f"tile x={self.x} outside 0..{columns - 1} at zoom {self.z}")
        if not 0 <= self.y < rows:
            raise ValueError(f"tile y={self.y} outside 0..{rows - 1} at zoom {self.z}")

    @property
    def origin(self) -> tuple[float, float]:
        """Top-left corner in tile units ``(tx, ty)``."""
        return self.x / self.steps, self.y / self.steps

    def __str__(self) -> str:
        plain = f"{self.z}/{self.x}/{self.y}"
        return plain if self.steps == 1 else f"{plain}@{self.steps}"

    @classmethod
    def parse(cls, text: str) -> Tile:
        """Read ``"z/x/y"`` or ``"z/x/y@steps"`` (the form ``str(tile)`` writes)."""
        path, _, steps = text.strip().partition("@")
        parts = path.split("/")
        try:
            numbers = [int(p) for p in parts] + [int(steps) if steps else 1]
        except ValueError:
            numbers = []
        if len(numbers) != 4:
            raise ValueError(f"not a tile id (want z/x/y or z/x/y@steps): {text!r}")
        return cls(*numbers)


@dataclass(frozen=True)
class LonLatBounds:
    """A tile's extent in degrees. ``east`` exceeds 180 for a tile straddling the antimeridian."""

    west: float
    south: float
    east: float
    north: float


def grid_shape(z: int, steps: int = 1) -> tuple[int, int]:
    """Number of tile positions ``(columns, rows)`` at zoom ``z`` on a grid of ``steps`` per tile.

    Columns wrap around the globe, so all ``steps * 2**z`` of them exist; rows stop where the
    last tile still ends at the bottom edge of the Mercator square.
    """
    n = 2**z
    return steps * n, steps * (n - 1) + 1


def lonlat_to_tile_xy(lon, lat, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractional tile coordinates ``(tx, ty)`` of points at zoom ``z`` (vectorised).

    Latitudes beyond Mercator's +/-85.0511 deg are clipped to the edge of the map. Longitude 180
    gives ``tx = 2**z`` (the east edge), -180 gives 0.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    _check_lonlat(lon, lat)
    n = 2.0**z
    tx = (lon + 180.0) / 360.0 * n
    lat_rad = np.radians(np.clip(lat, -MAX_LATITUDE, MAX_LATITUDE))
    ty = (1.0 - np.arcsinh(np.tan(lat_rad)) / math.pi) / 2.0 * n
    return tx, np.clip(ty, 0.0, n)  # rounding at the clipped edge must not leave the map


def tile_xy_to_lonlat(tx, ty, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Degrees ``(lon, lat)`` of fractional tile coordinates at zoom ``z`` (inverse of the above)."""
    n = 2.0**z
    tx = np.asarray(tx, dtype=float)
    ty = np.asarray(ty, dtype=float)
    lon = tx / n * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(math.pi * (1.0 - 2.0 * ty / n))))
    return lon, lat


def tile_at(lon: float, lat: float, z: int) -> Tile:
    """The plain XYZ tile containing a point (longitude 180 wraps to the first column)."""
    tx, ty = lonlat_to_tile_xy(lon, lat, z)
    n = 2**z
    return Tile(z, int(math.floor(tx)) % n, min(int(math.floor(ty)), n - 1))


def tile_bounds(tile: Tile) -> LonLatBounds:
    """Extent of a tile in degrees (west in [-180, 180); east may exceed 180, see LonLatBounds)."""
    tx, ty = tile.origin
    west, north = tile_xy_to_lonlat(tx, ty, tile.z)
    east, south = tile_xy_to_lonlat(tx + 1.0, ty + 1.0, tile.z)
    return LonLatBounds(float(west), float(south), float(east), float(north))


def tile_polygon(tile: Tile) -> Polygon | MultiPolygon:
    """The tile's footprint in lon/lat: a box, or two boxes when it straddles the antimeridian.

    Web-Mercator tile edges are meridians and parallels, so the lon/lat box is exact.
    """
    b = tile_bounds(tile)
    if b.east <= 180.0:
        return box(b.west, b.south, b.east, b.north)
    return MultiPolygon(
        [box(b.west, b.south, 180.0, b.north), box(-180.0, b.south, b.east - 360.0, b.north)]
    )


def tile_area_km2(tile: Tile) -> float:
    """Geodesic area of the tile on the WGS84 ellipsoid, in km²."""
    return _tile_area_km2(tile.z, tile.y, tile.steps)


@lru_cache(maxsize=65536)
def _tile_area_km2(z: int, y: int, steps: int) -> float:
    # On an ellipsoid of revolution the area between two parallels grows linearly with the
    # longitude span, so measure a 1-degree-wide strip (a ring spanning 360 degrees would be
    # ambiguous to a geodesic polygon) and scale it. Parallels are densified: they are not geodesics.
    b = tile_bounds(Tile(z, 0, y, steps))
    strip = shapely.segmentize(box(0.0, b.south, 1.0, b.north), _AREA_DENSIFY_DEG)
    area_m2, _ = _GEOD.geometry_area_perimeter(strip)
    return abs(area_m2) / 1e6 * (b.east - b.west)


def ground_resolution_m(lat: float, z: int, tile_size: int = DEFAULT_TILE_SIZE) -> float:
    """Metres on the ground per tile pixel at latitude ``lat`` (Mercator scale is 1/cos(lat))."""
    _check_lonlat(np.asarray(0.0), np.asarray(lat, dtype=float))
    lat = min(max(lat, -MAX_LATITUDE), MAX_LATITUDE)
    world_pixels = tile_size * 2**z
    return math.cos(math.radians(lat)) * 2.0 * math.pi * EQUATORIAL_RADIUS_M / world_pixels


def tile_pixel_lonlat(tile: Tile, size: int = DEFAULT_TILE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of the centres of a ``size x size`` tile's pixel columns and rows.

    Mercator is separable, so one vector of ``size`` longitudes (columns, wrapped to [-180, 180))
    and one of ``size`` latitudes (rows, north to south) describe the whole pixel grid.
    """
    tx, ty = tile.origin
    centres = (np.arange(size) + 0.5) / size
    lon, _ = tile_xy_to_lonlat(tx + centres, np.zeros(size), tile.z)
    _, lat = tile_xy_to_lonlat(np.zeros(size), ty + centres, tile.z)
    return (lon + 180.0) % 360.0 - 180.0, lat


def lonlat_to_tile_pixel(
    tile: Tile, lon, lat, size: int = DEFAULT_TILE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(u, v)`` of points in a tile image (0..size across the tile).

    Longitudes are taken on the copy of the globe nearest to the tile, so points just across the
    antimeridian from a tile land just outside its edge rather than a world away.
    """
    tx, ty = lonlat_to_tile_xy(lon, lat, tile.z)
    n = 2.0**tile.z
    x0, y0 = tile.origin
    dx = (tx - (x0 + 0.5) + n / 2.0) % n - n / 2.0 + 0.5
    return dx * size, (ty - y0) * size


def tiles_at_zoom(z: int, steps: int = 1) -> Iterator[Tile]:
    """Every tile of the grid at zoom ``z`` (row by row)."""
    columns, rows = grid_shape(z, steps)
    for y in range(rows):
        for x in range(columns):
            yield Tile(z, x, y, steps)


def tiles_covering(geometry: BaseGeometry, z: int, steps: int = 1) -> list[Tile]:
    """All tiles at zoom ``z`` whose footprint meets ``geometry`` (lon/lat degrees), sorted.

    Tiles that only touch an areal geometry along an edge are left out. Parts of the geometry
    beyond +/-180 deg are wrapped onto the globe, so a footprint may be given either split at the
    antimeridian (a MultiPolygon) or with continuous longitudes (e.g. 170..190). Parts poleward of
    Mercator's +/-85.05 deg fall in the top or bottom row.
    """
    if not isinstance(geometry, BaseGeometry):
        raise TypeError(f"geometry must be a shapely geometry, got {type(geometry).__name__}")
    if geometry.is_empty:
        return []
    if not geometry.is_valid:
        raise ValueError(f"invalid geometry: {shapely.is_valid_reason(geometry)}")
    _check_bounds(geometry)
    clipped = _clip_to_mercator(wrap_longitudes(geometry))
    found: set[Tile] = set()
    for part in getattr(clipped, "geoms", [clipped]):
        if not part.is_empty:
            found.update(_tiles_meeting_part(part, z, steps))
    return sorted(found)


def wrap_longitudes(geometry: BaseGeometry) -> BaseGeometry:
    """Fold the parts of a lon/lat geometry lying beyond +/-180 deg back onto [-180, 180]."""
    west, _, east, _ = geometry.bounds
    if west >= -180.0 and east <= 180.0:
        return geometry
    pieces = []
    for shift in (-360.0, 0.0, 360.0):
        world = box(-180.0 - shift, -90.0, 180.0 - shift, 90.0)
        piece = geometry.intersection(world)
        if not piece.is_empty:
            pieces.append(shapely.transform(piece, lambda xy, s=shift: xy + [s, 0.0]))
    return shapely.union_all(pieces)


def _tiles_meeting_part(part: BaseGeometry, z: int, steps: int) -> list[Tile]:
    """Tiles meeting one connected part, found by testing every candidate in its bounding box."""
    west, south, east, north = part.bounds
    tx0, ty0 = lonlat_to_tile_xy(west, north, z)
    tx1, ty1 = lonlat_to_tile_xy(east, south, z)
    columns, rows = grid_shape(z, steps)
    # A tile at grid column c spans tile units [c/steps, c/steps + 1]: it may meet the part from
    # (steps - 1) positions left of the part's first column. One more candidate on every side
    # catches tiles that only share an edge or corner with points and lines.
    first_x = int(math.floor(float(tx0) * steps)) - steps
    first_y = int(math.floor(float(ty0) * steps)) - steps
    xs = np.arange(first_x, int(float(tx1) * steps) + 2)
    ys = np.arange(max(0, first_y), min(rows - 1, int(float(ty1) * steps) + 1) + 1)
    grid_x, grid_y = (a.ravel() for a in np.meshgrid(np.mod(xs, columns), ys))
    grid_x, grid_y = _unique_pairs(grid_x, grid_y)
    lon_w, lat_n = tile_xy_to_lonlat(grid_x / steps, grid_y / steps, z)
    lon_e, lat_s = tile_xy_to_lonlat(grid_x / steps + 1.0, grid_y / steps + 1.0, z)
    # Straddling tiles: also test their part east of the antimeridian, shifted by one world.
    hits = _meets(shapely.box(lon_w, lat_s, lon_e, lat_n), part)
    hits |= _meets(shapely.box(lon_w - 360.0, lat_s, lon_e - 360.0, lat_n), part)
    return [Tile(z, int(x), int(y), steps) for x, y in zip(grid_x[hits], grid_y[hits])]


def _meets(boxes: np.ndarray, part: BaseGeometry) -> np.ndarray:
    """Which boxes share more than a boundary with an areal part (or any point with a line/point)."""
    shapely.prepare(part)
    hits = shapely.intersects(boxes, part)
    if part.area > 0:
        hits &= ~shapely.touches(boxes, part)
    return hits


def _unique_pairs(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.unique(np.stack([xs, ys], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _clip_to_mercator(geometry: BaseGeometry) -> BaseGeometry:
    """Pull parts poleward of the Mercator edge onto it, so polar caps reach the edge rows."""
    world = box(-180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE)
    inside = geometry.intersection(world)
    if not inside.is_empty:
        return inside
    # Entirely poleward (e.g. a polar point): clamp its coordinates onto the map edge.
    return shapely.transform(
        geometry, lambda xy: np.column_stack([xy[:, 0], np.clip(xy[:, 1], -MAX_LATITUDE, MAX_LATITUDE)])
    )


def _check_bounds(geometry: BaseGeometry) -> None:
    west, south, east, north = geometry.bounds
    if south < -90.0 or north > 90.0:
        raise ValueError(f"geometry latitudes must lie in [-90, 90], got {south:.6g}..{north:.6g}")
    if west < -540.0 or east > 540.0:
        raise ValueError(f"geometry longitudes must lie in [-540, 540], got {west:.6g}..{east:.6g}")


def _check_lonlat(lon: np.ndarray, lat: np.ndarray) -> None:
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise ValueError("longitude and latitude must be finite numbers")
    if np.any(np.abs(lat) > 90.0):
        raise ValueError(f"latitude must lie in [-90, 90], got {float(np.max(np.abs(lat))):.6g}")
