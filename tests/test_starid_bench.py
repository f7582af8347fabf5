"""`astroloc bench starid`: attitude judging, the report's tables, the tetra3rs peer (a tiny run)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from service.bench import starid as bench
from starid.catalog import StarCatalog, build_catalog
from starid.simulate import build_sky, simulate_sensor_scene


@pytest.fixture(scope="module")
def catalog() -> StarCatalog:
    return build_catalog()


@pytest.fixture(scope="module")
def sky() -> StarCatalog:
    return build_sky()


def test_attitude_errors_split_boresight_and_roll():
    truth = Rotation.random(random_state=1).as_matrix()
    about_boresight = Rotation.from_rotvec(truth[:, 2] * math.radians(2.0)).as_matrix() @ truth
    boresight, roll = bench.attitude_errors_deg(about_boresight, truth)
    assert boresight == pytest.approx(0.0, abs=1e-9) and roll == pytest.approx(2.0, abs=1e-6)
    tilted = Rotation.from_rotvec(truth[:, 0] * math.radians(0.3)).as_matrix() @ truth
    boresight, roll = bench.attitude_errors_deg(tilted, truth)
    assert boresight == pytest.approx(0.3, abs=1e-6) and roll < 0.01


def test_outcomes_judge_by_attitude():
    truth = Rotation.random(random_state=2).as_matrix()
    stats = bench.Outcomes()
    stats.add(truth, truth, 1.0, 1.0)
    stats.add(Rotation.from_rotvec(truth[:, 2] * math.radians(1.5)).as_matrix() @ truth, truth, 1.0, 1.0)
    stats.add(None, truth, 1.0, 1.0)
    assert (stats.identified, stats.false_positive, stats.no_result, stats.scenes) == (1, 1, 1, 3)
    assert stats.cells()[0] == "33.3%"


def test_run_reports_every_setting_and_the_paper_sweeps(catalog):
    report = bench.run(scenes_per_setting=2, paper_scenes=1, seed=1, catalog=catalog, with_peer=False, frames=1)
    assert "### Sensor scenes" in report and "### The paper's Sec. V scenes" in report
    assert "### From rendered images" in report
    sensor_rows = [line for line in report.splitlines() if line.startswith("| 1 px") or line.startswith("| 2 px")]
    assert len(sensor_rows) == len(bench.SENSOR_SETTINGS) + len(bench.OPTIONAL_SETTINGS)
    assert all(line.split("|")[2].strip() == "2" for line in sensor_rows)
    with pytest.raises(ValueError):
        bench.run(scenes_per_setting=0, catalog=catalog)


def test_rosia_and_tetra3rs_agree_on_a_sensor_scene(catalog, sky):
    pytest.importorskip("tetra3rs")
    peer = bench.Tetra3rs()
    rng = np.random.default_rng(3)
    scene = simulate_sensor_scene(sky, rng, position_noise_px=1.0, mag_noise=0.3)
    ours, theirs = bench.solve_rosia(catalog, scene), peer.solve(scene)
    assert ours is not None and theirs is not None
    for rotation in (ours, theirs):
        boresight, roll = bench.attitude_errors_deg(rotation, scene.rotation)
        assert boresight < 0.1 and roll < 0.5
