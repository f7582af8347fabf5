"""ROSIA's rotation search (Chng, Parra Bustos, McCarthy, Chin, IEEE TAES 2023).

Find the rotation R (camera -> ICRS) maximising the number of query stars s_i that land within
alpha_eps of a compatible catalogue star c_j (paper Eq. 10):

    Q(R) = sum_i max_{j in S_i} [angle(R s_i, c_j) <= alpha_eps]

where the sub-catalogue S_i (Eq. 11) holds the catalogue stars whose triplet feature matches the
query star's, |theta_k(i) - phi_k(j)| <= 2 alpha_eps for k = 1, 2, and whose magnitude matches,
|v_j - v_i| <= eps_v. Folding the triplet indicator of Eq. 10 into S_i turns each query star's
candidates into a short list of (i, j) pairs.

Branch-and-bound runs over the axis-angle pi-ball, enclosed in the cube [-pi, pi]^3 and split as an
octree. For a cube B with centre r_c and half-diagonal alpha_B every R in B moves any vector by at
most alpha_B from R_c (Hartley & Kahl 2009, |angle(R s, R_c s)| <= |r - r_c|), so (Eq. 7)

    Q_bar(B) = sum_i max_{j in S_i} [angle(R_c s_i, c_j) <= alpha_eps + alpha_B]  >=  Q(R)  for R in B.

Best-first search pops the cube with the largest bound; the objective at each new cube's centre is
the incumbent; the search ends, provably optimal, when no cube's bound exceeds the incumbent.

Spatial index: the paper answers "is a candidate of s_i within alpha_eps + alpha_B of R_c s_i" with
an R-tree over stereographic projections. Here each cube carries Breuel's matchlist, the (i, j)
pairs that passed its parent's bound; a child only re-tests those. Measured on simulated scenes
(bench.spatial_index_report, 1 px noise, default tolerances) a sub-catalogue holds 8 stars on
average, 24 at the 99th percentile: one R-tree leaf's worth, so a tree adds a level to walk and
saves no test, while matchlists shrink the scans to ~1 pair per query star within a few octree
levels and halve the search time against re-scanning whole sub-catalogues (benchmark table).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numba
import numpy as np

from starid.geometry import axis_angle_to_matrix

OPTIMAL, TIME_BUDGET, MEMORY_LIMIT = 0, 1, 2
# Memory caps of one search (~44 MB of cubes, ~64 MB of matchlists); typical scenes use < 1%.
MAX_CUBES = 1_000_000
MAX_MATCHLIST_ENTRIES = 16_000_000
_MAX_DEPTH = 26  # cube side 2 pi / 2^26 ~ 1e-7 rad: far below any alpha_eps
_SQRT3 = math.sqrt(3.0)
# The 8 octants of a cube: child centre = parent centre + sign * child half-side.
_OCTANTS = np.array(
    [[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)], dtype=np.float64
)


@numba.njit(cache=True)
def _compatible(i, j, theta, query_mags, features, catalog_mags, feature_tol, mag_tol):
    """Eq. 11 for one (query star, catalogue star): phi_2 and magnitude tests (phi_1 is pre-sorted)."""
    if abs(features[j, 1] - theta[i, 1]) > feature_tol:
        return False
    # An unknown query magnitude (NaN) matches any catalogue magnitude.
    return math.isnan(query_mags[i]) or abs(catalog_mags[j] - query_mags[i]) <= mag_tol


@numba.njit(cache=True)
def _subcatalogue_pairs(
    theta, query_mags, phi1_sorted, by_phi1, features, catalog_mags, feature_tol, mag_tol
):
    """Eq. 11 for every query star: (query index, catalogue index) pairs, sorted by query index."""
    n_query = theta.shape[0]
    lows = np.searchsorted(phi1_sorted, theta[:, 0] - feature_tol, side="left")
    highs = np.searchsorted(phi1_sorted, theta[:, 0] + feature_tol, side="right")
    total = 0
    for i in range(n_query):
        for position in range(lows[i], highs[i]):
            if _compatible(
                i, by_phi1[position], theta, query_mags, features, catalog_mags, feature_tol, mag_tol
            ):
                total += 1
    pair_query = np.empty(total, np.int32)
    pair_catalog = np.empty(total, np.int32)
    k = 0
    for i in range(n_query):
        for position in range(lows[i], highs[i]):
            j = by_phi1[position]
            if _compatible(i, j, theta, query_mags, features, catalog_mags, feature_tol, mag_tol):
                pair_query[k] = i
                pair_catalog[k] = j
                k += 1
    return pair_query, pair_catalog


def subcatalogue_pairs(
    theta: np.ndarray,
    query_mags: np.ndarray,
    catalog,
    alpha_eps: float,
    mag_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-catalogues S_i of paper Eq. 11 as flat (query index, catalogue index) pair arrays.

    theta: (N, 2) query triplet features (radians); query_mags: (N,) with NaN = magnitude unknown
    (that star skips the magnitude test); catalog: a StarCatalog; alpha_eps in radians.
    """
    return _subcatalogue_pairs(
        np.ascontiguousarray(theta, dtype=np.float64),
        np.ascontiguousarray(query_mags, dtype=np.float64),
        catalog.phi1_sorted,
        catalog.by_phi1,
        catalog.features,
        catalog.magnitudes,
        float(2.0 * alpha_eps),
        float(mag_tolerance),
    )


