"""Night photos: rendered with the stars at their true places, localized by them (the star path)."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from geo import footprint_iou
from geo.attitude_footprint import corner_errors_km, footprint_from_attitude, iss_state_itrs
from service.localize.stars import LensGuess, fov_from_lens, locate_by_stars, sky_mask
from service.night_world import night_sky
from world.night import NightSampling, render_night, sample_night_view
from world.photosim import cast_view
from world.sampling import sample_tles

SMALL = NightSampling(width=640, height=427, lenses_mm=(35.0,))


@pytest.fixture(scope="module")
def sky():
    return night_sky()


@pytest.fixture(scope="module")
def catalog():
    from starid import build_catalog

    return build_catalog()


@pytest.fixture(scope="module")
def night(sky):
    view = sample_night_view(np.random.default_rng([7, 0]), sample_tles(), SMALL)
    return view, render_night(view, sky, SMALL)


def _decoded(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_night_photo_is_dark_below_the_limb_with_stars_above(night, sky):
    view, rendered = night
    assert rendered.stars_in_frame >= 6 and 0.2 < rendered.ground_fraction < 0.95
    assert rendered.image.shape == (427, 640, 3)
    again = render_night(view, sky, SMALL)
    assert again.jpeg == rendered.jpeg  # deterministic from the view's seed
    # The Earth is dark (night) but brighter than space; the upper rows are mostly space.
    assert rendered.image.mean() < 30
    mask = sky_mask(rendered.image.mean(axis=2))
    assert mask[:20].mean() > 0.5 and mask[-20:].mean() < 0.05


def test_the_star_path_recovers_the_footprint(night, catalog):
    view, rendered = night
    when = view.reported_time  # the metadata's time, rounded to the second
    state = iss_state_itrs(when, sample_tles())
    outcome = locate_by_stars(_decoded(rendered.jpeg), when, state, catalog, LensGuess.of(view.view.focal_mm, 36.0))
    assert outcome.localized, outcome.reason
    assert len(outcome.stars) >= 6 and all(star["hip"] > 0 for star in outcome.stars)
    assert all(check.ok for check in outcome.checks) and {c.name for c in outcome.checks} >= {
        "named_stars", "stars_above_limb", "sky_where_predicted"}
    assert footprint_iou(outcome.polygon, rendered.ground_footprint) > 0.9
    truth = footprint_from_attitude(view.rotation_icrs(), view.view.camera().position, view.view.capture_time,
                                    view.image_geometry())
    errors = corner_errors_km(outcome.footprint.corners, truth.corners)
    assert np.nanmax(errors) < 10.0
    assert outcome.corner_uncertainty_km is not None and 0.5 < outcome.corner_uncertainty_km < 50.0
    attitude = outcome.attitude()
    assert attitude["frame"] == "ICRS" and len(attitude["quaternion_wxyz"]) == 4 and 0 <= attitude["ra_deg"] < 360


def test_unknown_lens_is_found_among_the_common_ones(night, catalog):
    view, rendered = night
    state = iss_state_itrs(view.reported_time, sample_tles())
    outcome = locate_by_stars(_decoded(rendered.jpeg), view.reported_time, state, catalog, LensGuess.of(None, None))
    assert outcome.localized, outcome.reason
    assert outcome.fov_source == "common-lenses"
    assert outcome.fov_deg == pytest.approx(fov_from_lens(35.0), rel=0.02)


def test_a_frame_without_stars_is_refused_with_its_reason(night, catalog):
    view, rendered = night
    state = iss_state_itrs(view.reported_time, sample_tles())
    starless = replace(SMALL, zero_point_dn=0.0)
    blank = render_night(view, night_sky_empty(), starless)
    outcome = locate_by_stars(_decoded(blank.jpeg), view.reported_time, state, catalog, LensGuess.of(35.0, 36.0))
    assert not outcome.localized and "stars detected above the limb" in outcome.reason
    daylight = np.full((427, 640, 3), 120, np.uint8)  # no sky at all
    outcome = locate_by_stars(daylight, view.reported_time, state, catalog, LensGuess.of(35.0, 36.0))
    assert not outcome.localized and "no sky" in outcome.reason


def test_a_wrong_time_is_caught_by_the_solutions_checks(night, catalog):
    """Stars fix the attitude in ICRS; the Earth in the frame must then be where the orbit says.
    Half an orbit later the ISS is elsewhere: the named stars would lie under the horizon."""
    from datetime import timedelta

    view, rendered = night
    when = view.reported_time + timedelta(minutes=46)
    state = iss_state_itrs(when, sample_tles())
    outcome = locate_by_stars(_decoded(rendered.jpeg), when, state, catalog, LensGuess.of(35.0, 36.0))
    assert not outcome.localized and "disagrees with the photo" in outcome.reason


def night_sky_empty():
    from world.night import Sky

    return Sky(vectors=np.zeros((0, 3)), magnitudes=np.zeros(0))


def test_the_demo_night_photo_has_enough_stars_and_leaves_the_bench_set_alone(tmp_path):
    """`astroloc demo` renders its own small night set under data_dir/demo-night and picks a photo
    with enough stars above the limb for the star path."""
    from service.config import Settings
    from service.localize.stars import DEFAULT_MIN_STARS
    from service.night_world import demo_night_photo, night_world_dir

    settings = Settings(data_dir=tmp_path / "var")
    photo, truth = demo_night_photo(settings)
    assert truth.stars_in_frame >= DEFAULT_MIN_STARS and truth.ground_footprint is not None
    assert photo.image_path.is_file() and photo.image_path.is_relative_to(settings.data_dir / "demo-night")
    assert {"FOCAL_MM", "SENSOR_WIDTH_MM"} <= set(photo.columns)  # the lens the demo sends as form fields
    assert not night_world_dir(settings).exists()


def test_the_airglow_band_breaks_into_no_false_stars(sky):
    """Through an 85 mm lens the limb's airglow is a band ~15 px wide, narrower than the centroider's
    background tiles: left in, its ridge breaks into rows of false stars, and ROSIA finds no attitude
    among them (frame 42 of the night set). The star path removes the glow first."""
    from service.localize.stars import _grey, _stars_in_sky
    from starid import build_catalog
    from starid.centroids import detect_stars, frame_from_array

    view = sample_night_view(np.random.default_rng([0, 42]), sample_tles(), NightSampling())
    assert view.view.focal_mm == 85.0
    grey = _grey(_decoded(render_night(view, sky, NightSampling()).jpeg))
    mask = sky_mask(grey)
    catalog = build_catalog()
    image = view.image_geometry()
    truth_px = image.project(catalog.vectors @ view.rotation_icrs())
    truth_px = truth_px[np.isfinite(truth_px).all(axis=1)]

    def true_share(xy: np.ndarray) -> float:
        nearest_px = np.array([np.min(np.hypot(*(truth_px - p).T)) for p in xy])
        return float((nearest_px < 2.0).mean())

    raw = detect_stars(frame_from_array(grey))
    rows, cols = raw.xy[:, 1].astype(int), raw.xy[:, 0].astype(int)
    raw_in_sky = raw.xy[mask[rows, cols]]
    _, xy, _ = _stars_in_sky(grey, mask, 6)
    assert true_share(raw_in_sky) < 0.3  # left in, the band's false stars outnumber the stars
    assert len(xy) >= 6 and true_share(xy) > 0.9


def test_a_ground_as_dark_as_space_passes_when_starless_and_fails_when_starry(night, catalog):
    """A night ocean can be as dark as space: the check that the solution's ground is not sky then
    asks for space's stars, which a dark ocean lacks and sky wrongly called ground has."""
    view, rendered = night
    state = iss_state_itrs(view.reported_time, sample_tles())
    lens = LensGuess.of(35.0, 36.0)
    image = _decoded(rendered.jpeg).astype(float)
    ground = cast_view(view.view.camera())[2].hit.copy()  # the pixels that see the Earth, as rendered
    space_level = np.median(image[~ground], axis=0)
    ground[: image.shape[0] // 2] = False  # the Earth's lower part, away from the limb: a night ocean
    rng = np.random.default_rng(5)
    dark = image.copy()
    dark[ground] = space_level + rng.normal(0.0, 1.0, (int(ground.sum()), 3))  # as black as space
    dark = np.clip(dark, 0, 255).astype(np.uint8)
    outcome = locate_by_stars(dark, view.reported_time, state, catalog, lens)
    assert outcome.localized, outcome.reason
    check = next(c for c in outcome.checks if c.name == "ground_where_predicted")
    assert check.ok and "looks like space" in check.detail and "starless" in check.detail
    assert footprint_iou(outcome.polygon, rendered.ground_footprint) > 0.9

    # The same dark ground sown with stars at the sky's density: that is sky, the solution is refused.
    sky_stars = len(outcome.stars) / max(float((~ground).mean()), 1e-3)
    rows, cols = np.nonzero(ground)
    pick = rng.choice(len(rows), size=int(sky_stars * ground.mean()), replace=False)
    starry = dark.astype(float)
    for r, c in zip(rows[pick], cols[pick], strict=True):
        starry[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] += 60.0
    starry = np.clip(starry, 0, 255).astype(np.uint8)
    refused = locate_by_stars(starry, view.reported_time, state, catalog, lens)
    assert not refused.localized and "puts on the ground looks like space" in refused.reason
