"""The photo's camera from its matches: where the footprint's corners really are (issue 16).

A homography maps a plane to a plane. An astronaut photo is a perspective view of a curved Earth
through a lens with barrel distortion, matched against a Web-Mercator image: over footprints of
500-2,000 km the homography's corners drift by tens of km (the corners are where its errors
grow most). So, once EarthMatch's iterations have converged, the inlier matches (photo pixel ->
surrounding pixel -> lon/lat on the WGS84 ellipsoid) are used to resect the camera: its position,
orientation, focal length and one radial distortion term ``k1`` (the model of OpenCV and of the
demo world's camera), by least squares on the reprojection error with a soft prior on the ISS's
altitude. The footprint's corners are then the corner pixels' rays cast onto the ellipsoid, as
the catalogue's are. The fit's covariance, propagated to the corners, gives their spread in km.

Initial pose: OpenCV's SQPnP for a ladder of focal lengths (fields of view from ~110 deg to
~1 deg); the best one (reprojection error plus altitude prior) starts the least squares
(scipy, soft-L1 loss).

Pure: numpy, OpenCV, scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares

from geo.ecef import ecef_to_geodetic, geodetic_to_ecef, intersect_ellipsoid, local_axes

ISS_ALTITUDE_PRIOR_KM = 420.0
ALTITUDE_SIGMA_KM = 40.0
# One sigma of altitude costs like one match this many pixels off.
_PRIOR_WEIGHT_PX = 3.0
# Focal lengths tried for the initial pose, in image widths (36 mm sensor: 13 mm ... 1,600 mm).
_FOCAL_LADDER = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0, 11.0, 16.0, 23.0, 32.0, 45.0)
_MAX_K1_CORNER_SHIFT = 0.12  # |k1| r_corner^2 beyond this is no lens


@dataclass(frozen=True)
class CameraFit:
    """A resected camera (ECEF metres; rotation columns: image right, image down, optical axis)."""

    position: np.ndarray
    rotation: np.ndarray
    focal_px: float
    k1: float
    width: int
    height: int
    rms_px: float  # reprojection error of the matches kept
    matches: int  # matches kept after the outlier pass
    corner_spread_km: np.ndarray  # (4,) TL, TR, BR, BL, from the fit's covariance (NaN if unknown)

    @property
    def altitude_km(self) -> float:
        return float(ecef_to_geodetic(self.position)[2]) / 1000.0

    def corner_lonlat(self) -> np.ndarray:
        """(4, 2) lon/lat of the TL, TR, BR, BL corners (NaN where a corner sees past the Earth)."""
        return _cast(self.position, self.rotation, self.focal_px, self.k1, self.width, self.height)


def _intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    return np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])


def _corners(width: int, height: int) -> np.ndarray:
    return np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])


def _cast(position, rotation, focal_px, k1, width, height) -> np.ndarray:  # noqa: ANN001
    corners = _corners(width, height).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    normalised = cv2.undistortPoints(corners, _intrinsics(focal_px, width, height), np.array([k1, 0.0, 0.0, 0.0]),
                                     criteria=criteria).reshape(-1, 2)
    rays = np.column_stack([normalised, np.ones(len(normalised))]) @ rotation.T
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    points, _ = intersect_ellipsoid(position, rays)
    lon, lat, _ = ecef_to_geodetic(points)
    return np.column_stack([lon, lat])


class _Frame:
    """A local east/north/up frame (km) on the ellipsoid under the matches' centroid."""

    def __init__(self, lonlat: np.ndarray) -> None:
        ecef = geodetic_to_ecef(lonlat[:, 0], lonlat[:, 1])
        centre = ecef.mean(axis=0)
        lon, lat, _ = ecef_to_geodetic(centre)
        self.axes = local_axes(float(lon), float(lat))  # rows: east, north, up
        self.origin = geodetic_to_ecef(float(lon), float(lat))
        self.radius_km = float(np.linalg.norm(self.origin)) / 1000.0
        self.points = (ecef - self.origin) @ self.axes.T / 1000.0

    def to_ecef(self, local_km: np.ndarray) -> np.ndarray:
        return self.origin + (np.asarray(local_km) * 1000.0) @ self.axes


def _unpack(x: np.ndarray):  # noqa: ANN202
    return x[0:3], x[3:6], float(x[6]), float(x[7])


