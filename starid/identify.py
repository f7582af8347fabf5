"""Lost-in-space star identification: detected stars -> HIP numbers and camera attitude.

    result = identify_pixels(catalog, [[512.3, 100.8], ...], 1024, 1024, 14.0, mags=[4.1, ...])
    result = identify(catalog, camera_unit_vectors, mags=None)
    result = identify_request(catalog, json.load(file))  # POST /star-id body, `astroloc star-id FILE.json`
    result.to_dict()  # the response body

Steps: hypotheses from pairs of the brightest stars -> sub-catalogues -> ROSIA rotation search
(Eq. 7, 10; starid.rosia.robust_search) -> a chance-alignment test -> every query star is assigned
the nearest catalogue star within alpha_eps (and mag_tolerance) under the found rotation ->
Wahba's problem on the assigned pairs, re-assign, solve again, so stars outside the search (the
fainter ones) are named too. Pixel input adds a field-of-view ladder (FOV_SCALES); frames go
through identify_image (starid.centroids first).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from starid.errors import StarInputError

from starid.catalog import StarCatalog
from starid.centroids import (
    DEFAULT_PSF_SIGMA_PX,
    DEFAULT_SIGMA_THRESHOLD,
    Detection,
    Frame,
    detect_stars,
    frame_from_array,
    read_frame,
)
from starid.geometry import (
    boresight_ra_dec_roll,
    pixels_to_vectors,
    rotation_to_quaternion,
    solve_wahba,
)
from starid.rosia import (
    MEMORY_LIMIT,
    PATTERN_STARS,
    TIME_BUDGET,
    compile_kernels,
    nearest_under,
    robust_search,
)

# Defaults that hold from 0 to 2 px of centroid noise and 0 to 0.6 mag of photometric noise (issue
# 17), so a user need not tune them per frame. 0.06 deg = 4.4 px at 0.0137 deg/px: 2.2 sigma of
# the radial error at 2 px per axis (9% of the stars then fall outside and stay unnamed; the
# others carry the attitude), 6 sigma at 0.5 px. 1.8 mag = 3 sigma at 0.6 mag.
DEFAULT_ALPHA_EPS_DEG = 0.06
DEFAULT_MAG_TOLERANCE = 1.8
DEFAULT_TIME_BUDGET_S = 2.0
MIN_MATCHED_STARS = 3
MIN_MATCHED_FRACTION = 0.3
MAX_QUERY_STARS = 1000  # validation and the final assignment grow with N; real frames have ~10-100
# The search runs on the brightest detections (hypotheses are scored on each); the others are
# named afterwards under the found attitude.
SEARCH_STARS = 16
# A field of view given up to 5% off is found by trying scales in steps of 1.5% around it: each
# step leaves at most 0.75% of scale error, 0.05 deg at 7 deg from the boresight, inside alpha_eps.
FOV_SCALES = (1.0, 0.985, 1.015, 0.97, 1.03, 0.955, 1.045)
QUICK_PATTERN_STARS = 6  # the quick look at each scale: hypotheses from the 6 brightest stars
# An answer is given only when fewer than this many of the rotations tried are expected to align
# as many stars by chance (rosia.chance_alignments).
MAX_FALSE_ALARMS = 1e-3
IMAGE_IDENTIFY_STARS = 100  # identify_image names the brightest 100 centroids, lists them all
IMAGE_ZERO_POINT_SLACK = 1.0  # mag: the zero point of a frame guessed from star counts (see there)


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
    fov_deg: float | None = None  # the field of view the stars were identified at (pixel input)

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
            "fov_deg": self.fov_deg,
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
    warm_up(catalog)
    started = time.perf_counter()
    for name, value in (("image_width", image_width), ("image_height", image_height)):
        if not _is_number(value) or not 0 < value < 1e6:
            raise StarInputError(f"{name} must be a positive number of pixels, got {value!r}")
    if not _is_number(fov_deg) or not 0.0 < fov_deg < 180.0:
        raise StarInputError(f"fov_deg must lie strictly between 0 and 180 degrees, got {fov_deg!r}")
    points = _as_float_array(pixels, "stars")
    if points.ndim != 2 or points.shape[1] != 2:
        raise StarInputError(f"stars must be a list of (x, y) pixel positions, got shape {points.shape}")
    _check_count(len(points))
    _check_finite(points, "star coordinates")
    outside = (
        (points[:, 0] < 0) | (points[:, 0] > image_width) | (points[:, 1] < 0) | (points[:, 1] > image_height)
    )
    if outside.any():
        index = int(np.argmax(outside))
        raise StarInputError(
            f"star {index} at ({points[index, 0]}, {points[index, 1]}) lies outside the "
            f"{image_width} x {image_height} image"
        )
    # A quick look at the given field of view, then at scales around it (FOV_SCALES), then the
    # full search at the given one: a field of view given up to 5% off is still identified, one
    # farther off gets a no_result that says so.
    identified, tried = [], []
    for scale in FOV_SCALES:
        vectors = pixels_to_vectors(points, image_width, image_height, fov_deg * scale)
        result = _identify_checked(
            catalog, vectors, mags, alpha_eps_deg, mag_tolerance, time_budget_s, started, quick=True
        )
        if result.status == "identified":
            identified.append((result.matched, -abs(scale - 1.0), scale, result))
            if scale == 1.0:
                break
        elif result.reason and "time budget" in result.reason:
            break
        else:
            tried.append(scale)
    if not identified and 1.0 in tried:
        vectors = pixels_to_vectors(points, image_width, image_height, fov_deg)
        result = _identify_checked(catalog, vectors, mags, alpha_eps_deg, mag_tolerance, time_budget_s, started)
        if result.status == "identified":
            identified.append((result.matched, 0.0, 1.0, result))
    if identified:
        _, _, scale, result = max(identified, key=lambda entry: entry[:2])
        if scale != 1.0:
            result = _refit_field_of_view(catalog, points, image_width, image_height, fov_deg * scale, result)
        result.fov_deg = result.fov_deg or fov_deg
        result.runtime_ms = 1000.0 * (time.perf_counter() - started)
        return result
    fovs = [fov_deg * scale for scale in tried]
    searched = (
        f"from {min(fovs):.4g} to {max(fovs):.4g} deg" if len(fovs) > 1 else f"at {fov_deg:g} deg only"
    )
    if result.reason and "time budget" in result.reason:
        result.reason = (
            f"no match at fields of view {searched} before the time budget of {time_budget_s:g} s ran "
            f"out (given: {fov_deg:g} deg): fov_deg may be wrong, or the frame holds too few catalogue stars"
        )
    else:
        result.reason = (
            f"{result.reason}, at the given field of view of {fov_deg:g} deg nor at any {searched}: "
            "fov_deg is probably wrong (more than 5% off), or the frame holds too few catalogue stars"
        )
    result.runtime_ms = 1000.0 * (time.perf_counter() - started)
    return result


def _refit_field_of_view(
    catalog: StarCatalog,
    points: np.ndarray,
    image_width: float,
    image_height: float,
    fov_deg: float,
    result: StarIdResult,
) -> StarIdResult:
    """The field of view (within 1.5% of fov_deg) that best aligns the named stars, attitude re-solved."""
    from scipy.optimize import minimize_scalar

    named = np.array([hip is not None for hip in result.hip])
    hip = np.array([h for h in result.hip if h is not None])
    targets = catalog.vectors[np.searchsorted(catalog.hip, hip)]

    def residual(fov: float) -> float:
        vectors = pixels_to_vectors(points[named], image_width, image_height, fov)
        rotation = solve_wahba(vectors, targets)
        return float(((vectors @ rotation.T - targets) ** 2).sum())

    best = minimize_scalar(residual, bounds=(0.985 * fov_deg, 1.015 * fov_deg), method="bounded")
    fov = float(best.x)
    rotation = solve_wahba(pixels_to_vectors(points[named], image_width, image_height, fov), targets)
    ra, dec, roll = boresight_ra_dec_roll(rotation)
    result.rotation, result.quaternion_wxyz = rotation, rotation_to_quaternion(rotation)
    result.ra_deg, result.dec_deg, result.roll_deg, result.fov_deg = ra, dec, roll, fov
    return result


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
    test. alpha_eps_deg: angular tolerance (paper's alpha_eps); mag_tolerance: eps_v, the magnitude match
    tolerance.
    Status "no_result" (with the reason) when fewer than 3 stars, or fewer than 30% of them, get a
    name, or when the search exceeds time_budget_s.
    """
    warm_up(catalog)
    started = time.perf_counter()
    query = _as_float_array(vectors, "vectors")
    if query.ndim != 2 or query.shape[1] != 3:
        raise StarInputError(f"vectors must be a list of [x, y, z] directions, got shape {query.shape}")
    _check_count(len(query))
    _check_finite(query, "vectors")
    norms = np.linalg.norm(query, axis=1)
    if (norms < 1e-9).any():
        raise StarInputError(f"vector {int(np.argmax(norms < 1e-9))} has zero length")
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
        raise StarInputError(f"the request must be a JSON object, got {type(request).__name__}")
    unknown = set(request) - _REQUEST_KEYS
    if unknown:
        raise StarInputError(f"unknown fields {sorted(unknown)}; expected some of {sorted(_REQUEST_KEYS)}")
    tolerances = {
        "alpha_eps_deg": request.get("alpha_eps_deg", alpha_eps_deg),
        "mag_tolerance": request.get("mag_tolerance", mag_tolerance),
        "time_budget_s": time_budget_s,
    }
    if ("stars" in request) == ("vectors" in request):
        raise StarInputError('give either "stars" (pixels, with image_width, image_height, fov_deg) or "vectors"')
    if "vectors" in request:
        return identify(catalog, request["vectors"], request.get("mags"), **tolerances)
    missing = [key for key in ("image_width", "image_height", "fov_deg") if key not in request]
    if missing:
        raise StarInputError(f'"stars" needs {", ".join(missing)}')
    stars = request["stars"]
    if not isinstance(stars, Sequence) or not all(isinstance(star, Mapping) for star in stars):
        raise StarInputError('"stars" must be a list of {"x": ..., "y": ..., "mag": ...} objects')
    for index, star in enumerate(stars):
        if "x" not in star or "y" not in star or set(star) - {"x", "y", "mag"}:
            raise StarInputError(f'star {index} must have "x" and "y" (and optionally "mag"), got {sorted(star)}')
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
    catalog, query, mags, alpha_eps_deg, mag_tolerance, time_budget_s, started, quick=False
) -> StarIdResult:
    """The pipeline on validated unit vectors; quick: hypotheses from the QUICK_PATTERN_STARS
    brightest stars only, one pass (see robust_search)."""
    query_mags = _magnitudes(mags, len(query))
    if not _is_number(alpha_eps_deg) or not 0.0 < alpha_eps_deg <= 1.0:
        raise StarInputError(f"alpha_eps_deg must lie in (0, 1] degrees, got {alpha_eps_deg!r}")
    if not _is_number(mag_tolerance) or not 0.0 < mag_tolerance <= 20.0:
        raise StarInputError(f"mag_tolerance must lie in (0, 20] magnitudes, got {mag_tolerance!r}")
    if not _is_number(time_budget_s) or time_budget_s <= 0:
        raise StarInputError(f"time_budget_s must be positive, got {time_budget_s!r}")
    alpha_eps = math.radians(alpha_eps_deg)

    # Brightest first: the search stars. A star of unknown magnitude keeps its place in the input
    # order (ranked with the brightest given before it): callers list stars brightest first.
    running = np.fmin.accumulate(query_mags)
    rank = np.where(np.isnan(query_mags), np.where(np.isnan(running), -np.inf, running), query_mags)
    search = np.argsort(rank, kind="stable")[:SEARCH_STARS]
    remaining = time_budget_s - (time.perf_counter() - started)
    outcome = robust_search(
        np.ascontiguousarray(query[search]),
        np.ascontiguousarray(query_mags[search]),
        catalog,
        alpha_eps,
        mag_tolerance,
        remaining,
        MIN_MATCHED_STARS,
        pattern_stars=QUICK_PATTERN_STARS if quick else PATTERN_STARS,
        exhaustive=not quick,
    )

    if outcome.status == TIME_BUDGET:
        return _no_result(f"search exceeded the time budget of {time_budget_s} s", len(query), started)
    if outcome.status == MEMORY_LIMIT:
        return _no_result(
            "search exceeded its memory limit (too many candidate rotations)", len(query), started
        )
    if outcome.rotation is None:
        reason = (
            f"no rotation aligns {MIN_MATCHED_STARS} or more of the {len(search)} brightest stars with "
            "catalogue stars of matching magnitude"
        )
        return _no_result(reason, len(query), started)
    if outcome.false_alarms > MAX_FALSE_ALARMS:
        reason = (
            f"the best rotation aligns only {outcome.matches} of the {len(search)} brightest stars, "
            f"which {outcome.false_alarms:.2g} of the {outcome.rounds} rotations tried would do by chance"
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


@dataclass
class ImageStarIdResult:
    """identify_image's answer: the identification of the detected centroids and the detection."""

    result: StarIdResult  # per centroid (brightest first): hip, and the attitude
    detection: Detection
    mags: np.ndarray  # (N,) magnitudes from the fluxes, zero point fitted on the named stars (NaN if none)

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def quaternion_wxyz(self) -> tuple[float, float, float, float] | None:
        return self.result.quaternion_wxyz

    def to_dict(self) -> dict:
        """The response body of POST /star-id for an image: the centroid answer plus the centroids
        with their identifications and what the detector measured."""
        body = self.result.to_dict()
        centroids = self.detection.to_list()
        for index, centroid in enumerate(centroids):
            centroid["index"] = index
            centroid["hip"] = self.result.hip[index] if index < len(self.result.hip) else None
            centroid["mag"] = None if math.isnan(self.mags[index]) else float(self.mags[index])
        body["centroids"] = centroids
        body["detection"] = {
            "width": self.detection.width,
            "height": self.detection.height,
            "background": self.detection.background,
            "noise": self.detection.noise,
            "threshold": self.detection.threshold,
            "hot_pixels": self.detection.hot_pixels,
            "streaks": self.detection.streaks,
        }
        return body


def identify_image(
    catalog: StarCatalog,
    image: bytes | np.ndarray | Frame,
    fov_deg: float,
    sigma_threshold: float = DEFAULT_SIGMA_THRESHOLD,
    psf_sigma_px: float = DEFAULT_PSF_SIGMA_PX,
    alpha_eps_deg: float = DEFAULT_ALPHA_EPS_DEG,
    mag_tolerance: float = DEFAULT_MAG_TOLERANCE,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> ImageStarIdResult:
    """Star identification from a frame: the encoded file (PNG, JPEG, TIFF, FITS; 8 or 16 bit), a
    2-D array or a Frame -> centroids (starid.centroids.detect_stars) -> identify_pixels.

    fov_deg: horizontal field of view (up to 5% off is handled). The brightest
    IMAGE_IDENTIFY_STARS centroids are identified, with magnitudes from their fluxes and a zero
    point guessed from star counts (_zero_point_from_counts; saturated stars: unknown magnitude). ValueError on an unreadable frame or bad
    parameters; a frame with fewer than 3 detections is a no_result that says so.
    """
    frame = read_frame(image) if isinstance(image, (bytes, bytearray, memoryview)) else image
    if not isinstance(frame, Frame):
        frame = frame_from_array(np.asarray(image))
    detection = detect_stars(frame, sigma_threshold=sigma_threshold, psf_sigma_px=psf_sigma_px)
    count = min(len(detection), IMAGE_IDENTIFY_STARS)
    if count < 3:
        started = time.perf_counter()
        reason = (
            f"{len(detection)} stars detected above {sigma_threshold:g} sigma of the background "
            f"noise ({detection.noise:.3g} counts); at least 3 are needed"
        )
        return ImageStarIdResult(_no_result(reason, len(detection), started), detection, np.full(len(detection), np.nan))
    instrumental = -2.5 * np.log10(np.maximum(detection.flux, 1e-12))
    guessed = instrumental[:count] + _zero_point_from_counts(catalog, detection, fov_deg, instrumental)
    guessed[detection.saturated[:count]] = np.nan  # a saturated star's flux is only a lower bound
    result = identify_pixels(
        catalog,
        np.clip(detection.xy[:count], 0.0, [frame.width, frame.height]),
        frame.width,
        frame.height,
        fov_deg,
        guessed,
        alpha_eps_deg=alpha_eps_deg,
        mag_tolerance=mag_tolerance + IMAGE_ZERO_POINT_SLACK,
        time_budget_s=time_budget_s,
    )
    result.hip = result.hip + [None] * (len(detection) - count)
    mags = np.full(len(detection), np.nan)
    named = [i for i, hip in enumerate(result.hip) if hip is not None and not detection.saturated[i]]
    if named:
        catalogue_mags = catalog.magnitudes[np.searchsorted(catalog.hip, [result.hip[i] for i in named])]
        mags = instrumental + float(np.median(catalogue_mags - instrumental[named]))
    return ImageStarIdResult(result, detection, mags)


def _zero_point_from_counts(catalog: StarCatalog, detection: Detection, fov_deg: float, instrumental: np.ndarray) -> float:
    """The magnitude zero point of a frame from star counts: the k-th brightest detection is
    taken to be as bright as the k-th brightest catalogue star expected in a field of that solid
    angle at the sky's average density. Off by the field's density contrast (the Milky Way holds ~3
    times the average, ~1 mag), hence IMAGE_ZERO_POINT_SLACK."""
    focal = 0.5 * detection.width / math.tan(math.radians(fov_deg) / 2.0)
    solid_angle_sr = detection.width * detection.height / focal**2
    expected = np.arange(1, len(catalog) + 1) * solid_angle_sr / (4.0 * math.pi)  # stars brighter than mag
    by_brightness = np.sort(catalog.magnitudes)
    usable = np.flatnonzero(~detection.saturated)
    usable = usable[usable < 0.8 * expected[-1]]  # ranks the catalogue still covers
    if usable.size == 0:
        return 0.0
    ranks = np.arange(len(detection))[usable] + 0.5
    catalogue_mags = np.interp(ranks, expected, by_brightness)
    return float(np.median(catalogue_mags - instrumental[usable]))


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
    # Within 2 alpha_eps so that a runner-up closer than that is seen.
    nearest, nearest_angle, runner_up = nearest_under(
        rotation, query, query_mags, catalog, 2.0 * alpha_eps, mag_tolerance
    )
    with np.errstate(invalid="ignore"):  # inf - inf where a star has no catalogue star at all
        named = (nearest >= 0) & (nearest_angle <= alpha_eps) & (runner_up - nearest_angle >= alpha_eps)
    taken: set[int] = set()
    for i in np.argsort(nearest_angle, kind="stable"):  # closest claims first
        j = int(nearest[i])
        if named[i] and j not in taken:
            taken.add(j)
            assigned[i] = j
    return assigned


def warm_up(catalog: StarCatalog | None = None) -> None:
    """Compile the search kernels, and build the catalogue's pair index and sky grid, now (e.g. at
    service start) rather than in the first request.

    Seconds on a cold numba cache, ~0.1 s when cached; the indexes take ~2 s once per catalogue.
    identify() does it anyway before starting its clock, so neither runtime_ms nor the time budget
    ever includes them.
    """
    compile_kernels()
    if catalog is not None:
        catalog.pairs()
        catalog.grid()


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
        raise StarInputError(f"{name} must be numbers: {exc}") from exc


def _check_count(count: int) -> None:
    if count < 3:
        raise StarInputError(f"at least 3 stars are needed to identify them, got {count}")
    if count > MAX_QUERY_STARS:
        raise StarInputError(
            f"at most {MAX_QUERY_STARS} stars can be identified at once, got {count}; pass the brightest"
        )


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise StarInputError(f"{name} of star {int(np.argmax(bad))} are NaN or infinite")


def _magnitudes(mags, count: int) -> np.ndarray:
    """Per-star magnitudes with NaN for unknown; ValueError for a wrong length or NaN/inf given."""
    if mags is None:
        return np.full(count, np.nan)
    if isinstance(mags, (str, bytes)) or not hasattr(mags, "__len__"):
        raise StarInputError(f"mags must be a list of numbers (or nulls), got {type(mags).__name__}")
    values = list(mags)
    if len(values) != count:
        raise StarInputError(f"got {len(values)} magnitudes for {count} stars")
    result = np.full(count, np.nan)
    for i, value in enumerate(values):
        if value is None:
            continue
        if not _is_number(value):
            raise StarInputError(f"magnitude of star {i} must be a finite number or null, got {value!r}")
        result[i] = float(value)
    return result
