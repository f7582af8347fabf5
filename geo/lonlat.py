"""Lon/lat (EPSG:4326) geometry shared by the visibility region and the photo footprints.

Conventions: shapely geometries hold ``(lon, lat)`` in degrees with lon in [-180, 180]; a shape
that crosses the antimeridian is cut there into a MultiPolygon (as GeoJSON, RFC 7946 §3.1.9,
asks), so planar shapely predicates in lon/lat stay right. Areas are measured on the WGS84
ellipsoid, never in square degrees.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

WGS84_GEOD = Geod(ellps="WGS84")
WORLD = box(-180.0, -90.0, 180.0, 90.0)
# Lambert cylindrical equal-area on WGS84 (standard parallel 0): areas measured in this plane
# are the ellipsoid's areas, so many intersections can be measured with vectorised shapely.
_TO_EQUAL_AREA = Transformer.from_crs(
    "EPSG:4326", "+proj=cea +lat_ts=0 +ellps=WGS84 +units=m", always_xy=True
)
# Edges are straight in lon/lat; densified to these steps (degrees) before being measured.
_EQUAL_AREA_SEGMENT_DEG = 0.25
_AREA_SEGMENT_DEG = 1.0


def check_lat_lon(lat, lon, what: str = "point") -> tuple[np.ndarray, np.ndarray]:
    """``lat``, ``lon`` (degrees, scalars or arrays) as float arrays; ValueError unless finite, lat
    in [-90, 90] and lon in [-180, 180]."""
    try:
        lat, lon = (np.asarray(value, dtype=float) for value in (lat, lon))
    except (TypeError, ValueError):
        raise ValueError(f"{what}: latitude and longitude must be numbers, got {lat!r}, {lon!r}") from None
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError(f"{what}: latitude and longitude must be finite numbers")
    if (np.abs(lat) > 90.0).any():
        raise ValueError(f"{what}: latitude must lie in [-90, 90] degrees, got {_worst(lat)}")
    if (np.abs(lon) > 180.0).any():
        raise ValueError(f"{what}: longitude must lie in [-180, 180] degrees, got {_worst(lon)}")
    return lat, lon


def _worst(values: np.ndarray) -> float:
    """The value farthest from zero, to quote in an error message."""
    return float(values.flat[np.argmax(np.abs(values))])


def unit_vectors(lat, lon) -> np.ndarray:
    """Unit vectors ``(..., 3)`` of lat/lon (degrees) in the Earth-fixed frame (x to lon 0, z north).

    For geodetic coordinates this is the ellipsoid's normal, i.e. the local vertical.
    """
    lat, lon = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def unwrap_longitudes(lon, reference: float) -> np.ndarray:
    """Longitudes made continuous along the sequence (no 360° jumps), the first one moved to
    within 180° of ``reference``, so a shape across the antimeridian can be drawn in one piece."""
    lon = np.unwrap(np.asarray(lon, dtype=float), period=360.0)
    return lon - 360.0 * np.round((lon[0] - reference) / 360.0)


def wrap_to_world(geometry: BaseGeometry) -> Polygon | MultiPolygon:
    """A polygon drawn in unwrapped longitudes (within one turn beyond ±180) cut at the
    antimeridian and moved back into [-180, 180]: a Polygon, or a MultiPolygon of the pieces."""
    min_lon, _, max_lon, _ = geometry.bounds
    if -180.0 <= min_lon and max_lon <= 180.0:
        return geometry
    pieces = []
    for shift in (-360.0, 0.0, 360.0):
        part = translate(geometry, xoff=shift).intersection(WORLD)
        pieces.extend(p for p in getattr(part, "geoms", [part]) if isinstance(p, Polygon) and p.area > 0)
    if not pieces:
        raise ValueError("the shape has no area inside the lon/lat world")
    return pieces[0] if len(pieces) == 1 else MultiPolygon(pieces)


def polygons_of(geometry: BaseGeometry) -> list[Polygon]:
    """The polygons making up a Polygon, MultiPolygon or GeometryCollection."""
    if isinstance(geometry, Polygon):
        return [] if geometry.is_empty else [geometry]
    return [polygon for part in getattr(geometry, "geoms", []) for polygon in polygons_of(part)]


def geodesic_distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """WGS84 geodesic distances (km) between points (arrays broadcast against each other)."""
    lat1, lon1, lat2, lon2 = np.broadcast_arrays(*(np.asarray(a, float) for a in (lat1, lon1, lat2, lon2)))
    _, _, metres = WGS84_GEOD.inv(lon1.ravel(), lat1.ravel(), lon2.ravel(), lat2.ravel())
    return np.asarray(metres, float).reshape(lat1.shape) / 1000.0


def geodesic_area_km2(geometry: BaseGeometry) -> float:
    """Area in km² on the WGS84 ellipsoid of a lon/lat (Multi)Polygon (pyproj Geod).

    Geod joins vertices by geodesics; edges are first cut into steps of at most 1° so that
    long straight lon/lat edges (tile sides along a parallel, a border at ±180) keep their
    course instead of being taken as the geodesic between their ends. pyproj signs areas by
    ring orientation (and a ring cutting the Earth in halves is either half): each polygon is
    oriented so its holes subtract, and counted positive.
    """
    dense = shapely.segmentize(geometry, _AREA_SEGMENT_DEG)
    polygons = [orient(polygon, 1.0) for polygon in polygons_of(dense)]
    return sum(abs(WGS84_GEOD.geometry_area_perimeter(polygon)[0]) for polygon in polygons) / 1e6


def to_equal_area(geometries):
    """Lon/lat geometries (one or an array) in the equal-area plane (metres): planar areas
    there are WGS84 areas. Edges are densified first so they keep their lon/lat course."""
    dense = shapely.segmentize(geometries, _EQUAL_AREA_SEGMENT_DEG)
    return shapely.transform(dense, lambda xy: np.column_stack(_TO_EQUAL_AREA.transform(xy[:, 0], xy[:, 1])))
