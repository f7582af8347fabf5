"""Photo footprints: four ground corners -> lon/lat polygon, area and overlap (IoU) on WGS84.

Corners come as EOL lists them: lower-left, upper-left, upper-right, lower-right, each as
``(lat, lon)`` in degrees. Polygons are EPSG:4326 ``(lon, lat)``; a footprint across the
antimeridian becomes a MultiPolygon split at ±180 (see :mod:`geo.lonlat`).

Overlaps are measured in a cylindrical equal-area plane of the WGS84 ellipsoid, where planar
areas are ellipsoidal areas: one vectorised shapely call then scores thousands of pairs, and
pieces split at the antimeridian stay side by side (x = ±pi a), so nothing special is needed there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from geo.lonlat import check_lat_lon, geodesic_area_km2, to_equal_area, unwrap_longitudes, wrap_to_world

CORNER_ORDER = ("LL", "UL", "UR", "LR")
DEFAULT_MIN_IOU = 0.2


def footprint_polygon(corners: Sequence[Sequence[float]]) -> Polygon | MultiPolygon:
    """The footprint of four ``(lat, lon)`` corners in EOL order (LL, UL, UR, LR) as a lon/lat
    (Multi)Polygon; ValueError for corners that are missing, out of range, span more than half
    the globe in longitude or cross each other."""
    try:
        lat_lon = np.asarray(corners, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"footprint corners must be four (lat, lon) number pairs, got {corners!r}") from None
    if lat_lon.shape != (4, 2):
        raise ValueError(f"a footprint has four (lat, lon) corners, got an array of shape {lat_lon.shape}")
    lat, lon = check_lat_lon(lat_lon[:, 0], lat_lon[:, 1], "footprint corner")
    lon = unwrap_longitudes(lon, float(lon[0]))
    if np.ptp(lon) >= 180.0:
        raise ValueError(f"footprint corners span {np.ptp(lon):.1f}° of longitude; not a photo footprint")
    polygon = Polygon(np.column_stack([lon, lat]))
    if not polygon.is_valid or polygon.area == 0:
        raise ValueError(
            f"footprint corners {lat_lon.tolist()} do not outline a simple quadrilateral "
            f"(expected the order {', '.join(CORNER_ORDER)})"
        )
    return wrap_to_world(polygon)


def footprint_area_km2(corners: Sequence[Sequence[float]]) -> float:
    """Geodesic area (km², WGS84) of the footprint of four ``(lat, lon)`` corners."""
    return geodesic_area_km2(footprint_polygon(corners))


def footprint_ious(first, second) -> np.ndarray:
    """Intersection over union, by WGS84 area, of lon/lat geometries paired element by element.

    ``first`` and ``second`` are geometries or arrays of them (numpy broadcasting applies);
    returns a float array of IoUs in [0, 1]. Accurate to ~0.1% against geodesic areas.
    """
    return _planar_ious(_equal_area_array(first), _equal_area_array(second))


def footprint_iou(first, second) -> float:
    """Intersection over union of two lon/lat footprints (WGS84 areas), in [0, 1]."""
    return float(footprint_ious(first, second))


def overlapping_pairs(
    first, second, min_iou: float = DEFAULT_MIN_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` with IoU(first[i], second[j]) > ``min_iou`` (e.g. photos vs tiles).

    Candidate pairs come from an STR-tree on ``second``; returns index arrays ``i``, ``j`` and
    their IoUs.
    """
    if not 0.0 <= min_iou < 1.0:
        raise ValueError(f"min_iou must lie in [0, 1), got {min_iou}")
    first, second = _equal_area_array(first), _equal_area_array(second)
    i, j = shapely.STRtree(second).query(first, predicate="intersects")
    iou = _planar_ious(first[i], second[j])
    keep = iou > min_iou
    return i[keep], j[keep], iou[keep]


def _equal_area_array(geometries) -> np.ndarray:
    """Lon/lat geometries (one or many) as an object array in the equal-area plane."""
    return np.asarray(to_equal_area(np.asarray(geometries, dtype=object)), dtype=object)


def _planar_ious(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Element-wise IoU of equal-area-plane geometries (planar areas are WGS84 areas there)."""
    intersection = shapely.area(shapely.intersection(first, second))
    union = shapely.area(first) + shapely.area(second) - intersection
    return np.divide(intersection, union, out=np.zeros(np.shape(union)), where=union > 0)
