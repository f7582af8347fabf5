"""`astroloc bench real`: refinement and retrieval on real ISS photos and real Sentinel-2 imagery.

The set (``../shared/data/real-earthmatch``, its README) holds, per photo, the 10 candidates
that world-wide retrieval returned for it, each a georeferenced surrounding image (the candidate
tile with one tile's width around it). Each photo goes through the refinement job's own code:
decoded as the job decodes it (service.localize.refine.query_image), matched by
geo.refine.refine_candidates with the service's parameters and acceptance
(service.localize.refine.refine_params), candidates in retrieval's order, the early stop and the
choice of the answer included. The one difference is that the set has no finer imagery, so there
is no coarse-to-fine step. Candidates the job would not have reached (after its early stop) are
matched too, outside the timing, so that every candidate is known for the acceptance's fit.

Judged as the issue defines it: *right* (IoU >= 0.5 with the true footprint), *centre-right*
(not right, but the centroids within half the square root of the larger outline's area: the
truth's outline is uneven for some photos, its centre is firm), *wrong* (any other answer),
*refused* (no answer, with the reason); *reachable* when a candidate's surrounding holds the true
footprint's centroid.

The retrieval side: every photo against every distinct candidate tile of the set (the middle
third of its surrounding image), the tiles at 4 rotations, R@1 and R@10 (a tile is right when it
holds the true footprint's centroid) for the service's active model and the zero-shot trunk.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from shapely.geometry import MultiPoint, box
from shapely.geometry.base import BaseGeometry

from geo import footprint_iou, geodesic_area_km2
from geo.acceptance import Scored
from geo.lonlat import geodesic_distance_km
from geo.refine import (
    GeoImage, Match, PreparedQuery, RefineParams, match_candidate, nearest_quarter_turn, refine_candidates, tile_window,
)
from index.files import write_atomically
from service.config import Settings
from service.localize.refine import query_image, refine_params

DEFAULT_SET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-earthmatch"
CORRECT_IOU = 0.5
RECALL_AT = (1, 10)


# --- the set ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealCandidate:
    k: int  # retrieval's rank, 0-based
    tile: str
    rotation_deg: int
    tile_bounds: tuple[float, float, float, float]  # west, south, east, north
    surrounding_bounds: tuple[float, float, float, float]
    image_path: Path

    def surrounding(self) -> GeoImage:
        with Image.open(self.image_path) as image:
            rgb = np.asarray(image.convert("RGB"))
        # EarthMatch's surroundings are linear in latitude and longitude between their bounds.
        return GeoImage(rgb, self.surrounding_bounds, georeference="linear")


@dataclass(frozen=True)
class RealPhoto:
    photo_id: str
    photo_path: Path
    truth: BaseGeometry  # lon/lat polygon
    tilt_deg: float
    focal_mm: float
    cloud_pct: float
    candidates: tuple[RealCandidate, ...]

    @property
    def reachable(self) -> bool:
        centre = self.truth.centroid
        return any(box(*c.surrounding_bounds).covers(centre) for c in self.candidates)


def _bounds(row: dict, prefix: str) -> tuple[float, float, float, float]:
    return (float(row[f"{prefix}_min_lon"]), float(row[f"{prefix}_min_lat"]),
            float(row[f"{prefix}_max_lon"]), float(row[f"{prefix}_max_lat"]))


def load_set(directory: Path) -> list[RealPhoto]:
    """The photos of a real-earthmatch set directory (photos.csv, candidates.csv, images)."""
    directory = Path(directory)
    if not (directory / "photos.csv").is_file() or not (directory / "candidates.csv").is_file():
        raise ValueError(f"{directory} is not a real-earthmatch set (photos.csv and candidates.csv)")
    by_photo: dict[str, list[RealCandidate]] = {}
    with (directory / "candidates.csv").open() as handle:
        for row in csv.DictReader(handle):
            by_photo.setdefault(row["photo_id"], []).append(RealCandidate(
                int(row["k"]), row["tile"], int(float(row["rotation_deg"])), _bounds(row, "tile"),
                _bounds(row, "sur"), directory / row["photo_id"] / f"cand_{int(row['k'])}.jpg"))
    photos = []
    with (directory / "photos.csv").open() as handle:
        for row in csv.DictReader(handle):
            corners = json.loads(row["footprint_latlon"])
            # The source's corner order is not known to follow the image's: the outline is their hull.
            truth = MultiPoint([(lon, lat) for lat, lon in corners]).convex_hull
            photos.append(RealPhoto(row["photo_id"], directory / row["photo_id"] / "photo.jpg", truth,
                                    float(row["tilt_deg"]), float(row["focal_mm"]), float(row["cloud_pct"]),
                                    tuple(sorted(by_photo.get(row["photo_id"], []), key=lambda c: c.k))))
    return photos


# --- refinement ---------------------------------------------------------------------------------


class _SetSurroundings(Sequence):
    """A photo's candidates as the job sees them, each read when its turn comes."""

    def __init__(self, candidates: Sequence[RealCandidate]) -> None:
        self.candidates = candidates

    def __len__(self) -> int:
        return len(self.candidates)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (Sequence protocol)
        candidate = self.candidates[i]
        return candidate.surrounding(), nearest_quarter_turn(candidate.rotation_deg)


