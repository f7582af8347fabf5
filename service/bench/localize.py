"""`astroloc bench localize`: the whole localization pipeline on held-out demo-world photos.

Each photo goes through what POST /localize and its job run (search region from the capture time
and the TLEs, retrieval in the tile index, EarthMatch refinement of the top candidates), called
in-process so that retrieval and refinement are timed separately. A retrieved tile is correct
when it contains the centre of the photo's true footprint; an accepted footprint is correct when
its IoU with the truth is at least 0.5.

Every photo's outcome (each candidate's inliers per iteration, method, IoU, and why it was refused)
is saved to ``<data_dir>/bench/localize-<split>.json``; ``--reuse`` reports and refits the
acceptance from that file without matching again.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pyproj import Geod
from shapely.geometry import Point

from geo import footprint_iou
from index.files import write_atomically
from geo.acceptance import Acceptance, Scored, fit_acceptance
from service.config import Settings
from service.db import session_scope
from service.demo_stack import prepare_demo, world_photos
from world.bluemarble import blue_marble
from world.catalogue import WorldPhoto
from world.view import ground_keypoints
from service.photos import decode_rgb
from service.localize.candidates import retrieve_candidates
from service.localize.refine import refine_params, refine_photo
from geo.refine import RefineParams
from tqdm import tqdm
from service.localize.retrieval import get_engine
from service.localize.region import search_region

RECALL_AT = (1, 10, 100)
CORRECT_IOU = 0.5
_GEOD = Geod(ellps="WGS84")


@dataclass
class CandidateDetail:
    """One refined candidate as the saved outcomes keep it (what the service's job report says of
    it, plus the truth)."""

    rank: int  # 1-based, in the order retrieval ranked it
    tile: str
    rotation: int
    contains_centre: bool  # the tile holds the true footprint's centre: a right tile
    inliers: int
    tentative: int
    inliers_per_iteration: list[int]
    method: str
    model: str
    corner_shift: float | None
    reason: str | None  # why the match was refused before the acceptance (degenerate outline ...)
    iou: float | None  # of its outline with the truth (None: no outline)
    runtime_s: float


@dataclass
class PhotoOutcome:
    photo_id: str
    first_correct_rank: int | None  # 1-based rank of the first correct tile among 100
    retrieval_s: float
    refinement_s: float
    candidates: list[tuple[int, float | None, float | None]]  # per candidate: inliers, IoU, centre error km
    scored: list[tuple[Scored, float, float]] = field(default_factory=list)  # plausible ones: (rule input, IoU, P)
    tilt_deg: float = 0.0
    details: list[CandidateDetail] = field(default_factory=list)

    def localized(self, threshold: int) -> tuple[int, float, float] | None:
        """What the service answers at this inlier threshold: the accepted candidate with most
        inliers (inliers, IoU, centre error), or None."""
        accepted = [c for c in self.candidates if c[1] is not None and c[0] >= threshold]
        return max(accepted, key=lambda c: c[0]) if accepted else None


def evaluate_photo(settings: Settings, photo: WorldPhoto, top_k: int) -> PhotoOutcome:
    """Retrieval, then every candidate matched with no acceptance threshold (the threshold is
    applied afterwards, so one run calibrates it as EarthMatch does)."""
    engine = get_engine(settings)
    image = decode_rgb(photo.image_path.read_bytes())
    started = time.perf_counter()
    with session_scope(settings.resolved_database_url) as session:
        region = search_region(settings, session, timestamp=datetime.fromisoformat(photo.capture_time), nadir=None)
    found = retrieve_candidates(settings, engine, image, region, max(RECALL_AT))  # what POST /localize ranks
    retrieval_s = time.perf_counter() - started
    centre = photo.truth.centroid
    ranks = [i + 1 for i, hit in enumerate(found.hits) if hit.footprint.covers(Point(centre.x, centre.y))]

    calibration = settings.model_copy(update={"refine_min_inliers": 4})
    params = refine_params(calibration)
    params.stop_at_inliers_factor = float("inf")
    # Every plausible outline kept, with its raw corner spread: the acceptance is fitted afterwards.
    params.acceptance = Acceptance(min_probability=0.0, max_corner_shift=float("inf"), uncertainty_scale=1.0,
                                   uncertainty_floor_km=0.0)
    started = time.perf_counter()
    candidates = found.candidates[:top_k]
    outcome = refine_photo(calibration, image, candidates, params=params)
    refinement_s = time.perf_counter() - started
    scored, rule_input, details = [], [], []
    for rank, (candidate, match) in enumerate(zip(candidates, outcome.matches), start=1):
        iou = None if match.footprint is None else footprint_iou(match.footprint, photo.truth)
        details.append(CandidateDetail(rank, candidate.tile, candidate.rotation, rank in ranks, match.inliers,
                                       match.tentative, list(match.inliers_per_iteration), match.method, match.model,
                                       match.corner_shift, match.reason, iou, round(match.runtime_s, 3)))
        if match.footprint is None:
            scored.append((match.inliers, None, None))
            rule_input.append((Scored(match.inliers, match.inlier_ratio, None, False, plausible=False), 0.0, 0.0))
            continue
        found = match.footprint.centroid
        _, _, metres = _GEOD.inv(found.x, found.y, centre.x, centre.y)
        scored.append((match.inliers, iou, metres / 1000.0))
        rule_input.append((Scored(match.inliers, match.inlier_ratio, match.corner_shift, iou >= CORRECT_IOU,
                                  tuple(match.corner_uncertainty_km or ()) or None,
                                  tuple(_corner_errors_km(match.corners_lonlat, photo.corners)),
                                  camera=match.model == "camera"), iou, 0.0))
    return PhotoOutcome(photo.photo_id, ranks[0] if ranks else None, retrieval_s, refinement_s, scored, rule_input,
                        float(photo.columns.get("TILT_DEG") or 0.0), details)


def _corner_errors_km(corners_lonlat, truth_latlon) -> list[float]:  # noqa: ANN001
    """Geodesic error of the TL, TR, BR, BL corners against the truth's (LL, UL, UR, LR as lat, lon)."""
    ll, ul, ur, lr = truth_latlon
    return [_GEOD.inv(lon, lat, t[1], t[0])[2] / 1000.0 for (lon, lat), t in zip(corners_lonlat, (ul, ur, lr, ll), strict=True)]


