"""Star-ID from an image: detection (starid.centroids) and identify_image on rendered frames with
known truth (pixel-integrated PSF, shot and read noise, hot pixels, a satellite streak)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from scipy.spatial import cKDTree

from service.bench.starid import attitude_errors_deg
from starid import build_catalog, identify_image
from starid.centroids import detect_stars, frame_from_array, read_frame
from starid.simulate import build_sky, render_frame


@pytest.fixture(scope="module")
def catalog():
    return build_catalog()


@pytest.fixture(scope="module")
def sky():
    return build_sky()


@pytest.fixture(scope="module")
def frames(sky):
    rng = np.random.default_rng(11)
    return [render_frame(sky, rng, snr_at_mag6=10.0) for _ in range(4)]


def test_every_star_to_mag_6_is_found_with_a_sub_pixel_centroid(frames):
    errors, found, wanted, spurious = [], 0, 0, 0
    for frame in frames:
        detection = detect_stars(frame.image, psf_sigma_px=1.2)
        truth = frame.scene
        bright = truth.mags <= 6.0
        distance, _ = cKDTree(detection.xy).query(truth.pixels[bright])
        # A star lying on the streak is lost with it, and two stars closer than ~5 PSF sigmas are
        # one blob (no deblending: its centroid is the pair's); count the others.
        on_streak = _near_streak(truth.pixels[bright], frame.streak, 4.0)
        neighbours = cKDTree(truth.pixels).query_ball_point(truth.pixels[bright], 6.0, return_length=True)
        on_streak |= neighbours > 1
        wanted += int((~on_streak).sum())
        found += int(((distance < 1.0) & ~on_streak).sum())
        errors.extend(distance[(distance < 1.0) & ~on_streak])
        # Every detection is a star (any magnitude) - no hot pixel, no piece of the streak.
        to_star, _ = cKDTree(truth.pixels).query(detection.xy)
        spurious += int(((to_star > 2.0) & ~_near_streak(detection.xy, frame.streak, 6.0)).sum())
        assert detection.hot_pixels >= len(frame.hot_pixels) - 2  # two may land on a star
        assert detection.streaks >= 1
    assert found >= 0.99 * wanted and wanted > 40
    assert np.median(errors) < 0.2  # px: sub-pixel
    assert spurious == 0


def test_hot_pixels_are_not_detected(frames):
    frame = frames[0]
    detection = detect_stars(frame.image, psf_sigma_px=1.2)
    distance, _ = cKDTree(detection.xy).query(frame.hot_pixels)
    to_star, _ = cKDTree(frame.scene.pixels).query(frame.hot_pixels)
    assert np.all(distance[to_star > 5.0] > 1.0)


def test_saturated_stars_are_flagged_and_keep_their_centre(sky):
    rng = np.random.default_rng(5)
    frame = render_frame(sky, rng, snr_at_mag6=60.0, hot_pixels=0, streak=False, full_well_adu=4000)
    detection = detect_stars(frame.image, psf_sigma_px=1.2)
    assert detection.saturated.any()
    truth = frame.scene.pixels[frame.scene.mags <= 6.0]
    distance, _ = cKDTree(truth).query(detection.xy[detection.saturated])
    assert np.all(distance < 0.5)


@pytest.mark.parametrize("fmt", ["png16", "tiff16", "png8", "jpeg8", "fits16", "fits_float"])
def test_frames_in_every_format_are_identified(catalog, frames, fmt, tmp_path):
    frame = frames[1]
    data = encode(frame.image, fmt, tmp_path)
    decoded = read_frame(data)
    assert decoded.width == 1024 and decoded.height == 1024
    result = identify_image(catalog, data, 14.0, psf_sigma_px=1.2)
    assert result.status == "identified", result.result.reason
    boresight, roll = attitude_errors_deg(result.result.rotation, frame.scene.rotation)
    assert boresight < 0.05 and roll < 0.2
    body = result.to_dict()
    named = [c for c in body["centroids"] if c["hip"] is not None]
    assert len(named) >= 8
    truth = dict(zip(map(tuple, np.round(frame.scene.pixels)), frame.scene.hip))
    tree = cKDTree(frame.scene.pixels)
    for centroid in named:  # every name is the star at that place
        _, index = tree.query([centroid["x"], centroid["y"]])
        assert frame.scene.hip[index] == centroid["hip"] or abs(frame.scene.mags[index] - 7) < 2
        assert centroid["mag"] is not None
    assert truth  # the scene has stars
    mags = np.array([c["mag"] for c in named])
    true_mags = np.array([frame.scene.mags[tree.query([c["x"], c["y"]])[1]] for c in named])
    assert np.median(np.abs(mags - true_mags)) < 0.3  # the zero point fitted on the named stars


def test_a_wrong_field_of_view_is_a_no_result_with_the_reason(catalog, frames):
    result = identify_image(catalog, frames[2].image, 20.0, psf_sigma_px=1.2, time_budget_s=30.0)
    assert result.status == "no_result"
    assert "fov_deg" in result.result.reason and "20 deg" in result.result.reason
    assert len(result.detection) > 10  # the stars were found, the geometry did not fit


def test_a_field_of_view_4_percent_off_is_identified_and_refitted(catalog, frames):
    # Correctness, not speed, on a shared machine: a generous time budget.
    result = identify_image(catalog, frames[3].image, 14.0 * 1.04, psf_sigma_px=1.2, time_budget_s=30.0)
    assert result.status == "identified", result.result.reason
    assert abs(result.result.fov_deg - 14.0) < 0.05
    boresight, _ = attitude_errors_deg(result.result.rotation, frames[3].scene.rotation)
    assert boresight < 0.05


def test_blank_and_unreadable_frames(catalog):
    rng = np.random.default_rng(0)
    blank = rng.normal(100, 5, (256, 256)).astype(np.uint16)
    result = identify_image(catalog, blank, 14.0)
    assert result.status == "no_result" and "stars detected" in result.result.reason
    for data, message in [(b"", "empty"), (b"not an image at all", "not a readable"),
                          (b"SIMPLE  =                    T" + b" " * 50, "FITS")]:
        with pytest.raises(ValueError, match=message):
            read_frame(data)
    with pytest.raises(ValueError, match="at least 16"):
        frame_from_array(np.zeros((8, 8)))


def encode(image: np.ndarray, fmt: str, tmp_path) -> bytes:
    """The frame as a file of the given format (8-bit ones scaled down from 16 bits)."""
    eight = np.clip(image.astype(np.float64) / 4000.0 * 255.0, 0, 255).astype(np.uint8)
    if fmt == "png16":
        return cv2.imencode(".png", image)[1].tobytes()
    if fmt == "tiff16":
        return cv2.imencode(".tiff", image)[1].tobytes()
    if fmt == "png8":
        return cv2.imencode(".png", eight)[1].tobytes()
    if fmt == "jpeg8":
        return cv2.imencode(".jpg", eight, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    from astropy.io import fits

    buffer = io.BytesIO()
    data = image if fmt == "fits16" else image.astype(np.float32)
    fits.PrimaryHDU(data).writeto(buffer)
    return buffer.getvalue()


def _near_streak(points: np.ndarray, streak, width_px: float) -> np.ndarray:
    if streak is None:
        return np.zeros(len(points), bool)
    x0, y0, x1, y1 = streak
    length = np.hypot(x1 - x0, y1 - y0)
    distance = np.abs((x1 - x0) * (y0 - points[:, 1]) - (x0 - points[:, 0]) * (y1 - y0)) / length
    return distance < width_px