@numba.njit(cache=True)
def _evaluate_cube(
    centre,
    half_side,
    alpha_eps,
    query,
    pair_query,
    pair_vectors,
    matchlist,
    list_start,
    list_length,
    list_bound,
    incumbent,
    out,
    out_start,
):
    """Bound (Eq. 7) and centre objective (Eq. 10) of one cube, from its parent's matchlist.

    Pairs of matchlist[list_start : list_start + list_length] (grouped by query star, list_bound
    distinct stars) that pass the cube's bound test are written to out[out_start:]. Returns
    (bound, objective at the centre, pairs written); stops early, returning a bound <= incumbent,
    once the stars left cannot lift the bound above the incumbent.
    """
    rotation = axis_angle_to_matrix(centre)
    alpha_box = min(_SQRT3 * half_side, math.pi)
    # A reach of pi or more covers the whole sphere; -2 keeps rounding from excluding antipodes.
    cos_bound = math.cos(alpha_eps + alpha_box) if alpha_eps + alpha_box < math.pi else -2.0
    cos_eps = math.cos(alpha_eps)
    bound = 0
    objective = 0
    written = 0
    stars_seen = 0
    current = -1
    star_in_bound = False
    star_in_objective = False
    rx = ry = rz = 0.0
    for position in range(list_start, list_start + list_length):
        pair = matchlist[position]
        i = pair_query[pair]
        if i != current:
            # Stars left after this one cannot lift the bound above the incumbent: give up.
            if bound + (list_bound - stars_seen) <= incumbent:
                return bound, objective, written
            current = i
            stars_seen += 1
            star_in_bound = False
            star_in_objective = False
            sx, sy, sz = query[i, 0], query[i, 1], query[i, 2]
            rx = rotation[0, 0] * sx + rotation[0, 1] * sy + rotation[0, 2] * sz
            ry = rotation[1, 0] * sx + rotation[1, 1] * sy + rotation[1, 2] * sz
            rz = rotation[2, 0] * sx + rotation[2, 1] * sy + rotation[2, 2] * sz
        cosine = rx * pair_vectors[pair, 0] + ry * pair_vectors[pair, 1] + rz * pair_vectors[pair, 2]
        if cosine >= cos_bound:
            out[out_start + written] = pair
            written += 1
            if not star_in_bound:
                star_in_bound = True
                bound += 1
            if cosine >= cos_eps and not star_in_objective:
                star_in_objective = True
                objective += 1
    return bound, objective, written


@numba.njit(cache=True)
def _now():
    with numba.objmode(seconds="float64"):
        seconds = time.perf_counter()
    return seconds


@numba.njit(cache=True)
def _grow_int(array, needed):
    if needed <= array.size:
        return array
    bigger = np.empty(max(needed, 2 * array.size), array.dtype)
    bigger[: array.size] = array
    return bigger


