"""`astroloc bench localize --lost-in-space`: photos with no time and no nadir, searched world-wide.

Each held-out photo is retrieved world-wide, coarse to fine (service.localize.worldwide), then
refined as the service's job does for a world-wide search: candidates tried in retrieval order,
stopping at a clear winner or when the photo's time budget (``lost_in_space_budget_s``) is spent.
Reported: R@1/R@10/R@100 world-wide (a tile is correct when it contains the true footprint's
centre), the share localized correctly (an accepted footprint with IoU >= 0.5 with the truth),
wrong answers, and seconds per photo (retrieval + refinement). A flat world-wide search (every
zoom at once) is measured beside it for retrieval.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Point
from tqdm import tqdm

from geo import footprint_iou
from service.config import Settings
from service.demo_stack import ensure_demo_model, ensure_index, ensure_tles, world_zooms
from service.db import upgrade_database
from service.localize.contracts import Candidate
from service.localize.refine import refine_photo
from service.localize.retrieval import get_engine
from service.localize.worldwide import CoarseToFine, coarse_to_fine_search
from service.photos import decode_rgb
from world.catalogue import read_photos

RECALL_AT = (1, 10, 100)
CORRECT_IOU = 0.5


@dataclass
class LostOutcome:
    photo_id: str
    rank: int | None  # coarse to fine: 1-based rank of the first tile holding the centre
    flat_rank: int | None  # the same with a flat world-wide search
    retrieval_s: float
    refinement_s: float
    tried: int  # candidates matched before stopping
    iou: float | None  # IoU of the answer with the truth; None: not localized


def first_correct_rank(hits, centre: Point) -> int | None:  # noqa: ANN001
    """1-based rank of the first hit whose tile holds ``centre`` (None: none of them)."""
    return next((i + 1 for i, h in enumerate(hits) if h.footprint.covers(centre)), None)


def evaluate_photo(settings: Settings, photo, plan: CoarseToFine, pool: int) -> LostOutcome:  # noqa: ANN001
    engine = get_engine(settings)
    image = decode_rgb(photo.image_path.read_bytes())
    centre = Point(photo.truth.centroid.x, photo.truth.centroid.y)
    started = time.perf_counter()
    descriptor = engine.describe([image])
    result = coarse_to_fine_search(engine.index, descriptor, pool, plan, settings.index_nprobe)
    retrieval_s = time.perf_counter() - started
    [flat] = engine.index.search(descriptor, None, k=pool, nprobe=settings.index_nprobe)
    candidates = [Candidate.of_hit(h) for h in result.hits[: settings.lost_in_space_max_candidates]]
    started = time.perf_counter()
    refined = refine_photo(settings, image, candidates, budget_s=settings.lost_in_space_budget_s - retrieval_s)
    refinement_s = time.perf_counter() - started
    iou = None
    if refined.localized and refined.best is not None and refined.best.footprint is not None:
        iou = footprint_iou(refined.best.footprint, photo.truth)
    return LostOutcome(photo.photo_id, first_correct_rank(result.hits, centre), first_correct_rank(flat.hits, centre),
                       retrieval_s, refinement_s, len(refined.matches), iou)


def run(settings: Settings, photos: int = 50, split: str = "test", pool: int = 100, coarse_k: int | None = None) -> str:
    """Localize ``photos`` held-out photos with no metadata; the markdown report. ``coarse_k``:
    the service's (settings.lost_in_space_coarse_k) unless given."""
    upgrade_database(settings.resolved_database_url)
    ensure_tles(settings)
    model_ref = ensure_demo_model(settings)
    tiles = ensure_index(settings, model_ref)
    engine = get_engine(settings)
    plan = CoarseToFine.for_index(engine.index, coarse_k=coarse_k or settings.lost_in_space_coarse_k)
    chosen = read_photos(settings.resolved_world_dir, split=split, limit=photos)
    outcomes = [evaluate_photo(settings, photo, plan, pool) for photo in tqdm(chosen, desc="photos")]
    return _report(settings, outcomes, split, model_ref.label(), tiles, plan, pool)


def _recall(ranks: list[int | None], k: int) -> float:
    return sum(r is not None and r <= k for r in ranks) / max(len(ranks), 1)


def _report(settings: Settings, outcomes: list[LostOutcome], split: str, model: str, tiles: int,
            plan: CoarseToFine, pool: int) -> str:
    n = len(outcomes)
    coarse = [o.rank for o in outcomes]
    flat = [o.flat_rank for o in outcomes]
    answered = [o for o in outcomes if o.iou is not None]
    correct = [o for o in answered if o.iou >= CORRECT_IOU]
    wrong_place = [o for o in answered if o.iou == 0.0]
    seconds = [o.retrieval_s + o.refinement_s for o in outcomes]
    within = sum(s <= settings.lost_in_space_budget_s + 1.0 for s in seconds)
    return "\n".join([
        f"{n} held-out photos ({split} split, Earth only) of {settings.resolved_world_dir.name}, sent with no "
        f"capture time and no nadir: world-wide search over {tiles} tiles (zooms {', '.join(map(str, world_zooms(settings)))}) x {len(settings.index_rotations)} rotations; model {model}. Coarse "
        f"to fine: zooms {list(plan.coarse_zooms)} world-wide (top {plan.coarse_k}), then zooms "
        f"{list(plan.fine_zooms)} within those tiles grown by {plan.grow:.0%}; at most "
        f"{settings.lost_in_space_max_candidates} of the {pool} candidates refined, within "
        f"{settings.lost_in_space_budget_s:g} s per photo (minimum {settings.refine_min_inliers} inliers); "
        f"{len(os.sched_getaffinity(0))} cores, in-process.",
        "",
        "| retrieval | R@1 | R@10 | R@100 |",
        "|---|---|---|---|",
        f"| coarse to fine | {_recall(coarse, 1):.1%} | {_recall(coarse, 10):.1%} | {_recall(coarse, 100):.1%} |",
        f"| flat (all zooms at once) | {_recall(flat, 1):.1%} | {_recall(flat, 10):.1%} | {_recall(flat, 100):.1%} |",
        "",
        "| localized correctly (IoU >= 0.5) | answers | wrong place (IoU 0) | s/photo mean | p90 | max | "
        "within budget | candidates tried (mean) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(correct) / n:.1%} | {len(answered) / n:.1%} | {len(wrong_place)} | {statistics.mean(seconds):.1f} | "
        f"{np.percentile(seconds, 90):.1f} | {max(seconds):.1f} | {within}/{n} | "
        f"{statistics.mean(o.tried for o in outcomes):.1f} |",
        "",
        f"Targets: >= 50% localized correctly ({'met' if len(correct) / n >= 0.5 else 'missed'}), <= 20 s per photo on "
        f"2 cores ({'met' if statistics.mean(seconds) <= 20 else 'missed'}, mean).",
    ])
