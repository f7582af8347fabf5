"""Star identification end to end: simulated scenes, attitude, input validation, geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from starid.catalog import StarCatalog, build_catalog
from starid.geometry import (
    boresight_ra_dec_roll,
    pixels_to_vectors,
    quaternion_to_rotation,
    random_rotation,
    rotation_angle_deg,
    rotation_to_quaternion,
    solve_wahba,
    vectors_to_pixels,
)
from starid.identify import identify, identify_pixels
from starid.simulate import simulate_scene


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    return build_catalog()


def scene_with_stars(catalog, seed, minimum=8, **noise):
    rng = np.random.default_rng(seed)
    while True:
        scene = simulate_scene(catalog, rng, **noise)
        if (scene.hip >= 0).sum() >= minimum:
            return scene


def identify_scene(catalog, scene, **kwargs):
    return identify_pixels(
        catalog, scene.pixels, scene.image_width, scene.image_height, scene.fov_deg, scene.mags, **kwargs
    )


def test_noiseless_scene_names_every_star_and_recovers_the_attitude(catalog):
    scene = scene_with_stars(catalog, 1)
    result = identify_scene(catalog, scene)
    assert result.status == "identified"
    assert result.hip == scene.hip.tolist()
    assert result.matched == len(scene.hip)
    assert rotation_angle_deg(result.rotation, scene.rotation) < 1e-6
    np.testing.assert_allclose(quaternion_to_rotation(result.quaternion_wxyz), scene.rotation, atol=1e-9)
    assert (result.ra_deg, result.dec_deg, result.roll_deg) == pytest.approx(
        boresight_ra_dec_roll(scene.rotation)
    )
    assert result.reason is None and result.runtime_ms > 0


def test_noisy_scenes_are_identified_with_correct_hip_numbers(catalog):
    rng = np.random.default_rng(42)
    identified = 0
    for _ in range(30):
        scene = simulate_scene(catalog, rng, position_noise_px=1.0, mag_noise=0.3, false_stars=2)
        if len(scene.hip) < 3:
            continue
        result = identify_scene(catalog, scene)
        if result.status != "identified":
            continue
        identified += 1
        named = np.array([-1 if hip is None else hip for hip in result.hip])
        assert np.all(named[named >= 0] == scene.hip[named >= 0]), "a star was given a wrong HIP number"
        assert np.all(named[scene.hip < 0] == -1), "a false star was named"
        assert result.matched == (named >= 0).sum() >= 3
        assert rotation_angle_deg(result.rotation, scene.rotation) < 0.1  # ~1 px noise: well under 0.1 deg
    assert identified >= 27


def test_vectors_and_pixels_give_the_same_answer(catalog):
    scene = scene_with_stars(catalog, 2, position_noise_px=0.5)
    vectors = pixels_to_vectors(scene.pixels, scene.image_width, scene.image_height, scene.fov_deg)
    from_pixels = identify_scene(catalog, scene)
    from_vectors = identify(catalog, (vectors * 3.0).tolist(), scene.mags.tolist())  # not unit length
    assert from_vectors.status == from_pixels.status == "identified"
    assert from_vectors.hip == from_pixels.hip
    np.testing.assert_allclose(from_vectors.rotation, from_pixels.rotation, atol=1e-9)


def test_magnitudes_are_optional(catalog):
    scene = scene_with_stars(catalog, 3)
    size = (scene.image_width, scene.image_height, scene.fov_deg)
    without = identify_pixels(catalog, scene.pixels, *size, mags=None)
    assert without.status == "identified" and without.hip == scene.hip.tolist()
    some = [None if i % 2 else float(m) for i, m in enumerate(scene.mags)]
    assert identify_pixels(catalog, scene.pixels, *size, mags=some).hip == scene.hip.tolist()


def test_random_dots_are_not_identified(catalog):
    rng = np.random.default_rng(7)
    for _ in range(10):
        pixels = rng.uniform(0, 1024, size=(25, 2))
        result = identify_pixels(catalog, pixels, 1024, 1024, 14.0, rng.uniform(1, 6, 25))
        assert result.status == "no_result"
        assert result.hip == [None] * 25 and result.rotation is None
        assert result.reason


def test_a_wrong_field_of_view_is_not_identified(catalog):
    scene = scene_with_stars(catalog, 4, minimum=12)
    result = identify_pixels(catalog, scene.pixels, 1024, 1024, 20.0, scene.mags)
    assert result.status == "no_result"


def test_exceeding_the_time_budget_is_a_no_result_with_the_reason(catalog):
    scene = scene_with_stars(catalog, 5)
    result = identify_scene(catalog, scene, time_budget_s=1e-9)
    assert result.status == "no_result"
    assert "time budget" in result.reason


def test_result_dict_has_the_api_shape(catalog):
    scene = scene_with_stars(catalog, 6)
    body = identify_scene(catalog, scene).to_dict()
    assert body["status"] == "identified"
    assert body["stars"][0] == {"index": 0, "hip": int(scene.hip[0])}
    assert set(body["attitude"]) == {"quaternion_wxyz", "ra_deg", "dec_deg", "roll_deg"}
    assert body["matched"] == len(scene.hip) and body["runtime_ms"] > 0
    failed = identify_pixels(catalog, [[1, 1], [2, 900], [800, 3]], 1024, 1024, 14.0).to_dict()
    assert failed["status"] == "no_result" and failed["attitude"] is None


GOOD = {
    "pixels": [[10.0, 10.0], [500.0, 500.0], [900.0, 200.0]],
    "image_width": 1024,
    "image_height": 1024,
    "fov_deg": 14.0,
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pixels": [[10.0, 10.0], [500.0, 500.0]]}, "at least 3 stars"),
        ({"pixels": [[10.0, float("nan")], [500.0, 500.0], [900.0, 200.0]]}, "NaN"),
        ({"pixels": [[10.0, 10.0], [500.0, 500.0], [1030.0, 200.0]]}, "outside"),
        ({"pixels": [[10.0, -1.0], [500.0, 500.0], [900.0, 200.0]]}, "outside"),
        ({"pixels": [[1.0, 2.0, 3.0]] * 3}, "pixel positions"),
        ({"pixels": [["a", "b"]] * 3}, "numbers"),
        ({"fov_deg": 0.0}, "fov_deg"),
        ({"fov_deg": 180.0}, "fov_deg"),
        ({"fov_deg": float("nan")}, "fov_deg"),
        ({"image_width": 0}, "image_width"),
        ({"mags": [1.0, 2.0]}, "2 magnitudes for 3 stars"),
        ({"mags": 4.0}, "mags must be a list"),
        ({"mags": [1.0, float("nan"), 2.0]}, "magnitude of star 1"),
        ({"alpha_eps_deg": 0.0}, "alpha_eps_deg"),
        ({"mag_tolerance": -1.0}, "mag_tolerance"),
        ({"time_budget_s": 0.0}, "time_budget_s"),
    ],
)
def test_bad_pixel_input_is_a_value_error_with_a_message(catalog, change, message):
    with pytest.raises(ValueError, match=message):
        identify_pixels(catalog, **{**GOOD, **change})


@pytest.mark.parametrize(
    "vectors, message",
    [
        ([[0, 0, 1], [0, 0.1, 1]], "at least 3 stars"),
        ([[0, 0, 1], [0, 0.1, 1], [0, 0, 0]], "zero length"),
        ([[0, 0, 1], [0, 0.1, 1], [0, float("inf"), 1]], "NaN or infinite"),
        ([[0, 1], [1, 0], [1, 1]], r"\[x, y, z\]"),
        ([[0, 0, 1]] * 1001, "at most 1000"),
    ],
)
def test_bad_vector_input_is_a_value_error_with_a_message(catalog, vectors, message):
    with pytest.raises(ValueError, match=message):
        identify(catalog, vectors)


def test_pixels_and_vectors_convert_both_ways():
    pixels = np.array([[512.0, 512.0], [1024.0, 512.0], [0.0, 0.0], [300.5, 800.25]])
    vectors = pixels_to_vectors(pixels, 1024, 1024, 14.0)
    np.testing.assert_allclose(vectors[0], [0, 0, 1])
    # The right edge lies half the horizontal field of view off the boresight, towards +x.
    assert math.degrees(math.atan2(vectors[1, 0], vectors[1, 2])) == pytest.approx(7.0)
    assert vectors[2, 0] < 0 and vectors[2, 1] < 0  # top-left: left (-x) and up (-y)
    np.testing.assert_allclose(vectors_to_pixels(vectors, 1024, 1024, 14.0), pixels, atol=1e-9)


def test_quaternions_round_trip_and_wahba_recovers_a_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotation = random_rotation(rng)
        quaternion = rotation_to_quaternion(rotation)
        assert quaternion[0] >= 0 and np.linalg.norm(quaternion) == pytest.approx(1.0)
        np.testing.assert_allclose(quaternion_to_rotation(quaternion), rotation, atol=1e-12)
        camera = rng.normal(size=(5, 3))
        camera /= np.linalg.norm(camera, axis=1, keepdims=True)
        np.testing.assert_allclose(solve_wahba(camera, camera @ rotation.T), rotation, atol=1e-9)


def test_boresight_angles_follow_the_documented_convention():
    # Boresight at RA 90, Dec 0 (ICRS +y); image up (-y camera) towards celestial north (+z).
    rotation = np.column_stack([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # columns: camera x, y, z
    assert boresight_ra_dec_roll(rotation) == pytest.approx((90.0, 0.0, 0.0))
    # Image up towards east (at RA 90 east is -x): roll 90.
    rotation = np.column_stack([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert boresight_ra_dec_roll(rotation) == pytest.approx((90.0, 0.0, 90.0))


def direction(x_deg: float, y_deg: float) -> np.ndarray:
    """Unit vector at small offsets (degrees) from +z."""
    vector = np.array([math.radians(x_deg), math.radians(y_deg), 1.0])
    return vector / np.linalg.norm(vector)


def test_assignment_leaves_ambiguous_stars_unnamed_and_is_one_to_one():
    from starid.identify import assign_catalog_stars

    stars = np.array([direction(0, 0), direction(0.12, 0), direction(5, 5)])
    tiny = StarCatalog(
        np.array([10, 20, 30]), stars, np.array([3.0, 3.0, 3.0]), np.ones((3, 2)), 6.0, 0.1, 2025.0
    )
    alpha = math.radians(0.055)
    query = np.array(
        [
            direction(0.01, 0),  # clearly star 10 (runner-up 0.11 deg away)
            direction(0.045, 0),  # 0.045 from star 10, 0.075 from star 20: too close to call
            direction(5, 5.02),  # star 30...
            direction(5, 5.03),  # ...claimed by a farther query star too: the closer keeps it
        ]
    )
    assigned = assign_catalog_stars(np.eye(3), query, np.full(4, np.nan), tiny, alpha, 1.2)
    assert assigned.tolist() == [0, -1, 2, -1]
    # A magnitude mismatch rules a catalogue star out, as candidate and as runner-up alike.
    assigned = assign_catalog_stars(np.eye(3), query[1:2], np.array([8.0]), tiny, alpha, 1.2)
    assert assigned.tolist() == [-1]


def test_json_requests_of_both_forms_are_identified(catalog):
    from starid.identify import identify_request

    scene = scene_with_stars(catalog, 8)
    body = {
        "stars": [
            {"x": float(x), "y": float(y), "mag": float(m)} for (x, y), m in zip(scene.pixels, scene.mags)
        ],
        "image_width": 1024,
        "image_height": 1024,
        "fov_deg": 14.0,
        "alpha_eps_deg": 0.03,
    }
    assert identify_request(catalog, body).hip == scene.hip.tolist()
    body["stars"][0].pop("mag")
    assert identify_request(catalog, body).hip == scene.hip.tolist()
    vectors = pixels_to_vectors(scene.pixels, 1024, 1024, 14.0).tolist()
    assert identify_request(catalog, {"vectors": vectors}).hip == scene.hip.tolist()


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "JSON object"),
        ({"vectors": [[0, 0, 1]] * 3, "stars": []}, "either"),
        ({"image_width": 10}, "either"),
        ({"stars": [{"x": 1, "y": 1}] * 3, "image_width": 1024, "fov_deg": 14}, "image_height"),
        ({"stars": [[1, 1]] * 3, "image_width": 1024, "image_height": 1024, "fov_deg": 14}, "objects"),
        ({"stars": [{"x": 1}] * 3, "image_width": 1024, "image_height": 1024, "fov_deg": 14}, '"y"'),
        ({"vectors": [[0, 0, 1]] * 3, "fov": 14}, "unknown fields"),
    ],
)
def test_bad_json_requests_are_value_errors(catalog, body, message):
    from starid.identify import identify_request

    with pytest.raises(ValueError, match=message):
        identify_request(catalog, body)
