"""A photo's footprint from its camera attitude: stars give the orientation, the orbit the position.

A star identification (starid) gives the rotation from the camera frame to ICRS. At the capture
time skyfield turns ICRS into the Earth-fixed ITRS (IAU precession-nutation, Earth rotation from
UT1, polar motion: :func:`icrs_to_itrs`), SGP4 places the ISS in ITRS (:func:`iss_state_itrs`),
and the rays of the image's corners and of a grid over it are cast onto the WGS84 ellipsoid. When
the limb is in the frame only the ground part is kept: the polygon is the hull of the image-border
rays that hit the Earth and of the limb points, found by bisection between neighbouring grid rays
that hit and miss (a hull of border rays alone would cut off the ground just below the horizon,
where one pixel covers tens of kilometres).

Conventions (as in starid.geometry and world.camera): camera frame x right, y down, z along the
boresight; pixel origin at the image's top-left corner, principal point at its centre, a pinhole
without distortion. Corners in EOL order: lower-left, upper-left, upper-right, lower-right.

The error estimate (:func:`corner_uncertainty_km`) propagates, to first order, three independent
sources to each ground corner: the attitude covariance of the star solution
(:func:`attitude_covariance`, Shuster's QUEST measurement model), the TLE's position error (an
isotropic sigma growing with the TLE's age) and the capture time's uncertainty (the ISS moves
7.7 km/s and the Earth turns under it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from shapely.geometry import MultiPoint
from shapely.geometry.base import BaseGeometry
from skyfield.framelib import itrs

from geo.ecef import ecef_to_geodetic, intersect_ellipsoid
from geo.lonlat import WGS84_GEOD, wrap_to_world
from geo.orbit import DEFAULT_MAX_TLE_AGE_DAYS, MEAN_EARTH_RADIUS_KM, _satellite
from geo.sky import skyfield_time
from geo.tle import nearest_tle

# The image corners (u, v) in units of width and height, EOL order LL, UL, UR, LR.
CORNER_FRACTIONS = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
DEFAULT_GRID = 33  # rays per image side for the ground outline and the limb search
_LIMB_BISECTIONS = 30  # halvings of a grid step: 2^-30 of ~30 px, far below a pixel
# SGP4 with a fresh ISS element set: about a kilometre at epoch, a few more per day of age
# (Vallado et al. 2006; ISS drag makes it grow faster than for most satellites).
TLE_SIGMA_AT_EPOCH_KM = 1.0
TLE_SIGMA_GROWTH_KM_PER_DAY = 2.0
# A capture time read from EXIF has one-second resolution: uniform rounding is 0.29 s sigma.
DEFAULT_TIME_SIGMA_S = 0.29


@dataclass(frozen=True)
class IssState:
    """The ISS in ITRS (Earth-fixed, metres and m/s) at one time, and the element set used."""

    position_m: np.ndarray  # (3,)
    velocity_m_s: np.ndarray  # (3,) Earth-fixed velocity (includes the Earth's rotation)
    tle_epoch: datetime
    tle_age_days: float

    @property
    def position_sigma_km(self) -> float:
        """1-sigma position error of SGP4 for this element set's age (see the module constants)."""
        return TLE_SIGMA_AT_EPOCH_KM + TLE_SIGMA_GROWTH_KM_PER_DAY * self.tle_age_days


