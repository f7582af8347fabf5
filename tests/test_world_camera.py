"""The simulated camera (world/camera.py), its nuisances (world/photosim.py) and render_view."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from pyproj import Geod

from world.camera import (
    WGS84_A,
    WGS84_F,
    camera_looking_at,
    ecef_to_geodetic,
    focal_px_from_mm,
    geodetic_to_ecef,
    intersect_ellipsoid,
    k1_for_corner_distortion,
    pointed_camera,
    tilt_and_azimuth,
)
from world.photosim import NO_NUISANCES, Nuisances, draw_nuisances
from world.bluemarble import EquirectangularTexture
from world.view import ViewSpec, footprint_of, render_view

GEOD = Geod(ellps="WGS84")
WHEN = datetime(2019, 12, 9, 12, 0, tzinfo=timezone.utc)
SIZE = 512


def nadir_view(**changes) -> ViewSpec:
    base = ViewSpec(WHEN, nadir_lon=10.0, nadir_lat=45.0, alt_km=420.0, tilt_deg=0.0,
                    azimuth_deg=0.0, roll_deg=0.0, focal_mm=24.0)  # fmt: skip
    return replace(base, **changes)


def radius_of_curvature(lat_deg: float, azimuth_deg: float) -> float:
    """Euler's formula: the ellipsoid's radius of curvature along an azimuth, in metres."""
    e2 = WGS84_F * (2 - WGS84_F)
    s2 = math.sin(math.radians(lat_deg)) ** 2
    meridian = WGS84_A * (1 - e2) / (1 - e2 * s2) ** 1.5
    normal = WGS84_A / math.sqrt(1 - e2 * s2)
    a = math.radians(azimuth_deg)
    return 1.0 / (math.cos(a) ** 2 / meridian + math.sin(a) ** 2 / normal)


def analytic_nadir_corners(view: ViewSpec) -> np.ndarray:
    """Where a north-up nadir camera's corner rays meet a sphere of the local curvature:
    off-nadir angle g hits at central angle asin((R + h) / R * sin g) - g."""
    off_nadir = math.atan(math.hypot(view.width / 2, view.height / 2) / view.focal_px)
    corners = []
    for bearing in (225.0, 315.0, 45.0, 135.0):  # LL, UL, UR, LR of a north-up image
        radius = radius_of_curvature(view.nadir_lat, bearing)
        central = math.asin((radius + view.alt_km * 1000) / radius * math.sin(off_nadir)) - off_nadir
        lon, lat, _ = GEOD.fwd(view.nadir_lon, view.nadir_lat, bearing, radius * central)
        corners.append((lon, lat))
    return np.array(corners)


def test_nadir_footprint_matches_the_analytic_ground_footprint():
    view = nadir_view()
    footprint = footprint_of(view.camera())
    expected = analytic_nadir_corners(view)
    for (lon, lat), (e_lon, e_lat), bearing in zip(footprint.corners, expected, (225, 315, 45, 135)):
        az, _, distance = GEOD.inv(view.nadir_lon, view.nadir_lat, lon, lat)
        _, _, expected_distance = GEOD.inv(view.nadir_lon, view.nadir_lat, e_lon, e_lat)
        assert distance == pytest.approx(expected_distance, rel=1e-4)  # ~40 m of ~460 km
        assert (az - bearing + 180) % 360 - 180 == pytest.approx(0.0, abs=0.2)
    assert not footprint.earth_limb
    assert footprint.orientation_deg == pytest.approx(0.0, abs=0.2) or footprint.orientation_deg > 359.8
    # The outline polygon (border rays) holds the 4-corner quad; curvature bulges it slightly.
    from geo import geodesic_area_km2

    assert footprint.area_km2 == pytest.approx(geodesic_area_km2(footprint.polygon), rel=0.03)


def test_rendered_nadir_photo_shows_its_footprint_at_its_corners():
    """Paint lon/lat ramps around the analytic corners; the photo's corner pixels must read back
    the footprint's corners (to within a pixel on the ground)."""
    view = nadir_view()
    camera = view.camera()
    footprint = footprint_of(camera)
    corners = analytic_nadir_corners(view)
    height, width = 2700, 5400
    lon = (np.arange(width) + 0.5) / width * 360 - 180
    lat = 90 - (np.arange(height) + 0.5) / height * 180
    image = np.zeros((height, width, 3), np.float32)
    for c_lon, c_lat in corners:  # +/-0.5 deg windows: red encodes lon, green lat, blue marks
        cols = np.abs(lon - c_lon) < 0.5
        rows = np.abs(lat - c_lat) < 0.5
        window = np.ix_(rows, cols)
        image[..., 0][window] = ((lon[cols] - c_lon + 0.5) * 255)[None, :]
        image[..., 1][window] = ((lat[rows] - c_lat + 0.5) * 255)[:, None]
        image[..., 2][window] = 255
    photo = render_view(view, EquirectangularTexture(image)).image.astype(float)
    pixels = [(SIZE - 1, 0), (0, 0), (0, SIZE - 1), (SIZE - 1, SIZE - 1)]  # (row, col): LL UL UR LR
    for (row, col), (c_lon, c_lat), truth in zip(pixels, corners, footprint.corners):
        r, g, b = photo[row, col]
        assert b == 255
        decoded = (c_lon + r / 255 - 0.5, c_lat + g / 255 - 0.5)
        pixel_ground = camera.ground_points(col + 0.5, row + 0.5)[0]
        next_ground = camera.ground_points(col + 1.5, row + 1.5)[0]
        pixel_km = np.linalg.norm(pixel_ground - next_ground) / 1000
        _, _, error_m = GEOD.inv(*decoded, *truth)
        # The corner pixel's centre is half a pixel diagonal (0.5 x pixel_km) from the corner;
        # a photo one pixel off would read >= 1.2 x pixel_km.
        assert error_m / 1000 < 0.7 * pixel_km


