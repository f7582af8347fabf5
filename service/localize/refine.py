"""The refinement stage of localization: candidate tiles -> EarthMatch -> the best accepted match.

Shared by the refinement job (worker/localize.py -> :func:`refine_job`) and `astroloc bench
localize` (:func:`refine_photo`), so that the benchmark measures exactly what the service runs.
:func:`refine_params` is the one place where the settings become geo.refine.RefineParams.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geo.refine import GeoImage, Match, RefineParams, RefineResult, nearest_quarter_turn, refine_candidates
from index.sources import LocalXYZSource
from index.surroundings import surrounding_image, zoom_in_surrounding
from index.tiles import Tile
from service.config import Settings
from service.localize.contracts import Candidate, LocalizeJobParams, TriedCandidate
from service.exif import read_exif, upright
from service.photos import decode_rgb, stored_photo_path


def refine_params(settings: Settings) -> RefineParams:
    """The matching settings of the service (ASTROLOC_REFINE_*); the rest, the acceptance included
    (geo.acceptance.Acceptance: the committed fit on real and demo-world candidates), keep
    RefineParams' defaults."""
    return RefineParams(
        features=settings.refine_features, iterations=settings.refine_iterations,
        min_inliers=settings.refine_min_inliers, max_features=settings.refine_max_features,
        query_max_side=settings.refine_query_max_side, sift_contrast=settings.refine_sift_contrast,
    )


def query_image(data: bytes, params: RefineParams) -> np.ndarray:
    """A photo's bytes as the refinement job matches them: decoded at the matching size (a JPEG at
    a reduced DCT scale), turned upright as its EXIF says."""
    return upright(decode_rgb(data, params.query_max_side), read_exif(data).orientation)


def refine_photo(
    settings: Settings,
    image: np.ndarray,
    candidates: Sequence[Candidate],
    on_progress: Callable[[int, int, Match], None] | None = None,
    params: RefineParams | None = None,
    budget_s: float | None = None,
) -> RefineResult:
    """Match the photo against each candidate's 3x3 tile neighbourhood (rotated as retrieval
    says) and keep the best accepted match; within ``budget_s`` seconds when given."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    source = LocalXYZSource(settings.resolved_tiles_dir)
    lazy = _Surroundings(source, candidates)
    finest = _finest_zoom(source.root)

    def zoom_in(corners_lonlat: np.ndarray) -> GeoImage | None:  # coarse-to-fine, up to the finest tiles
        return zoom_in_surrounding(source, corners_lonlat, finest) if finest is not None else None

    return refine_candidates(image, lazy, params or refine_params(settings), on_progress=on_progress,
                             deadline=deadline, zoom_in=zoom_in)


def _finest_zoom(root: Path) -> int | None:
    zooms = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.is_dir() else []
    return max(zooms, default=None)


class _Surroundings(Sequence):
    """Each candidate's (surroundings, rotation), read from the tiles only when its turn comes."""

    def __init__(self, source: LocalXYZSource, candidates: Sequence[Candidate]) -> None:
        self.source, self.candidates = source, candidates

    def __len__(self) -> int:
        return len(self.candidates)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (Sequence protocol)
        candidate = self.candidates[i]
        # An index with in-between turns (index_turns_deg) finds photos turned by e.g. 45 deg.
        return surrounding_image(self.source, Tile.parse(candidate.tile)), nearest_quarter_turn(candidate.rotation)


@dataclass
class Refinement:
    """What the refinement job did for one photo (turned into its answer by service.localize.result)."""

    params: LocalizeJobParams
    refine_params: RefineParams
    candidates: list[Candidate]  # those to try: localize_max_candidates, or lost_in_space_max_candidates
    started: float  # time.perf_counter() when the job began
    result: RefineResult | None = None  # None: nothing was matched (refine=false, or no candidate)
    tried: list[TriedCandidate] = field(default_factory=list)

    def runtime_s(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def refine_job(settings: Settings, params: LocalizeJobParams,
               progress: Callable[..., None] | None = None) -> Refinement:
    """Refine the job's candidates against its stored photo; ``progress(fraction, **detail)``
    hears of each candidate tried (the job's GET /jobs/{id} detail)."""
    limit = settings.localize_max_candidates if params.budget_s is None else settings.lost_in_space_max_candidates
    refinement = Refinement(params, refine_params(settings), params.candidates[:limit], started=time.perf_counter())
    if not params.refine or not refinement.candidates:
        return refinement

    def on_progress(i: int, n: int, match: Match) -> None:
        refinement.tried.append(TriedCandidate.of_match(refinement.candidates[i].tile, match))
        if progress is not None:
            progress((i + 1) / n, candidate=i + 1, candidates=n,
                     tried=[t.model_dump(mode="json") for t in refinement.tried])

    data = stored_photo_path(settings.data_dir, params.image_path).read_bytes()
    query = query_image(data, refinement.refine_params)
    refinement.result = refine_photo(settings, query, refinement.candidates, on_progress=on_progress,
                                     params=refinement.refine_params, budget_s=params.budget_s)
    return refinement
