"""EarthMatch-style refinement (Berton et al., CVPRW 2024): is this candidate right, and where
exactly does the photo lie on it?

For a candidate (a georeferenced "surrounding image": the retrieved tile and its 8 neighbours, and
the rotation retrieval found), the photo is turned as the rotation says, matched against the
surrounding image (OpenCV SIFT + ratio test), and a homography is fitted with USAC-MAGSAC. Then,
EarthMatch's iteration: the surrounding image is warped into the photo's frame with the current
estimate, matched again and the correction composed, ``iterations`` times in all (each pass
matches views that look more alike, so more and better inliers). The photo's 4 corners go through
the final homography and the image's Web-Mercator geotransform to lon/lat: the footprint.

A candidate is accepted when the last pass keeps at least ``min_inliers`` inliers (the threshold
`astroloc bench localize` calibrates for 99.9% precision, as EarthMatch does) and the projected
quadrilateral is a plausible photo outline (convex, not self-intersecting, bounded scale and
shear). Pure: numpy, OpenCV, shapely; no tile I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from shapely.geometry import Polygon, mapping
from shapely.geometry.base import BaseGeometry

from geo.footprint import footprint_polygon

FEATURES = ("sift", "orb")  # OpenCV 5 moved AKAZE out of the main package


@dataclass
class GeoImage:
    """An image whose pixels are on Web Mercator between lon/lat ``bounds`` (west, south, east,
    north; west may be below -180 or east above 180 across the antimeridian). Without bounds,
    matching still gives the homography and pixel corners, but no footprint."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    bounds: tuple[float, float, float, float] | None = None

    def pixel_to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates (x right, y down; 0 at the top-left edge) -> (N, 2) lon, lat."""
        if self.bounds is None:
            raise ValueError("this image has no bounds: its pixels have no lon/lat")
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        height, width = self.image.shape[:2]
        west, south, east, north = self.bounds
        lon = west + xy[:, 0] / width * (east - west)
        top, bottom = _mercator_y(north), _mercator_y(south)
        y = top + xy[:, 1] / height * (bottom - top)
        lat = np.degrees(np.arctan(np.sinh(y)))
        return np.column_stack([lon, lat])


def _mercator_y(lat: float) -> float:
    return math.asinh(math.tan(math.radians(lat)))


@dataclass
class RefineParams:
    """Matching settings; defaults chosen with `astroloc bench localize` (docs/benchmarks.md).

    These defaults are the only copy: the service's settings (ASTROLOC_REFINE_*) default to them,
    and service.localize.refine.refine_params builds a RefineParams from the settings."""

    features: str = "sift"
    iterations: int = 4  # EarthMatch's
    min_inliers: int = 15
    max_features: int = 4000
    query_max_side: int = 320  # the photo is matched at this size: as accurate, 30% faster
    ratio: float = 0.8  # Lowe's ratio test
    ransac_reproj_px: float = 6.0
    max_scale: float = 12.0  # the photo may be at most this much larger/smaller than in the surroundings
    min_angle_deg: float = 15.0  # quadrilateral corners sharper than this are shear, not perspective
    stop_at_inliers_factor: float = 3.0  # a candidate this far above the threshold ends the search

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {self.features!r}")
        if self.iterations < 1 or self.min_inliers < 4:
            raise ValueError("iterations must be >= 1 and min_inliers >= 4 (a homography needs 4)")


@dataclass
class Match:
    """One candidate's outcome."""

    accepted: bool
    inliers: int
    rotation: int  # degrees: the photo was matched turned clockwise by this
    homography: list | None = None  # 3x3, photo px -> surrounding-image px
    corners_px: list | None = None  # photo TL, TR, BR, BL in surrounding-image px
    footprint: BaseGeometry | None = None
    reason: str | None = None
    runtime_s: float = 0.0
    inliers_per_iteration: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "accepted": self.accepted, "inliers": self.inliers, "rotation_deg": self.rotation,
            "homography": self.homography, "corners_px": self.corners_px,
            "footprint": mapping(self.footprint) if self.footprint is not None else None,
            "reason": self.reason, "runtime_s": round(self.runtime_s, 3),
            "inliers_per_iteration": self.inliers_per_iteration,
        }


