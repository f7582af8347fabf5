"""The demo world's EOL tilt law: as oblique as the real catalogue, reproducible from its seed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from geo.prior import load_prior, tilt_for_distance_deg
from world.build import build_world, sampling_parameters
from world.catalogue import WorldPaths
from world.sampling import EOL_TILT_SAMPLING, QuerySampling, draw_tilt_deg, sample_tles


def test_eol_tilts_follow_the_fitted_distance_law():
    prior = load_prior()
    rng = np.random.default_rng(11)
    tilts = np.array([draw_tilt_deg(rng, EOL_TILT_SAMPLING, 420.0) for _ in range(4000)])
    assert tilts.min() >= 0.0 and tilts.max() <= 70.0
    # The median tilt is that of the law's median distance (~38 deg), not the uniform 30 deg.
    expected = float(tilt_for_distance_deg(prior.distance_quantile_km(0.5), 420.0))
    assert np.median(tilts) == pytest.approx(expected, abs=1.0)
    uniform = np.array([draw_tilt_deg(rng, QuerySampling(), 420.0) for _ in range(4000)])
    assert np.median(uniform) == pytest.approx(30.0, abs=1.5)
    assert np.mean(tilts < 10.0) < np.mean(uniform < 10.0) / 3  # near-nadir photos are rare


def test_the_law_draws_once_so_the_rest_of_a_view_is_unchanged():
    uniform, oblique = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):
        assert draw_tilt_deg(uniform, QuerySampling(), 420.0) != draw_tilt_deg(oblique, EOL_TILT_SAMPLING, 420.0)
        assert uniform.random() == oblique.random()  # azimuth, roll, lens... drawn as before


def test_default_worlds_keep_their_recorded_parameters_and_eol_worlds_record_the_fit():
    assert "tilt_law" not in sampling_parameters(QuerySampling())  # worlds built before stay valid
    recorded = sampling_parameters(EOL_TILT_SAMPLING)
    assert recorded["tilt_law"] == "eol" and recorded["tilt_prior"] == load_prior().to_json()
    with pytest.raises(ValueError):
        QuerySampling(tilt_law="gaussian")


def _digest(root) -> dict[str, str]:
    paths = WorldPaths(root)
    files = sorted(paths.queries.iterdir()) + [paths.csv]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_an_eol_world_reproduces_byte_for_byte_from_its_seed(tmp_path):
    tles = sample_tles()
    first = build_world(tmp_path / "a", zooms=(1,), n_queries=3, seed=4, sampling=EOL_TILT_SAMPLING, tles=tles)
    second = build_world(tmp_path / "b", zooms=(1,), n_queries=3, seed=4, sampling=EOL_TILT_SAMPLING, tles=tles)
    assert first["parameters"] == second["parameters"]
    assert first["parameters"]["sampling"]["tilt_law"] == "eol"
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert len(_digest(tmp_path / "a")) == 3 * 2 + 1  # a JPEG and a truth row per photo, and the CSV
