"""The ROSIA star catalogue: Hipparcos 2 reading, filtering, features, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest

from starid.catalog import (
    DEFAULT_MAG_LIMIT,
    DEFAULT_MIN_SEPARATION_DEG,
    MAG_BIN_WIDTH,
    StarCatalog,
    build_catalog,
    propagate_proper_motion,
    read_hipparcos,
)


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    return build_catalog()


def test_keeps_visible_stars_as_unit_vectors_sorted_by_hip(catalog):
    assert 13_000 < len(catalog) < 14_000  # ~13,940 Hipparcos stars have Hp <= 7, a few merged
    assert catalog.magnitudes.max() <= DEFAULT_MAG_LIMIT
    assert np.all(np.diff(catalog.hip) > 0)
    np.testing.assert_allclose(np.linalg.norm(catalog.vectors, axis=1), 1.0, atol=1e-12)
    assert 9884 in catalog.hip  # Hamal (alpha Ari), Hp 2.2, single


def test_close_pairs_become_one_blob_at_the_flux_weighted_centre(catalog):
    raw = build_catalog(min_separation_deg=0.0)
    cosines = catalog.vectors @ catalog.vectors.T
    np.fill_diagonal(cosines, -1.0)
    assert math.degrees(math.acos(cosines.max())) >= DEFAULT_MIN_SEPARATION_DEG * 0.999
    assert 20 < len(raw) - len(catalog) < 400  # merged members
    # A merged entry: the brightest member's HIP, the summed flux, between its members.
    own = raw.magnitudes[np.searchsorted(raw.hip, catalog.hip)]
    brighter = np.flatnonzero(catalog.magnitudes < own - 1e-9)  # entries that gained a member's light
    assert 20 < len(brighter) < 400
    hip = catalog.hip[brighter[0]]
    entry, star = np.searchsorted(catalog.hip, hip), np.searchsorted(raw.hip, hip)
    members = np.flatnonzero(raw.vectors @ raw.vectors[star] >= math.cos(math.radians(DEFAULT_MIN_SEPARATION_DEG)))
    assert len(members) >= 2 and raw.magnitudes[star] == raw.magnitudes[members].min()
    total = -2.5 * np.log10((10 ** (-0.4 * raw.magnitudes[members])).sum())
    assert catalog.magnitudes[entry] == pytest.approx(total, abs=1e-9) or len(members) > 2
    assert catalog.vectors[entry] @ raw.vectors[star] > math.cos(math.radians(DEFAULT_MIN_SEPARATION_DEG))


def test_pair_index_holds_every_close_pair_in_its_magnitude_group():
    small = build_catalog(mag_limit=4.0)
    index = small.pairs(max_pair_deg=15.0)
    cosines = np.clip(small.vectors @ small.vectors.T, -1, 1)
    expected = {(i, j) for i, j in zip(*np.nonzero(np.triu(np.arccos(cosines) <= math.radians(15.0), 1)))}
    got = {(min(a, b), max(a, b)) for a, b in zip(index.first, index.second)}
    assert got == expected and len(got) > 1000
    bins = np.floor((small.magnitudes - index.mag_min) / MAG_BIN_WIDTH).astype(int)
    for group in range(index.bins * index.bins):
        start, end = index.group_start[group], index.group_start[group + 1]
        assert np.all(np.diff(index.angle[start:end]) >= 0)
        assert np.all(bins[index.first[start:end]] * index.bins + bins[index.second[start:end]] == group)
    np.testing.assert_allclose(
        index.angle, np.arccos(np.einsum("ij,ij->i", small.vectors[index.first], small.vectors[index.second])), atol=1e-9
    )


def test_sky_grid_files_every_star_in_its_cell(catalog):
    grid = catalog.grid()
    assert sorted(grid.star) == list(range(len(catalog)))
    cells = np.repeat(np.arange(grid.bands * grid.ra_cells), np.diff(grid.cell_start))
    dec = np.arcsin(catalog.vectors[grid.star, 2])
    ra = np.arctan2(catalog.vectors[grid.star, 1], catalog.vectors[grid.star, 0]) % (2 * math.pi)
    np.testing.assert_array_equal(cells // grid.ra_cells, np.minimum(((dec + math.pi / 2) / math.pi * grid.bands).astype(int), grid.bands - 1))
    np.testing.assert_array_equal(cells % grid.ra_cells, np.minimum((ra / (2 * math.pi) * grid.ra_cells).astype(int), grid.ra_cells - 1))


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