@dataclass
class CandidateOutcome:
    k: int
    tile: str
    holds_centre: bool  # its surrounding holds the true centroid (reachable through it)
    tried_by_job: bool  # the job reached it before its early stop
    inliers: int
    inliers_per_iteration: list[int]
    tentative: int
    method: str
    first_match: str  # tile | surrounding: what gave the first homography
    model: str
    corner_shift: float | None
    confidence: float | None
    accepted: bool
    reason: str | None
    iou: float | None  # of its outline with the truth (None: no outline)
    verdict: str | None  # right | centre-right | wrong, of its outline (None: no outline)
    runtime_s: float  # wall seconds of its match
    cpu_s: float  # CPU seconds of its match (the photo's own features are the job's, not a candidate's)

    def scored(self) -> Scored:
        """The candidate as the acceptance's fit sees it: right when its outline is right or
        centre-right (the truth's outline is uneven for some photos; its centre is firm)."""
        return Scored(self.inliers, self.inliers / self.tentative if self.tentative else 0.0,
                      self.corner_shift, self.verdict in ("right", "centre-right"), plausible=self.iou is not None,
                      camera=self.model == "camera")


@dataclass
class RealOutcome:
    photo_id: str
    tilt_deg: float
    focal_mm: float
    cloud_pct: float
    reachable: bool
    verdict: str  # right | centre-right | wrong | refused
    iou: float | None
    centre_error_km: float | None
    reason: str | None  # why it was refused
    answer_k: int | None
    job_cpu_s: float  # the job's CPU seconds over the candidates it tried
    candidates: list[CandidateOutcome] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return sum(c.tried_by_job for c in self.candidates)


def judge(answer: BaseGeometry, truth: BaseGeometry) -> tuple[str, float, float]:
    """(verdict, IoU, centre error km) of an answer against the truth."""
    iou = footprint_iou(answer, truth)
    a, t = answer.centroid, truth.centroid
    centre_km = float(geodesic_distance_km(a.y, a.x, t.y, t.x))
    if iou >= CORRECT_IOU:
        return "right", iou, centre_km
    allowed_km = 0.5 * math.sqrt(max(geodesic_area_km2(answer), geodesic_area_km2(truth)))
    return ("centre-right" if centre_km <= allowed_km else "wrong"), iou, centre_km


