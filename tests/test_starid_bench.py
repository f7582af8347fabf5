"""The ROSIA benchmark: scoring of scenes and the markdown report (a tiny run; the real one is long)."""

from __future__ import annotations

import numpy as np
import pytest

from service.bench import starid as bench
from starid.catalog import StarCatalog, build_catalog
from starid.simulate import Scene, simulate_scene


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    return build_catalog()


def busy_scene(catalog, seed) -> Scene:
    rng = np.random.default_rng(seed)
    while True:
        scene = simulate_scene(catalog, rng)
        if len(scene.hip) >= 10:
            return scene


def test_scores_success_false_positive_and_no_result(catalog):
    stats = bench.SettingStats()
    scene = busy_scene(catalog, 0)
    bench.score_scene(catalog, scene, stats, 0.0275, 1.2)
    assert (stats.success, stats.false_positive, stats.no_result) == (1, 0, 0)
    assert stats.attitude_errors_arcsec[0] < 0.01

    # Swap two true labels: the (correct) identification now disagrees with the "truth".
    swapped = Scene(**{**scene.__dict__, "hip": scene.hip[[1, 0, *range(2, len(scene.hip))]]})
    bench.score_scene(catalog, swapped, stats, 0.0275, 1.2)
    assert stats.false_positive == 1

    too_few = Scene(
        **{**scene.__dict__, "pixels": scene.pixels[:2], "mags": scene.mags[:2], "hip": scene.hip[:2]}
    )
    bench.score_scene(catalog, too_few, stats, 0.0275, 1.2)
    assert stats.no_result == 1 and stats.scenes == 3


def test_tolerances_follow_the_noise():
    assert bench.tolerances_for(0.0, 0.0) == (0.0275, 1.2)
    alpha, mag_tolerance = bench.tolerances_for(2.0, 1.0)
    assert alpha == pytest.approx(2 * 2.0 * 14.0 / 1024) and mag_tolerance == 2.0


def test_run_returns_the_three_sweeps_as_markdown(catalog):
    report = bench.run(scenes_per_setting=2, seed=1, catalog=catalog)
    for title in ("### Positional noise", "### Magnitude noise", "### False stars", "### Spatial index"):
        assert title in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "%" in line]
    assert len(rows) == sum(len(values) for _, _, values in bench.SWEEPS.values())
    assert all(line.split("|")[2].strip() == "2" for line in rows)  # scenes per setting
    with pytest.raises(ValueError):
        bench.run(scenes_per_setting=0, catalog=catalog)
