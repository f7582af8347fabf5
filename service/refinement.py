"""The refinement stage of localization: candidate tiles -> EarthMatch -> the footprint.

Shared by the refinement job (worker/localize.py) and `astroloc bench localize`, so that the
benchmark measures exactly what the service runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from geo.refine import Match, RefineParams, RefineResult, refine_candidates
from index.sources import LocalXYZSource
from index.surroundings import surrounding_image
from index.tiles import Tile
from service.config import Settings


def refine_photo(
    settings: Settings,
    image: np.ndarray,
    candidates: Sequence[dict],
    on_progress: Callable[[int, int, Match], None] | None = None,
    params: RefineParams | None = None,
) -> RefineResult:
    """Match the photo against each candidate's 3x3 tile neighbourhood (rotated as retrieval
    says) and keep the best accepted match. ``candidates``: dicts with ``tile`` and ``rotation``."""
    source = LocalXYZSource(settings.resolved_tiles_dir)
    lazy = ((surrounding_image(source, Tile.parse(c["tile"])), int(c["rotation"])) for c in candidates)
    return refine_candidates(image, lazy, params or RefineParams.from_settings(settings), on_progress=on_progress)


def confidence_of(match: Match, params: RefineParams) -> float:
    """A 0..1 score from the inlier count: 0.5 at the acceptance threshold, rising toward 1."""
    return round(match.inliers / (match.inliers + params.min_inliers), 4)