def random_views(count: int, seed: int = 4) -> list[ViewSpec]:
    rng = np.random.default_rng(seed)
    views = []
    while len(views) < count:
        view = ViewSpec(
            WHEN, nadir_lon=float(rng.uniform(-180, 180)), nadir_lat=float(rng.uniform(-52, 52)),
            alt_km=float(rng.uniform(350, 430)), tilt_deg=float(rng.uniform(0, 60)),
            azimuth_deg=float(rng.uniform(0, 360)), roll_deg=float(rng.uniform(0, 360)),
            focal_mm=float(np.exp(rng.uniform(np.log(10), np.log(50)))),
            width=int(rng.choice([512, 640])), height=512, nuisances=draw_nuisances(rng),
        )  # fmt: skip
        if not footprint_of(view.camera()).earth_limb:
            views.append(view)
    return views


def test_footprint_corners_reproject_onto_the_image_corners():
    for view in random_views(25):
        camera = view.camera()
        corners = footprint_of(camera).corners
        u, v = camera.project_lonlat(corners[:, 0], corners[:, 1])
        expected = np.array([[0, view.height], [0, 0], [view.width, 0], [view.width, view.height]])
        assert np.abs(np.column_stack([u, v]) - expected).max() < 0.01  # the brief asks < 1 px


def test_every_pixel_round_trips_through_the_ground():
    view = random_views(1, seed=11)[0]
    camera = view.camera()
    u, v = camera.pixel_centres()
    points, hit = camera.ground_points(u, v)
    back_u, back_v, in_front = camera.project(points[hit])
    assert in_front.all()
    assert np.abs(back_u - u[hit]).max() < 1e-3 and np.abs(back_v - v[hit]).max() < 1e-3


def test_pointing_conventions():
    camera = pointed_camera(20.0, 10.0, 420.0, 35.0, 250.0, 0.0, 600.0, 512, 512)
    tilt, azimuth = tilt_and_azimuth(camera)
    assert (tilt, azimuth) == pytest.approx((35.0, 250.0), abs=1e-6)
    # The camera leans west-south-west: the image centre lies that way from the sub-point...
    centre = camera.centre_lonlat()
    bearing, _, _ = GEOD.inv(20.0, 10.0, *centre)
    assert bearing % 360 == pytest.approx(250.0, abs=0.5)
    # ...and at roll 0 the image's top faces the same way (the horizon side).
    assert footprint_of(camera).orientation_deg == pytest.approx(250.0, abs=1.0)
    # Rolling by 90 deg turns the image's top 90 deg clockwise on the compass: north to east.
    rolled = pointed_camera(20.0, 10.0, 420.0, 0.0, 0.0, 90.0, 600.0, 512, 512)
    assert footprint_of(rolled).orientation_deg == pytest.approx(90.0, abs=0.5)
    # Looking at a target gives the same camera as leaning towards it.
    looking = camera_looking_at(20.0, 10.0, 420.0, *centre, 0.0, 600.0, 512, 512)
    np.testing.assert_allclose(looking.rotation, camera.rotation, atol=1e-9)


def test_geodesy_helpers():
    points = geodetic_to_ecef([0.0, 90.0, np.nan], [0.0, 0.0, 0.0], 0.0)
    np.testing.assert_allclose(points[0], [WGS84_A, 0, 0], atol=1e-6)
    np.testing.assert_allclose(points[1], [0, WGS84_A, 0], atol=1e-6)
    assert np.isnan(points[2]).all()
    lon, lat, height = ecef_to_geodetic(geodetic_to_ecef(12.5, -33.0, 1234.0))
    assert (float(lon), float(lat), float(height)) == pytest.approx((12.5, -33.0, 1234.0))
    origin = np.array([WGS84_A + 400e3, 0.0, 0.0])
    hits, hit = intersect_ellipsoid(origin, np.array([[-1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]]))
    assert hit.tolist() == [True, False, False]
    np.testing.assert_allclose(hits[0], [WGS84_A, 0, 0], atol=1e-6)


