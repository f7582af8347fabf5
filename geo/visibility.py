"""Where on Earth a satellite is visible from: a spherical cap around its sub-satellite point.

A ground point sees the satellite above elevation ``e`` when its Earth-central angle from the
sub-point is at most ``lambda = acos(R cos(e) / (R + h)) - e`` (horizon geometry, altitude
``h``). For the ISS at 420 km and ``e = 0`` that is 20.3°, ~2,260 km, ~16 million km².

The Earth is replaced by its osculating sphere at the sub-point (Gauss's mean radius of
curvature ``sqrt(M N)`` of WGS84 there): the cap's outline, drawn in geodetic lon/lat, and its
analytic area then agree with WGS84 geodesic measures to ~0.1%, at the equator as at a pole.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon

from geo.geojson import to_feature
from geo.lonlat import WGS84_GEOD, check_lat_lon, unwrap_longitudes, wrap_to_world

DEFAULT_VERTICES = 360


def earth_radius_km(lat: float) -> float:
    """Gaussian mean radius of curvature ``sqrt(M N)`` of WGS84 at geodetic latitude ``lat``, km."""
    a_km = WGS84_GEOD.a / 1000.0
    e2 = WGS84_GEOD.es
    w2 = 1.0 - e2 * math.sin(math.radians(lat)) ** 2
    return a_km * math.sqrt(1.0 - e2) / w2


def _check(lat: float, alt_km: float, min_elevation_deg: float) -> None:
    check_lat_lon(lat, 0.0, "sub-satellite point")
    if not (_is_number(alt_km) and math.isfinite(alt_km) and alt_km > 0):
        raise ValueError(f"altitude must be a positive number of km, got {alt_km!r}")
    if not (_is_number(min_elevation_deg) and 0.0 <= min_elevation_deg < 90.0):
        raise ValueError(f"minimum elevation must lie in [0, 90) degrees, got {min_elevation_deg!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def horizon_angle_deg(lat: float, alt_km: float, min_elevation_deg: float = 0.0) -> float:
    """Earth-central angle (degrees) from the sub-point to the edge of the visibility region."""
    _check(lat, alt_km, min_elevation_deg)
    radius = earth_radius_km(lat)
    elevation = math.radians(min_elevation_deg)
    return math.degrees(math.acos(radius * math.cos(elevation) / (radius + alt_km)) - elevation)


def visibility_radius_km(lat: float, alt_km: float, min_elevation_deg: float = 0.0) -> float:
    """Ground distance (km) from the sub-point to the edge of the visibility region."""
    return earth_radius_km(lat) * math.radians(horizon_angle_deg(lat, alt_km, min_elevation_deg))


def visibility_area_km2(lat: float, alt_km: float, min_elevation_deg: float = 0.0) -> float:
    """Analytic area (km²) of the visibility region: the cap area ``2 pi R² (1 - cos lambda)``."""
    angle = math.radians(horizon_angle_deg(lat, alt_km, min_elevation_deg))
    return 2.0 * math.pi * earth_radius_km(lat) ** 2 * (1.0 - math.cos(angle))


def visibility_region(
    lat: float, lon: float, alt_km: float, min_elevation_deg: float = 0.0, n_vertices: int = DEFAULT_VERTICES
) -> Polygon | MultiPolygon:
    """The ground points that see a satellite above ``min_elevation_deg``, as EPSG:4326 lon/lat.

    ``lat``, ``lon``: sub-satellite point (degrees); ``alt_km``: its altitude. The outline has
    ``n_vertices`` points. A region across the antimeridian is a MultiPolygon split at ±180; a
    region holding a pole runs along its polar edge at lat ±90 over all longitudes.
    """
    check_lat_lon(lat, lon, "sub-satellite point")
    angle = horizon_angle_deg(lat, alt_km, min_elevation_deg)
    if n_vertices < 8:
        raise ValueError(f"n_vertices must be at least 8, got {n_vertices}")
    radius_m = earth_radius_km(lat) * 1000.0
    sphere = Geod(a=radius_m, b=radius_m)
    azimuths = np.linspace(0.0, 360.0, n_vertices, endpoint=False)
    ring_lon, ring_lat, _ = sphere.fwd(
        np.full(n_vertices, float(lon)), np.full(n_vertices, float(lat)), azimuths,
        np.full(n_vertices, radius_m * math.radians(angle)),
    )
    if 90.0 - abs(lat) < angle:
        return _polar_cap(np.asarray(ring_lon), np.asarray(ring_lat), pole_lat=math.copysign(90.0, lat))
    return wrap_to_world(Polygon(np.column_stack([unwrap_longitudes(ring_lon, float(lon)), ring_lat])))


def _polar_cap(ring_lon: np.ndarray, ring_lat: np.ndarray, pole_lat: float) -> Polygon:
    """A cap holding a pole as a lon/lat polygon: its rim (met once by every meridian, so
    ordered by longitude) from -180 to 180, then back along the polar edge at lat ±90."""
    order = np.argsort(ring_lon)
    lon, lat = ring_lon[order], ring_lat[order]
    # The rim's latitude where it crosses the antimeridian, between its last and first points.
    span = lon[0] + 360.0 - lon[-1]
    edge_lat = lat[-1] + (lat[0] - lat[-1]) * (180.0 - lon[-1]) / span if span > 0 else lat[0]
    lon = np.concatenate([[-180.0], lon, [180.0, 180.0, -180.0]])
    lat = np.concatenate([[edge_lat], lat, [edge_lat, pole_lat, pole_lat]])
    return Polygon(np.column_stack([lon, lat]))


def visibility_feature(
    lat: float,
    lon: float,
    alt_km: float,
    min_elevation_deg: float = 0.0,
    properties: Mapping[str, Any] | None = None,
) -> dict:
    """The visibility region as a GeoJSON Feature (what ``/iss/visibility`` and the CLI return):
    properties ``sub_point``, ``min_elevation_deg``, ``radius_km``, ``area_km2`` (analytic), plus
    the caller's ``properties`` (time, TLE used...)."""
    region = visibility_region(lat, lon, alt_km, min_elevation_deg)
    summary = {
        "sub_point": {"lat": float(lat), "lon": float(lon), "alt_km": float(alt_km)},
        "min_elevation_deg": float(min_elevation_deg),
        "radius_km": visibility_radius_km(lat, alt_km, min_elevation_deg),
        "area_km2": visibility_area_km2(lat, alt_km, min_elevation_deg),
    }
    return to_feature(region, {**summary, **(properties or {})})
