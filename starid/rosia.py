"""ROSIA's rotation search (Chng, Parra Bustos, McCarthy, Chin, IEEE TAES 2023), made robust.

Find the rotation R (camera -> ICRS) maximising the number of query stars s_i that land within
alpha_eps of a magnitude-compatible catalogue star c_j (paper Eq. 10):

    Q(R) = sum_i max_{j in S_i} [angle(R s_i, c_j) <= alpha_eps]

Branch-and-bound runs over the axis-angle pi-ball, enclosed in the cube [-pi, pi]^3 and split as an
octree. For a cube B with centre r_c and half-diagonal alpha_B every R in B moves any vector by at
most alpha_B from R_c (Hartley & Kahl 2009, |angle(R s, R_c s)| <= |r - r_c|), so (Eq. 7)

    Q_bar(B) = sum_i max_{j in S_i} [angle(R_c s_i, c_j) <= alpha_eps + alpha_B]  >=  Q(R)  for R in B.

Best-first search pops the cube with the largest bound; the objective at each new cube's centre is
the incumbent; the search ends, provably optimal, when no cube's bound exceeds the incumbent.

Sub-catalogues S_i. The paper's Eq. 11 keeps the catalogue stars whose two nearest catalogue
neighbours are as far as the query star's two nearest detections: exact on the paper's
simulation, but a real detector loses stars and adds others, the neighbours change and the true
match is filtered out before the search starts (issue 17: 50-87% identified). Here S_i come from
quick hypotheses instead (robust_search, _hypotheses): every catalogue pair whose separation and
magnitudes fit a pair of the brightest detections gives a rotation, scored on all detections; the
best hypotheses propose S_i and the first lower bound. A pairwise-support filter that provably
keeps every better solution (a pair in a q-star solution has q - 1 consistent partners) was tried
first and dropped: with a 14,000-star catalogue and 0.06 deg tolerances random pairs reach full
support as often as true ones, so it filtered nothing and cost 40-90 ms.

Each cube carries Breuel's matchlist, the (i, j) pairs that passed its parent's bound; a child only
re-tests those.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numba
import numpy as np

from starid.catalog import MAG_BIN_WIDTH as _MAG_BIN_WIDTH
from starid.geometry import axis_angle_to_matrix

OPTIMAL, TIME_BUDGET, MEMORY_LIMIT = 0, 1, 2
# Memory caps of one search (~44 MB of cubes, ~64 MB of matchlists); typical scenes use < 1%.
MAX_CUBES = 1_000_000
MAX_MATCHLIST_ENTRIES = 16_000_000
_MAX_DEPTH = 26  # cube side 2 pi / 2^26 ~ 1e-7 rad: far below any alpha_eps
_SQRT3 = math.sqrt(3.0)
# A hypothesis whose first PROBE_STARS other stars all miss is dropped without scoring the rest.
PROBE_STARS = 4
# Hypotheses stop at the first that aligns this many stars: a wrong rotation puts a query star
# within alpha_eps (0.06 deg) of a catalogue star ~0.4% of the time, so 5 chance alignments
# besides the pair itself (~1e-10 a rotation) do not happen over the ~10^4 rotations tried.
ENOUGH_MATCHES = 7
HYPOTHESIS_REACH = 4.0
# Hypotheses come from pairs of the PATTERN_STARS brightest stars, with a separation window of
# PATTERN_WINDOW alpha_eps (1 sigma of a pair's separation error at 2 px of centroid noise is
# 0.04 deg) and magnitudes within PATTERN_MAG_FRACTION of mag_tol.
PATTERN_STARS = 10
PATTERN_WINDOW = 1.0
PATTERN_MAG_FRACTION = 0.67
# The 8 octants of a cube: child centre = parent centre + sign * child half-side.
_OCTANTS = np.array(
    [[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)], dtype=np.float64
)


@numba.njit(cache=True)
def _mag_bins(mag, mag_tol, mag_min, bins):
    """First and last magnitude bin of the pair index a query star of magnitude mag can match."""
    if math.isnan(mag):
        return 0, bins - 1
    low = int(math.floor((mag - mag_tol - mag_min) / _MAG_BIN_WIDTH))
    high = int(math.floor((mag + mag_tol - mag_min) / _MAG_BIN_WIDTH))
    return max(low, 0), min(high, bins - 1)


@numba.njit(cache=True)
def _mag_ok(query_mag, catalog_mag, mag_tol):
    # An unknown query magnitude (NaN) matches any catalogue magnitude.
    return math.isnan(query_mag) or abs(catalog_mag - query_mag) <= mag_tol


@numba.njit(cache=True)
def _nearest_two(v, radius, query_mag, mag_tol, vectors, catalog_mags, grid_star, cell_start, bands, ra_cells):
    """(index, cosine) of the magnitude-compatible catalogue star nearest to unit vector v within
    `radius` (index -1 if none), and the cosine of the runner-up (-2 if none): a look at the
    sky-grid cells that a cap of that radius around v touches."""
    dec = math.asin(max(-1.0, min(1.0, v[2])))
    ra = math.atan2(v[1], v[0]) % (2.0 * math.pi)
    band_rad = math.pi / bands
    cell_rad = 2.0 * math.pi / ra_cells
    low_band = max(int((dec - radius + 0.5 * math.pi) / band_rad), 0)
    high_band = min(int((dec + radius + 0.5 * math.pi) / band_rad), bands - 1)
    widest = max(abs(dec - radius), abs(dec + radius))
    if widest >= 0.5 * math.pi - 1e-9:
        span = ra_cells  # the cap holds a pole: every right ascension
    else:
        span = int(radius / (math.cos(widest) * cell_rad)) + 1
    centre_cell = int(ra / cell_rad)
    cells = min(2 * span + 1, ra_cells)
    cos_radius = math.cos(radius)
    best, best_cos, second_cos = -1, -2.0, -2.0
    for band in range(low_band, high_band + 1):
        for step in range(cells):
            if cells == ra_cells:
                cell = band * ra_cells + step
            else:
                cell = band * ra_cells + (centre_cell - span + step) % ra_cells
            for position in range(cell_start[cell], cell_start[cell + 1]):
                j = grid_star[position]
                cosine = v[0] * vectors[j, 0] + v[1] * vectors[j, 1] + v[2] * vectors[j, 2]
                if cosine < cos_radius or not _mag_ok(query_mag, catalog_mags[j], mag_tol):
                    continue
                if cosine > best_cos:
                    best, best_cos, second_cos = j, cosine, best_cos
                elif cosine > second_cos:
                    second_cos = cosine
    return best, best_cos, second_cos


@numba.njit(cache=True)
def _nearest_star(v, alpha_eps, query_mag, mag_tol, vectors, catalog_mags, grid_star, cell_start, bands, ra_cells):
    """Index of the magnitude-compatible catalogue star nearest to v within alpha_eps, -1 if none."""
    return _nearest_two(v, alpha_eps, query_mag, mag_tol, vectors, catalog_mags, grid_star, cell_start, bands, ra_cells)[0]


@numba.njit(cache=True)
def _nearest_under(rotation, query, query_mags, radius, mag_tol, vectors, catalog_mags, grid_star, cell_start, bands, ra_cells):
    """_nearest_two for every query star rotated by `rotation`: (index (N,), angle (N,), runner-up
    angle (N,), inf where none)."""
    n_query = query.shape[0]
    nearest = np.full(n_query, -1, np.int64)
    angle = np.full(n_query, np.inf)
    runner_up = np.full(n_query, np.inf)
    rotated = np.empty(3)
    for i in range(n_query):
        for axis in range(3):
            rotated[axis] = rotation[axis, 0] * query[i, 0] + rotation[axis, 1] * query[i, 1] + rotation[axis, 2] * query[i, 2]
        j, best_cos, second_cos = _nearest_two(
            rotated, radius, query_mags[i], mag_tol, vectors, catalog_mags, grid_star, cell_start, bands, ra_cells
        )
        if j >= 0:
            nearest[i] = j
            angle[i] = math.acos(min(1.0, best_cos))
            if second_cos > -2.0:
                runner_up[i] = math.acos(min(1.0, second_cos))
    return nearest, angle, runner_up


def nearest_under(
    rotation: np.ndarray, query: np.ndarray, query_mags: np.ndarray, catalog, radius: float, mag_tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query star under `rotation`: the nearest magnitude-compatible catalogue star within
    `radius` (radians; -1 if none), its angle and the runner-up's angle (inf if none)."""
    grid = catalog.grid()
    return _nearest_under(
        np.ascontiguousarray(rotation, dtype=np.float64), np.ascontiguousarray(query, dtype=np.float64),
        np.ascontiguousarray(query_mags, dtype=np.float64), float(radius), float(mag_tolerance),
        catalog.vectors, catalog.magnitudes, grid.star, grid.cell_start, grid.bands, grid.ra_cells,
    )