def test_bad_camera_input_is_refused():
    with pytest.raises(ValueError, match="tilt"):
        pointed_camera(0, 0, 420, 95, 0, 0, 500, 512, 512)
    with pytest.raises(ValueError, match="lon/lat"):
        pointed_camera(0, 100, 420, 0, 0, 0, 500, 512, 512)
    with pytest.raises(ValueError, match="altitude"):
        pointed_camera(0, 0, -5, 0, 0, 0, 500, 512, 512)
    with pytest.raises(ValueError, match="distortion"):
        pointed_camera(0, 0, 420, 0, 0, 0, 500, 512, 512, k1=k1_for_corner_distortion(-0.3, 500, 512, 512))
    with pytest.raises(ValueError, match="not visible"):
        camera_looking_at(0, 0, 420, 60.0, 0.0, 0, 500, 512, 512)  # beyond the horizon
    with pytest.raises(ValueError, match="focal"):
        focal_px_from_mm(-3, 512)
    with pytest.raises(ValueError, match="timezone"):
        nadir_view(capture_time=datetime(2019, 12, 9))


def test_rendering_is_deterministic_for_a_seed():
    rng = np.random.default_rng(8)
    view = nadir_view(tilt_deg=30.0, azimuth_deg=100.0, roll_deg=20.0, nuisances=draw_nuisances(rng), seed=5)
    first, second = render_view(view), render_view(view)
    assert first.jpeg == second.jpeg
    assert np.array_equal(first.image, second.image)
    if view.nuisances.cloud_cover > 0 or view.nuisances.shuttle_film:
        assert render_view(replace(view, seed=6)).jpeg != first.jpeg


def test_clouds_cover_the_requested_fraction():
    cloudy = replace(NO_NUISANCES, cloud_cover=0.3)
    rendered = render_view(nadir_view(nuisances=cloudy, seed=2))
    assert rendered.cloud_fraction == pytest.approx(0.3, abs=0.03)
    white = (rendered.image.min(axis=2) > 200).mean()
    assert 0.15 < white < 0.45  # clouds are white (the Alps' snow adds a little)
    assert render_view(nadir_view()).cloud_fraction == 0.0


def test_window_frame_vignetting_and_film_cast():
    clean = render_view(nadir_view(focal_mm=35.0)).image.astype(float)
    framed = render_view(nadir_view(focal_mm=35.0, nuisances=replace(NO_NUISANCES, occluded_corner="UR"), seed=1))
    corner = framed.image[:24, -24:].astype(float)
    assert corner.mean() < 45 and corner.std() < 10
    np.testing.assert_array_equal(framed.image[-100:, :100], clean[-100:, :100])  # LL untouched
    dark = render_view(nadir_view(focal_mm=35.0, nuisances=replace(NO_NUISANCES, vignetting=0.4))).image
    ratio = dark[:16, :16].astype(float).mean() / clean[:16, :16].mean()
    assert 0.55 < ratio < 0.7  # the corner keeps ~1 - 0.4
    assert dark[250:262, 250:262].astype(float).mean() == pytest.approx(clean[250:262, 250:262].mean(), rel=0.02)
    film = render_view(nadir_view(focal_mm=35.0, nuisances=replace(NO_NUISANCES, shuttle_film=True))).image
    blue_cast = lambda img: img[..., 2].astype(float).mean() / img[..., 0].astype(float).mean()  # noqa: E731
    assert blue_cast(film) > 1.3 * blue_cast(clean)


def test_earth_limb_photo_is_flagged_and_shows_space():
    view = nadir_view(tilt_deg=60.0, focal_mm=14.0, azimuth_deg=0.0)
    rendered = render_view(view)
    assert rendered.footprint.earth_limb
    assert np.isnan(rendered.footprint.corners[1]).all()  # UL looks above the horizon
    assert math.isnan(rendered.footprint.area_km2)
    assert rendered.footprint.polygon.is_valid and rendered.footprint.polygon.area > 0
    assert rendered.image[:5].mean() < 10  # black space at the top
    limb_rows = rendered.image[:, SIZE // 2]
    blue_rows = (limb_rows[:, 2].astype(int) > limb_rows[:, 0].astype(int) + 30) & (limb_rows[:, 2] > 60)
    assert blue_rows.any()  # the thin blue line of the atmosphere


def test_nuisance_parameters_are_validated():
    with pytest.raises(ValueError, match="cloud cover"):
        replace(NO_NUISANCES, cloud_cover=1.5)
    with pytest.raises(ValueError, match="corner"):
        replace(NO_NUISANCES, occluded_corner="top")
    with pytest.raises(ValueError, match="JPEG"):
        replace(NO_NUISANCES, jpeg_quality=0)
    drawn = [draw_nuisances(np.random.default_rng(i)) for i in range(200)]
    assert all(isinstance(n, Nuisances) for n in drawn)
    assert 0.05 < np.mean([n.shuttle_film for n in drawn]) < 0.25
    assert 0.05 < np.mean([n.occluded_corner is not None for n in drawn]) < 0.25
