"""The simulated camera in orbit: pinhole + radial distortion, looking at the WGS84 ellipsoid.

Frames and conventions
- Positions and directions are Earth-centred, Earth-fixed (ECEF, EPSG:4978) metres; geodetic
  coordinates are WGS84 lon/lat/height (EPSG:4979), converted with pyproj.
- The camera frame is OpenCV's: x to the image's right, y down the image, z along the optical
  axis. ``rotation`` holds those three axes as ECEF columns.
- Image coordinates are continuous: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, its centre
  is ``(i + 0.5, j + 0.5)``, and the image's corners are ``(0, 0)``, ``(W, 0)``, ``(W, H)``,
  ``(0, H)``. The principal point is the image centre.
- Lens distortion is OpenCV's radial model with one coefficient ``k1`` (negative: barrel), so
  projection is ``cv2.projectPoints`` and back-projection ``cv2.undistortPoints`` (iterated to convergence).

Pointing: ``tilt`` is the off-nadir angle of the optical axis at the camera, ``azimuth`` the
compass direction it leans towards, and at ``roll = 0`` the top of the image faces that azimuth
(the horizon side of an oblique view; north for a nadir view with azimuth 0). ``roll`` turns the
camera clockwise about its optical axis as seen from behind it: the image's top then faces
``roll`` degrees further clockwise on the compass, and the scene turns anticlockwise in the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from geo.ecef import (  # noqa: F401 (re-exported: the camera's frames are these)
    WGS84_A,
    WGS84_B,
    WGS84_F,
    ecef_to_geodetic,
    geodetic_to_ecef,
    intersect_ellipsoid,
    local_axes,
)

# Stand-in for the ISS's full-frame Nikon bodies: a 36 mm wide sensor.
FULL_FRAME_WIDTH_MM = 36.0
# Largest radial displacement of the image corners the distortion model accepts (10%).
MAX_CORNER_DISTORTION = 0.10
# Radii at which the distortion is inverted exactly before interpolating (see pixel_rays).
_UNDISTORTION_TABLE_SIZE = 256

# The image corners in the order of EOL's footprint columns (geo.eol.CORNER_NAMES: lower-left,
# upper-left, upper-right, lower-right), in units of image width and height.
_CORNER_FRACTIONS = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera with one radial distortion term, placed and oriented in ECEF."""

    position: np.ndarray  # (3,) ECEF metres
    rotation: np.ndarray  # (3, 3) ECEF columns: image right, image down, optical axis
    focal_px: float
    width: int
    height: int
    k1: float = 0.0
    _rvec: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2:
            raise ValueError(f"image size must be at least 2 x 2, got {self.width} x {self.height}")
        if not np.isfinite(self.focal_px) or self.focal_px <= 0:
            raise ValueError(f"focal length must be positive, got {self.focal_px} px")
        corner_shift = self.k1 * self.corner_radius**2
        if not abs(corner_shift) <= MAX_CORNER_DISTORTION:
            # Beyond this the one-term model folds over and cannot be inverted at the corners.
            raise ValueError(
                f"radial distortion k1={self.k1} moves the image corners by {corner_shift:+.1%}; "
                f"at most {MAX_CORNER_DISTORTION:.0%} is supported"
            )
        rotation = np.asarray(self.rotation, dtype=float)
        if rotation.shape != (3, 3) or not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-9):
            raise ValueError("rotation must be a 3 x 3 orthonormal matrix")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "position", np.asarray(self.position, dtype=float).reshape(3))
        # OpenCV wants the world-to-camera rotation as a Rodrigues vector.
        object.__setattr__(self, "_rvec", cv2.Rodrigues(rotation.T)[0])

    @property
    def corner_radius(self) -> float:
        """Distance of the image corners from the principal point, in focal lengths."""
        return float(np.hypot(self.width / 2.0, self.height / 2.0) / self.focal_px)

    @property
    def intrinsics(self) -> np.ndarray:
        """The 3 x 3 matrix K (principal point at the image centre)."""
        return np.array(
            [[self.focal_px, 0.0, self.width / 2.0], [0.0, self.focal_px, self.height / 2.0], [0.0, 0.0, 1.0]]
        )

    @property
    def distortion(self) -> np.ndarray:
        """OpenCV distortion coefficients (k1, k2, p1, p2)."""
        return np.array([self.k1, 0.0, 0.0, 0.0])

    @property
    def optical_axis(self) -> np.ndarray:
        return self.rotation[:, 2]

    def pixel_rays(self, u, v) -> np.ndarray:
        """Unit ECEF directions of the rays through image points ``(u, v)`` (any equal shapes)."""
        u, v = np.broadcast_arrays(np.asarray(u, dtype=float), np.asarray(v, dtype=float))
        distorted = np.column_stack([u.ravel() - self.width / 2.0, v.ravel() - self.height / 2.0]) / self.focal_px
        radius = np.hypot(distorted[:, 0], distorted[:, 1])
        if np.any(radius > self._undistortion_table[0][-1]):
            raise ValueError("image points far outside the image cannot be back-projected")
        xy = distorted * np.interp(radius, *self._undistortion_table)[:, None]
        camera_rays = np.column_stack([xy, np.ones(len(xy))])
        camera_rays /= np.linalg.norm(camera_rays, axis=1, keepdims=True)
        return (camera_rays @ self.rotation.T).reshape(u.shape + (3,))

    @cached_property
    def _undistortion_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Distorted normalised radii and, for each, the undistorted-to-distorted radius ratio.

        The model is radial, so OpenCV's iterative undistortion is run once on a fine table of
        radii along the image diagonal (and a little beyond) and interpolated: the same answer
        as undistorting every pixel (to ~1e-4 px), at a fraction of the cost.
        """
        radius = np.linspace(0.0, 1.5 * self.corner_radius, _UNDISTORTION_TABLE_SIZE)
        if self.k1 == 0.0:
            return radius, np.ones_like(radius)
        points = np.column_stack([radius, np.zeros_like(radius)]) * self.focal_px
        points += [self.width / 2.0, self.height / 2.0]
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-14)
        undistorted = cv2.undistortPoints(
            points.reshape(-1, 1, 2), self.intrinsics, self.distortion, criteria=criteria
        ).reshape(-1, 2)[:, 0]
        ratio = np.divide(undistorted, radius, out=np.ones_like(radius), where=radius > 0)
        return radius, ratio

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image coordinates ``(u, v)`` of ECEF points and whether each lies in front of the camera."""
        points = np.asarray(points, dtype=float)
        flat = points.reshape(-1, 3)
        in_front = (flat - self.position) @ self.optical_axis > 0.0  # False for NaN points
        tvec = -self.rotation.T @ self.position
        safe = np.where(in_front[:, None], flat, self.position + self.optical_axis)
        image_points, _ = cv2.projectPoints(safe, self._rvec, tvec, self.intrinsics, self.distortion)
        uv = image_points.reshape(-1, 2)
        uv[~in_front] = np.nan
        shape = points.shape[:-1]
        return uv[:, 0].reshape(shape), uv[:, 1].reshape(shape), in_front.reshape(shape)

    def project_lonlat(self, lon, lat, height_m=0.0) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of geodetic points (NaN behind the camera)."""
        u, v, _ = self.project(geodetic_to_ecef(lon, lat, height_m))
        return u, v

    def ground_points(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """ECEF points where the rays through ``(u, v)`` meet the ellipsoid, and the hit mask."""
        return intersect_ellipsoid(self.position, self.pixel_rays(u, v))

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)`` grids (height x width) of every pixel centre."""
        return np.meshgrid(np.arange(self.width) + 0.5, np.arange(self.height) + 0.5)

    def corner_lonlat(self) -> np.ndarray:
        """``(4, 2)`` lon/lat of the image corners in LL, UL, UR, LR order; NaN where a corner's
        ray misses the Earth (an Earth-limb photo)."""
        corners = _CORNER_FRACTIONS * [self.width, self.height]
        points, _ = self.ground_points(corners[:, 0], corners[:, 1])
        lon, lat, _ = ecef_to_geodetic(points)
        return np.column_stack([lon, lat])

    def centre_lonlat(self) -> tuple[float, float]:
        """Where the optical axis meets the ground (NaN if it points into space)."""
        points, _ = self.ground_points(self.width / 2.0, self.height / 2.0)
        lon, lat, _ = ecef_to_geodetic(points)
        return float(lon), float(lat)


