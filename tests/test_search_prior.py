"""The obliquity prior (geo/prior.py): its fit on the real EOL footprints and its use on tiles."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from geo.prior import (
    ObliquityPrior,
    fit_catalogue,
    fit_prior,
    FootprintOffsets,
    footprint_centre,
    footprint_offsets,
    load_prior,
    slant_range_km,
    tilt_for_distance_deg,
)


def test_refit_on_the_real_catalogue_reproduces_the_committed_fit(shared_data):
    fitted = fit_catalogue(shared_data / "eol_footprints.csv")
    committed = load_prior()
    assert fitted.fitted_rows + fitted.rejected_rows == 17_763
    # The README: 10 rows have a corner over 2,300 km from the nadir (metadata errors).
    assert fitted.rejected_rows == 10
    for field in ("distance_shape", "distance_scale_km", "size_log_intercept", "size_log_slope", "size_log_sigma"):
        assert getattr(fitted, field) == pytest.approx(getattr(committed, field), rel=1e-3), field
    # The fitted law follows the measured distances: its median within 5% of the sample's.
    assert float(fitted.distance_quantile_km(0.5)) == pytest.approx(fitted.distance_quantiles_km["p50"], rel=0.05)
    assert float(fitted.distance_quantile_km(0.9)) == pytest.approx(fitted.distance_quantiles_km["p90"], rel=0.05)


def test_offsets_match_the_catalogue_facts(shared_data):
    with (shared_data / "eol_footprints.csv").open(newline="") as handle:
        offsets = footprint_offsets(csv.DictReader(handle))
    # README: corners within 1,427 km of the nadir for 99.9% of rows, median 409 km.
    assert np.percentile(offsets.max_corner_km, 50) == pytest.approx(409, abs=5)
    assert np.percentile(offsets.max_corner_km, 99.9) == pytest.approx(1427, abs=15)
    assert (offsets.distance_km < offsets.max_corner_km).all()  # the centre is inside its corners


def test_fit_recovers_known_laws_and_leaves_out_corners_beyond_the_horizon():
    rng = np.random.default_rng(7)
    n = 20_000
    distance = 300.0 * rng.weibull(2.2, n)
    size = np.exp(2.0 + 0.4 * np.log(slant_range_km(distance)) + rng.normal(0.0, 0.3, n))
    corners = distance + 100.0
    corners[:25] = 9_000.0  # metadata errors: far beyond the horizon, with absurd distances
    distance[:25] = 8_000.0
    prior = fit_prior(FootprintOffsets(distance, size, corners))
    assert prior.rejected_rows == 25 and prior.fitted_rows == n - 25
    assert prior.distance_shape == pytest.approx(2.2, rel=0.03)
    assert prior.distance_scale_km == pytest.approx(300.0, rel=0.02)
    assert prior.size_log_slope == pytest.approx(0.4, abs=0.05)
    assert prior.size_log_sigma == pytest.approx(0.3, rel=0.05)


def test_distance_law_quantiles_invert_the_cdf_and_the_density_integrates_to_one():
    prior = load_prior()
    p = np.array([0.01, 0.25, 0.5, 0.9, 0.999])
    assert prior.distance_cdf(prior.distance_quantile_km(p)) == pytest.approx(p, abs=1e-9)
    d = np.linspace(5.0, 4000.0, 40_000)
    assert np.trapezoid(np.exp(prior.log_distance_pdf(d)), d) == pytest.approx(1.0, abs=0.01)
    # Per km² of ground: the same mass once weighed by the ring's circumference.
    ring = 2 * np.pi * 6371.0088 * np.sin(d / 6371.0088)
    assert np.trapezoid(np.exp(prior.log_density_per_km2(d)) * ring, d) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError):
        prior.distance_quantile_km(1.0)


def test_tilt_follows_the_geometry():
    assert float(tilt_for_distance_deg(0.0)) == 0.0
    tilts = tilt_for_distance_deg(np.array([100.0, 400.0, 1000.0, 2000.0]))
    assert (np.diff(tilts) > 0).all()
    # Flat-Earth limit near the nadir: atan(d / h).
    assert float(tilt_for_distance_deg(10.0, 420.0)) == pytest.approx(np.degrees(np.arctan(10.0 / 420.0)), rel=1e-3)
    # At the horizon the line of sight grazes the Earth: sin(tilt) = R / (R + h).
    horizon_km = 6371.0088 * np.arccos(6371.0088 / 6791.0088)
    assert float(tilt_for_distance_deg(horizon_km)) == pytest.approx(np.degrees(np.arcsin(6371.0088 / 6791.0088)), abs=1e-6)


def test_the_real_catalogue_is_oblique():
    """The committed fit's median centre distance corresponds to a ~38 deg tilt at 420 km."""
    prior = load_prior()
    assert 30.0 < float(tilt_for_distance_deg(prior.distance_quantile_km(0.5))) < 45.0


def test_tile_terms_favour_tiles_at_the_usual_distance_and_mix_two_sub_points():
    prior = load_prior()
    # 2 x 2 deg boxes on the equator, 0, ~330, ~1,100 and ~2,000 km east of the sub-point (0, 0).
    centres = np.array([0.0, 3.0, 10.0, 18.0])
    bounds = np.column_stack([centres - 1.0, np.full(4, -1.0), centres + 1.0, np.full(4, 1.0)])
    location, size = prior.tile_terms(bounds, [(0.0, 0.0)])
    assert location.shape == size.shape == (4,)
    assert location[1] > location[2] > location[3]  # beyond the usual ring it only falls
    assert location[0] > location[3]
    # With a second, far sub-point the far tile gains, the near ones lose (an equal mixture).
    mixed, _ = prior.tile_terms(bounds, [(0.0, 0.0), (0.0, 18.0)])
    assert mixed[3] > location[3] and mixed[1] < location[1]
    # The size term prefers a tile about as wide as a real footprint (~100 km) to a 2,000 km one.
    small = np.array([[2.5, -0.5, 3.5, 0.5]])
    big = np.array([[-6.0, -9.0, 12.0, 9.0]])
    assert prior.tile_terms(small, [(0.0, 0.0)])[1][0] > prior.tile_terms(big, [(0.0, 0.0)])[1][0]


def test_tile_terms_across_the_antimeridian_equal_the_mirror_case():
    prior = load_prior()
    east = prior.tile_terms(np.array([[178.0, 10.0, 182.0, 12.0]]), [(11.0, 179.5)])
    west = prior.tile_terms(np.array([[-2.0, 10.0, 2.0, 12.0]]), [(11.0, -0.5)])
    assert east[0] == pytest.approx(west[0], abs=1e-6) and east[1] == pytest.approx(west[1], abs=1e-6)


def test_footprint_centre_across_the_antimeridian():
    corners = np.array([[[-1.0, 179.0], [1.0, 179.0], [1.0, -179.0], [-1.0, -179.0]]])
    lat, lon = footprint_centre(corners)
    assert lat[0] == pytest.approx(0.0, abs=1e-9) and abs(lon[0]) == pytest.approx(180.0, abs=1e-9)


def test_prior_round_trips_through_json():
    prior = load_prior()
    assert ObliquityPrior.from_json(prior.to_json()) == prior
