"""EarthMatch-style refinement (Berton et al., CVPRW 2024): is this candidate right, and where
exactly does the photo lie on it?

For a candidate (a georeferenced "surrounding image": the retrieved tile and its 8 neighbours, and
the rotation retrieval found), the first homography comes from the photo's features (RootSIFT,
masked: geo.matching) matched against the candidate tile (the surrounding's middle third, as
EarthMatch does), then against the whole surrounding, then from the photo's affine simulations
(ASIFT, for oblique views), the tentative matches filtered by AdaLAM's local affine agreement and
fitted with USAC-MAGSAC. Then EarthMatch's iteration: the surrounding image is warped into the
photo's frame with the current estimate, matched again (each keypoint only near where the
estimate puts it) and the correction composed, ``iterations`` times in all (each pass matches
views that look more alike, so more and better inliers), on a finer surrounding when the photo is
small in this one (coarse-to-fine). The last pass's inliers resect the photo's camera
(geo.resection) and its 4 corner rays meet the ellipsoid: the footprint (the homography's corners
when no camera explains the matches).

A candidate is accepted when its outline is a plausible photo's (convex, not self-intersecting,
bounded scale and shear), its logistic confidence passes the threshold fitted for 99.9% precision
on real and demo-world candidates together, as EarthMatch calibrates its own, and its corners
agreed between the last two iterations (geo.acceptance). Pure: numpy, OpenCV, kornia (AdaLAM),
scipy, shapely; no tile I/O. See docs/refinement.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from shapely.geometry import Polygon, mapping
from shapely.geometry.base import BaseGeometry

from geo.footprint import footprint_polygon
from geo.matching import Features, content_mask, detect, detect_affine, gray, match, match_near
# RefineParams lives in a module of its own: the service's settings read its defaults without
# importing OpenCV and SciPy.
from geo.refine_params import RefineParams
from geo.resection import resect



GEOREFERENCES = ("mercator", "linear")


@dataclass
class GeoImage:
    """An image whose pixels lie between lon/lat ``bounds`` (west, south, east, north; west may be
    below -180 or east above 180 across the antimeridian). ``georeference`` says how rows map to
    latitude: ``mercator`` (Web Mercator, our XYZ tiles) or ``linear`` (equal steps of latitude,
    as EarthMatch's Sentinel-2 surroundings are georeferenced). Without bounds, matching still
    gives the homography and pixel corners, but no footprint."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    bounds: tuple[float, float, float, float] | None = None
    georeference: str = "mercator"

    def __post_init__(self) -> None:
        if self.georeference not in GEOREFERENCES:
            raise ValueError(f"georeference must be one of {GEOREFERENCES}, got {self.georeference!r}")

    def _row_scale(self, lat: np.ndarray | float) -> np.ndarray | float:
        """Latitude (deg) -> the row coordinate of the georeference (deg, or Mercator radians)."""
        return np.arcsinh(np.tan(np.radians(lat))) if self.georeference == "mercator" else lat

    def _row_latitude(self, y: np.ndarray) -> np.ndarray:
        return np.degrees(np.arctan(np.sinh(y))) if self.georeference == "mercator" else y

    def pixel_to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) pixel coordinates (x right, y down; 0 at the top-left edge) -> (N, 2) lon, lat."""
        if self.bounds is None:
            raise ValueError("this image has no bounds: its pixels have no lon/lat")
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        height, width = self.image.shape[:2]
        west, south, east, north = self.bounds
        lon = west + xy[:, 0] / width * (east - west)
        top, bottom = self._row_scale(north), self._row_scale(south)
        lat = self._row_latitude(top + xy[:, 1] / height * (bottom - top))
        return np.column_stack([lon, lat])

    def lonlat_to_pixel(self, lonlat: np.ndarray) -> np.ndarray:
        """(N, 2) lon, lat -> (N, 2) pixel coordinates (the inverse of :meth:`pixel_to_lonlat`;
        longitudes are taken on the image's side of the antimeridian)."""
        if self.bounds is None:
            raise ValueError("this image has no bounds: its pixels have no lon/lat")
        lonlat = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        height, width = self.image.shape[:2]
        west, south, east, north = self.bounds
        middle = (west + east) / 2.0
        lon = (lonlat[:, 0] - middle + 180.0) % 360.0 - 180.0 + middle
        top, bottom = self._row_scale(north), self._row_scale(south)
        y = self._row_scale(lonlat[:, 1])
        return np.column_stack([(lon - west) / (east - west) * width, (y - top) / (bottom - top) * height])


@dataclass
class Match:
    """One candidate's outcome."""

    accepted: bool
    inliers: int
    rotation: int  # degrees: retrieval's quarter turn of the photo (the match itself is rotation-invariant)
    homography: list | None = None  # 3x3, photo px -> surrounding-image px
    corners_px: list | None = None  # photo TL, TR, BR, BL in surrounding-image px
    footprint: BaseGeometry | None = None
    reason: str | None = None  # why it was refused (None: accepted)
    runtime_s: float = 0.0
    inliers_per_iteration: list[int] = field(default_factory=list)
    method: str = "sift"  # sift | asift: how the first homography was found
    tentative: int = 0  # ratio-test matches of the last iteration, before RANSAC
    corner_shift: float | None = None  # corner movement in the last iteration, x outline diagonal
    confidence: float | None = None  # P(right), from the calibrated acceptance
    corner_uncertainty_km: list[float] | None = None  # TL, TR, BR, BL
    model: str = "homography"  # what gave the corners: the homography, or the resected camera
    surrounding_bounds: tuple | None = None  # of the image corners_px refer to (a finer one after zooming in)
    corners_lonlat: list | None = None  # TL, TR, BR, BL as lon, lat
    first_match: str = "tile"  # which try of RefineParams.first_match gave the first homography
    cpu_s: float = 0.0  # the process's CPU seconds during the match (every thread of the process)

    @property
    def footprint_method(self) -> str:
        """What the service records as the footprint's method (at most 32 characters):
        ``earthmatch-{sift|asift|orb}[+zoom]-{camera|homography}``."""
        return f"earthmatch-{self.method}-{self.model}"

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.tentative if self.tentative else 0.0

    def to_dict(self) -> dict:
        return {
            "accepted": self.accepted, "inliers": self.inliers, "rotation_deg": self.rotation,
            "homography": self.homography, "corners_px": self.corners_px,
            "footprint": mapping(self.footprint) if self.footprint is not None else None,
            "reason": self.reason, "runtime_s": round(self.runtime_s, 3), "cpu_s": round(self.cpu_s, 3),
            "inliers_per_iteration": self.inliers_per_iteration, "method": self.method,
            "first_match": self.first_match,
            "tentative": self.tentative,
            "corner_shift": None if self.corner_shift is None else round(self.corner_shift, 5),
            "confidence": self.confidence, "corner_uncertainty_km": self.corner_uncertainty_km,
            "model": self.model, "corners_lonlat": self.corners_lonlat,
        }


@dataclass
class RefineResult:
    best: Match | None
    matches: list[Match]
    localized: bool
    reason: str | None


# --- features ----------------------------------------------------------------------------------


@dataclass
class PreparedQuery:
    """The photo as matching sees it, computed once for all candidates: shrunk to
    ``query_max_side``, masked, its features (and, lazily, its affine-simulated features)."""

    width: int  # of the original photo
    height: int
    small: np.ndarray  # grey, CLAHE-equalised, at matching size
    mask: np.ndarray | None
    to_small: np.ndarray  # photo px -> small px
    features: Features
    params: RefineParams
    _affine: Features | None = None
    turned_shape: tuple[int, int] = (0, 0)  # (h, w) of the photo at the rotation being matched

    @classmethod
    def of(cls, rgb: np.ndarray, params: RefineParams) -> PreparedQuery:
        height, width = rgb.shape[:2]
        shrink = min(1.0, params.query_max_side / max(height, width))
        small = rgb if shrink == 1.0 else cv2.resize(
            rgb, (max(1, round(width * shrink)), max(1, round(height * shrink))), interpolation=cv2.INTER_AREA)
        mask = content_mask(small) if params.mask else None
        grey = gray(small)
        to_small = np.diag([small.shape[1] / width, small.shape[0] / height, 1.0])
        features = detect(grey, params.query_features, mask, features=params.features, root=params.root_sift,
                          contrast=params.sift_contrast)
        return cls(width, height, grey, mask, to_small, features, params)

    @property
    def affine_features(self) -> Features:
        if self._affine is None:
            self._affine = detect_affine(self.small, max(200, self.params.query_features // 4),
                                         self.params.affine_tilts, self.mask, root=self.params.root_sift,
                                         contrast=self.params.sift_contrast)
        return self._affine


@dataclass
class PreparedSurrounding:
    """A candidate's surrounding image as matching sees it, computed once per candidate: grey,
    CLAHE-equalised, and where it has ground worth a keypoint (255)."""

    image: GeoImage
    grey: np.ndarray
    mask: np.ndarray | None

    @classmethod
    def of(cls, image: GeoImage, params: RefineParams) -> PreparedSurrounding:
        return cls(image, gray(image.image), content_mask(image.image, margin_px=2) if params.mask else None)


def _surrounding_features(grey: np.ndarray, params: RefineParams, mask: np.ndarray | None = None) -> Features:
    return detect(grey, params.max_features, mask, features=params.features, root=params.root_sift,
                  contrast=params.sift_contrast)


def _homography(src: np.ndarray, dst: np.ndarray, params: RefineParams) -> tuple[np.ndarray | None, np.ndarray]:
    """USAC-MAGSAC homography src -> dst and its inlier mask (all False when none)."""
    none = np.zeros(len(src), bool)
    if len(src) < 4:
        return None, none
    matrix, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, params.ransac_reproj_px, maxIters=5000, confidence=0.999)
    if matrix is None or mask is None:
        return None, none
    return matrix, mask.ravel().astype(bool)


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


def _first_homography(query: PreparedQuery, turn: np.ndarray, surround: Features, params: RefineParams,
                      photo: str) -> tuple[np.ndarray | None, int, int]:
    """Photo (turned small px) -> surrounding px from one feature set of the photo (``plain`` or
    ``asift``): (H, inliers, tentative)."""
    features = query.affine_features if photo == "asift" else query.features
    points = project(turn, features.points) if len(features) else features.points
    ia, ib = match(features.moved(points), surround, params.ratio, params.mutual, params.match_filter)
    homography, inliers = _homography(points[ia], surround.points[ib], params)
    return homography, int(inliers.sum()), len(ia)


def _implausible_reason(homography: np.ndarray | None, inliers: int, width: int, height: int,
                        params: RefineParams) -> str | None:
    """Why a first homography (of a width x height photo) is not worth iterating on, or None."""
    if homography is None:
        return "no homography"
    if inliers < params.min_inliers:
        return f"{inliers} inliers, fewer than the {params.min_inliers} needed"
    return degenerate_reason(project(homography, image_corners(width, height)), float(width * height), params)


def _plausible(homography: np.ndarray | None, inliers: int, width: int, height: int, params: RefineParams) -> bool:
    """Whether a first homography (of a width x height photo) is worth iterating on."""
    return _implausible_reason(homography, inliers, width, height, params) is None


def tile_window(width: int, height: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the candidate tile in its 3x3 surrounding: the middle third."""
    return width // 3, height // 3, 2 * width // 3, 2 * height // 3


def _region_features(region: str, grey: np.ndarray, mask: np.ndarray | None, params: RefineParams) -> Features:
    """Features of the whole surrounding (shrunk by ``surrounding_scale``), or of its middle tile;
    points in surrounding px."""
    if region == "surrounding":
        if params.surrounding_scale >= 1.0:
            return _surrounding_features(grey, params, mask)
        height, width = grey.shape
        size = (max(1, round(width * params.surrounding_scale)), max(1, round(height * params.surrounding_scale)))
        found = _surrounding_features(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), params,
                                      None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))
        return found.moved(found.points * np.float32([width / size[0], height / size[1]]))
    x0, y0, x1, y1 = tile_window(grey.shape[1], grey.shape[0])
    found = _surrounding_features(grey[y0:y1, x0:x1], params, None if mask is None else mask[y0:y1, x0:x1])
    return found.moved(found.points + np.float32([x0, y0]))


@dataclass
class _FirstEstimate:
    homography: np.ndarray | None
    inliers: int
    tentative: int
    method: str  # sift | asift | orb
    region: str  # the try of RefineParams.first_match that gave it


def _first_estimate(query: PreparedQuery, turn: np.ndarray, surrounding: PreparedSurrounding, params: RefineParams,
                    turned_w: int, turned_h: int) -> _FirstEstimate:
    """The first homography from the tries of ``params.first_match`` in turn: the first plausible
    outline wins; when none is, the first try is kept for the report (the candidate is refused)."""
    affine = params.affine if params.features == "sift" else "off"  # ASIFT is SIFT's
    features: dict[str, Features] = {}
    first = None
    for name in params.first_match:
        region, _, simulated = name.partition("+")
        if simulated and affine == "off":
            continue
        photo = "asift" if simulated or affine == "always" else "plain"
        if region not in features:
            features[region] = _region_features(region, surrounding.grey, surrounding.mask, params)
        homography, inliers, tentative = _first_homography(query, turn, features[region], params, photo)
        estimate = _FirstEstimate(homography, inliers, tentative, "asift" if photo == "asift" else params.features, name)
        if _plausible(homography, inliers, turned_w, turned_h, params):
            return estimate
        first = first or estimate
    return first


ZoomIn = Callable[[np.ndarray], "GeoImage | None"]  # photo corners (4, 2) lon/lat -> a finer surrounding


@dataclass
class _Iterated:
    """The state of EarthMatch's iterations on one surrounding."""

    homography: np.ndarray  # turned photo px -> surrounding px
    history: list[int]
    tentative: int
    corners_seen: list[np.ndarray]  # the photo's corners (surrounding px) after each estimate
    pairs: tuple[np.ndarray, np.ndarray] | None = None  # last inliers: turned photo px, surrounding px


def _iterate(state: _Iterated, query: PreparedQuery, points: np.ndarray, surrounding: PreparedSurrounding,
             to_outline: Callable[[np.ndarray], np.ndarray], iterations: int, params: RefineParams) -> _Iterated:
    """EarthMatch's iterations: warp the surrounding into the photo's frame with the current
    estimate, match the photo again near where the estimate puts each keypoint, compose the
    correction. The warped view has the photo's size, so it gets the photo's keypoint budget."""
    grey = surrounding.grey
    valid_source = surrounding.mask if surrounding.mask is not None else np.full(grey.shape, 255, np.uint8)
    turned_h, turned_w = query.turned_shape
    erosion = np.ones((7, 7), np.uint8)
    for _ in range(iterations):
        try:
            inverse = np.linalg.inv(state.homography)
        except np.linalg.LinAlgError:
            break
        warped = cv2.warpPerspective(grey, inverse, (turned_w, turned_h))
        # Keypoints only where the warp has pixels, away from its edge (which is no ground feature).
        valid = cv2.erode(cv2.warpPerspective(valid_source, inverse, (turned_w, turned_h)), erosion)
        found = detect(warped, params.query_features, valid, features=params.features, root=params.root_sift,
                       contrast=params.sift_contrast)
        ia, ib = match_near(query.features.moved(points), found, params.iteration_radius * math.hypot(turned_w, turned_h),
                            params.ratio)
        correction, mask = _homography(points[ia], found.points[ib], params)
        state.history.append(int(mask.sum()))
        state.tentative = len(ia)
        if correction is None:
            break
        state.pairs = (points[ia][mask], project(state.homography, found.points[ib][mask]))
        state.homography = state.homography @ correction  # turned px -> warped px -> surrounding px
        state.corners_seen.append(to_outline(state.homography))
    return state


def _degrees_per_px(image: GeoImage) -> float:
    west, _, east, _ = image.bounds
    return (east - west) / image.image.shape[1]


def _mercator_between(coarse: GeoImage, fine: GeoImage) -> np.ndarray:
    """coarse px -> fine px: both share one georeference (zoom_in keeps it), so an axis-aligned
    scale and shift."""
    probe = np.array([[0.0, 0.0], [coarse.image.shape[1], coarse.image.shape[0]]])
    (x0, y0), (x1, y1) = fine.lonlat_to_pixel(coarse.pixel_to_lonlat(probe))
    sx, sy = (x1 - x0) / probe[1, 0], (y1 - y0) / probe[1, 1]
    return np.array([[sx, 0.0, x0], [0.0, sy, y0], [0.0, 0.0, 1.0]])


def nearest_quarter_turn(rotation_deg: float) -> int:
    """The quarter turn (0/90/180/270) nearest a retrieved rotation: an index with in-between
    turns (e.g. 45 deg) finds them, the match starts from a quarter turn (it is rotation-invariant)."""
    return int(90 * round(rotation_deg / 90) % 360)


def match_candidate(query: np.ndarray | PreparedQuery, surrounding: GeoImage, rotation: int,
                    params: RefineParams, zoom_in: ZoomIn | None = None) -> Match:
    """Iterative matching of the photo (turned clockwise by ``rotation``) against one candidate.

    The first homography comes from the tries of ``params.first_match`` (the photo against the
    candidate tile, the whole surrounding, then its affine simulations against the tile), the
    first plausible outline winning; a candidate where none is plausible is refused at once. Then
    EarthMatch's iterations. When the photo covers a small part of the surrounding and
    ``zoom_in`` gives a finer one around it (coarse-to-fine), the iterations go on there. The
    corners come from the photo's resected camera (geo.resection; else the homography), their
    uncertainty from its covariance; the calibrated acceptance (geo.acceptance) decides."""
    started, cpu_started = time.perf_counter(), time.process_time()
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    if not isinstance(query, PreparedQuery):
        query = PreparedQuery.of(query, params)
    turns = (rotation // 90) % 4
    small_h, small_w = query.small.shape
    turn = quarter_turn_matrix(turns, small_w, small_h)
    turned_w, turned_h = (small_h, small_w) if turns % 2 else (small_w, small_h)
    query.turned_shape = (turned_h, turned_w)
    to_turned = turn @ query.to_small  # photo px -> small px -> turned px
    points = project(turn, query.features.points) if len(query.features) else query.features.points
    prepared = PreparedSurrounding.of(surrounding, params)
    first = _first_estimate(query, turn, prepared, params, turned_w, turned_h)
    homography, inliers, tentative, method = first.homography, first.inliers, first.tentative, first.method
    if homography is None or not _plausible(homography, inliers, turned_w, turned_h, params):
        # No try gave a plausible outline: iterating on a chance homography of a few matches would
        # only warp the wrong ground (and cost three more matches).
        reason = "too few feature matches for a homography" if homography is None else (
            f"first match: {_implausible_reason(homography, inliers, turned_w, turned_h, params)}")
        return Match(False, inliers if homography is not None else 0, rotation, reason=reason,
                     runtime_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started,
                     inliers_per_iteration=[inliers], method=method,
                     tentative=tentative, first_match=first.region)
    outline = image_corners(query.width, query.height)

    def to_outline(h: np.ndarray) -> np.ndarray:
        return project(h @ to_turned, outline)

    state = _Iterated(homography, [inliers], tentative, [to_outline(homography)])
    state = _iterate(state, query, points, prepared, to_outline, params.iterations - 1, params)
    if zoom_in is not None and surrounding.bounds is not None and state.history[-1] >= params.min_inliers:
        corners = state.corners_seen[-1]
        extent = float(np.ptp(corners, axis=0).max()) if np.isfinite(corners).all() else math.inf
        if extent < max(surrounding.image.shape[:2]) / params.zoom_in_below:
            finer = zoom_in(surrounding.pixel_to_lonlat(corners))
            if finer is not None and finer.bounds is not None and _degrees_per_px(finer) < _degrees_per_px(surrounding) / 1.5:
                # Coarse-to-fine: carry the estimate over and iterate on the finer imagery.
                carried = _mercator_between(surrounding, finer) @ state.homography
                surrounding = finer
                state = _Iterated(carried, state.history, state.tentative, [to_outline(carried)])
                state = _iterate(state, query, points, PreparedSurrounding.of(finer, params), to_outline,
                                 params.iterations - 1, params)
                method += "+zoom"
    homography, history, tentative, last_pairs = state.homography, state.history, state.tentative, state.pairs
    corners_seen = state.corners_seen
    inliers = history[-1]
    total = homography @ to_turned  # photo px -> surrounding px
    total = total / total[2, 2]
    corners = project(total, outline)
    camera = None
    if params.resect and last_pairs is not None and surrounding.bounds is not None and inliers >= params.min_inliers:
        # The photo's camera from the inliers: corners where their rays meet the Earth (geo.resection).
        photo_px = project(np.linalg.inv(to_turned), last_pairs[0])
        camera = resect(photo_px, surrounding.pixel_to_lonlat(last_pairs[1]), query.width, query.height)
        seen = camera.corner_lonlat() if camera is not None else None
        if seen is not None and np.isfinite(seen).all() and camera.rms_px <= params.ransac_reproj_px * max(
                1.0, query.width / query.small.shape[1]):
            corners = surrounding.lonlat_to_pixel(seen)
        else:
            camera = None
    reason = degenerate_reason(corners, float(query.width * query.height), params)
    if reason is None and inliers < params.min_inliers:
        reason = f"{inliers} inliers, fewer than the {params.min_inliers} needed"
    shift = None
    if len(corners_seen) >= 2 and reason is None:
        diagonal = max(np.linalg.norm(corners[2] - corners[0]), np.linalg.norm(corners[3] - corners[1]), 1e-9)
        shift = float(np.linalg.norm(corners_seen[-1] - corners_seen[-2], axis=1).max() / diagonal)
    footprint = corners_lonlat = None
    if reason is None and surrounding.bounds is not None:
        corners_lonlat = [[round(float(lon), 6), round(float(lat), 6)] for lon, lat in surrounding.pixel_to_lonlat(corners)]
        try:
            footprint = footprint_of(corners, surrounding)
        except ValueError as exc:
            reason = f"footprint is not a valid polygon: {exc}"
    match_ = Match(False, inliers, rotation, homography=total.tolist(), corners_px=corners.tolist(), footprint=footprint,
                   reason=reason, inliers_per_iteration=history, method=method, tentative=tentative, corner_shift=shift,
                   model="camera" if camera is not None else "homography", surrounding_bounds=surrounding.bounds,
                   corners_lonlat=corners_lonlat, first_match=first.region)
    if reason is None:
        confidence = params.acceptance.probability(inliers, match_.inlier_ratio, camera=camera is not None)
        match_.confidence = round(confidence, 6)
        reason = params.acceptance.refusal(confidence, shift)
        if camera is not None and np.isfinite(camera.corner_spread_km).all():
            match_.corner_uncertainty_km = params.acceptance.uncertainty_km(camera.corner_spread_km)
        elif surrounding.bounds is not None:
            spread_px = corner_spread_px(last_pairs, to_turned, outline, params) if last_pairs else np.zeros(4)
            if len(corners_seen) >= 2:
                spread_px = np.hypot(spread_px, np.linalg.norm(corners_seen[-1] - corners_seen[-2], axis=1))
            match_.corner_uncertainty_km = params.acceptance.uncertainty_km(
                spread_px * km_per_px(surrounding, corners))
    match_.reason = reason
    match_.accepted = reason is None
    match_.runtime_s = time.perf_counter() - started
    match_.cpu_s = time.process_time() - cpu_started
    return match_


def corner_spread_px(pairs: tuple[np.ndarray, np.ndarray], to_turned: np.ndarray, outline: np.ndarray,
                     params: RefineParams, seed: int = 0) -> np.ndarray:
    """Per-corner spread (px in the surrounding) of the photo's corners over least-squares
    homographies refitted on bootstrap resamples of the last iteration's inliers."""
    src, dst = pairs
    if len(src) < 8 or params.bootstrap < 2:
        return np.full(4, np.nan) if len(src) < 8 else np.zeros(4)
    rng = np.random.default_rng(seed)
    seen = []
    for _ in range(params.bootstrap):
        pick = rng.integers(0, len(src), len(src))
        matrix, _ = cv2.findHomography(src[pick], dst[pick], 0)
        if matrix is not None:
            seen.append(project(matrix @ to_turned, outline))
    if len(seen) < 2:
        return np.full(4, np.nan)
    stack = np.stack(seen)  # (B, 4, 2)
    return np.sqrt(stack.var(axis=0).sum(axis=1))


def km_per_px(surrounding: GeoImage, points: np.ndarray) -> np.ndarray:
    """Ground size of one surrounding pixel (km) at each point (the mean of its two sides)."""
    from geo.lonlat import WGS84_GEOD

    points = np.asarray(points, float)
    here = surrounding.pixel_to_lonlat(points)
    right = surrounding.pixel_to_lonlat(points + [1.0, 0.0])
    down = surrounding.pixel_to_lonlat(points + [0.0, 1.0])
    _, _, across = WGS84_GEOD.inv(here[:, 0], here[:, 1], right[:, 0], right[:, 1])
    _, _, along = WGS84_GEOD.inv(here[:, 0], here[:, 1], down[:, 0], down[:, 1])
    return (np.asarray(across) + np.asarray(along)) / 2000.0


def refine_candidates(
    query_rgb: np.ndarray | PreparedQuery,
    candidates: Iterable[tuple[GeoImage, int]],
    params: RefineParams,
    on_progress: Callable[[int, int, Match], None] | None = None,
    deadline: float | None = None,
    zoom_in: ZoomIn | None = None,
) -> RefineResult:
    """Match the photo against each candidate in retrieval order; the accepted match with the
    highest confidence wins. The photo's features are computed once for all candidates (or given,
    as a :class:`PreparedQuery` made with the same ``params``). The
    search stops early at an accepted match ``stop_at_inliers_factor`` times above the inlier
    floor: nothing further down the list will beat it by enough to matter, and time is the
    service's budget (EarthMatch checks the top candidates the same way, best first).

    ``candidates`` may be a lazy Sequence (each surrounding loaded when its turn comes);
    ``deadline`` (a ``time.monotonic()`` instant) ends the search once passed, the rest untried;
    ``zoom_in`` gives finer surroundings for coarse-to-fine (:func:`match_candidate`)."""
    candidates = candidates if isinstance(candidates, Sequence) else list(candidates)
    count = len(candidates)
    query = query_rgb if isinstance(query_rgb, PreparedQuery) else PreparedQuery.of(query_rgb, params)
    matches: list[Match] = []
    out_of_time = False
    for i in range(count):
        surrounding, rotation = candidates[i]
        match_ = match_candidate(query, surrounding, rotation, params, zoom_in)
        matches.append(match_)
        if on_progress:
            on_progress(i, count, match_)
        if match_.accepted and match_.inliers >= params.stop_at_inliers_factor * params.min_inliers:
            break
        if deadline is not None and time.monotonic() >= deadline and i + 1 < count:
            out_of_time = True
            break
    accepted = [m for m in matches if m.accepted]
    if not accepted:
        best_tried = max(matches, key=lambda m: m.inliers, default=None)
        detail = (f"best had {best_tried.inliers} inliers: {best_tried.reason}" if best_tried is not None
                  else "none tried")
        budget = f"; the time budget spent with {count - len(matches)} untried" if out_of_time else ""
        return RefineResult(None, matches, False, f"no candidate accepted among {len(matches)} ({detail}{budget})")
    best = max(accepted, key=lambda m: (m.confidence or 0.0, m.inliers))
    return RefineResult(best, matches, True, None)


def match_rotations(
    query_rgb: np.ndarray, surrounding: GeoImage, params: RefineParams, rotations: Iterable[int] = (0, 90, 180, 270)
) -> tuple[Match, list[Match]]:
    """One photo against one image at each rotation: the best match (the accepted one with most
    inliers, else the one with most inliers) and every rotation's outcome."""
    result = refine_candidates(query_rgb, [(surrounding, r) for r in rotations], params)
    return result.best or max(result.matches, key=lambda m: m.inliers), result.matches