def k1_for_corner_distortion(corner_distortion: float, focal_px: float, width: int, height: int) -> float:
    """The ``k1`` that moves the image corners radially by ``corner_distortion`` (a fraction of their
    distance from the centre; negative is barrel), whatever the field of view."""
    corner_radius = np.hypot(width / 2.0, height / 2.0) / focal_px
    return float(corner_distortion / corner_radius**2)


def focal_px_from_mm(focal_mm: float, width_px: int, sensor_width_mm: float = FULL_FRAME_WIDTH_MM) -> float:
    """Focal length in pixels of a lens on a sensor ``sensor_width_mm`` wide read out ``width_px`` wide."""
    if focal_mm <= 0 or sensor_width_mm <= 0:
        raise ValueError(f"focal length and sensor width must be positive, got {focal_mm}, {sensor_width_mm}")
    return focal_mm / sensor_width_mm * width_px


def pointed_camera(
    lon: float,
    lat: float,
    alt_km: float,
    tilt_deg: float,
    azimuth_deg: float,
    roll_deg: float,
    focal_px: float,
    width: int,
    height: int,
    k1: float = 0.0,
) -> Camera:
    """A camera at ``alt_km`` above ``(lon, lat)`` leaning ``tilt_deg`` off nadir towards
    ``azimuth_deg`` and rolled ``roll_deg`` (see the module docstring for the conventions)."""
    _check_position(lon, lat, alt_km)
    if not 0.0 <= tilt_deg < 90.0:
        raise ValueError(f"tilt must lie in [0, 90) degrees off nadir, got {tilt_deg}")
    east, north, up = local_axes(lon, lat)
    azimuth = np.radians(azimuth_deg)
    towards = np.sin(azimuth) * east + np.cos(azimuth) * north
    tilt = np.radians(tilt_deg)
    forward = np.cos(tilt) * -up + np.sin(tilt) * towards
    image_up = np.sin(tilt) * up + np.cos(tilt) * towards  # orthogonal to forward, in their plane
    return _oriented_camera(lon, lat, alt_km, forward, image_up, roll_deg, focal_px, width, height, k1)


