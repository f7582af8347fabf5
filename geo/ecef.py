"""Earth-centred, Earth-fixed (ECEF, EPSG:4978) coordinates on the WGS84 ellipsoid: conversions
to and from geodetic lon/lat/height (EPSG:4979, via pyproj), local east/north/up axes, and where
rays meet the ellipsoid. Shared by the simulated camera (world.camera) and the camera resection
of refinement (geo.resection).
"""

from __future__ import annotations

import numpy as np
from pyproj import Transformer

WGS84_A = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
_TO_ECEF = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
_TO_GEODETIC = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def geodetic_to_ecef(lon, lat, height_m=0.0) -> np.ndarray:
    """WGS84 lon/lat (degrees) and height (m) to ECEF metres, shape ``(..., 3)``; NaN stays NaN."""
    lon, lat, height_m = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (lon, lat, height_m)))
    if np.any(np.abs(lat) > 90.0) or np.any(np.isinf(lon)) or np.any(np.isinf(height_m)):
        raise ValueError("latitude must lie in [-90, 90]; longitude and height must be finite or NaN")
    x, y, z = _TO_ECEF.transform(lon, lat, height_m)
    points = np.stack([x, y, z], axis=-1)
    points[np.isnan(lon) | np.isnan(lat) | np.isnan(height_m)] = np.nan
    return points


def ecef_to_geodetic(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF metres ``(..., 3)`` to WGS84 lon, lat (degrees) and height (m); NaN stays NaN."""
    points = np.asarray(points, dtype=float)
    lon, lat, height = _TO_GEODETIC.transform(points[..., 0], points[..., 1], points[..., 2])
    lon, lat, height = (np.asarray(a, dtype=float) for a in (lon, lat, height))
    missing = ~np.all(np.isfinite(points), axis=-1)
    for a in (lon, lat, height):
        a[missing] = np.nan
    return lon, lat, height


def local_axes(lon: float, lat: float) -> np.ndarray:
    """East, north and up (the ellipsoid normal) unit vectors at a point, as ECEF rows."""
    lam, phi = np.radians(lon), np.radians(lat)
    east = np.array([-np.sin(lam), np.cos(lam), 0.0])
    north = np.array([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)])
    up = np.array([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    return np.stack([east, north, up])


def intersect_ellipsoid(origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First points where rays from ``origin`` meet the WGS84 ellipsoid.

    Returns ``(points (..., 3), hit (...))``; rays that miss the Earth (sky, space) give NaN.
    Scaling the axes by (1/a, 1/a, 1/b) turns the ellipsoid into the unit sphere, where the
    intersection is a quadratic in the ray parameter.
    """
    scale = np.array([WGS84_A, WGS84_A, WGS84_B])
    o = np.asarray(origin, dtype=float) / scale
    d = np.asarray(directions, dtype=float) / scale
    a = np.einsum("...i,...i->...", d, d)
    b = 2.0 * np.einsum("...i,i->...", d, o)
    c = float(o @ o) - 1.0
    discriminant = b * b - 4.0 * a * c
    hit = discriminant >= 0.0
    t = (-b - np.sqrt(np.where(hit, discriminant, 0.0))) / (2.0 * a)
    hit &= t > 0.0
    points = np.asarray(origin, dtype=float) + t[..., None] * np.asarray(directions, dtype=float)
    points[~hit] = np.nan
    return points, hit
