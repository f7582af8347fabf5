"""Retrieval candidates ranked by similarity plus the obliquity prior (geo.prior).

A pool of the most similar tiles in the search region is re-ranked by

    similarity + w_location * log p(centre near the tile | sub-point)
               + w_size * log p(footprint as wide as the tile | its distance)

and the best ``k`` kept. The weights are fitted on the demo world's validation split by
`astroloc bench prior` (a grid search for the best R@1) and live in the settings
(``search_prior_weight``, ``search_prior_size_weight``); weights of 0 leave retrieval's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geo.prior import ObliquityPrior, load_prior
from index.search import SearchHit
from index.tiles import tile_bounds


@dataclass(frozen=True)
class PriorWeights:
    location: float
    size: float = 0.0

    @property
    def active(self) -> bool:
        return self.location != 0.0 or self.size != 0.0


@dataclass(frozen=True)
class RankedHit:
    hit: SearchHit
    log_prior: float  # the weighted prior term added to the similarity
    ranked_score: float  # similarity + log_prior: what the order follows


def prior_terms(
    hits: Sequence[SearchHit], sub_points: Sequence[tuple[float, float]], alt_km: float,
    prior: ObliquityPrior | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The prior's (location, size) log terms of each hit's tile."""
    if not hits:
        return np.zeros(0), np.zeros(0)
    bounds = np.array([[b.west, b.south, b.east, b.north] for b in (tile_bounds(h.tile) for h in hits)])
    return (prior or load_prior()).tile_terms(bounds, sub_points, alt_km)


def rank_with_prior(
    hits: Sequence[SearchHit], terms: tuple[np.ndarray, np.ndarray], weights: PriorWeights, k: int
) -> list[RankedHit]:
    """The ``k`` best hits by similarity + weighted prior (stable: ties keep retrieval's order)."""
    location, size = terms
    bonus = weights.location * location + weights.size * size if len(hits) else np.zeros(0)
    scores = np.array([h.score for h in hits]) + bonus
    order = np.argsort(-scores, kind="stable")[:k]
    return [RankedHit(hits[i], round(float(bonus[i]), 6), round(float(scores[i]), 6)) for i in order]
