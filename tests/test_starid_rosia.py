"""ROSIA's search: sub-catalogues (Eq. 11), objective (Eq. 10), bound (Eq. 7), branch-and-bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from starid.catalog import StarCatalog, build_catalog
from starid.geometry import axis_angle_to_matrix, nearest_neighbour_angles, pixels_to_vectors
from starid.rosia import OPTIMAL, TIME_BUDGET, objective, rotation_search, subcatalogue_pairs, upper_bound
from starid.simulate import simulate_scene

ALPHA_EPS = math.radians(0.0275)


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    return build_catalog()


def make_problem(catalog, seed, **noise):
    """A simulated scene -> (query vectors, pair_query, pair_vectors, true rotation, scene)."""
    rng = np.random.default_rng(seed)
    scene = simulate_scene(catalog, rng, **noise)
    query = pixels_to_vectors(scene.pixels, scene.image_width, scene.image_height, scene.fov_deg)
    pair_query, pair_catalog = subcatalogue_pairs(
        nearest_neighbour_angles(query), scene.mags, catalog, ALPHA_EPS, 1.2
    )
    return query, pair_query, catalog.vectors[pair_catalog], scene.rotation, scene


def rotations_in_box(rng, centre, half_side, count):
    """Rotation matrices at uniformly random axis-angle points of the cube."""
    points = centre + rng.uniform(-half_side, half_side, size=(count, 3))
    return [axis_angle_to_matrix(point) for point in points]


def test_subcatalogues_match_brute_force_eq_11(catalog):
    rng = np.random.default_rng(3)
    query = pixels_to_vectors(rng.uniform(0, 1024, size=(25, 2)), 1024, 1024, 14.0)
    theta = nearest_neighbour_angles(query)
    mags = rng.uniform(1, 6, size=25)
    mags[::5] = np.nan  # unknown magnitude: no magnitude test for those stars
    alpha = math.radians(0.05)
    pair_query, pair_catalog = subcatalogue_pairs(theta, mags, catalog, alpha, 1.0)

    feature_ok = np.all(np.abs(theta[:, None, :] - catalog.features[None, :, :]) <= 2 * alpha, axis=2)
    mag_ok = np.isnan(mags)[:, None] | (np.abs(mags[:, None] - catalog.magnitudes[None, :]) <= 1.0)
    expected = np.argwhere(feature_ok & mag_ok)
    got = np.column_stack([pair_query, pair_catalog])
    assert len(expected) > 25
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))
    assert np.all(np.diff(pair_query) >= 0)  # grouped by query star, as the search requires


def test_true_rotation_scores_every_star_with_intact_features(catalog):
    query, pair_query, pair_vectors, truth, scene = make_problem(catalog, 5)
    true_pairs = catalog.vectors[np.searchsorted(catalog.hip, scene.hip)]
    # A star counts when its own catalogue entry passed Eq. 11, i.e. its two nearest neighbours are in view.
    own = [
        i
        for i in range(len(query))
        if np.any(np.all(np.isclose(pair_vectors[pair_query == i], true_pairs[i]), axis=1))
    ]
    assert len(own) >= 3
    assert objective(truth, query, pair_query, pair_vectors, ALPHA_EPS) == len(own)


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
    if best_known < 3:  # too few stars with intact triplet features: nothing >= 3 exists to find
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