def evaluate_photo(photo: RealPhoto, params: RefineParams) -> RealOutcome:
    """The refinement job on one photo of the set, then the candidates it did not reach."""
    image = query_image(photo.photo_path.read_bytes(), params)
    surroundings = _SetSurroundings(photo.candidates)
    cpu_started = time.process_time()
    query = PreparedQuery.of(image, params)
    result = refine_candidates(query, surroundings, params)  # the job's loop, early stop and choice
    job_cpu_s = time.process_time() - cpu_started
    matches: list[Match] = list(result.matches)
    for i in range(len(matches), len(surroundings)):  # for the fit: what the job did not reach
        surrounding, rotation = surroundings[i]
        matches.append(match_candidate(query, surrounding, rotation, params))
    centre = photo.truth.centroid
    candidates = []
    for i, (candidate, match) in enumerate(zip(photo.candidates, matches, strict=True)):
        verdict, iou, _ = (None, None, None) if match.footprint is None else judge(match.footprint, photo.truth)
        candidates.append(CandidateOutcome(
            candidate.k, candidate.tile, box(*candidate.surrounding_bounds).covers(centre), i < len(result.matches),
            match.inliers, list(match.inliers_per_iteration), match.tentative, match.method, match.first_match, match.model,
            match.corner_shift, match.confidence, match.accepted, match.reason, iou, verdict, round(match.runtime_s, 3),
            round(match.cpu_s, 3)))
    if result.best is None or result.best.footprint is None:
        return RealOutcome(photo.photo_id, photo.tilt_deg, photo.focal_mm, photo.cloud_pct, photo.reachable,
                           "refused", None, None, result.reason, None, job_cpu_s, candidates)
    verdict, iou, centre_km = judge(result.best.footprint, photo.truth)
    return RealOutcome(photo.photo_id, photo.tilt_deg, photo.focal_mm, photo.cloud_pct, photo.reachable, verdict,
                       round(iou, 4), round(centre_km, 2), None, result.matches.index(result.best), job_cpu_s,
                       candidates)


def run_refinement(settings: Settings, photos: list[RealPhoto],
                   on_photo: Callable[[RealOutcome], None] | None = None) -> list[RealOutcome]:
    params = refine_params(settings)
    outcomes = []
    for photo in photos:
        outcome = evaluate_photo(photo, params)
        outcomes.append(outcome)
        if on_photo is not None:
            on_photo(outcome)
    return outcomes


def outcomes_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "bench" / "real.json"


