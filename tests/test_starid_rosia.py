"""ROSIA's search: objective (Eq. 10), bound (Eq. 7), branch-and-bound, hypotheses, robust search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from starid.catalog import StarCatalog, build_catalog
from starid.geometry import axis_angle_to_matrix, pixels_to_vectors
from starid.identify import warm_up
from starid.rosia import (
    OPTIMAL,
    TIME_BUDGET,
    chance_alignments,
    nearest_under,
    objective,
    robust_search,
    rotation_search,
    upper_bound,
)
from starid.simulate import build_sky, simulate_scene, simulate_sensor_scene

ALPHA_EPS = math.radians(0.06)


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    catalog = build_catalog()
    warm_up(catalog)  # kernels compiled, pair index and sky grid built: not inside a time budget
    return catalog


@pytest.fixture(scope="module")
def sky() -> StarCatalog:
    return build_sky()


def make_problem(catalog, seed, **noise):
    """A simulated scene -> (query vectors, pair_query, pair_vectors, true rotation, scene).

    Candidates S_i: every catalogue star within 0.7 deg of where star i truly points, so the sets
    hold the true match and many wrong ones, as any sub-catalogue may.
    """
    rng = np.random.default_rng(seed)
    scene = simulate_scene(catalog, rng, **noise)
    query = pixels_to_vectors(scene.pixels, scene.image_width, scene.image_height, scene.fov_deg)
    pointing = query @ scene.rotation.T
    close = pointing @ catalog.vectors.T >= math.cos(math.radians(0.7))
    pair_query, pair_catalog = np.nonzero(close)
    return query, pair_query.astype(np.int32), catalog.vectors[pair_catalog], scene.rotation, scene


def rotations_in_box(rng, centre, half_side, count):
    """Rotation matrices at uniformly random axis-angle points of the cube."""
    points = centre + rng.uniform(-half_side, half_side, size=(count, 3))
    return [axis_angle_to_matrix(point) for point in points]


def test_true_rotation_scores_every_catalogue_star(catalog):
    query, pair_query, pair_vectors, truth, scene = make_problem(catalog, 5)
    real = int((scene.hip >= 0).sum())
    assert real >= 3
    assert objective(truth, query, pair_query, pair_vectors, ALPHA_EPS) == real


@pytest.mark.parametrize("seed", range(4))
def test_upper_bound_is_never_below_the_objective_in_its_box(catalog, seed):
    query, pair_query, pair_vectors, truth, _ = make_problem(catalog, seed, position_noise_px=1.0)
    rng = np.random.default_rng(100 + seed)
    true_axis_angle = Rotation.from_matrix(truth).as_rotvec()
    naive_bound_violated = False
    for _ in range(60):
        half_side = 10 ** rng.uniform(-3.5, -0.3)
        # Boxes around the truth (large objective values) and anywhere in [-pi, pi]^3, including
        # boxes that stick out of the pi-ball.
        near_truth = rng.random() < 0.7
        centre = (
            true_axis_angle + rng.uniform(-half_side, half_side, 3)
            if near_truth
            else rng.uniform(-math.pi, math.pi, 3)
        )
        bound = upper_bound(centre, half_side, query, pair_query, pair_vectors, ALPHA_EPS)
        at_centre = objective(axis_angle_to_matrix(centre), query, pair_query, pair_vectors, ALPHA_EPS)
        for rotation in rotations_in_box(rng, centre, half_side, 40):
            value = objective(rotation, query, pair_query, pair_vectors, ALPHA_EPS)
            assert value <= bound, f"bound {bound} < Q(R) = {value} in box {centre} +- {half_side}"
            naive_bound_violated |= value > at_centre
    # The test has teeth: Q at the centre alone (no alpha_B) is not a bound.
    assert naive_bound_violated


def test_bound_equals_objective_for_a_tiny_box_at_the_truth(catalog):
    query, pair_query, pair_vectors, truth, _ = make_problem(catalog, 11)
    centre = Rotation.from_matrix(truth).as_rotvec()
    exact = objective(truth, query, pair_query, pair_vectors, ALPHA_EPS)
    assert exact >= 3
    assert upper_bound(centre, 1e-9, query, pair_query, pair_vectors, ALPHA_EPS) == exact
    # The whole pi-ball's bound counts every star that has a candidate at all.
    assert upper_bound(np.zeros(3), math.pi, query, pair_query, pair_vectors, ALPHA_EPS) == len(
        np.unique(pair_query)
    )


@pytest.mark.parametrize("seed", range(8))
def test_search_finds_a_rotation_at_least_as_good_as_the_truth(catalog, seed):
    query, pair_query, pair_vectors, truth, _ = make_problem(
        catalog, seed, position_noise_px=0.5, false_stars=3
    )
    outcome = rotation_search(query, pair_query, pair_vectors, ALPHA_EPS, time_budget_s=10.0)
    assert outcome.status == OPTIMAL
    best_known = objective(truth, query, pair_query, pair_vectors, ALPHA_EPS)
    if best_known < 3:  # too few stars in view: nothing >= 3 exists to find
        assert outcome.rotation is None and outcome.matches == 0
        return
    assert outcome.matches >= best_known
    # The reported count is the objective at the returned rotation...
    assert objective(outcome.rotation, query, pair_query, pair_vectors, ALPHA_EPS) == outcome.matches
    # ...which lies near the true attitude (within a few alpha_eps).
    angle = math.degrees(math.acos((np.trace(outcome.rotation.T @ truth) - 1) / 2))
    assert angle < 0.5
    # Matchlists change the work, not the answer.
    plain = rotation_search(query, pair_query, pair_vectors, ALPHA_EPS, 10.0, use_matchlists=False)
    assert plain.matches == outcome.matches


def test_search_stops_at_the_time_budget(catalog):
    query, pair_query, pair_vectors, _, _ = make_problem(catalog, 2)
    outcome = rotation_search(query, pair_query, pair_vectors, ALPHA_EPS, time_budget_s=0.0)
    assert outcome.status == TIME_BUDGET


def test_search_without_candidates_finds_nothing():
    outcome = rotation_search(np.eye(3), np.empty(0, np.int32), np.empty((0, 3)), ALPHA_EPS, 1.0)
    assert outcome.rotation is None and outcome.matches == 0


def test_axis_angle_to_matrix_matches_scipy():
    rng = np.random.default_rng(0)
    for vector in list(rng.uniform(-4, 4, size=(20, 3))) + [np.array([1e-14, 0, 0]), np.zeros(3)]:
        np.testing.assert_allclose(
            axis_angle_to_matrix(vector), Rotation.from_rotvec(vector).as_matrix(), atol=1e-12
        )


@pytest.mark.parametrize("seed", range(6))
def test_robust_search_finds_the_attitude_despite_dropouts_merges_and_false_stars(catalog, sky, seed):
    rng = np.random.default_rng(200 + seed)
    scene = simulate_sensor_scene(sky, rng, position_noise_px=1.0, mag_noise=0.5, false_stars=6)
    order = np.argsort(scene.mags)[:16]
    query = pixels_to_vectors(scene.pixels[order], 1024, 1024, 14.0)
    outcome = robust_search(query, scene.mags[order], catalog, ALPHA_EPS, 1.8, 10.0)
    assert outcome.status == OPTIMAL and outcome.rotation is not None
    # The optimum is a cube centre, anywhere stars stay within alpha_eps: near the truth, with the
    # roll (a 14 deg field's weak axis) the loosest; identify() refines it by Wahba.
    angle = math.degrees(math.acos(np.clip((np.trace(outcome.rotation.T @ scene.rotation) - 1) / 2, -1, 1)))
    boresight = math.degrees(math.acos(np.clip(outcome.rotation[:, 2] @ scene.rotation[:, 2], -1, 1)))
    assert angle < 0.6 and boresight < 0.1
    # The answer aligns at least as many stars as the true attitude does.
    nearest, _, _ = nearest_under(scene.rotation, query, scene.mags[order], catalog, ALPHA_EPS, 1.8)
    assert outcome.matches >= int((nearest >= 0).sum()) - 1  # the truth itself is off by the noise
    assert outcome.false_alarms < 1e-3


def test_robust_search_on_random_dots_finds_nothing_significant(catalog):
    rng = np.random.default_rng(9)
    query = pixels_to_vectors(rng.uniform(0, 1024, (16, 2)), 1024, 1024, 14.0)
    outcome = robust_search(query, rng.uniform(2, 6, 16), catalog, ALPHA_EPS, 1.8, 10.0)
    assert outcome.rotation is None or outcome.false_alarms > 1e-3


def test_nearest_under_matches_brute_force(catalog):
    rng = np.random.default_rng(4)
    rotation = Rotation.random(random_state=4).as_matrix()
    # Query stars placed near catalogue stars (some exactly on), plus random ones.
    targets = catalog.vectors[rng.choice(len(catalog), 30, replace=False)]
    jitter = rng.normal(0, math.radians(0.03), targets.shape)
    query = np.vstack([targets + jitter, rng.normal(size=(10, 3))])
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    query = query @ rotation  # camera frame: rotation maps it back onto the sky
    mags = np.where(rng.random(40) < 0.2, np.nan, rng.uniform(1, 7, 40))
    radius = math.radians(0.08)
    nearest, angle, runner_up = nearest_under(rotation, query, mags, catalog, radius, 1.5)
    angles = np.arccos(np.clip((query @ rotation.T) @ catalog.vectors.T, -1, 1))
    compatible = np.isnan(mags)[:, None] | (np.abs(mags[:, None] - catalog.magnitudes[None, :]) <= 1.5)
    angles[~compatible | (angles > radius)] = np.inf
    expected = np.where(np.isfinite(angles.min(axis=1)), angles.argmin(axis=1), -1)
    np.testing.assert_array_equal(nearest, expected)
    np.testing.assert_allclose(angle[expected >= 0], angles.min(axis=1)[expected >= 0], atol=1e-9)
    second = np.sort(angles, axis=1)[:, 1]
    np.testing.assert_allclose(runner_up[np.isfinite(second)], second[np.isfinite(second)], atol=1e-9)
    assert (expected >= 0).sum() >= 15


def test_chance_alignments_fall_steeply_with_matches():
    values = [chance_alignments(10_000, 16, q, ALPHA_EPS, 14_000) for q in range(3, 10)]
    assert all(b < a / 10 for a, b in zip(values, values[1:]))
    assert values[0] > 1 and values[-1] < 1e-9