def camera_looking_at(
    lon: float,
    lat: float,
    alt_km: float,
    target_lon: float,
    target_lat: float,
    roll_deg: float,
    focal_px: float,
    width: int,
    height: int,
    k1: float = 0.0,
) -> Camera:
    """A camera at ``alt_km`` above ``(lon, lat)`` whose optical axis points at a ground target.

    At ``roll = 0`` the image's top faces away from the nadir (for a target straight below, north).
    Raises ValueError when the target is below the camera's horizon.
    """
    _check_position(lon, lat, alt_km)
    position = geodetic_to_ecef(lon, lat, alt_km * 1000.0)
    target = geodetic_to_ecef(target_lon, target_lat, 0.0)
    forward = target - position
    forward /= np.linalg.norm(forward)
    landed, hit = intersect_ellipsoid(position, forward)
    if not hit or np.linalg.norm(landed - target) > 1.0:  # the ray meets the Earth before it
        raise ValueError(f"target ({target_lon}, {target_lat}) is not visible from the camera")
    east, north, up = local_axes(lon, lat)
    horizontal = forward - (forward @ up) * up
    if np.linalg.norm(horizontal) < 1e-9:  # straight down: north is up in the image
        horizontal = north
    horizontal /= np.linalg.norm(horizontal)
    image_up = horizontal - (horizontal @ forward) * forward
    return _oriented_camera(lon, lat, alt_km, forward, image_up, roll_deg, focal_px, width, height, k1)


def tilt_and_azimuth(camera: Camera) -> tuple[float, float]:
    """Off-nadir angle and compass azimuth (degrees) of a camera's optical axis."""
    lon, lat, _ = ecef_to_geodetic(camera.position)
    east, north, up = local_axes(float(lon), float(lat))
    axis = camera.optical_axis
    tilt = np.degrees(np.arccos(np.clip(-axis @ up, -1.0, 1.0)))
    azimuth = np.degrees(np.arctan2(axis @ east, axis @ north)) % 360.0
    return float(tilt), float(azimuth)


def _oriented_camera(lon, lat, alt_km, forward, image_up, roll_deg, focal_px, width, height, k1) -> Camera:
    forward = forward / np.linalg.norm(forward)
    down = -image_up / np.linalg.norm(image_up)
    right = np.cross(down, forward)  # x = y cross z for a right-handed (x, y, z) frame
    # Rolling the camera clockwise by r turns its axes about the optical axis the same way.
    r = np.radians(roll_deg)
    rolled_right = np.cos(r) * right + np.sin(r) * down
    rolled_down = -np.sin(r) * right + np.cos(r) * down
    rotation = np.column_stack([rolled_right, rolled_down, forward])
    position = geodetic_to_ecef(lon, lat, alt_km * 1000.0)
    return Camera(position, rotation, float(focal_px), int(width), int(height), float(k1))


def _check_position(lon: float, lat: float, alt_km: float) -> None:
    if not (np.isfinite(lon) and np.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ValueError(f"camera sub-point must be a valid lon/lat, got ({lon}, {lat})")
    if not 50.0 <= alt_km <= 50_000.0:
        raise ValueError(f"camera altitude must lie in 50..50000 km, got {alt_km}")