def resect(photo_px: np.ndarray, ground_lonlat: np.ndarray, width: int, height: int, *,
           altitude_km: float = ISS_ALTITUDE_PRIOR_KM, outlier_px: float = 6.0) -> CameraFit | None:
    """Fit the photo's camera to matches (photo px -> ground lon/lat); None when no physical
    camera explains them (too few, a degenerate pose, an impossible lens)."""
    photo_px = np.asarray(photo_px, float)
    ground_lonlat = np.asarray(ground_lonlat, float)
    if len(photo_px) < 8:
        return None
    frame = _Frame(ground_lonlat)
    objects = frame.points

    def altitude_of(rvec: np.ndarray, tvec: np.ndarray) -> float:
        rotation, _ = cv2.Rodrigues(rvec)
        centre = -rotation.T @ tvec  # camera centre, local km
        return float(np.linalg.norm(frame.to_ecef(centre))) / 1000.0 - frame.radius_km

    def residuals(x: np.ndarray, objects: np.ndarray, image: np.ndarray) -> np.ndarray:
        rvec, tvec, log_focal, k1 = _unpack(x)
        focal = width * np.exp(log_focal)
        projected, _ = cv2.projectPoints(objects, rvec, tvec, _intrinsics(focal, width, height),
                                         np.array([k1, 0.0, 0.0, 0.0]))
        prior = (altitude_of(rvec, tvec) - altitude_km) / ALTITUDE_SIGMA_KM * _PRIOR_WEIGHT_PX
        return np.concatenate([(projected.reshape(-1, 2) - image).ravel(), [prior]])

    best = None
    for ratio in _FOCAL_LADDER:
        intrinsics = _intrinsics(ratio * width, width, height)
        try:
            ok, rvec, tvec = cv2.solvePnP(objects, photo_px, intrinsics, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:  # degenerate points (all on a line, or nearly one point)
            return None
        if not ok:
            continue
        x = np.concatenate([rvec.ravel(), tvec.ravel(), [np.log(ratio), 0.0]])
        cost = float(np.sum(residuals(x, objects, photo_px) ** 2))
        if best is None or cost < best[0]:
            best = (cost, x)
    if best is None:
        return None
    x = best[1]
    keep = np.ones(len(photo_px), bool)
    fit = None
    for _ in range(2):  # fit, drop the matches it cannot explain, fit again
        fit = least_squares(residuals, x, args=(objects[keep], photo_px[keep]), loss="soft_l1", f_scale=2.0,
                            max_nfev=200, x_scale="jac")
        x = fit.x
        error = np.linalg.norm(residuals(x, objects, photo_px)[:-1].reshape(-1, 2), axis=1)
        keep = error <= outlier_px
        if keep.sum() < 8:
            return None
    rvec, tvec, log_focal, k1 = _unpack(x)
    focal = width * float(np.exp(log_focal))
    corner_radius = np.hypot(width / 2.0, height / 2.0) / focal
    if abs(k1) * corner_radius**2 > _MAX_K1_CORNER_SHIFT:
        return None
    rotation_wc, _ = cv2.Rodrigues(rvec)
    centre_local = -rotation_wc.T @ tvec
    position = frame.to_ecef(centre_local)
    rotation = frame.axes.T @ rotation_wc.T  # camera axes as ECEF columns
    error = np.linalg.norm(residuals(x, objects[keep], photo_px[keep])[:-1].reshape(-1, 2), axis=1)
    spread = _corner_spread_km(fit, x, frame, width, height, len(error))
    return CameraFit(position, rotation, focal, float(k1), width, height, float(np.sqrt(np.mean(error**2))),
                     int(keep.sum()), spread)


def _corner_spread_km(fit, x: np.ndarray, frame: _Frame, width: int, height: int, n: int) -> np.ndarray:  # noqa: ANN001
    """Per-corner standard deviation (km) of the ground corners, by propagating the fit's
    covariance (Gauss-Newton: s^2 (J^T J)^-1) through the corner rays."""
    dof = max(1, 2 * n - len(x))
    s2 = float(np.sum(fit.fun**2)) / dof
    try:
        covariance = np.linalg.inv(fit.jac.T @ fit.jac) * s2
    except np.linalg.LinAlgError:
        return np.full(4, np.nan)

    def corners_local(params: np.ndarray) -> np.ndarray:
        rvec, tvec, log_focal, k1 = _unpack(params)
        rotation_wc, _ = cv2.Rodrigues(rvec)
        position = frame.to_ecef(-rotation_wc.T @ tvec)
        rotation = frame.axes.T @ rotation_wc.T
        lonlat = _cast(position, rotation, width * float(np.exp(log_focal)), k1, width, height)
        if np.isnan(lonlat).any():
            return np.full((4, 3), np.nan)
        return (geodetic_to_ecef(lonlat[:, 0], lonlat[:, 1]) - frame.origin) @ frame.axes.T / 1000.0

    base = corners_local(x)
    steps = np.sqrt(np.clip(np.diag(covariance), 1e-18, None)) * 0.1 + 1e-9
    jacobian = np.zeros((4, 3, len(x)))
    for i, step in enumerate(steps):
        moved = x.copy()
        moved[i] += step
        jacobian[:, :, i] = (corners_local(moved) - base) / step
    variances = np.array([float(np.trace(j @ covariance @ j.T)) for j in jacobian])
    return np.sqrt(np.where(np.isfinite(variances), np.clip(variances, 0.0, None), np.nan))
