"""The ROSIA star catalogue: Hipparcos 2 reading, filtering, features, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest

from starid.catalog import (
    DEFAULT_MIN_SEPARATION_DEG,
    StarCatalog,
    build_catalog,
    close_pair_members,
    propagate_proper_motion,
    read_hipparcos,
)


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    return build_catalog()


def test_keeps_visible_stars_as_unit_vectors_sorted_by_hip(catalog):
    assert 4000 < len(catalog) < 5000  # ~4,560 Hipparcos stars have Hp <= 6
    assert catalog.magnitudes.max() <= 6.0
    assert np.all(np.diff(catalog.hip) > 0)
    np.testing.assert_allclose(np.linalg.norm(catalog.vectors, axis=1), 1.0, atol=1e-12)
    assert 9884 in catalog.hip  # Hamal (alpha Ari), Hp 2.2, single


def test_unresolvable_doubles_are_removed_both_members(catalog):
    raw = read_hipparcos()
    visible = raw["mag"] <= 6.0
    ra, dec = raw["ra"][visible], raw["dec"][visible]
    vectors = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    doubles = raw["hip"][visible][close_pair_members(vectors, DEFAULT_MIN_SEPARATION_DEG)]
    assert len(doubles) > 20  # there are such pairs to remove
    assert not np.isin(doubles, catalog.hip).any()
    cosines = catalog.vectors @ catalog.vectors.T
    np.fill_diagonal(cosines, -1.0)
    closest_deg = math.degrees(math.acos(cosines.max()))
    assert closest_deg >= DEFAULT_MIN_SEPARATION_DEG


def test_triplet_features_are_the_two_nearest_neighbour_angles(catalog):
    rng = np.random.default_rng(0)
    for index in rng.choice(len(catalog), size=50, replace=False):
        angles = np.arccos(np.clip(catalog.vectors @ catalog.vectors[index], -1.0, 1.0))
        angles[index] = np.inf
        np.testing.assert_allclose(catalog.features[index], np.sort(angles)[:2], atol=1e-9)


def test_proper_motion_moves_61_cygni_by_its_catalogued_rate():
    raw = read_hipparcos()
    i = int(np.flatnonzero(raw["hip"] == 104214)[0])  # 61 Cyg A
    args = (raw["ra"][i : i + 1], raw["dec"][i : i + 1], raw["pm_ra"][i : i + 1], raw["pm_dec"][i : i + 1])
    start, moved = propagate_proper_motion(*args, 0.0), propagate_proper_motion(*args, 33.75)
    drift_arcsec = math.degrees(math.acos(float(start[0] @ moved[0]))) * 3600
    expected = math.hypot(raw["pm_ra"][i], raw["pm_dec"][i]) / 1000 * 33.75  # mas/yr -> arcsec
    assert drift_arcsec == pytest.approx(expected, rel=1e-3)
    assert drift_arcsec > 150


def test_magnitude_limit_is_applied():
    bright = build_catalog(mag_limit=3.0)
    assert 100 < len(bright) < 300
    assert bright.magnitudes.max() <= 3.0


@pytest.mark.parametrize("kwargs", [{"mag_limit": 20.0}, {"min_separation_deg": -1.0}])
def test_build_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        build_catalog(**kwargs)


def test_save_load_round_trip_to_exactly_one_file(catalog, tmp_path):
    path = tmp_path / "star-catalog.bin"  # no .npz suffix: the file must still land at this path
    catalog.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["star-catalog.bin"]
    loaded = StarCatalog.load(path)
    for name in ("hip", "vectors", "magnitudes", "features", "by_phi1", "phi1_sorted"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(catalog, name))
    assert (loaded.mag_limit, loaded.min_separation_deg, loaded.epoch_year) == (
        catalog.mag_limit,
        catalog.min_separation_deg,
        catalog.epoch_year,
    )


def test_phi1_index_is_sorted(catalog):
    assert np.all(np.diff(catalog.phi1_sorted) >= 0)
    np.testing.assert_array_equal(catalog.features[catalog.by_phi1, 0], catalog.phi1_sorted)


def test_load_rejects_files_that_are_not_catalogues(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable star catalogue"):
        StarCatalog.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="not a star catalogue"):
        StarCatalog.load(other)


def test_catalogue_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="shape"):
        StarCatalog(
            hip=np.arange(4),
            vectors=np.eye(3)[[0, 1, 2, 0]],
            magnitudes=np.zeros(3),
            features=np.zeros((4, 2)),
            mag_limit=6.0,
            min_separation_deg=0.1,
            epoch_year=2025.0,
        )
