"""Candidate ranking: the obliquity prior's re-ranking and the lost-in-space coarse-to-fine search."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Point

from index.build import DescribedTiles, build_index
from index.search import SearchHit, ShardedIndex
from index.tiles import Tile, tile_at, tile_polygon, tiles_at_zoom
from service.localize.ranking import PriorWeights, prior_terms, rank_with_prior
from service.localize.worldwide import CoarseToFine, coarse_to_fine_search, neighbourhood

DIM = 16
MODEL = "test-model-ranking"


def test_the_prior_lifts_the_tile_near_the_nadir_above_a_slightly_more_similar_far_one():
    near, far = tile_at(2.5, 0.5, 6), tile_at(15.0, 0.5, 6)  # ~280 km and ~1,650 km from (0, 0)
    hits = [SearchHit(far, 0, 0.80), SearchHit(near, 90, 0.79)]
    terms = prior_terms(hits, [(0.0, 0.0)], 420.0)
    assert terms[0][1] > terms[0][0]
    assert [r.hit.tile for r in rank_with_prior(hits, terms, PriorWeights(0.0), k=2)] == [far, near]
    ranked = rank_with_prior(hits, terms, PriorWeights(0.05), k=2)
    assert [r.hit.tile for r in ranked] == [near, far]
    assert ranked[0].ranked_score == pytest.approx(0.79 + ranked[0].log_prior, abs=1e-6)
    assert rank_with_prior(hits, terms, PriorWeights(0.05), k=1)[0].hit.tile == near
    assert rank_with_prior([], prior_terms([], [(0.0, 0.0)], 420.0), PriorWeights(1.0), k=5) == []


@pytest.fixture(scope="module")
def two_zoom_index(tmp_path_factory):
    """Zooms 3 and 5, random descriptors, except near the target: the photo looks like the zoom-3
    tile holding it and like the zoom-5 target; a zoom-5 look-alike lies on another continent."""
    target, lookalike = tile_at(10.0, 45.0, 5), tile_at(-100.0, 40.0, 5)
    coarse = tile_at(10.0, 45.0, 3)
    query = np.random.default_rng(0).standard_normal(DIM)

    def describer(tiles):
        out = np.random.default_rng(len(tiles)).standard_normal((len(tiles), 4, DIM))
        for i, tile in enumerate(tiles):
            if tile == coarse:
                out[i, 0] = query + 0.5 * np.random.default_rng(1).standard_normal(DIM)
            elif tile == target:
                out[i, 0] = query + 0.3 * np.random.default_rng(2).standard_normal(DIM)
            elif tile == lookalike:
                out[i, 0] = query + 0.1 * np.random.default_rng(3).standard_normal(DIM)
        return DescribedTiles(list(tiles), out)

    directory = tmp_path_factory.mktemp("two-zoom-index")
    build_index(directory, list(tiles_at_zoom(3)) + list(tiles_at_zoom(5)), describer, model_version=MODEL,
                progress=False)
    return ShardedIndex.open(directory, MODEL), query, target, lookalike, coarse


def test_coarse_to_fine_searches_fine_zooms_only_around_the_coarse_matches(two_zoom_index):
    index, query, target, lookalike, coarse = two_zoom_index
    plan = CoarseToFine.for_index(index, coarse_k=1)
    assert plan.coarse_zooms == (3,) and plan.fine_zooms == (5,)
    result = coarse_to_fine_search(index, query, 10, plan, nprobe=8)
    tiles = [h.tile for h in result.hits]
    assert coarse in tiles and target in tiles
    assert lookalike not in tiles  # far from every coarse match: vetted out
    assert all(h.zoom == 3 or neighbourhood([coarse], 0.5).intersects(tile_polygon(h.tile)) for h in result.hits)
    assert all(a.score >= b.score for a, b in zip(result.hits, result.hits[1:]))
    [flat] = index.search(query, None, k=10)
    assert flat.hits[0].tile == lookalike  # a flat world-wide search ranks the look-alike first


def test_neighbourhood_grows_tiles_and_crosses_the_antimeridian():
    region = neighbourhood([Tile(3, 7, 3)], 0.5)  # lon 135..180
    assert region.contains(Point(-175.0, 30.0)) or region.bounds[2] > 180.0
    assert region.contains(Point(140.0, 30.0))
    assert not region.contains(Point(100.0, 30.0))
