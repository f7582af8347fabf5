"""`astroloc bench real` (service/bench/real.py) on real ISS photos and their real Sentinel-2
candidates (../shared/data/real-earthmatch), and the linear lat/lon georeference those surroundings
use (geo.refine.GeoImage)."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

from geo.refine import GeoImage
from service.bench.real import CORRECT_IOU, judge, load_set, refinement_report, run_refinement
from service.config import Settings
from service.localize.refine import refine_params


def test_a_linear_georeference_is_linear_in_latitude_and_inverts():
    image = np.zeros((300, 600, 3), np.uint8)
    linear = GeoImage(image, (10.0, 40.0, 16.0, 46.0), georeference="linear")
    mercator = GeoImage(image, (10.0, 40.0, 16.0, 46.0))
    middle = linear.pixel_to_lonlat(np.array([[300.0, 150.0]]))[0]
    assert middle == pytest.approx([13.0, 43.0])  # halfway down is halfway in latitude
    # Mercator rows stretch northwards: its middle row lies north of the middle latitude.
    assert mercator.pixel_to_lonlat(np.array([[300.0, 150.0]]))[0][1] == pytest.approx(43.07, abs=0.01)
    points = np.array([[0.0, 0.0], [123.0, 45.0], [600.0, 300.0]])
    assert linear.lonlat_to_pixel(linear.pixel_to_lonlat(points)) == pytest.approx(points)
    with pytest.raises(ValueError, match="georeference"):
        GeoImage(image, (10.0, 40.0, 16.0, 46.0), georeference="utm")


def test_answers_are_judged_right_centre_right_or_wrong():
    truth = box(10.0, 40.0, 10.2, 40.2)
    assert judge(box(10.01, 40.0, 10.21, 40.2), truth)[0] == "right"
    # Half the truth's size on its centre: IoU 0.25, centroids together.
    assert judge(box(10.05, 40.05, 10.15, 40.15), truth)[0] == "centre-right"
    assert judge(box(20.0, 40.0, 20.2, 40.2), truth)[0] == "wrong"


def test_two_real_photos_run_through_the_refinement_job(shared_data, tmp_path):
    photos = load_set(shared_data / "real-earthmatch")
    assert len(photos) == 16 and all(len(p.candidates) == 10 for p in photos)
    chosen = [p for p in photos if p.photo_id in ("ISS052-E-8329", "ISS052-E-39552")]
    outcomes = run_refinement(Settings(data_dir=tmp_path), chosen)
    by_id = {o.photo_id: o for o in outcomes}
    # The README's oracle pair: matched into a right candidate, IoU 0.97 with the truth.
    solved = by_id["ISS052-E-8329"]
    assert solved.reachable and solved.verdict == "right" and solved.iou >= 0.9
    assert solved.candidates[solved.answer_k].iou >= CORRECT_IOU
    # No candidate of this photo holds its centre: a right service refuses it, and says why.
    unreachable = by_id["ISS052-E-39552"]
    assert not unreachable.reachable and unreachable.verdict == "refused" and unreachable.reason
    assert all(len(o.candidates) == 10 for o in outcomes) and all(o.tried >= 1 for o in outcomes)
    report = refinement_report(outcomes, refine_params(Settings(data_dir=tmp_path)))
    assert "| all | 2 | 1 | 1 | 0 | 1 of 1 | 0 | 1 |" in report