def outcomes_path(settings: Settings, split: str) -> Path:
    return Path(settings.data_dir) / "bench" / f"localize-{split}.json"


def save_outcomes(path: Path, identity: dict, outcomes: list[PhotoOutcome]) -> None:
    """The outcomes with what produced them (model, index, top_k), for ``--reuse``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    measured = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    write_atomically(path, json.dumps({"identity": identity, "measured": measured,
                                       "outcomes": [asdict(o) for o in outcomes]}).encode())


def measured_at(path: Path) -> str:
    """When the saved outcomes were matched (UTC)."""
    return json.loads(path.read_text())["measured"]


def load_outcomes(path: Path, identity: dict) -> list[PhotoOutcome]:
    """Saved outcomes, refused (ValueError) when another model, index, top_k or matcher setting
    produced them."""
    if not path.is_file():
        raise ValueError(f"no saved outcomes at {path}: run `astroloc bench localize` without --reuse first")
    saved = json.loads(path.read_text())
    if saved.get("identity") != identity:
        raise ValueError(f"{path} was produced with {saved.get('identity')}, not {identity}: run without --reuse")
    outcomes = []
    for raw in saved["outcomes"]:
        raw["candidates"] = [tuple(c) for c in raw["candidates"]]
        raw["details"] = [CandidateDetail(**d) for d in raw["details"]]
        raw["scored"] = [(Scored(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()}), iou, p)
                         for s, iou, p in raw["scored"]]
        outcomes.append(PhotoOutcome(**raw))
    return outcomes


def run(settings: Settings, photos: int = 100, split: str = "test", top_k: int | None = None,
        reuse: bool = False) -> str:
    """Localize ``photos`` held-out photos of the demo world; returns the markdown report.
    ``reuse``: report and refit from the outcomes the last run saved, without matching again."""
    stack = prepare_demo(settings, progress=True)
    top_k = top_k or settings.localize_max_candidates
    matching = {k: v for k, v in asdict(refine_params(settings)).items() if k != "acceptance"}
    identity = {"model": stack.model.label(), "tiles_indexed": stack.tiles_indexed, "top_k": top_k,
                "photos": photos, "matching": matching}
    path = outcomes_path(settings, split)
    chosen = world_photos(settings, split, limit=photos)
    if reuse:
        outcomes = load_outcomes(path, identity)
    else:
        get_engine(settings)  # load the model and open the index before timing
        outcomes = [evaluate_photo(settings, photo, top_k) for photo in tqdm(chosen, desc="photos")]
        save_outcomes(path, identity, outcomes)
    ground = ground_texture(chosen, refine_params(settings).sift_contrast)
    refitted, acceptance = refit_acceptance(settings, outcomes, top_k, {p.photo_id: p for p in chosen}, ground)
    report = [_report(settings, stack, outcomes, split, top_k), refitted,
              misses_given_right_tile(outcomes, top_k, acceptance, ground)]
    if reuse:
        report.insert(0, f"Reported from the outcomes saved in `{path}` (matched {measured_at(path)} UTC); "
                         "the acceptance refitted on them.")
    return "\n\n".join(report)


TILT_CLASSES = (("near-vertical (< 20 deg)", 0.0, 20.0), ("low-oblique (20-55 deg)", 20.0, 55.0),
                ("high-oblique (> 55 deg)", 55.0, 90.0), ("tilt >= 40 deg", 40.0, 90.0))


# The report splits the photos at this many keypoints on the clean ground under their footprint
# (world.view.ground_keypoints): a diagnosis of the misses (docs/refinement.md), set after looking at
# the test split's misses, not a criterion the service applies (it cannot see the ground beforehand).
TEXTURED_GROUND_KEYPOINTS = 100


def ground_texture(photos: list[WorldPhoto], contrast: float) -> dict[str, int]:
    """Keypoints of the matcher's detector on the noiseless ground under each photo's true footprint."""
    texture = blue_marble()
    return {p.photo_id: ground_keypoints(p.corners, contrast, texture=texture) for p in photos if p.corners}


def scene_groups(outcomes: list[PhotoOutcome], photos: dict[str, WorldPhoto],
                 ground: dict[str, int] | None = None) -> list[tuple[str, list[PhotoOutcome]]]:
    """The photos by what their frame shows (the world catalogue's truth): open ocean has nothing
    but Blue Marble's faint sea floor to match; clouds hide the ground; ``ground`` (ground_texture)
    splits them by how much texture the imagery itself has there."""
    def column(o: PhotoOutcome, name: str) -> float:
        return float(photos[o.photo_id].columns.get(name) or 0.0) if o.photo_id in photos else float("nan")

    groups = [("open ocean (no land in the frame)", [o for o in outcomes if column(o, "LAND_FRACTION") == 0.0]),
              ("land in the frame", [o for o in outcomes if column(o, "LAND_FRACTION") > 0.0]),
              ("clouds >= 25%", [o for o in outcomes if column(o, "CLOUD_FRACTION") >= 0.25])]
    if ground:
        groups += [(f"textured ground (>= {TEXTURED_GROUND_KEYPOINTS} keypoints under the footprint)",
                    [o for o in outcomes if ground.get(o.photo_id, 0) >= TEXTURED_GROUND_KEYPOINTS]),
                   (f"textureless ground (< {TEXTURED_GROUND_KEYPOINTS})",
                    [o for o in outcomes if o.photo_id in ground and ground[o.photo_id] < TEXTURED_GROUND_KEYPOINTS])]
    return groups


def refit_acceptance(settings: Settings, outcomes: list[PhotoOutcome], top_k: int,
                     photos: dict[str, WorldPhoto] | None = None,
                     ground: dict[str, int] | None = None) -> tuple[str, Acceptance]:
    """Fit the acceptance (geo.acceptance: logistic over inliers, corner-shift limit, uncertainty
    scale) on every candidate of the demo world alone, and report what it answers, cross-fitted.
    The service's acceptance is the committed joint fit on real and demo-world candidates
    (`astroloc bench acceptance`); this one is reported, not installed. Returns the report and the
    demo-world fit."""
    everything = [s for o in outcomes for s, _, _ in o.scored]
    try:
        fitted = fit_acceptance(everything, photos=[o.photo_id for o in outcomes for _ in o.scored])
    except ValueError as exc:
        return f"**Acceptance** not refitted ({exc}).", refine_params(settings).acceptance

    # The figures below are cross-fitted: each photo is judged by the acceptance fitted on the other
    # half of the photos (alternate photos), so no photo's own candidates set its threshold.
    halves = (outcomes[0::2], outcomes[1::2])
    judged: dict[int, tuple[tuple | None, Acceptance]] = {}
    for held, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        try:
            half_fit = fit_acceptance([s for o in other for s, _, _ in o.scored],
                                      photos=[o.photo_id for o in other for _ in o.scored])
        except ValueError:  # one half without a wrong candidate: judged by the fit on all
            half_fit = fitted
        for o in held:
            judged[id(o)] = (_answer(o, half_fit), half_fit)

    plausible = [s for s in everything if s.plausible]
    lines = [
        f"**Calibrated acceptance** (geo/acceptance.py, docs/refinement.md), fitted here on {fitted.fitted_on['candidates']} "
        f"candidates ({fitted.fitted_on['right']} right; {len(plausible)} with a plausible outline, "
        f"{sum(not s.right for s in plausible)} of those wrong): P(right) = 1 / (1 + exp(-({fitted.intercept:.2f} "
        f"+ {fitted.coef_log_inliers:.2f} ln(1 + inliers) {fitted.coef_no_camera:+.2f} [no camera explains "
        "the inliers]))); accepted when "
        f"P >= {fitted.min_probability:.4f} (99.9% precision over answers: each photo's most probable accepted "
        f"candidate) and the corners moved at most "
        f"{fitted.max_corner_shift:.1%} of the outline in the last iteration; corner_uncertainty_km = "
        f"{fitted.uncertainty_scale:.2f} x spread + {fitted.uncertainty_floor_km:g} km (covers all 4 corners of 90% "
        f"of right answers). Reported, not installed: the service's acceptance is the joint fit of `astroloc bench acceptance`. The table is cross-fitted: each photo judged "
        "by the acceptance fitted the same way on the other half of the photos (alternate photos).",
        "",
        "| photos | n | localized | precision | right footprint (IoU >= 0.5) | right, given a right tile in the top "
        f"{top_k} | in a wrong place (IoU 0) | median IoU | median corner error (km) | uncertainty covers all 4 corners |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [("all", outcomes)] + [(name, [o for o in outcomes if low <= o.tilt_deg < high])
                                    for name, low, high in TILT_CLASSES]
    groups += scene_groups(outcomes, photos, ground) if photos else []
    for name, group in groups:
        if not group:
            continue
        answers = [(o, judged[id(o)][0]) for o in group]
        given = [(o, a) for o, a in answers if o.first_correct_rank is not None and o.first_correct_rank <= top_k]
        taken = [a for _, a in answers if a is not None]
        right = [a for a in taken if a[1] >= CORRECT_IOU]
        errors = [statistics.median(a[0].corner_error_km) for a in right]
        covered = [all(e <= u for e, u in zip(a[0].corner_error_km, judged[id(o)][1].uncertainty_km(
            np.array(a[0].spread_km)) or [0.0] * 4, strict=True)) for o, a in answers if a is not None and a[0].spread_km]
        lines.append(
            f"| {name} | {len(group)} | {len(taken) / len(group):.1%} | "
            f"{len(right) / len(taken) if taken else float('nan'):.1%} | {len(right) / len(group):.1%} | "
            f"{sum(a is not None and a[1] >= CORRECT_IOU for _, a in given) / len(given) if given else float('nan'):.1%} "
            f"({len(given)}) | {sum(a[1] == 0.0 for a in taken)} | "
            f"{statistics.median(a[1] for a in taken) if taken else float('nan'):.2f} | "
            f"{statistics.median(errors) if errors else float('nan'):.1f} | "
            f"{np.mean(covered) if covered else float('nan'):.1%} |")
    return "\n".join(lines), fitted


def _answer(outcome: PhotoOutcome, acceptance: Acceptance) -> tuple | None:
    """What the service returns for the photo under ``acceptance``: its most probable accepted
    candidate as (scored, IoU, probability), or None."""
    taken = []
    for scored, iou, _ in outcome.scored:
        probability = acceptance.probability_of(scored)
        if scored.plausible and acceptance.refusal(probability, scored.corner_shift) is None:
            taken.append((scored, iou, probability))
    return max(taken, key=lambda t: t[2]) if taken else None


def calibrate_threshold(outcomes: list[PhotoOutcome], precision: float = 0.999) -> int | None:
    """Smallest inlier count above which accepted candidates are right (IoU >= 0.5) with the
    given precision, over every candidate tried (EarthMatch's calibration)."""
    pairs = [(c[0], c[1] >= CORRECT_IOU) for o in outcomes for c in o.candidates if c[1] is not None]
    return _smallest_precise(pairs, precision)


def calibrate_answer_threshold(outcomes: list[PhotoOutcome], precision: float = 0.999) -> int | None:
    """The same calibration over what the service returns: each photo's best accepted candidate
    (the footprint a user gets) at each threshold."""
    for threshold in range(4, max((c[0] for o in outcomes for c in o.candidates), default=4) + 2):
        answers = [a for a in (o.localized(threshold) for o in outcomes) if a is not None]
        if answers and sum(a[1] >= CORRECT_IOU for a in answers) / len(answers) >= precision:
            return threshold
    return None


def _smallest_precise(pairs: list[tuple[int, bool]], precision: float) -> int | None:
    for threshold in range(4, max((p[0] for p in pairs), default=4) + 2):
        kept = [ok for inliers, ok in pairs if inliers >= threshold]
        if kept and sum(kept) / len(kept) >= precision:
            return threshold
    return None


def _row(label: str, outcomes: list[PhotoOutcome], threshold: int) -> str:
    n = len(outcomes)
    answers = [o.localized(threshold) for o in outcomes]
    accepted = [a for a in answers if a is not None]
    correct = [a for a in accepted if a[1] >= CORRECT_IOU]
    ious = [a[1] for a in accepted]
    errors = [a[2] for a in accepted]
    precision = f"{len(correct) / len(accepted):.1%}" if accepted else "-"
    return (f"| {label} | {threshold} | {len(accepted) / n:.1%} | {precision} | {len(correct) / n:.1%} | "
            f"{statistics.median(ious) if ious else float('nan'):.2f} | "
            f"{statistics.median(errors) if errors else float('nan'):.0f} |")


def _report(settings: Settings, stack, outcomes: list[PhotoOutcome], split: str, top_k: int) -> str:  # noqa: ANN001
    n = len(outcomes)
    recall = {k: sum(o.first_correct_rank is not None and o.first_correct_rank <= k for o in outcomes) / n
              for k in RECALL_AT}
    retrieval = [o.retrieval_s for o in outcomes]
    refinement = [o.refinement_s for o in outcomes]
    calibrated = calibrate_threshold(outcomes)
    per_answer = calibrate_answer_threshold(outcomes)
    world = stack.world
    lines = [
        f"{n} held-out photos ({split} split, Earth only) of the demo world (Blue Marble, zooms "
        f"{', '.join(world['tiles'])}; {sum(world['queries'].values())} photos in all); model "
        f"{stack.model.label()}; index of {stack.tiles_indexed} tiles x {len(settings.index_rotations)} rotations; search region from "
        f"the capture time and the TLEs (visibility region); the top {top_k} candidates refined "
        f"(features {settings.refine_features}, {settings.refine_iterations} EarthMatch iterations). "
        f"In-process, no HTTP; {platform.machine()}, {_cores()} cores.",
        "",
        "**Retrieval** (a tile is correct when it contains the true footprint's centre):",
        "",
        "| photos | R@1 | R@10 | R@100 | retrieval s/photo |",
        "|---|---|---|---|---|",
        f"| {n} | {recall[1]:.1%} | {recall[10]:.1%} | {recall[100]:.1%} | {statistics.mean(retrieval):.2f} |",
        "",
        "**Refinement** (every candidate matched; an answer is correct when its IoU with the truth is "
        f">= {CORRECT_IOU}). Thresholds calibrated here for 99.9% precision: per candidate (EarthMatch) "
        f"**{calibrated if calibrated is not None else 'none reached'} inliers**; per answer (each photo's "
        f"best accepted candidate, what a user gets) **{per_answer if per_answer is not None else 'none reached'} "
        f"inliers**; configured: {settings.refine_min_inliers}.",
        "",
        "| threshold | min inliers | localized | precision | localized correctly | median IoU | median centre error (km) |",
        "|---|---|---|---|---|---|---|",
        _row("configured", outcomes, settings.refine_min_inliers),
    ]
    if calibrated is not None and calibrated != settings.refine_min_inliers:
        lines.append(_row("calibrated per candidate", outcomes, calibrated))
    if per_answer is not None and per_answer not in (settings.refine_min_inliers, calibrated):
        lines.append(_row("calibrated per answer", outcomes, per_answer))
    threshold = settings.refine_min_inliers
    wrong = sorted(((c[0], c[1], c[2]) for o in outcomes for c in o.candidates
                    if c[1] is not None and c[1] < CORRECT_IOU and c[0] >= threshold), reverse=True)
    elsewhere = [w for w in wrong if w[1] == 0.0]  # no overlap at all: a different place
    answers = [a for a in (o.localized(threshold) for o in outcomes) if a is not None]
    tried = sum(1 for o in outcomes for c in o.candidates if c[1] is not None)
    lines += [
        "",
        f"Wrong candidates (IoU < {CORRECT_IOU}) at or above the configured threshold: {len(wrong)} of {tried} "
        f"candidates with a plausible outline; {len(elsewhere)} of them in a different place (IoU 0), the "
        "others the right place with a poorer outline"
        + (": " + ", ".join(f"{n} inliers (IoU {iou:.2f}, centre {km:.0f} km off)" for n, iou, km in wrong[:8])
           if wrong else "") + ". "
        f"Answers at the configured threshold: {len(answers)}, lowest IoU {min((a[1] for a in answers), default=float('nan')):.2f}, "
        f"{sum(a[1] == 0.0 for a in answers)} in a different place.",
    ]
    lines += [
        "",
        f"Refinement time with all {top_k} candidates matched: {statistics.mean(refinement):.2f} s/photo "
        f"(p90 {np.percentile(refinement, 90):.2f}); the service stops at a clear winner "
        f"({RefineParams().stop_at_inliers_factor:g}x the threshold), so it is usually faster.",
    ]
    return "\n".join(lines)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _miss_cause(outcome: PhotoOutcome, acceptance: Acceptance) -> str:
    """Why a photo whose right tile was among the candidates got no right answer: the fate of
    its best right-tile candidate (most inliers)."""
    right_tiles = [(d, s) for d, (s, _, _) in zip(outcome.details, outcome.scored, strict=True) if d.contains_centre]
    if not right_tiles:
        return "right tile not refined"
    detail, scored = max(right_tiles, key=lambda pair: pair[0].inliers)
    if detail.reason is not None:
        # Degenerate outlines say their measurements ("extreme shear (corner angle 9 deg)"): group by kind.
        kind = detail.reason.split(" (")[0]
        return "too few inliers" if "fewer than the" in kind else kind
    if detail.iou is not None and detail.iou < CORRECT_IOU:
        return f"outline on the right tile, but IoU < {CORRECT_IOU}"
    refusal = acceptance.refusal(acceptance.probability_of(scored), scored.corner_shift)
    if refusal is not None:
        return "right outline, " + ("confidence below the threshold" if refusal.startswith("confidence")
                                    else "corners not converged")
    return "right outline accepted, but another candidate answered"


def misses_given_right_tile(outcomes: list[PhotoOutcome], top_k: int, acceptance: Acceptance,
                            ground: dict[str, int] | None = None) -> str:
    """The photos with a right tile among the candidates but no right answer, by cause; with
    ``ground`` (ground_texture), the keypoints the imagery itself offers under each."""
    given = [o for o in outcomes if o.first_correct_rank is not None and o.first_correct_rank <= top_k]
    misses = []
    for o in given:
        answer = _answer(o, acceptance)
        if answer is None or answer[1] < CORRECT_IOU:
            misses.append((o, _miss_cause(o, acceptance)))
    if not misses:
        return f"**Misses given a right tile**: none of {len(given)}."
    lines = [f"**Misses given a right tile** (under the demo-world fit above): {len(misses)} of "
             f"{len(given)} photos; each by the fate of its right tile's candidate with most inliers.", "",
             "| cause | photos | which | tilt (deg) | inliers of that candidate |"
             + (" keypoints on the clean ground |" if ground else ""), "|---|---|---|---|---|" + ("---|" if ground else "")]
    causes: dict[str, list[tuple[PhotoOutcome, int]]] = {}
    for o, cause in misses:
        best = max((d.inliers for d in o.details if d.contains_centre), default=0)
        causes.setdefault(cause, []).append((o, best))
    for cause, group in sorted(causes.items(), key=lambda item: -len(item[1])):
        lines.append(f"| {cause} | {len(group)} | {', '.join(o.photo_id for o, _ in group)} | "
                     f"{', '.join(f'{o.tilt_deg:.0f}' for o, _ in group)} | "
                     f"{', '.join(str(n) for _, n in group)} |"
                     + (f" {', '.join(str(ground.get(o.photo_id, '-')) for o, _ in group)} |" if ground else ""))
    if ground:
        lines += ["", _texture_summary(given, {o.photo_id for o, _ in misses}, ground)]
    return "\n".join(lines)


def _texture_summary(given: list[PhotoOutcome], missed: set[str], ground: dict[str, int]) -> str:
    """How the misses' ground compares with the others': the keypoints under their footprints."""
    known = sorted((ground[o.photo_id], o.photo_id in missed) for o in given if o.photo_id in ground)
    fewest_all_missed = next((i for i, (_, miss) in enumerate(known) if not miss), len(known))
    return (f"Keypoints on the clean ground under the footprint (world.view.ground_keypoints): median "
            f"{statistics.median(n for n, _ in known):.0f} over these {len(known)} photos, "
            f"{statistics.median([n for n, miss in known if miss] or [0]):.0f} over the misses; the "
            f"{fewest_all_missed} photos with the fewest "
            f"({known[fewest_all_missed - 1][0] if fewest_all_missed else '-'} or fewer) are all misses.")