def save_outcomes(path: Path, identity: dict, outcomes: list[RealOutcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps({"identity": identity, "outcomes": [asdict(o) for o in outcomes]}).encode())


def load_outcomes(path: Path) -> tuple[dict, list[RealOutcome]]:
    saved = json.loads(Path(path).read_text())
    outcomes = []
    for raw in saved["outcomes"]:
        raw["candidates"] = [CandidateOutcome(**c) for c in raw["candidates"]]
        outcomes.append(RealOutcome(**raw))
    return saved["identity"], outcomes


# --- report -------------------------------------------------------------------------------------


def _row(name: str, group: list[RealOutcome]) -> str:
    count = {v: sum(o.verdict == v for o in group) for v in ("right", "centre-right", "wrong", "refused")}
    reachable = [o for o in group if o.reachable]
    good = sum(o.verdict in ("right", "centre-right") for o in reachable)
    ious = [o.iou for o in group if o.iou is not None]
    right_ious = [o.iou for o in group if o.verdict == "right"]
    tried = sum(o.tried for o in group)
    cpu = sum(o.job_cpu_s for o in group) / tried if tried else float("nan")
    return (f"| {name} | {len(group)} | {len(reachable)} | {count['right']} | {count['centre-right']} | "
            f"{good} of {len(reachable)} | {count['wrong']} | {count['refused']} | "
            f"{statistics.median(ious) if ious else float('nan'):.2f} | "
            f"{statistics.median(right_ious) if right_ious else float('nan'):.2f} | {cpu:.2f} |")


def _focal_class(mm: float) -> str:
    return "< 300 mm" if mm < 300 else ("300-999 mm" if mm < 1000 else ">= 1000 mm")


def refinement_report(outcomes: list[RealOutcome], params: RefineParams) -> str:
    header = ("| photos | n | reachable | right | centre-right | right or centre-right, of the reachable | wrong | "
              "refused | median IoU of answers | median IoU of right answers | CPU s per candidate tried |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    groups = [("all", outcomes),
              ("tilt < 30 deg", [o for o in outcomes if o.tilt_deg < 30]),
              ("tilt >= 30 deg", [o for o in outcomes if o.tilt_deg >= 30])]
    for focal in ("< 300 mm", "300-999 mm", ">= 1000 mm"):
        groups.append((f"focal {focal}", [o for o in outcomes if _focal_class(o.focal_mm) == focal]))
    for cloud in sorted({o.cloud_pct for o in outcomes}):
        groups.append((f"cloud {cloud:g}%", [o for o in outcomes if o.cloud_pct == cloud]))
    table = "\n".join([header] + [_row(name, group) for name, group in groups if group])
    per_photo = ["| photo | tilt | focal mm | cloud % | reachable | verdict | IoU | centre error km | answer k | "
                 "tried | inliers of each candidate (k0..k9; * holds the centre) | why refused |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        inliers = " ".join(f"{c.inliers}{'*' if c.holds_centre else ''}" for c in o.candidates)
        per_photo.append(
            f"| {o.photo_id} | {o.tilt_deg:g} | {o.focal_mm:g} | {o.cloud_pct:g} | {'yes' if o.reachable else 'no'} | "
            f"{o.verdict} | {'' if o.iou is None else f'{o.iou:.2f}'} | "
            f"{'' if o.centre_error_km is None else f'{o.centre_error_km:.1f}'} | "
            f"{'' if o.answer_k is None else o.answer_k} | {o.tried} | {inliers} | {o.reason or ''} |")
    candidates = [c for o in outcomes for c in o.candidates]
    wrong_plausible = [c for c in candidates if c.verdict == "wrong"]
    wrong_accepted = [c for c in candidates if c.accepted and c.verdict == "wrong"]
    distinct = {(o.photo_id, c.tile) for o in outcomes for c in o.candidates if c.tried_by_job}
    right = [c for c in candidates if c.iou is not None and c.iou >= CORRECT_IOU]
    how = {}
    for c in right:
        key = f"the try {c.first_match!r}"
        how[key] = how.get(key, 0) + 1
    found_by = ", ".join(f"{n} by {key}" for key, n in sorted(how.items(), key=lambda kv: -kv[1]))
    job_cpu = sum(o.job_cpu_s for o in outcomes)
    tried = [c for c in candidates if c.tried_by_job]

    def mean_cpu(group: list[CandidateOutcome]) -> str:
        return f"{sum(c.cpu_s for c in group) / len(group):.2f} ({len(group)})" if group else "none"
    summary = (
        f"Matcher: {params.features}, {params.iterations} EarthMatch iterations, photo at {params.query_max_side} px, "
        f"acceptance P >= {params.acceptance.min_probability:.4f} (the service's). "
        f"{len(candidates)} candidates: {sum(c.iou is not None and c.iou >= CORRECT_IOU for c in candidates)} right "
        f"outlines (first homography: {found_by or 'none'}), {len(wrong_plausible)} plausible wrong outlines, {len(wrong_accepted)} wrong candidates accepted. "
        f"The job tried {sum(o.tried for o in outcomes)} candidates ({len(distinct)} distinct surroundings: the set "
        f"repeats a tile at other rotations) in {job_cpu:.1f} CPU s: "
        f"{job_cpu / max(1, sum(o.tried for o in outcomes)):.2f} CPU s per candidate, "
        f"{job_cpu / max(1, len(distinct)):.2f} per distinct surrounding (the job's CPU includes describing the "
        f"photo once). CPU s per match, tried candidates: accepted {mean_cpu([c for c in tried if c.accepted])}, "
        f"with an outline but refused {mean_cpu([c for c in tried if not c.accepted and c.iou is not None])}, "
        f"refused without one {mean_cpu([c for c in tried if not c.accepted and c.iou is None])}.")
    return "\n\n".join([table, summary, "\n".join(per_photo)])


# --- retrieval ----------------------------------------------------------------------------------


def distinct_tiles(photos: list[RealPhoto]) -> list[RealCandidate]:
    seen: dict[str, RealCandidate] = {}
    for photo in photos:
        for candidate in photo.candidates:
            seen.setdefault(candidate.tile, candidate)
    return list(seen.values())


def middle_third(candidate: RealCandidate) -> np.ndarray:
    """The candidate tile itself: the middle third of its surrounding image (geo.refine.tile_window)."""
    rgb = candidate.surrounding().image
    x0, y0, x1, y1 = tile_window(rgb.shape[1], rgb.shape[0])
    return rgb[y0:y1, x0:x1]


def retrieval_recall(net, photos: list[RealPhoto], tiles: list[RealCandidate],  # noqa: ANN001
                     tile_images: list[np.ndarray]) -> dict[int, int]:
    """Photos with a right tile among the first k (k in RECALL_AT), of every distinct tile at 4
    rotations; counted over the photos that have a right tile in the set."""
    import model as models

    database = models.describe(net, tile_images, rotations=(0, 90, 180, 270), batch_size=32)  # (T, 4, D)
    queries = models.describe(net, [np.asarray(Image.open(p.photo_path).convert("RGB")) for p in photos],
                              rotations=(0,), batch_size=16)[:, 0]  # (Q, D)
    scores = np.einsum("qd,trd->qtr", queries, database).max(axis=2)
    polygons = [box(*t.tile_bounds) for t in tiles]
    hits = {k: 0 for k in RECALL_AT}
    for photo, row in zip(photos, scores, strict=True):
        right = np.array([p.covers(photo.truth.centroid) for p in polygons])
        if not right.any():
            continue
        ranked = np.argsort(-row, kind="stable")
        for k in RECALL_AT:
            hits[k] += bool(right[ranked[:k]].any())
    return hits


def centred_on(net, tile_images: list[np.ndarray]):  # noqa: ANN001, ANN201
    """``net`` with its head centred on the tiles at 4 rotations (what `astroloc model centre`
    does over a database); a network without a linear head as it is."""
    from model.whitening import centre_on_tiles, linear_head

    try:
        linear_head(net)
    except ValueError:
        return net
    centre_on_tiles(net, [tile_images], rotations=(0, 90, 180, 270))
    return net


def retrieval_report(settings: Settings, photos: list[RealPhoto]) -> str:
    import model as models
    from service.localize.retrieval import active_model

    tiles = distinct_tiles(photos)
    tile_images = [middle_third(t) for t in tiles]
    with_right = sum(any(box(*t.tile_bounds).covers(p.truth.centroid) for t in tiles) for p in photos)
    ref = active_model(settings)
    rows = [(f"the service's model: {ref.label()}", models.create_model(ref.architecture, weights=ref.path)),
            ("the same, centred on the set's tiles (`astroloc model centre` over them)",
             centred_on(models.create_model(ref.architecture, weights=ref.path), tile_images)),
            ("zero-shot ImageNet trunk: lite0-gem", models.create_model("lite0-gem", pretrained=True))]
    lines = [f"{len(photos)} photos ({with_right} with a right tile in the set) against the set's {len(tiles)} "
             "distinct candidate tiles (the middle third of each surrounding) at 4 rotations; a tile is right "
             "when it holds the true footprint's centroid; counts over the photos with a right tile.", "",
             "| model | R@1 | R@10 |", "|---|---|---|"]
    for name, net in rows:
        hits = retrieval_recall(net, photos, tiles, tile_images)
        lines.append(f"| {name} | {hits[1]}/{with_right} | {hits[10]}/{with_right} |")
    return "\n".join(lines)


def run(settings: Settings, set_dir: Path, limit: int | None = None, retrieval: bool = True,
        reuse: bool = False, on_photo: Callable[[RealOutcome], None] | None = None) -> str:
    """The markdown report of the set (refinement, then retrieval)."""
    photos = load_set(set_dir)[:limit]
    params = refine_params(settings)
    path = outcomes_path(settings)
    if reuse:
        _, outcomes = load_outcomes(path)
    else:
        outcomes = run_refinement(settings, photos, on_photo)
        identity = {"set": str(set_dir), "photos": len(photos),
                    "matching": {k: v for k, v in asdict(params).items() if k != "acceptance"}}
        save_outcomes(path, identity, outcomes)
    report = [f"**Refinement**: {len(photos)} real ISS photos of `{set_dir.name}`, each with its 10 real "
              "Sentinel-2 retrieval candidates, through the refinement job's code (no coarse-to-fine: the set "
              "has no finer imagery). Right: IoU >= 0.5; centre-right: centroids within half the square root "
              "of the larger outline's area.", refinement_report(outcomes, params)]
    if retrieval:
        report += ["**Retrieval** on the same set:", retrieval_report(settings, photos)]
    return "\n\n".join(report)
