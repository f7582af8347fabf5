"""`astroloc bench localize`'s saved outcomes (service/bench/localize.py): written once, reused by
``--reuse`` to report and refit without matching again, and read to say why a photo with a right
tile among its candidates got no right answer."""

from __future__ import annotations

import pytest

from geo.acceptance import Acceptance, Scored
from service.bench.localize import CandidateDetail, PhotoOutcome, load_outcomes, misses_given_right_tile, save_outcomes

IDENTITY = {"model": "astroloc-lite-gem@test", "tiles_indexed": 340, "top_k": 2}


def _candidate(rank: int, right_tile: bool, inliers: int, iou: float | None, reason: str | None = None,
               shift: float | None = 0.01) -> tuple[CandidateDetail, tuple[Scored, float, float]]:
    detail = CandidateDetail(rank, f"4/{rank}/3", 90, right_tile, inliers, inliers * 2, [inliers // 2, inliers],
                             "sift", "camera", shift, reason, iou, 0.5)
    plausible = reason is None
    scored = Scored(inliers, 0.5, shift if plausible else None, plausible and iou >= 0.5,
                    (1.0, 2.0, 3.0, 4.0) if plausible else None, (0.5, 0.5, 0.5, 0.5) if plausible else None,
                    plausible=plausible)
    return detail, (scored, iou or 0.0, 0.0)


def _photo(photo_id: str, *candidates) -> PhotoOutcome:  # noqa: ANN002
    details = [c[0] for c in candidates]
    ranks = [d.rank for d in details if d.contains_centre]
    return PhotoOutcome(photo_id, ranks[0] if ranks else None, 0.05, 1.0,
                        [(d.inliers, d.iou, 1.0 if d.iou else None) for d in details], [c[1] for c in candidates],
                        tilt_deg=30.0, details=details)


def test_saved_outcomes_come_back_equal_and_only_for_what_produced_them(tmp_path):
    outcomes = [_photo("A", _candidate(1, True, 120, 0.93), _candidate(2, False, 9, None, "projected outline is not convex")),
                _photo("B", _candidate(1, False, 30, 0.0), _candidate(2, True, 6, None, "6 inliers, fewer than the 8 needed"))]
    path = tmp_path / "bench" / "localize-test.json"
    save_outcomes(path, IDENTITY, outcomes)

    assert load_outcomes(path, IDENTITY) == outcomes
    with pytest.raises(ValueError, match="produced with"):
        load_outcomes(path, IDENTITY | {"top_k": 10})
    with pytest.raises(ValueError, match="no saved outcomes"):
        load_outcomes(tmp_path / "missing.json", IDENTITY)


def test_misses_given_a_right_tile_are_told_by_the_fate_of_that_tile():
    acceptance = Acceptance(min_probability=Acceptance().probability(10, 0.5))  # 10 inliers needed, corners may move 19%
    outcomes = [
        _photo("answered", _candidate(1, True, 150, 0.9)),
        _photo("not-convex", _candidate(1, True, 40, None, "projected outline is not convex"),
               _candidate(2, False, 5, None, "5 inliers, fewer than the 8 needed")),
        _photo("shear", _candidate(1, False, 12, 0.0), _candidate(2, True, 25, None, "extreme shear (corner angle 9 deg)")),
        _photo("loose", _candidate(1, True, 60, 0.3)),
        _photo("unsure", _candidate(1, True, 9, 0.8)),
        _photo("unconverged", _candidate(1, True, 80, 0.8, shift=0.5)),
        _photo("beaten", _candidate(1, False, 400, 0.0), _candidate(2, True, 100, 0.85)),
        _photo("no right tile", _candidate(1, False, 40, 0.0)),  # not given a right tile: not a miss
    ]
    report = misses_given_right_tile(outcomes, top_k=2, acceptance=acceptance)

    assert "6 of 7 photos" in report
    for cause in ("projected outline is not convex", "| extreme shear |", "IoU < 0.5", "confidence below the threshold",
                  "corners not converged", "another candidate answered"):
        assert cause in report, cause
    assert misses_given_right_tile(outcomes[:1], top_k=2, acceptance=acceptance).endswith("none of 1.")

    with_ground = misses_given_right_tile(outcomes, top_k=2, acceptance=acceptance, ground={"unsure": 42})
    assert "keypoints on the clean ground |" in with_ground.splitlines()[2]
    unsure_row = next(line for line in with_ground.splitlines() if "unsure" in line)
    assert unsure_row.endswith(" 42 |")
    assert "the 1 photos with the fewest (42 or fewer) are all misses" in with_ground  # the others: no ground known


def test_photos_are_grouped_by_what_their_frame_shows():
    from types import SimpleNamespace

    from service.bench.localize import scene_groups

    outcomes = [_photo(name, _candidate(1, True, 50, 0.9)) for name in ("sea", "coast", "cloudy land", "unknown")]
    photos = {"sea": SimpleNamespace(columns={"LAND_FRACTION": "0.0", "CLOUD_FRACTION": "0.1"}),
              "coast": SimpleNamespace(columns={"LAND_FRACTION": "0.02", "CLOUD_FRACTION": "0.0"}),
              "cloudy land": SimpleNamespace(columns={"LAND_FRACTION": "0.9", "CLOUD_FRACTION": "0.6"})}
    groups = {name: [o.photo_id for o in group] for name, group in scene_groups(outcomes, photos)}
    assert groups == {"open ocean (no land in the frame)": ["sea"], "land in the frame": ["coast", "cloudy land"],
                      "clouds >= 25%": ["cloudy land"]}

    ground = {"sea": 3, "coast": 400, "cloudy land": 99}  # "unknown" has no footprint: in neither group
    groups = dict(scene_groups(outcomes, photos, ground))
    assert [o.photo_id for o in groups["textured ground (>= 100 keypoints under the footprint)"]] == ["coast"]
    assert [o.photo_id for o in groups["textureless ground (< 100)"]] == ["sea", "cloudy land"]