@numba.njit(cache=True)
def _triad(sa, sb, ca, cb):
    """Rotation R with R sa = ca and R (sa x sb) along ca x cb (TRIAD): camera -> ICRS."""
    camera = np.empty((3, 3))
    sky = np.empty((3, 3))
    for frame, a, b in ((camera, sa, sb), (sky, ca, cb)):
        cx = a[1] * b[2] - a[2] * b[1]
        cy = a[2] * b[0] - a[0] * b[2]
        cz = a[0] * b[1] - a[1] * b[0]
        norm = math.sqrt(cx * cx + cy * cy + cz * cz)
        cx, cy, cz = cx / norm, cy / norm, cz / norm
        frame[0, 0], frame[1, 0], frame[2, 0] = a[0], a[1], a[2]
        frame[0, 1], frame[1, 1], frame[2, 1] = cx, cy, cz
        frame[0, 2] = a[1] * cz - a[2] * cy
        frame[1, 2] = a[2] * cx - a[0] * cz
        frame[2, 2] = a[0] * cy - a[1] * cx
    return sky @ camera.T


@numba.njit(cache=True)
def _hypotheses(
    query, query_mags, angle, first, second, group_start, mag_min, bins, max_pair, vectors,
    catalog_mags, grid_star, cell_start, bands, ra_cells, alpha_eps, mag_tol, min_matches, enough, keep,
    probe, pattern_stars, deadline,
):
    """Quick hypotheses: for query star pairs (a, b), brightest first, every catalogue pair of
    compatible magnitudes whose separation is within 2 alpha_eps of theta_ab, in both orientations,
    gives a rotation (TRIAD), scored by how many query stars then land within alpha_eps of a
    magnitude-compatible catalogue star. Stops after the query pair that produced a hypothesis
    with `enough` matches (or at the deadline).

    Returns (best Q, best rotation, hypotheses tried, assignments (keep, N): the catalogue star of
    every query star under the `keep` best hypotheses, -1 where none).
    """
    n_query = query.shape[0]
    # Tighter than the provable 2 alpha_eps and mag_tol: hypotheses need not be exhaustive for one
    # star pair (a true pair that misses is found again from the next), and looser windows mean
    # proportionally more rotations to try. The scoring uses the full tolerances.
    window = PATTERN_WINDOW * alpha_eps
    pattern_mag_tol = PATTERN_MAG_FRACTION * mag_tol
    assignments = np.full((keep, n_query), -1, np.int32)
    scores = np.zeros(keep, np.int64)
    best_rotation = np.eye(3)
    tried = 0
    rotated = np.empty(3)
    current = np.empty(n_query, np.int32)
    for second_star in range(1, min(n_query, pattern_stars)):
        for first_star in range(second_star):
            a, b = first_star, second_star
            cosine = query[a, 0] * query[b, 0] + query[a, 1] * query[b, 1] + query[a, 2] * query[b, 2]
            theta = math.acos(max(-1.0, min(1.0, cosine)))
            if theta > max_pair - window or theta < 4.0 * alpha_eps:
                continue  # beyond the pair index, or too short to fix the roll
            a_low, a_high = _mag_bins(query_mags[a], pattern_mag_tol, mag_min, bins)
            b_low, b_high = _mag_bins(query_mags[b], pattern_mag_tol, mag_min, bins)
            for bin_a in range(a_low, a_high + 1):
                for bin_b in range(b_low, b_high + 1):
                    group = bin_a * bins + bin_b if bin_a <= bin_b else bin_b * bins + bin_a
                    start, end = group_start[group], group_start[group + 1]
                    if start == end:
                        continue
                    low = start + np.searchsorted(angle[start:end], theta - window)
                    high = start + np.searchsorted(angle[start:end], theta + window, side="right")
                    for p in range(low, high):
                        for orientation in range(2):
                            if (orientation == 0 and bin_a > bin_b) or (orientation == 1 and bin_a < bin_b):
                                continue
                            j = first[p] if orientation == 0 else second[p]
                            l = second[p] if orientation == 0 else first[p]
                            if not (
                                _mag_ok(query_mags[a], catalog_mags[j], pattern_mag_tol)
                                and _mag_ok(query_mags[b], catalog_mags[l], pattern_mag_tol)
                            ):
                                continue
                            tried += 1
                            rotation = _triad(query[a], query[b], vectors[j], vectors[l])
                            # Score, starting with the stars just fainter than b (then wrapping
                            # round), so that different star pairs probe with different stars. Give
                            # up when the first `probe` of them all miss (a wrong rotation; were it
                            # the right one, false stars among those probed, another star pair
                            # probes others), or when the stars left cannot lift the score above
                            # the bar.
                            bar = max(scores[keep - 1], min_matches - 1, scores[0] // 2)
                            score = 0
                            misses = 0
                            for i in range(n_query):
                                current[i] = -1
                            for step in range(n_query):
                                if score + (n_query - step) <= bar:
                                    score = -1
                                    break
                                i = (b + 1 + step) % n_query
                                for axis in range(3):
                                    rotated[axis] = (
                                        rotation[axis, 0] * query[i, 0]
                                        + rotation[axis, 1] * query[i, 1]
                                        + rotation[axis, 2] * query[i, 2]
                                    )
                                match = _nearest_star(
                                    rotated, alpha_eps, query_mags[i], mag_tol, vectors, catalog_mags,
                                    grid_star, cell_start, bands, ra_cells,
                                )
                                if match >= 0:
                                    current[i] = match
                                    score += 1
                                elif i != a and i != b:
                                    misses += 1
                                    if misses >= probe and score == 0:
                                        score = -1
                                        break
                            if score <= bar:
                                continue
                            slot = keep - 1
                            while slot > 0 and scores[slot - 1] < score:
                                scores[slot] = scores[slot - 1]
                                assignments[slot] = assignments[slot - 1]
                                slot -= 1
                            scores[slot] = score
                            assignments[slot] = current
                            if slot == 0:
                                best_rotation = rotation
                            if score >= enough:
                                return scores[0], best_rotation, tried, assignments
            if scores[0] >= enough or _now() > deadline:
                return scores[0], best_rotation, tried, assignments
    return scores[0], best_rotation, tried, assignments


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
    query, pair_query, pair_vectors, alpha_eps, incumbent, deadline, max_cubes, max_entries, use_matchlists
):
    """Best-first BnB over the pi-ball.

    Only rotations with Q > incumbent are sought. Returns (best axis-angle, best Q (= incumbent and
    a zero vector when nothing better exists), status, cubes expanded, cubes queued, matchlist entries).

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
    cells = np.array([0, 3], np.int32)
    _hypotheses(
        tiny, np.zeros(3), np.zeros(3), indices, indices, np.zeros(2, np.int64), 0.0, 1, 0.5, tiny,
        np.zeros(3), indices, cells, 1, 1, 0.01, 1.0, 3, 3, 2, 4, 3, time.perf_counter() + 1.0,
    )
    _branch_and_bound(tiny, indices, tiny, 0.01, 2, time.perf_counter() + 1.0, 1000, 1000, True)
    _nearest_under(np.eye(3), tiny, np.zeros(3), 0.01, 1.0, tiny, np.zeros(3), indices, cells, 1, 1)
    axis_angle_to_matrix(np.zeros(3))


@dataclass
class SearchOutcome:
    """Result of rotation_search / robust_search, with the work it took."""

    rotation: np.ndarray | None  # 3x3 camera -> ICRS at the best cube centre; None if nothing beat the incumbent
    matches: int  # Q of that rotation (Eq. 10); 0 when rotation is None
    status: int  # OPTIMAL, TIME_BUDGET or MEMORY_LIMIT
    cubes_expanded: int
    cubes_queued: int
    matchlist_entries: int
    pairs: int = 0  # sub-catalogue pairs searched
    rounds: int = 1  # robust_search: hypotheses tried
    false_alarms: float = 0.0  # robust_search: chance_alignments of the answer


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
    index, sorted ascending) and their catalogue unit vectors; alpha_eps in radians. Only rotations
    with at least min_matches matches are sought (the incumbent starts at min_matches - 1). Stops
    at the time budget, or when the queued cubes (44 bytes each) or their matchlists (4 bytes per
    entry) outgrow the caps.
    """
    if pair_query.size == 0:
        return SearchOutcome(None, 0, OPTIMAL, 0, 0, 0)
    best, matches, status, expanded, queued, entries = _branch_and_bound(
        np.ascontiguousarray(query, dtype=np.float64),
        np.ascontiguousarray(pair_query, dtype=np.int32),
        np.ascontiguousarray(pair_vectors, dtype=np.float64),
        float(alpha_eps),
        int(min_matches) - 1,
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
        int(pair_query.size),
    )