@dataclass(frozen=True)
class PinholeImage:
    """The image geometry: size in pixels and focal length in pixels (principal point centred)."""

    width: int
    height: int
    focal_px: float

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2 or not (math.isfinite(self.focal_px) and self.focal_px > 0):
            raise ValueError(f"bad image geometry: {self.width} x {self.height} px, focal {self.focal_px} px")

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float) -> PinholeImage:
        """From the horizontal field of view (degrees)."""
        return cls(int(width), int(height), 0.5 * width / math.tan(math.radians(fov_deg) / 2.0))

    def camera_rays(self, u, v) -> np.ndarray:
        """Unit camera-frame directions of image points ``(u, v)``, shape ``(..., 3)``."""
        u, v = np.broadcast_arrays(np.asarray(u, dtype=float), np.asarray(v, dtype=float))
        rays = np.stack([(u - self.width / 2.0) / self.focal_px, (v - self.height / 2.0) / self.focal_px,
                         np.ones_like(u)], axis=-1)
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    def project(self, camera_vectors: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` of camera-frame directions (NaN behind the camera)."""
        vectors = np.asarray(camera_vectors, dtype=float)
        z = np.where(vectors[..., 2] > 0, vectors[..., 2], np.nan)
        return np.stack([self.width / 2.0 + self.focal_px * vectors[..., 0] / z,
                         self.height / 2.0 + self.focal_px * vectors[..., 1] / z], axis=-1)


@dataclass(frozen=True)
class AttitudeFootprint:
    """Where an oriented camera's image lies on the ground."""

    corners: np.ndarray  # (4, 2) lon/lat of LL, UL, UR, LR; NaN for a corner that sees the sky
    centre: tuple[float, float] | None  # lon/lat where the boresight meets the ground; None: sky
    polygon: BaseGeometry | None  # lon/lat outline of the ground part (antimeridian-split); None: no ground
    ground_fraction: float  # share of the image that sees the Earth (0..1)
    corner_uncertainty_km: np.ndarray | None = None  # (4,) 1-sigma per corner; NaN for sky corners

    @property
    def limb_in_frame(self) -> bool:
        return 0.0 < self.ground_fraction < 1.0

    def corners_lat_lon(self) -> list[tuple[float, float] | None]:
        """Corners as (lat, lon) in EOL order, None for one that sees the sky."""
        return [None if np.isnan(lon) else (float(lat), float(lon)) for lon, lat in self.corners]


def tangent_altitude_km(origin_m: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Lowest altitude (km, above the mean-radius sphere) of rays from ``origin_m`` along unit
    ``directions`` (..., 3): how close a ray that misses the Earth grazes it (the limb's glow,
    extinction of starlight). Rays pointing away from the Earth give the origin's altitude."""
    origin = np.asarray(origin_m, dtype=float)
    along = np.clip(-(np.asarray(directions, dtype=float) @ origin), 0.0, None)
    closest = origin + along[..., None] * directions
    return np.linalg.norm(closest, axis=-1) / 1000.0 - MEAN_EARTH_RADIUS_KM


def icrs_to_itrs(when: datetime) -> np.ndarray:
    """The 3 x 3 rotation taking ICRS (GCRS) directions to ITRS at ``when`` (zone-aware)."""
    return np.asarray(itrs.rotation_at(skyfield_time(when)), dtype=float)


def iss_state_itrs(
    when: datetime, tles: Iterable[object], max_age_days: float = DEFAULT_MAX_TLE_AGE_DAYS
) -> IssState:
    """The ISS position and Earth-fixed velocity at ``when`` from the TLE of nearest epoch (SGP4 ->
    TEME -> ITRS by skyfield). ValueError when that TLE is more than ``max_age_days`` away."""
    tle, age_days = nearest_tle(when, tles)
    if age_days > max_age_days:
        raise ValueError(
            f"the nearest TLE (epoch {tle.epoch:%Y-%m-%dT%H:%M:%SZ}) is {age_days:.1f} days from the capture "
            f"time, beyond the {max_age_days:g}-day limit: the ISS position is unknown"
        )
    position = _satellite(tle.line1, tle.line2).at(skyfield_time(when))
    xyz, velocity = position.frame_xyz_and_velocity(itrs)
    if not np.all(np.isfinite(xyz.m)):
        raise ValueError(f"SGP4 cannot propagate the TLE of epoch {tle.epoch:%Y-%m-%d %H:%M}Z to the capture time")
    return IssState(np.asarray(xyz.m, float), np.asarray(velocity.m_per_s, float), tle.epoch, age_days)


def earth_fixed_rotation(rotation_icrs: np.ndarray, when: datetime) -> np.ndarray:
    """Camera -> ITRS rotation from camera -> ICRS at ``when``: the columns are the camera axes in ITRS."""
    return icrs_to_itrs(when) @ np.asarray(rotation_icrs, dtype=float)


def _ground_hits(position_m, rotation_ecef, image: PinholeImage, u, v):
    return intersect_ellipsoid(position_m, image.camera_rays(u, v) @ rotation_ecef.T)


def footprint_from_attitude(
    rotation_icrs: np.ndarray,
    position_itrs_m: np.ndarray,
    when: datetime,
    image: PinholeImage,
    grid: int = DEFAULT_GRID,
) -> AttitudeFootprint:
    """Cast the image's rays from the ISS onto the WGS84 ellipsoid (see the module docstring).

    ``rotation_icrs``: camera -> ICRS (a star solution's rotation); ``position_itrs_m``: the camera
    in ITRS metres; ``when``: the capture time, for the Earth's orientation.
    """
    rotation = earth_fixed_rotation(rotation_icrs, when)
    position = np.asarray(position_itrs_m, dtype=float).reshape(3)
    return _footprint(rotation, position, image, grid)


def _footprint(rotation: np.ndarray, position: np.ndarray, image: PinholeImage, grid: int) -> AttitudeFootprint:
    corner_uv = CORNER_FRACTIONS * [image.width, image.height]
    corner_points, _ = _ground_hits(position, rotation, image, corner_uv[:, 0], corner_uv[:, 1])
    corner_lon, corner_lat, _ = ecef_to_geodetic(corner_points)
    centre_point, centre_hit = _ground_hits(position, rotation, image, image.width / 2.0, image.height / 2.0)
    centre = None
    if bool(centre_hit):
        lon, lat, _ = ecef_to_geodetic(centre_point)
        centre = (float(lon), float(lat))

    steps = np.linspace(0.0, 1.0, grid)
    u, v = np.meshgrid(steps * image.width, steps * image.height)
    points, hit = _ground_hits(position, rotation, image, u, v)
    ground_fraction = float(hit[:-1, :-1].mean()) if grid > 2 else float(hit.mean())
    if not hit.any():
        return AttitudeFootprint(np.column_stack([corner_lon, corner_lat]), centre, None, 0.0)

    border = np.zeros_like(hit)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    outline = [points[border & hit]]
    # Limb crossings between neighbours (along rows and columns) where one ray hits and one misses.
    for axis in (0, 1):
        first = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        second = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        crossing = hit[first] != hit[second]
        if crossing.any():
            inside_uv = np.where(hit[first][crossing][:, None],
                                 np.column_stack([u[first][crossing], v[first][crossing]]),
                                 np.column_stack([u[second][crossing], v[second][crossing]]))
            outside_uv = np.where(hit[first][crossing][:, None],
                                  np.column_stack([u[second][crossing], v[second][crossing]]),
                                  np.column_stack([u[first][crossing], v[first][crossing]]))
            outline.append(_limb_points(position, rotation, image, inside_uv, outside_uv))
    ground = np.concatenate(outline)
    lon, lat, _ = ecef_to_geodetic(ground)
    reference = centre[0] if centre else float(np.median(lon))
    lon = (lon - reference + 180.0) % 360.0 - 180.0 + reference
    hull = MultiPoint(np.column_stack([lon, lat])).convex_hull
    polygon = wrap_to_world(hull) if hull.geom_type == "Polygon" else None
    return AttitudeFootprint(np.column_stack([corner_lon, corner_lat]), centre, polygon, ground_fraction)


def _limb_points(position, rotation, image, inside_uv, outside_uv) -> np.ndarray:
    """Bisect each segment (a ray that hits -> one that misses) to the last ray that hits."""
    inside, outside = inside_uv.astype(float).copy(), outside_uv.astype(float).copy()
    for _ in range(_LIMB_BISECTIONS):
        middle = 0.5 * (inside + outside)
        _, hit = _ground_hits(position, rotation, image, middle[:, 0], middle[:, 1])
        inside[hit], outside[~hit] = middle[hit], middle[~hit]
    points, _ = _ground_hits(position, rotation, image, inside[:, 0], inside[:, 1])
    return points


def attitude_covariance(camera_vectors: np.ndarray, catalog_vectors: np.ndarray, rotation: np.ndarray,
                        min_sigma_rad: float) -> np.ndarray:
    """3 x 3 covariance (rad^2) of a star solution's small rotation, in the camera frame.

    Shuster's QUEST measurement model: each star's direction is known to sigma radians in the two
    axes across it, so P = sigma^2 (sum_i (I - s_i s_i^T))^-1. sigma is the rms of the fit's
    residuals (two degrees of freedom a star, three taken by the rotation), floored at
    ``min_sigma_rad`` (a few stars can fit better than their centroids are known).
    """
    s = np.asarray(camera_vectors, dtype=float)
    c = np.asarray(catalog_vectors, dtype=float)
    if len(s) < 2:
        raise ValueError("an attitude covariance needs at least 2 stars")
    residual = c - s @ np.asarray(rotation, dtype=float).T
    dof = max(2 * len(s) - 3, 1)
    sigma = max(math.sqrt(float((residual**2).sum()) / dof), min_sigma_rad)
    information = np.sum(np.eye(3)[None] - s[:, :, None] * s[:, None, :], axis=0)
    return sigma**2 * np.linalg.inv(information)


def _small_rotation(vector: np.ndarray) -> np.ndarray:
    """Rotation matrix of a small rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(vector))
    if angle < 1e-15:
        return np.eye(3)
    k = vector / angle
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * skew + (1.0 - math.cos(angle)) * skew @ skew


def corner_uncertainty_km(
    rotation_icrs: np.ndarray,
    state: IssState,
    when: datetime,
    image: PinholeImage,
    attitude_cov: np.ndarray,
    time_sigma_s: float = DEFAULT_TIME_SIGMA_S,
) -> np.ndarray:
    """1-sigma ground error (km) of each corner (LL, UL, UR, LR; NaN for a sky corner), to first order.

    Each source is perturbed by one sigma along its principal axes: the attitude by the eigen-axes
    of ``attitude_cov`` (camera frame), the position by the TLE's sigma along x, y, z, the time by
    ``time_sigma_s`` (the ISS along its velocity, the Earth turning under the fixed attitude); the
    corner's ground displacements add in quadrature. Near the limb they grow without bound, as
    they should: there a grazing ray's ground point hardly depends on where it was aimed.
    """
    corner_uv = CORNER_FRACTIONS * [image.width, image.height]
    rotation = earth_fixed_rotation(rotation_icrs, when)

    def corners(rot: np.ndarray, position: np.ndarray) -> np.ndarray:
        points, _ = _ground_hits(position, rot, image, corner_uv[:, 0], corner_uv[:, 1])
        return points

    base = corners(rotation, state.position_m)
    squared = np.zeros(4)
    values, axes = np.linalg.eigh(np.asarray(attitude_cov, dtype=float))
    perturbed = [corners(rotation @ _small_rotation(axis * math.sqrt(max(value, 0.0))), state.position_m)
                 for value, axis in zip(values, axes.T, strict=True)]
    sigma_m = state.position_sigma_km * 1000.0
    perturbed += [corners(rotation, state.position_m + sigma_m * np.eye(3)[k]) for k in range(3)]
    if time_sigma_s > 0:
        later = when + timedelta(seconds=time_sigma_s)
        perturbed.append(corners(earth_fixed_rotation(rotation_icrs, later),
                                 state.position_m + state.velocity_m_s * time_sigma_s))
    for points in perturbed:
        squared += np.sum((points - base) ** 2, axis=1)  # NaN where either misses the Earth
    return np.sqrt(squared) / 1000.0


def corner_errors_km(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Geodesic distances (km) between matching lon/lat corners ``(4, 2)``; NaN where either is NaN."""
    estimated, truth = np.asarray(estimated, float), np.asarray(truth, float)
    both = np.all(np.isfinite(estimated), axis=1) & np.all(np.isfinite(truth), axis=1)
    errors = np.full(len(estimated), np.nan)
    if both.any():
        _, _, distance = WGS84_GEOD.inv(estimated[both, 0], estimated[both, 1], truth[both, 0], truth[both, 1])
        errors[both] = np.asarray(distance) / 1000.0
    return errors