@numba.njit(cache=True)
def _grow_float(array, needed):
    if needed <= array.shape[0]:
        return array
    bigger = np.empty((max(needed, 2 * array.shape[0]), array.shape[1]), array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


@numba.njit(cache=True)
def _branch_and_bound(
    query, pair_query, pair_vectors, alpha_eps, min_matches, deadline, max_cubes, max_entries, use_matchlists
):
    """Best-first BnB over the pi-ball.

    Returns (best axis-angle, best Q, status, cubes expanded, cubes queued, matchlist entries).

    The queue is a bucket queue: bounds are integers 0..N, one LIFO stack per value, so push/pop are
    O(1) and ties go to the most recent (deepest) cube, which finds good incumbents early.
    Cubes (nodes) and their matchlists live in growable arrays; nothing is freed during one search.
    """
    n_query = query.shape[0]
    n_pairs = pair_query.size
    arena = np.empty(max(1024, 4 * n_pairs), np.int32)  # all matchlists, back to back
    for p in range(n_pairs):
        arena[p] = p
    arena_used = n_pairs
    node_centre = np.empty((1024, 3))
    node_depth = np.empty(1024, np.int32)
    node_start = np.empty(1024, np.int32)
    node_length = np.empty(1024, np.int32)
    node_bound = np.empty(1024, np.int32)
    node_next = np.empty(1024, np.int32)
    stack_head = np.full(n_query + 1, -1, np.int32)

    incumbent = min_matches - 1  # fewer matches are reported as no_result anyway: prune them
    best = np.zeros(3)
    root_bound = 0
    for p in range(n_pairs):
        if p == 0 or pair_query[p] != pair_query[p - 1]:
            root_bound += 1
    node_centre[0] = 0.0
    node_depth[0] = 0
    node_start[0] = 0
    node_length[0] = n_pairs
    node_bound[0] = root_bound
    node_next[0] = -1
    stack_head[root_bound] = 0
    n_nodes = 1
    top = root_bound
    expanded = 0
    status = OPTIMAL
    child_centre = np.empty(3)
    while True:
        while top > incumbent and stack_head[top] < 0:
            top -= 1
        if top <= incumbent:
            break  # no cube can beat the incumbent: it is optimal
        node = stack_head[top]
        stack_head[top] = node_next[node]
        expanded += 1
        if expanded % 64 == 1 and _now() > deadline:  # the clock costs ~1 us: read it now and then
            status = TIME_BUDGET
            break
        depth = node_depth[node] + 1
        half_side = math.pi / 2.0**depth
        start, length, bound = node_start[node], node_length[node], node_bound[node]
        if n_nodes + 8 > max_cubes or arena_used + 8 * length > max_entries:
            status = MEMORY_LIMIT
            break
        arena = _grow_int(arena, arena_used + 8 * length)
        for octant in range(8):
            far = 0.0  # distance from the origin to the nearest point of the child cube
            for axis in range(3):
                child_centre[axis] = node_centre[node, axis] + half_side * _OCTANTS[octant, axis]
                gap = abs(child_centre[axis]) - half_side
                if gap > 0.0:
                    far += gap * gap
            if far > math.pi * math.pi:
                continue  # cube outside the pi-ball: its rotations are represented inside it
            child_bound, objective, written = _evaluate_cube(
                child_centre,
                half_side,
                alpha_eps,
                query,
                pair_query,
                pair_vectors,
                arena,
                start,
                length,
                bound,
                incumbent,
                arena,
                arena_used,
            )
            if objective > incumbent:
                incumbent = objective
                best[:] = child_centre
            if child_bound <= incumbent or depth >= _MAX_DEPTH:
                continue
            if n_nodes >= node_depth.size:
                node_centre = _grow_float(node_centre, n_nodes + 1)
                node_depth = _grow_int(node_depth, n_nodes + 1)
                node_start = _grow_int(node_start, n_nodes + 1)
                node_length = _grow_int(node_length, n_nodes + 1)
                node_bound = _grow_int(node_bound, n_nodes + 1)
                node_next = _grow_int(node_next, n_nodes + 1)
            node_centre[n_nodes] = child_centre
            node_depth[n_nodes] = depth
            node_bound[n_nodes] = child_bound
            if use_matchlists:
                node_start[n_nodes] = arena_used
                node_length[n_nodes] = written
                arena_used += written
            else:  # ablation for the benchmark: every cube re-tests all pairs
                node_start[n_nodes] = 0
                node_length[n_nodes] = n_pairs
                node_bound[n_nodes] = root_bound
            node_next[n_nodes] = stack_head[child_bound]
            stack_head[child_bound] = n_nodes
            top = max(top, child_bound)
            n_nodes += 1
    return best, incumbent, status, expanded, n_nodes, arena_used


@functools.cache
def compile_kernels() -> None:
    """Compile the numba kernels (or load them from numba's on-disk cache) on a tiny problem.

    identify() calls this before it starts its clock, so no time budget pays for compilation
    (seconds on a cold cache). The argument types must match the real calls exactly.
    """
    tiny = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    indices = np.arange(3, dtype=np.int32)
    _subcatalogue_pairs(
        np.zeros((3, 2)), np.zeros(3), np.zeros(3), indices, np.zeros((3, 2)), np.zeros(3), 0.1, 1.0
    )
    _branch_and_bound(tiny, indices, tiny, 0.01, 3, time.perf_counter() + 1.0, 1000, 1000, True)
    axis_angle_to_matrix(np.zeros(3))


@dataclass
class SearchOutcome:
    """Result of rotation_search, with the work it took."""

    rotation: np.ndarray | None  # 3x3 camera -> ICRS at the best cube centre; None if Q < min_matches
    matches: int  # Q of the best rotation (Eq. 10); 0 when no rotation reaches min_matches
    status: int  # OPTIMAL, TIME_BUDGET or MEMORY_LIMIT
    cubes_expanded: int
    cubes_queued: int
    matchlist_entries: int


def rotation_search(
    query: np.ndarray,
    pair_query: np.ndarray,
    pair_vectors: np.ndarray,
    alpha_eps: float,
    time_budget_s: float,
    min_matches: int = 3,
    max_cubes: int = MAX_CUBES,
    max_matchlist_entries: int = MAX_MATCHLIST_ENTRIES,
    use_matchlists: bool = True,
) -> SearchOutcome:
    """Maximise Q(R) (Eq. 10) by best-first branch-and-bound with the bound of Eq. 7.

    query: (N, 3) camera unit vectors; pair_query / pair_vectors: the sub-catalogue pairs (query
    index, sorted ascending) and their catalogue unit vectors; alpha_eps in radians. Rotations with
    fewer than min_matches matches are not sought. Stops at the time budget, or when the queued
    cubes (44 bytes each) or their matchlists (4 bytes per entry) outgrow the caps.
    """
    if pair_query.size == 0:
        return SearchOutcome(None, 0, OPTIMAL, 0, 0, 0)
    best, matches, status, expanded, queued, entries = _branch_and_bound(
        np.ascontiguousarray(query, dtype=np.float64),
        np.ascontiguousarray(pair_query, dtype=np.int32),
        np.ascontiguousarray(pair_vectors, dtype=np.float64),
        float(alpha_eps),
        int(min_matches),
        time.perf_counter() + time_budget_s,
        int(max_cubes),
        int(max_matchlist_entries),
        bool(use_matchlists),
    )
    rotation = axis_angle_to_matrix(best) if matches >= min_matches else None
    return SearchOutcome(
        rotation,
        int(matches) if rotation is not None else 0,
        int(status),
        int(expanded),
        int(queued),
        int(entries),
    )


def objective(
    rotation: np.ndarray, query: np.ndarray, pair_query: np.ndarray, pair_vectors: np.ndarray, alpha: float
) -> int:
    """Q(R) of Eq. 10 (threshold alpha), computed directly with numpy: the reference for tests."""
    if pair_query.size == 0:
        return 0
    rotated = query[pair_query] @ rotation.T
    within = np.einsum("ij,ij->i", rotated, pair_vectors) >= math.cos(min(alpha, math.pi))
    return int(np.unique(pair_query[within]).size)


def upper_bound(
    centre: np.ndarray,
    half_side: float,
    query: np.ndarray,
    pair_query: np.ndarray,
    pair_vectors: np.ndarray,
    alpha_eps: float,
) -> int:
    """Q_bar(B) of Eq. 7 for the cube of axis-angle centre `centre` and half-side `half_side`,
    evaluated by the same kernel the search uses."""
    n_pairs = pair_query.size
    if n_pairs == 0:
        return 0
    matchlist = np.arange(n_pairs, dtype=np.int32)
    distinct = int(np.unique(pair_query).size)
    bound, _, _ = _evaluate_cube(
        np.asarray(centre, dtype=np.float64),
        float(half_side),
        float(alpha_eps),
        np.ascontiguousarray(query, dtype=np.float64),
        np.ascontiguousarray(pair_query, dtype=np.int32),
        np.ascontiguousarray(pair_vectors, dtype=np.float64),
        matchlist,
        0,
        n_pairs,
        distinct,
        -1,
        np.empty(n_pairs, np.int32),
        0,
    )
    return int(bound)