def robust_search(
    query: np.ndarray,
    query_mags: np.ndarray,
    catalog,
    alpha_eps: float,
    mag_tolerance: float,
    time_budget_s: float,
    min_matches: int = 3,
    keep: int = 8,
    pattern_stars: int = PATTERN_STARS,
    exhaustive: bool = True,
) -> SearchOutcome:
    """The rotation with the most query stars within alpha_eps of a magnitude-compatible catalogue
    star (Eq. 10), by branch and bound over sub-catalogues that quick hypotheses propose.

    No geometric pre-filter decides alone what the search may consider. Hypotheses (_hypotheses)
    take query star pairs, brightest first, and try *every* catalogue pair of compatible magnitudes
    and separation: as soon as two of the brightest detections are real catalogue stars, the true
    attitude is among the rotations tried, whatever else the detector lost or added. The `keep`
    best hypotheses give each query star its candidate catalogue stars S_i; the branch and bound
    (Eq. 7, 10) then finds, provably, the rotation that aligns the most of them, starting from the
    best hypothesis as incumbent lower bound so it prunes at once. A hypothesis is a rotation from
    two noisy stars; the search's optimum is the rotation consistent with all of them at once.

    pattern_stars: hypotheses from pairs of that many brightest stars; exhaustive=False skips the
    second, unprobed pass (a quick look, e.g. at each field-of-view scale). The outcome's
    false_alarms estimates how many rotations among those tried would align as many stars by
    chance (chance_alignments).
    """
    started = time.perf_counter()
    index, grid = catalog.pairs(), catalog.grid()
    n_query = len(query)
    enough = min(n_query, max(min_matches, ENOUGH_MATCHES))
    # First pass: wrong rotations dropped after PROBE_STARS misses, fast; if no hypothesis got
    # `enough` stars (false stars among the brightest can make the probe drop the right one too),
    # a second pass scores every rotation in full.
    tried = 0
    for probe in (PROBE_STARS, n_query) if exhaustive else (PROBE_STARS,):
        best, best_rotation, count, assignments = _hypotheses(
            query, query_mags, index.angle, index.first, index.second, index.group_start,
            index.mag_min, index.bins, index.max_pair_rad, catalog.vectors, catalog.magnitudes,
            grid.star, grid.cell_start, grid.bands, grid.ra_cells, float(alpha_eps),
            float(mag_tolerance), int(min_matches), int(enough), int(keep), int(probe),
            int(pattern_stars), started + time_budget_s,
        )
        tried += int(count)
        if best >= enough:
            break
    if best < min_matches:
        status = TIME_BUDGET if time.perf_counter() - started > time_budget_s else OPTIMAL
        return SearchOutcome(None, 0, status, 0, 0, 0, 0, tried)
    # S_i: what the kept hypotheses matched, plus, under the best one, the nearest catalogue star
    # within HYPOTHESIS_REACH alpha_eps: a rotation from two noisy stars can miss stars at the
    # field's edge that the optimal rotation aligns.
    nearby, _, _ = nearest_under(
        best_rotation, query, query_mags, catalog, HYPOTHESIS_REACH * alpha_eps, mag_tolerance
    )
    candidates = np.vstack([assignments, nearby[None, :].astype(np.int32)])
    query_index, catalog_index = np.nonzero(candidates.T >= 0)  # grouped by query star
    pairs = np.unique(
        np.column_stack([query_index, candidates.T[query_index, catalog_index]]), axis=0
    )
    remaining = time_budget_s - (time.perf_counter() - started)
    outcome = rotation_search(
        query,
        pairs[:, 0].astype(np.int32),
        catalog.vectors[pairs[:, 1]],
        alpha_eps,
        max(remaining, 0.0),
        min_matches=max(min_matches, int(best) - 1),
    )
    outcome.rounds = tried
    if outcome.rotation is not None:
        outcome.false_alarms = chance_alignments(tried, n_query, outcome.matches, alpha_eps, len(catalog))
    return outcome


def chance_alignments(rotations: int, stars: int, matches: int, alpha_eps: float, catalog_size: int) -> float:
    """Expected number of wrong rotations, among `rotations` pair hypotheses, that align `matches`
    of `stars` query stars: each puts its pair on catalogue stars by construction, and each other
    star lands within alpha_eps of one of catalog_size stars spread over the sky with probability
    p = catalog_size (1 - cos alpha_eps) / 2, so it is rotations * C(stars - 2, matches - 2) *
    p^(matches - 2). Magnitudes are left out: the estimate errs on the cautious side."""
    if matches < 2:
        return float(rotations)
    chance = catalog_size * (1.0 - math.cos(alpha_eps)) / 2.0
    return float(rotations * math.comb(max(stars - 2, 0), matches - 2) * chance ** (matches - 2))


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
