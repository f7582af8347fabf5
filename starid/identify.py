"""Lost-in-space star identification: detected stars -> HIP numbers and camera attitude.

    result = identify_pixels(catalog, [[512.3, 100.8], ...], 1024, 1024, 14.0, mags=[4.1, ...])
    result = identify(catalog, camera_unit_vectors, mags=None)
    result = identify_request(catalog, json.load(file))  # POST /star-id body, `astroloc star-id FILE.json`
    result.to_dict()  # the response body

Steps: triplet features of the query stars -> sub-catalogues (Eq. 11) -> ROSIA rotation search
(Eq. 7, 10; starid.rosia) -> every query star is assigned the nearest catalogue star within alpha_eps
(and mag_tolerance) under the found rotation -> Wahba's problem on the assigned pairs, re-assign,
solve again. Stars whose triplet feature was spoiled (a neighbour outside the image, a false star
nearby) are thus still named once the others fixed the attitude.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from starid.catalog import StarCatalog
from starid.geometry import (
    boresight_ra_dec_roll,
    nearest_neighbour_angles,
    pixels_to_vectors,
    rotation_to_quaternion,
    solve_wahba,
)
from starid.rosia import (
    MAX_MATCHLIST_ENTRIES,
    MEMORY_LIMIT,
    TIME_BUDGET,
    compile_kernels,
    rotation_search,
    subcatalogue_pairs,
)

DEFAULT_ALPHA_EPS_DEG = 0.0275  # 2 px at 0.0137 deg/px: the paper's dist_th of 4.8e-4 rad
DEFAULT_MAG_TOLERANCE = 1.2
DEFAULT_TIME_BUDGET_S = 2.0
MIN_MATCHED_STARS = 3
MIN_MATCHED_FRACTION = 0.3
MAX_QUERY_STARS = 1000  # the triplet features and the search grow with N; real frames have ~10-100
MAX_PAIRS = MAX_MATCHLIST_ENTRIES // 8  # the first branching copies every pair into 8 children


@dataclass
class StarIdResult:
    """Outcome of one identification. Angles in degrees; rotation maps camera -> ICRS vectors."""

    status: str  # "identified" or "no_result"
    hip: list[int | None]  # per query star, in input order
    rotation: np.ndarray | None
    quaternion_wxyz: tuple[float, float, float, float] | None
    ra_deg: float | None
    dec_deg: float | None
    roll_deg: float | None
    matched: int
    runtime_ms: float
    reason: str | None = None

    def to_dict(self) -> dict:
        """The response body of POST /star-id."""
        attitude = None
        if self.rotation is not None:
            attitude = {
                "quaternion_wxyz": list(self.quaternion_wxyz),
                "ra_deg": self.ra_deg,
                "dec_deg": self.dec_deg,
                "roll_deg": self.roll_deg,
            }
        return {
            "status": self.status,
            "stars": [{"index": i, "hip": hip} for i, hip in enumerate(self.hip)],
            "attitude": attitude,
            "matched": self.matched,
            "runtime_ms": self.runtime_ms,
            "reason": self.reason,
        }


def identify_pixels(
    catalog: StarCatalog,
    pixels: Sequence[Sequence[float]] | np.ndarray,
    image_width: float,
    image_height: float,
    fov_deg: float,
    mags: Sequence[float | None] | np.ndarray | None = None,
    alpha_eps_deg: float = DEFAULT_ALPHA_EPS_DEG,
    mag_tolerance: float = DEFAULT_MAG_TOLERANCE,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> StarIdResult:
    """Identify stars given as (N, 2) pixel centroids (x right, y down, origin top-left corner).

    Pinhole camera, boresight through the image centre, fov_deg the horizontal field of view.
    ValueError on bad input (fewer than 3 stars, NaN, stars outside the image, fov outside (0, 180)).
    """
    warm_up()
    started = time.perf_counter()
    for name, value in (("image_width", image_width), ("image_height", image_height)):
        if not _is_number(value) or not 0 < value < 1e6:
            raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
    if not _is_number(fov_deg) or not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must lie strictly between 0 and 180 degrees, got {fov_deg!r}")
    points = _as_float_array(pixels, "stars")
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"stars must be a list of (x, y) pixel positions, got shape {points.shape}")
    _check_count(len(points))
    _check_finite(points, "star coordinates")
    outside = (
        (points[:, 0] < 0) | (points[:, 0] > image_width) | (points[:, 1] < 0) | (points[:, 1] > image_height)
    )
    if outside.any():
        index = int(np.argmax(outside))
        raise ValueError(
            f"star {index} at ({points[index, 0]}, {points[index, 1]}) lies outside the "
            f"{image_width} x {image_height} image"
        )
    vectors = pixels_to_vectors(points, image_width, image_height, fov_deg)
    return _identify_checked(catalog, vectors, mags, alpha_eps_deg, mag_tolerance, time_budget_s, started)


def identify(
    catalog: StarCatalog,
    vectors: Sequence[Sequence[float]] | np.ndarray,
    mags: Sequence[float | None] | np.ndarray | None = None,
    alpha_eps_deg: float = DEFAULT_ALPHA_EPS_DEG,
    mag_tolerance: float = DEFAULT_MAG_TOLERANCE,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> StarIdResult:
    """Identify stars given as (N, 3) direction vectors in the camera frame (normalised here).

    mags: per-star magnitudes, None (or a None entry) when unknown: those stars skip the magnitude
    test. alpha_eps_deg: angular tolerance (paper's alpha_eps); mag_tolerance: eps_v of Eq. 11.
    Status "no_result" (with the reason) when fewer than 3 stars, or fewer than 30% of them, get a
    name, or when the search exceeds time_budget_s.
    """
    warm_up()
    started = time.perf_counter()
    query = _as_float_array(vectors, "vectors")
    if query.ndim != 2 or query.shape[1] != 3:
        raise ValueError(f"vectors must be a list of [x, y, z] directions, got shape {query.shape}")
    _check_count(len(query))
    _check_finite(query, "vectors")
    norms = np.linalg.norm(query, axis=1)
    if (norms < 1e-9).any():
        raise ValueError(f"vector {int(np.argmax(norms < 1e-9))} has zero length")
    return _identify_checked(
        catalog, query / norms[:, None], mags, alpha_eps_deg, mag_tolerance, time_budget_s, started
    )


def identify_request(
    catalog: StarCatalog,
    request: Mapping[str, Any],
    alpha_eps_deg: float = DEFAULT_ALPHA_EPS_DEG,
    mag_tolerance: float = DEFAULT_MAG_TOLERANCE,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> StarIdResult:
    """The JSON body of POST /star-id (issue 5), as a dict, -> result; ValueError on a bad body.

    {"stars": [{"x": ..., "y": ..., "mag": ...}, ...], "image_width": ..., "image_height": ...,
    "fov_deg": ..., "alpha_eps_deg": ..., "mag_tolerance": ...}, or {"vectors": [[x, y, z], ...],
    "mags": [...]} instead of stars and image geometry. "mag"/"mags" and the two tolerances are
    optional; the keyword arguments are their defaults (the service passes its settings).
    """
    if not isinstance(request, Mapping):
        raise ValueError(f"the request must be a JSON object, got {type(request).__name__}")
    unknown = set(request) - _REQUEST_KEYS
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; expected some of {sorted(_REQUEST_KEYS)}")
    tolerances = {
        "alpha_eps_deg": request.get("alpha_eps_deg", alpha_eps_deg),
        "mag_tolerance": request.get("mag_tolerance", mag_tolerance),
        "time_budget_s": time_budget_s,
    }
    if ("stars" in request) == ("vectors" in request):
        raise ValueError('give either "stars" (pixels, with image_width, image_height, fov_deg) or "vectors"')
    if "vectors" in request:
        return identify(catalog, request["vectors"], request.get("mags"), **tolerances)
    missing = [key for key in ("image_width", "image_height", "fov_deg") if key not in request]
    if missing:
        raise ValueError(f'"stars" needs {", ".join(missing)}')
    stars = request["stars"]
    if not isinstance(stars, Sequence) or not all(isinstance(star, Mapping) for star in stars):
        raise ValueError('"stars" must be a list of {"x": ..., "y": ..., "mag": ...} objects')
    for index, star in enumerate(stars):
        if "x" not in star or "y" not in star or set(star) - {"x", "y", "mag"}:
            raise ValueError(f'star {index} must have "x" and "y" (and optionally "mag"), got {sorted(star)}')
    pixels = [[star["x"], star["y"]] for star in stars]
    mags = [star.get("mag") for star in stars]
    return identify_pixels(
        catalog,
        pixels,
        request["image_width"],
        request["image_height"],
        request["fov_deg"],
        mags,
        **tolerances,
    )


_REQUEST_KEYS = {
    "stars",
    "vectors",
    "mags",
    "image_width",
    "image_height",
    "fov_deg",
    "alpha_eps_deg",
    "mag_tolerance",
}


def _identify_checked(
    catalog, query, mags, alpha_eps_deg, mag_tolerance, time_budget_s, started
) -> StarIdResult:
    """The pipeline on validated unit vectors."""
    query_mags = _magnitudes(mags, len(query))
    if not _is_number(alpha_eps_deg) or not 0.0 < alpha_eps_deg <= 1.0:
        raise ValueError(f"alpha_eps_deg must lie in (0, 1] degrees, got {alpha_eps_deg!r}")
    if not _is_number(mag_tolerance) or not 0.0 < mag_tolerance <= 20.0:
        raise ValueError(f"mag_tolerance must lie in (0, 20] magnitudes, got {mag_tolerance!r}")
    if not _is_number(time_budget_s) or time_budget_s <= 0:
        raise ValueError(f"time_budget_s must be positive, got {time_budget_s!r}")
    alpha_eps = math.radians(alpha_eps_deg)

    theta = nearest_neighbour_angles(query)
    pair_query, pair_catalog = subcatalogue_pairs(theta, query_mags, catalog, alpha_eps, mag_tolerance)
    if pair_query.size > MAX_PAIRS:
        return _no_result(
            f"{pair_query.size} star-catalogue candidate pairs, more than the {MAX_PAIRS} a search can "
            "hold: alpha_eps_deg or mag_tolerance is too loose",
            len(query),
            started,
        )
    remaining = time_budget_s - (time.perf_counter() - started)
    outcome = rotation_search(
        query, pair_query, catalog.vectors[pair_catalog], alpha_eps, remaining, MIN_MATCHED_STARS
    )

    if outcome.status == TIME_BUDGET:
        return _no_result(f"search exceeded the time budget of {time_budget_s} s", len(query), started)
    if outcome.status == MEMORY_LIMIT:
        return _no_result(
            "search exceeded its memory limit (too many candidate rotations)", len(query), started
        )
    if outcome.rotation is None:
        reason = (
            f"no rotation aligns {MIN_MATCHED_STARS} or more stars with catalogue stars of matching "
            "triplet features and magnitudes"
        )
        return _no_result(reason, len(query), started)

    rotation = outcome.rotation
    for _ in range(2):  # assign, refine the attitude on all assigned stars, assign again
        assigned = assign_catalog_stars(rotation, query, query_mags, catalog, alpha_eps, mag_tolerance)
        matched = assigned >= 0
        if matched.sum() < MIN_MATCHED_STARS:
            break
        rotation = solve_wahba(query[matched], catalog.vectors[assigned[matched]])
    assigned = assign_catalog_stars(rotation, query, query_mags, catalog, alpha_eps, mag_tolerance)
    count = int((assigned >= 0).sum())
    if count < MIN_MATCHED_STARS:
        return _no_result(
            f"only {count} stars matched, {MIN_MATCHED_STARS} needed", len(query), started, count
        )
    if count < MIN_MATCHED_FRACTION * len(query):
        reason = f"only {count} of {len(query)} stars matched, fewer than {MIN_MATCHED_FRACTION:.0%}"
        return _no_result(reason, len(query), started, count)
    ra, dec, roll = boresight_ra_dec_roll(rotation)
    hips = [int(catalog.hip[j]) if j >= 0 else None for j in assigned]
    runtime_ms = 1000.0 * (time.perf_counter() - started)
    return StarIdResult(
        "identified", hips, rotation, rotation_to_quaternion(rotation), ra, dec, roll, count, runtime_ms
    )


def _no_result(reason: str, count: int, started: float, matched: int = 0) -> StarIdResult:
    """A no_result for `count` query stars, timed from `started`."""
    runtime_ms = 1000.0 * (time.perf_counter() - started)
    return StarIdResult(
        "no_result", [None] * count, None, None, None, None, None, matched, runtime_ms, reason
    )


def assign_catalog_stars(
    rotation: np.ndarray,
    query: np.ndarray,
    query_mags: np.ndarray,
    catalog: StarCatalog,
    alpha_eps: float,
    mag_tolerance: float,
) -> np.ndarray:
    """Catalogue index of each query star under `rotation`, -1 if none; one query star per catalogue star.

    A query star takes the nearest catalogue star within alpha_eps (radians) whose magnitude is
    within mag_tolerance (NaN query magnitude: any), unless the runner-up is less than alpha_eps
    farther: noise could then have swapped the two, and an unnamed star is better than a wrong name.
    When two query stars claim one catalogue star the closer keeps it.
    """
    assigned = np.full(len(query), -1, dtype=np.int64)
    rotated = query @ rotation.T
    centre = rotated.mean(axis=0)
    centre /= max(np.linalg.norm(centre), 1e-12)
    reach = float(np.arccos(np.clip(rotated @ centre, -1.0, 1.0)).max()) + 2.0 * alpha_eps
    nearby = np.flatnonzero(catalog.vectors @ centre >= math.cos(min(reach, math.pi)))
    if nearby.size == 0:
        return assigned
    angles = np.arccos(np.clip(rotated @ catalog.vectors[nearby].T, -1.0, 1.0))
    # NaN query magnitudes compare False (never a mismatch); inf - inf = NaN compares False too.
    with np.errstate(invalid="ignore"):
        angles[np.abs(query_mags[:, None] - catalog.magnitudes[nearby][None, :]) > mag_tolerance] = np.inf
        nearest = np.argmin(angles, axis=1)
        nearest_angle = angles[np.arange(len(query)), nearest]
        runner_up = np.partition(angles, 1, axis=1)[:, 1] if nearby.size > 1 else np.full(len(query), np.inf)
        named = (nearest_angle <= alpha_eps) & (runner_up - nearest_angle >= alpha_eps)
    taken: set[int] = set()
    for i in np.argsort(nearest_angle, kind="stable"):  # closest claims first
        j = int(nearby[nearest[i]])
        if named[i] and j not in taken:
            taken.add(j)
            assigned[i] = j
    return assigned


def warm_up() -> None:
    """Compile the search kernels now (e.g. at service start) rather than in the first request.

    Seconds on a cold numba cache, ~0.1 s when cached. identify() does it anyway before starting
    its clock, so neither runtime_ms nor the time budget ever includes compilation.
    """
    compile_kernels()


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _as_float_array(values, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers: {exc}") from exc


def _check_count(count: int) -> None:
    if count < 3:
        raise ValueError(f"at least 3 stars are needed to identify them, got {count}")
    if count > MAX_QUERY_STARS:
        raise ValueError(
            f"at most {MAX_QUERY_STARS} stars can be identified at once, got {count}; pass the brightest"
        )


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} of star {int(np.argmax(bad))} are NaN or infinite")


def _magnitudes(mags, count: int) -> np.ndarray:
    """Per-star magnitudes with NaN for unknown; ValueError for a wrong length or NaN/inf given."""
    if mags is None:
        return np.full(count, np.nan)
    if isinstance(mags, (str, bytes)) or not hasattr(mags, "__len__"):
        raise ValueError(f"mags must be a list of numbers (or nulls), got {type(mags).__name__}")
    values = list(mags)
    if len(values) != count:
        raise ValueError(f"got {len(values)} magnitudes for {count} stars")
    result = np.full(count, np.nan)
    for i, value in enumerate(values):
        if value is None:
            continue
        if not _is_number(value):
            raise ValueError(f"magnitude of star {i} must be a finite number or null, got {value!r}")
        result[i] = float(value)
    return result