@dataclass
class RefineResult:
    best: Match | None
    matches: list[Match]
    localized: bool
    reason: str | None


# --- features ----------------------------------------------------------------------------------


def _detector(params: RefineParams):  # noqa: ANN202
    if params.features == "sift":
        return cv2.SIFT_create(nfeatures=params.max_features), cv2.NORM_L2
    return cv2.ORB_create(nfeatures=params.max_features), cv2.NORM_HAMMING


def _features(gray: np.ndarray, params: RefineParams):  # noqa: ANN202
    detector, _ = _detector(params)
    keypoints, descriptors = detector.detectAndCompute(gray, None)
    points = np.float32([k.pt for k in keypoints]) if keypoints else np.zeros((0, 2), np.float32)
    return points, descriptors


def _match(a, b, params: RefineParams) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Ratio-test matches: (points in image a, points in image b)."""
    (pa, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    _, norm = _detector(params)
    pairs = cv2.BFMatcher(norm).knnMatch(da, db, k=2)
    good = [m for m, *rest in pairs if rest and m.distance < params.ratio * rest[0].distance]
    return pa[[m.queryIdx for m in good]], pb[[m.trainIdx for m in good]]


_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))


def _gray(image: np.ndarray, equalize: bool = True) -> np.ndarray:
    """Grey levels, locally contrast-equalised (CLAHE): haze and colour casts flatten astronaut
    photos, and features need the contrast back (black borders stay black)."""
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return _CLAHE.apply(gray) if equalize else gray


def _homography(src: np.ndarray, dst: np.ndarray, params: RefineParams) -> tuple[np.ndarray | None, int]:
    if len(src) < 4:
        return None, 0
    matrix, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, params.ransac_reproj_px, maxIters=5000, confidence=0.999)
    if matrix is None or mask is None:
        return None, 0
    return matrix, int(mask.sum())


# --- geometry ----------------------------------------------------------------------------------


def quarter_turn_matrix(turns: int, width: int, height: int) -> np.ndarray:
    """Homography of ``np.rot90(image, -turns)`` (clockwise quarter turns) on pixel coordinates."""
    matrix = np.eye(3)
    w, h = width, height
    for _ in range(turns % 4):
        # Clockwise: (x, y) -> (h - y, x); the image becomes h wide and w high.
        step = np.array([[0.0, -1.0, h], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = step @ matrix
        w, h = h, w
    return matrix


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2), matrix).reshape(-1, 2)


def image_corners(width: int, height: int) -> np.ndarray:
    """TL, TR, BR, BL pixel corners (outer edges)."""
    return np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])


def degenerate_reason(quad: np.ndarray, source_area: float, params: RefineParams) -> str | None:
    """Why a projected photo outline (TL, TR, BR, BL) is no photo's, or None if it is plausible."""
    if not np.all(np.isfinite(quad)):
        return "homography sends a corner to infinity"
    polygon = Polygon(quad)
    if not polygon.is_valid or polygon.area <= 0:
        return "projected corners cross each other"
    if polygon.convex_hull.area > polygon.area * 1.001:
        return "projected outline is not convex"
    scale = math.sqrt(polygon.area / source_area)
    if not 1.0 / params.max_scale <= scale <= params.max_scale:
        return f"extreme scale change ({scale:.3g}x)"
    for i in range(4):
        a, b, c = quad[i - 1], quad[i], quad[(i + 1) % 4]
        u, v = a - b, c - b
        cosine = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
        if angle < params.min_angle_deg or angle > 180.0 - params.min_angle_deg:
            return f"extreme shear (corner angle {angle:.0f} deg)"
    return None


def footprint_of(corners_px: np.ndarray, surrounding: GeoImage) -> BaseGeometry:
    """Lon/lat footprint of the photo from its TL, TR, BR, BL corners in surrounding px."""
    tl, tr, br, bl = surrounding.pixel_to_lonlat(corners_px)
    # EOL corner order: lower-left, upper-left, upper-right, lower-right, as (lat, lon).
    return footprint_polygon([(p[1], ((p[0] + 180.0) % 360.0) - 180.0) for p in (bl, tl, tr, br)])


# --- matching ----------------------------------------------------------------------------------


