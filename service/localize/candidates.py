"""Which tiles the refinement job tries, best first.

- In a visibility region: the most similar tiles in it, re-ranked by similarity + the weighted
  obliquity prior around the region's sub-point(s) (service.localize.ranking) when its weights
  are set (``search_prior_weight``, ``search_prior_size_weight``), else by similarity alone.
- World-wide (lost in space: no time, no nadir): coarse to fine (service.localize.worldwide),
  up to ``lost_in_space_max_candidates`` of them, refined within ``lost_in_space_budget_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.search import SearchHit
from service.config import Settings
from service.localize.contracts import Candidate
from service.localize.ranking import PriorWeights, prior_terms, rank_with_prior
from service.localize.region import SearchRegion
from service.localize.retrieval import RetrievalEngine
from service.localize.worldwide import CoarseToFine, coarse_to_fine_search


@dataclass
class Retrieved:
    candidates: list[Candidate]  # best first: every candidate the job may try
    hits: list[SearchHit]  # the same tiles, same order
    ranking: str  # similarity | similarity+prior | coarse-to-fine
    reason: str | None  # why there are none
    shards_searched: int
    budget_s: float | None  # the refinement's time budget (world-wide searches)


def retrieve_candidates(
    settings: Settings, engine: RetrievalEngine, image: np.ndarray, region: SearchRegion, top_k: int
) -> Retrieved:
    """The candidates of one photo for its search region (at least ``top_k`` when there are)."""
    descriptor = engine.describe([image])
    if region.region is None:
        plan = CoarseToFine.for_index(engine.index, coarse_k=settings.lost_in_space_coarse_k)
        found = coarse_to_fine_search(engine.index, descriptor, max(top_k, settings.lost_in_space_max_candidates),
                                      plan, settings.index_nprobe)
        return Retrieved([Candidate.of_hit(h) for h in found.hits], found.hits, "coarse-to-fine", found.reason,
                         found.shards_searched, settings.lost_in_space_budget_s)
    weights = PriorWeights(settings.search_prior_weight, settings.search_prior_size_weight)
    if not (weights.active and region.sub_points):
        [found] = engine.index.search(descriptor, region.region, k=top_k, nprobe=settings.index_nprobe)
        return Retrieved([Candidate.of_hit(h) for h in found.hits], found.hits, "similarity", found.reason,
                         found.shards_searched, None)
    [found] = engine.index.search(descriptor, region.region, k=max(top_k, settings.search_prior_pool),
                                  nprobe=settings.index_nprobe)
    ranked = rank_with_prior(found.hits, prior_terms(found.hits, region.sub_points, region.alt_km), weights, top_k)
    return Retrieved([Candidate.of_hit(r.hit, r.log_prior) for r in ranked], [r.hit for r in ranked],
                     "similarity+prior", found.reason, found.shards_searched, None)
