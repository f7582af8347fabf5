"""geo.attitude_footprint: camera attitude in ICRS + the orbit -> footprint on WGS84, and its error."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from shapely.geometry import Point

from geo.attitude_footprint import (
    PinholeImage,
    attitude_covariance,
    corner_errors_km,
    corner_uncertainty_km,
    footprint_from_attitude,
    icrs_to_itrs,
    iss_state_itrs,
)
from geo.ecef import ecef_to_geodetic
from geo.orbit import iss_position
from world.camera import pointed_camera
from world.sampling import sample_tles


@pytest.fixture(scope="module")
def orbit():
    tles = sample_tles()
    when = tles[3].epoch + timedelta(hours=3, minutes=17)
    return tles, when, iss_state_itrs(when, tles)


def test_iss_state_matches_the_sub_point_and_moves_at_orbital_speed(orbit):
    tles, when, state = orbit
    lon, lat, height_m = ecef_to_geodetic(state.position_m)
    sub = iss_position(when, tles)
    assert abs(float(lat) - sub.lat) < 1e-6 and abs(float(lon) - sub.lon) < 1e-6
    assert abs(float(height_m) / 1000.0 - sub.alt_km) < 1e-3
    # Earth-fixed speed: 7.66 km/s inertial, less the ground's eastward motion for a 51.6 deg orbit.
    assert 7.2e3 < np.linalg.norm(state.velocity_m_s) < 7.7e3
    assert state.position_sigma_km >= 1.0


def test_icrs_to_itrs_is_a_rotation_that_turns_with_the_earth(orbit):
    _, when, _ = orbit
    first, later = icrs_to_itrs(when), icrs_to_itrs(when + timedelta(hours=6))
    assert np.allclose(first @ first.T, np.eye(3), atol=1e-12)
    # Six sidereal-ish hours: the ITRS x axis turns ~90 deg about the pole in ICRS.
    angle = np.degrees(np.arccos(np.clip(first[0] @ later[0], -1, 1)))
    assert 89.0 < angle < 92.0


def test_nadir_camera_footprint_centre_is_the_sub_point(orbit):
    _, when, state = orbit
    lon, lat, height_m = (float(a) for a in ecef_to_geodetic(state.position_m))
    camera = pointed_camera(lon, lat, height_m / 1000.0, 0.0, 0.0, 0.0, 1500.0, 1024, 683)
    rotation_icrs = icrs_to_itrs(when).T @ camera.rotation
    footprint = footprint_from_attitude(rotation_icrs, state.position_m, when, PinholeImage(1024, 683, 1500.0))
    assert footprint.centre is not None
    assert abs(footprint.centre[0] - lon) < 1e-6 and abs(footprint.centre[1] - lat) < 1e-6
    assert footprint.ground_fraction == 1.0 and not footprint.limb_in_frame
    # Image up is north at roll 0: the upper corners lie north of the lower ones.
    corners = footprint.corners  # LL, UL, UR, LR as lon/lat
    assert corners[1, 1] > corners[0, 1] and corners[2, 1] > corners[3, 1]
    assert footprint.polygon.contains(Point(lon, lat))


def test_known_attitude_gives_the_simulated_cameras_corners(orbit):
    """An independent implementation (world.camera with OpenCV's projection) agrees to < 1 m."""
    _, when, state = orbit
    lon, lat, height_m = (float(a) for a in ecef_to_geodetic(state.position_m))
    camera = pointed_camera(lon, lat, height_m / 1000.0, 45.0, 123.0, 17.0, 1400.0, 1024, 683)
    rotation_icrs = icrs_to_itrs(when).T @ camera.rotation
    footprint = footprint_from_attitude(rotation_icrs, state.position_m, when, PinholeImage(1024, 683, 1400.0))
    errors = corner_errors_km(footprint.corners, camera.corner_lonlat())
    assert np.all(errors < 1e-3)
    assert abs(footprint.centre[0] - camera.centre_lonlat()[0]) < 1e-6


def test_limb_in_frame_keeps_only_the_ground_up_to_the_horizon(orbit):
    _, when, state = orbit
    lon, lat, height_m = (float(a) for a in ecef_to_geodetic(state.position_m))
    camera = pointed_camera(lon, lat, height_m / 1000.0, 66.0, 0.0, 0.0, 1000.0, 1024, 683)
    footprint = footprint_from_attitude(icrs_to_itrs(when).T @ camera.rotation, state.position_m, when,
                                        PinholeImage(1024, 683, 1000.0))
    assert footprint.limb_in_frame
    assert np.isnan(footprint.corners[1]).all() and np.isnan(footprint.corners[2]).all()  # upper corners: sky
    assert np.isfinite(footprint.corners[0]).all() and np.isfinite(footprint.corners[3]).all()
    # The polygon reaches the horizon: ~2,250 km from the sub-point at ~415 km altitude, not beyond.
    from geo.lonlat import WGS84_GEOD

    ring = np.asarray(footprint.polygon.exterior.coords)
    _, _, distance_m = WGS84_GEOD.inv(np.full(len(ring), lon), np.full(len(ring), lat), ring[:, 0], ring[:, 1])
    assert 2000.0 < np.max(distance_m) / 1000.0 < 2400.0


def test_corner_uncertainty_grows_with_each_source(orbit):
    _, when, state = orbit
    lon, lat, height_m = (float(a) for a in ecef_to_geodetic(state.position_m))
    camera = pointed_camera(lon, lat, height_m / 1000.0, 30.0, 80.0, 0.0, 1400.0, 1024, 683)
    rotation_icrs = icrs_to_itrs(when).T @ camera.rotation
    image = PinholeImage(1024, 683, 1400.0)
    tight = np.eye(3) * (1e-5) ** 2
    base = corner_uncertainty_km(rotation_icrs, state, when, image, tight, time_sigma_s=0.0)
    assert np.all(np.isfinite(base)) and np.all(base >= state.position_sigma_km * 0.5)
    with_time = corner_uncertainty_km(rotation_icrs, state, when, image, tight, time_sigma_s=1.0)
    assert np.all(with_time > base + 3.0)  # a second of time is ~7 km along the track
    loose = corner_uncertainty_km(rotation_icrs, state, when, image, np.eye(3) * (1e-3) ** 2, time_sigma_s=0.0)
    assert np.all(loose > base)


def test_attitude_covariance_follows_the_star_geometry():
    rng = np.random.default_rng(1)
    stars = rng.normal(size=(20, 3)) * [0.2, 0.2, 0.0] + [0, 0, 1]
    stars /= np.linalg.norm(stars, axis=1, keepdims=True)
    covariance = attitude_covariance(stars, stars, np.eye(3), min_sigma_rad=1e-5)
    sigmas = np.sqrt(np.diag(covariance))
    # Stars spread across the boresight: the roll (about z) is the least well known axis.
    assert sigmas[2] > sigmas[0] and sigmas[2] > sigmas[1]
    assert sigmas[0] == pytest.approx(1e-5 / np.sqrt(20), rel=0.5)