def match_candidate(query_rgb: np.ndarray, surrounding: GeoImage, rotation: int, params: RefineParams) -> Match:
    """Iterative matching of the photo (turned clockwise by ``rotation``) against one candidate."""
    started = time.perf_counter()
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    turns = (rotation // 90) % 4
    height, width = query_rgb.shape[:2]
    shrink = min(1.0, params.query_max_side / max(height, width))
    small = query_rgb if shrink == 1.0 else cv2.resize(
        query_rgb, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA
    )
    turned = np.ascontiguousarray(np.rot90(small, -turns))
    # photo px -> small px -> turned px
    to_turned = quarter_turn_matrix(turns, small.shape[1], small.shape[0]) @ np.diag(
        [small.shape[1] / width, small.shape[0] / height, 1.0]
    )
    query_features = _features(_gray(turned), params)
    surround_gray = _gray(surrounding.image)
    turned_h, turned_w = turned.shape[:2]

    homography, inliers = _homography(*_match(query_features, _features(surround_gray, params), params), params)
    history = [inliers]
    if homography is None:
        return Match(False, 0, rotation, reason="too few feature matches for a homography",
                     runtime_s=time.perf_counter() - started, inliers_per_iteration=history)
    for _ in range(params.iterations - 1):
        try:
            warped = cv2.warpPerspective(surround_gray, np.linalg.inv(homography), (turned_w, turned_h))
        except np.linalg.LinAlgError:
            break
        correction, inliers = _homography(*_match(query_features, _features(warped, params), params), params)
        history.append(inliers)
        if correction is None:
            break
        homography = homography @ correction  # turned px -> warped px -> surrounding px
    total = homography @ to_turned  # photo px -> surrounding px
    total = total / total[2, 2]
    corners = project(total, image_corners(width, height))
    reason = degenerate_reason(corners, float(width * height), params)
    runtime = time.perf_counter() - started
    if reason is None and inliers < params.min_inliers:
        reason = f"{inliers} inliers, fewer than the {params.min_inliers} needed"
    footprint = None
    if reason is None and surrounding.bounds is not None:
        try:
            footprint = footprint_of(corners, surrounding)
        except ValueError as exc:
            reason = f"footprint is not a valid polygon: {exc}"
    return Match(reason is None, inliers, rotation, total.tolist(), corners.tolist(), footprint, reason,
                 runtime, history)


def refine_candidates(
    query_rgb: np.ndarray,
    candidates: Iterable[tuple[GeoImage, int]],
    params: RefineParams,
    on_progress: Callable[[int, int, Match], None] | None = None,
) -> RefineResult:
    """Match the photo against each candidate in retrieval order; the accepted match with most
    inliers wins. The search stops early at a match ``stop_at_inliers_factor`` times above the
    threshold: nothing further down the list will beat it by enough to matter, and time is the
    service's budget (EarthMatch checks the top candidates the same way, best first)."""
    candidates = list(candidates)
    count = len(candidates)
    matches: list[Match] = []
    for i, (surrounding, rotation) in enumerate(candidates):
        match = match_candidate(query_rgb, surrounding, rotation, params)
        matches.append(match)
        if on_progress:
            on_progress(i, count, match)
        if match.accepted and match.inliers >= params.stop_at_inliers_factor * params.min_inliers:
            break
    accepted = [m for m in matches if m.accepted]
    if not accepted:
        best_tried = max((m.inliers for m in matches), default=0)
        return RefineResult(None, matches, False,
                            f"no candidate accepted among {len(matches)} (best had {best_tried} inliers, "
                            f"{params.min_inliers} needed)")
    best = max(accepted, key=lambda m: m.inliers)
    return RefineResult(best, matches, True, None)


def match_rotations(
    query_rgb: np.ndarray, surrounding: GeoImage, params: RefineParams, rotations: Iterable[int] = (0, 90, 180, 270)
) -> tuple[Match, list[Match]]:
    """One photo against one image at each rotation: the best match (the accepted one with most
    inliers, else the one with most inliers) and every rotation's outcome."""
    result = refine_candidates(query_rgb, [(surrounding, r) for r in rotations], params)
    return result.best or max(result.matches, key=lambda m: m.inliers), result.matches
