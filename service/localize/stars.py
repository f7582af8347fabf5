"""The star path of localization: a night photo's stars give its attitude, the orbit its footprint.

Steps (:func:`locate_by_stars`), each of which can refuse the photo with its reason:

1. the sky: the part of the frame above the limb, found as the pixels whose smoothed brightness
   stays at the darkest level of the frame (the night Earth, lit by airglow, moonlight and towns,
   is brighter than space), eroded away from the limb's glow;
2. the stars: centroids (starid.centroids) inside the sky, on the frame with its glow removed (the
   limb's airglow is a band a few pixels to tens of pixels wide, narrower than the centroider's
   background tiles: left in, its ridge breaks into rows of false "stars"); at least ``min_stars``
   needed;
3. star-ID (ROSIA, starid.identify_pixels) at the field of view of the lens: from ``focal_mm`` and
   ``sensor_width_mm``, else trying the common ISS lenses (:data:`COMMON_ISS_LENSES_MM`);
4. checks of the solution against the photo, so that a wrong one never gives a footprint: enough
   stars named; every named star above the limb under the solved attitude and the ISS position
   (a star seen through the Earth is a wrong solution); the sky the solution predicts is sky in
   the photo, and its ground is not sky: where that ground is as dark as space (a night ocean
   can be), it must also lack space's stars;
5. the footprint: geo.attitude_footprint casts the image's rays onto the ellipsoid, with the
   corners' 1-sigma uncertainty from the attitude covariance, the TLE's age and the time's
   resolution.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np
from shapely.geometry.base import BaseGeometry

from geo.attitude_footprint import (
    DEFAULT_TIME_SIGMA_S,
    AttitudeFootprint,
    IssState,
    PinholeImage,
    attitude_covariance,
    corner_uncertainty_km,
    earth_fixed_rotation,
    footprint_from_attitude,
    tangent_altitude_km,
)
from geo.ecef import intersect_ellipsoid
from starid.catalog import StarCatalog
from starid.centroids import detect_stars, frame_from_array
from starid.geometry import boresight_ra_dec_roll, pixels_to_vectors, rotation_to_quaternion
from starid.identify import identify_pixels

# Full-frame lenses flown on the ISS for night and star photography, mm (tried when the photo
# does not say): wide to short tele.
COMMON_ISS_LENSES_MM = (14.0, 16.0, 20.0, 24.0, 28.0, 35.0, 50.0, 58.0, 85.0, 105.0)
FULL_FRAME_WIDTH_MM = 36.0
DEFAULT_MIN_STARS = 6  # detected above the limb, and named by star-ID
MIN_SKY_FRACTION = 0.03
SKY_EROSION_PX = 6
MAX_SKY_LEVEL = 40.0  # of 255: the darkest part of a frame brighter than this is not space  # keep away from the limb's airglow
# The checks of a solution against the photo.
MIN_SKY_AGREEMENT = 0.9  # of the grid rays the solution sends into space, share in the photo's sky
MAX_GROUND_AS_SKY = 0.25  # of those it sends to the ground, share that look like sky...
# ...unless that dark "ground" holds stars at under this fraction of the density of the sky the
# solution confirms: a night ocean is as dark as space but starless, sky wrongly called ground is not.
MAX_DARK_GROUND_STAR_DENSITY = 0.25
GLOW_LINE_PX = 13  # the glow's line medians: over twice a star's extent (PSF sigma ~1 px, smear <= 2 px)
_CHECK_GRID = 24
_CLEAR_SKY_TANGENT_KM = 150.0  # above the airglow: the solution's "surely sky"
DEFAULT_STARID_BUDGET_S = 2.0
# A circular Gaussian error holds its true point within sqrt(ln 10) times its rms radius 90% of the time.
R90_PER_SIGMA = math.sqrt(math.log(10.0))


def fov_from_lens(focal_mm: float, sensor_width_mm: float = FULL_FRAME_WIDTH_MM) -> float:
    """Horizontal field of view (degrees) of a lens on a sensor ``sensor_width_mm`` wide."""
    if not (focal_mm > 0 and sensor_width_mm > 0):
        raise ValueError(f"focal_mm and sensor_width_mm must be positive, got {focal_mm}, {sensor_width_mm}")
    return math.degrees(2.0 * math.atan(sensor_width_mm / (2.0 * focal_mm)))


@dataclass(frozen=True)
class LensGuess:
    """The fields of view to try, first first, and where they came from."""

    fov_deg: tuple[float, ...]
    source: str  # "form" | "exif" | "common-lenses"

    @classmethod
    def of(cls, focal_mm: float | None, sensor_width_mm: float | None, source: str = "form") -> LensGuess:
        if focal_mm is None:
            return cls(tuple(fov_from_lens(f) for f in COMMON_ISS_LENSES_MM), "common-lenses")
        return cls((fov_from_lens(focal_mm, sensor_width_mm or FULL_FRAME_WIDTH_MM),), source)


@dataclass
class StarCheck:
    name: str
    ok: bool
    detail: str


@dataclass
class StarPathOutcome:
    """What the star path found for one photo: a footprint, or the reason it gives none."""

    localized: bool
    reason: str | None
    detected: int = 0  # star centroids above the limb
    sky_fraction: float = 0.0
    fov_deg: float | None = None
    fov_source: str | None = None
    rotation_icrs: np.ndarray | None = None
    stars: list[dict] = field(default_factory=list)  # named stars: x, y, hip, flux
    footprint: AttitudeFootprint | None = None
    corner_sigma_km: np.ndarray | None = None  # (4,) NaN for sky corners
    checks: list[StarCheck] = field(default_factory=list)
    runtime_s: float = 0.0

    @property
    def polygon(self) -> BaseGeometry | None:
        return self.footprint.polygon if self.footprint else None

    @property
    def corner_uncertainty_km(self) -> float | None:
        """The largest 1-sigma error of a ground corner (km); None without ground corners."""
        if self.corner_sigma_km is None or not np.isfinite(self.corner_sigma_km).any():
            return None
        return float(np.nanmax(self.corner_sigma_km))

    def attitude(self) -> dict | None:
        if self.rotation_icrs is None:
            return None
        ra, dec, roll = boresight_ra_dec_roll(self.rotation_icrs)
        return {"frame": "ICRS", "quaternion_wxyz": [round(q, 10) for q in rotation_to_quaternion(self.rotation_icrs)],
                "ra_deg": round(ra, 6), "dec_deg": round(dec, 6), "roll_deg": round(roll, 6)}


def sky_mask(grey: np.ndarray) -> np.ndarray:
    """Pixels of space (above the limb): smoothed brightness at the frame's darkest level.

    The median filter removes stars, hot pixels and town lights; the darkest percentile is the
    sky's level; the threshold sits a third of the way to the bright part of the frame (at least
    one count above the sky); the mask is eroded so that the limb's glow stays out.
    """
    grey8 = np.clip(grey, 0, 255).astype(np.uint8)
    smooth = cv2.blur(cv2.medianBlur(grey8, 15).astype(np.float32), (31, 31))
    low, high = np.percentile(smooth, [1.0, 95.0])
    if low > MAX_SKY_LEVEL:  # nothing in the frame is as dark as space: a daylit or overexposed photo
        return np.zeros(grey.shape, bool)
    sky = smooth < low + max(1.0, 0.33 * (high - low))
    kernel = np.ones((2 * SKY_EROSION_PX + 1, 2 * SKY_EROSION_PX + 1), np.uint8)
    return cv2.erode(sky.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)


def without_glow(grey: np.ndarray) -> np.ndarray:
    """The frame less its glow, for the centroider. The glow under each pixel is the largest of four
    running medians along lines (horizontal, vertical, both diagonals; GLOW_LINE_PX long): along its
    own direction a band's line median follows its ridge however narrow the band, while a star,
    compact, fills too little of any line to move its median. Smoothed a little (a median of whole
    counts is a whole count, and residuals of exact zeros would give the centroider no noise), and
    returned at the glow's median level so that the centroider's background and noise still hold."""
    from scipy.ndimage import median_filter

    frame = np.asarray(grey, dtype=np.float32)
    half = GLOW_LINE_PX // 2
    lines = [np.zeros((GLOW_LINE_PX, GLOW_LINE_PX), bool) for _ in range(4)]
    lines[0][half, :] = lines[1][:, half] = True
    np.fill_diagonal(lines[2], True)
    np.fill_diagonal(np.fliplr(lines[3]), True)
    glow = np.max([median_filter(frame, footprint=line, mode="nearest") for line in lines], axis=0)
    glow = cv2.GaussianBlur(glow, (0, 0), 1.0).astype(np.float64)
    return grey - glow + float(np.median(glow))


def _stars_in_sky(grey: np.ndarray, sky: np.ndarray, min_stars: int) -> tuple[str | None, np.ndarray, np.ndarray]:
    """Centroids and fluxes of the stars inside the sky mask, and the reason to stop if too few."""
    if sky.mean() < MIN_SKY_FRACTION:
        return f"no sky above the limb in the frame ({sky.mean():.1%} of it looks like space)", np.empty((0, 2)), np.empty(0)
    detection = detect_stars(frame_from_array(without_glow(grey)))
    rows = np.clip(detection.xy[:, 1].astype(int), 0, grey.shape[0] - 1)
    cols = np.clip(detection.xy[:, 0].astype(int), 0, grey.shape[1] - 1)
    in_sky = sky[rows, cols] if len(detection) else np.zeros(0, bool)
    xy, flux = detection.xy[in_sky], detection.flux[in_sky]
    if len(xy) < min_stars:
        return f"only {len(xy)} stars detected above the limb, {min_stars} needed for the star path", xy, flux
    return None, xy, flux


def count_sky_stars(image_rgb: np.ndarray, min_stars: int = DEFAULT_MIN_STARS) -> tuple[int, str | None]:
    """Stars detected above the limb, and why the star path cannot be taken (None: it can): the
    quick look POST /localize takes to choose the path in ``auto``."""
    grey = _grey(image_rgb)
    refusal, xy, _ = _stars_in_sky(grey, sky_mask(grey), min_stars)
    return len(xy), refusal


def _grey(image_rgb: np.ndarray) -> np.ndarray:
    grey = np.asarray(image_rgb, dtype=np.float64)
    return grey.mean(axis=2) if grey.ndim == 3 else grey


def locate_by_stars(
    image_rgb: np.ndarray,
    when: datetime,
    state: IssState,
    catalog: StarCatalog,
    lens: LensGuess,
    min_stars: int = DEFAULT_MIN_STARS,
    time_sigma_s: float = DEFAULT_TIME_SIGMA_S,
    starid_budget_s: float = DEFAULT_STARID_BUDGET_S,
) -> StarPathOutcome:
    """Localize a night photo by its stars (see the module docstring); never raises for a photo
    that cannot be localized: the outcome says why."""
    started = time.perf_counter()
    grey = _grey(image_rgb)
    height, width = grey.shape
    sky = sky_mask(grey)
    outcome = StarPathOutcome(localized=False, reason=None, sky_fraction=round(float(sky.mean()), 4))

    def refuse(reason: str) -> StarPathOutcome:
        outcome.reason = reason
        outcome.runtime_s = round(time.perf_counter() - started, 3)
        return outcome

    refusal, xy, flux = _stars_in_sky(grey, sky, min_stars)
    outcome.detected = len(xy)
    if refusal:
        return refuse(refusal)

    identified = None
    failures = []
    for fov in lens.fov_deg:
        result = identify_pixels(catalog, xy, width, height, fov, time_budget_s=starid_budget_s)
        if result.status == "identified" and result.matched >= min_stars:
            identified = result
            break
        failures.append(f"{fov:.1f} deg: {result.reason or f'only {result.matched} stars named'}")
    if identified is None:
        tried = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
        return refuse(f"star identification found no attitude with {min_stars} or more named stars ({lens.source} "
                      f"field of view{'s' if len(lens.fov_deg) > 1 else ''}: {tried})")

    rotation = np.asarray(identified.rotation, dtype=float)
    fov = float(identified.fov_deg)
    image = PinholeImage.from_fov(width, height, fov)
    named = np.array([hip is not None for hip in identified.hip])
    outcome.fov_deg, outcome.fov_source = round(fov, 4), lens.source
    outcome.stars = [{"x": round(float(x), 2), "y": round(float(y), 2), "hip": int(hip), "flux": round(float(f), 1)}
                     for (x, y), hip, f, ok in zip(xy, identified.hip, flux, named, strict=True) if ok]

    camera_vectors = pixels_to_vectors(xy[named], width, height, fov)
    rotation_ecef = earth_fixed_rotation(rotation, when)
    outcome.checks = _check_solution(camera_vectors, rotation_ecef, state, image, sky, xy, int(named.sum()), min_stars)
    failed = [check for check in outcome.checks if not check.ok]
    if failed:
        return refuse("the star solution disagrees with the photo: " + "; ".join(c.detail for c in failed))

    footprint = footprint_from_attitude(rotation, state.position_m, when, image)
    if footprint.polygon is None:
        return refuse("the solved camera sees no ground")
    hip_index = np.searchsorted(catalog.hip, [s["hip"] for s in outcome.stars])
    covariance = attitude_covariance(camera_vectors, catalog.vectors[hip_index], rotation,
                                     min_sigma_rad=0.1 / image.focal_px)
    outcome.rotation_icrs = rotation
    outcome.footprint = footprint
    outcome.corner_sigma_km = corner_uncertainty_km(rotation, state, when, image, covariance, time_sigma_s)
    outcome.localized = True
    outcome.runtime_s = round(time.perf_counter() - started, 3)
    return outcome


def _check_solution(camera_vectors, rotation_ecef, state: IssState, image: PinholeImage, sky: np.ndarray,
                    detected_xy: np.ndarray, named: int, min_stars: int) -> list[StarCheck]:  # noqa: ANN001
    """The solution against the photo: enough named stars, all above the limb, sky where it says,
    and no sky (dark and starry) where it says ground."""
    checks = [StarCheck("named_stars", named >= min_stars, f"{named} stars named ({min_stars} needed)")]
    _, behind = intersect_ellipsoid(state.position_m, camera_vectors @ rotation_ecef.T)
    checks.append(StarCheck("stars_above_limb", not behind.any(),
                            f"{int(behind.sum())} of {named} named stars would lie behind the Earth"))
    steps = (np.arange(_CHECK_GRID) + 0.5) / _CHECK_GRID
    u, v = np.meshgrid(steps * image.width, steps * image.height)
    rays = image.camera_rays(u, v) @ rotation_ecef.T
    _, hit = intersect_ellipsoid(state.position_m, rays)
    tangent_km = tangent_altitude_km(state.position_m, rays)
    clear = ~hit & (tangent_km > _CLEAR_SKY_TANGENT_KM)
    observed = sky[np.clip(v.astype(int), 0, sky.shape[0] - 1), np.clip(u.astype(int), 0, sky.shape[1] - 1)]
    if clear.any():
        agreement = float(observed[clear].mean())
        checks.append(StarCheck("sky_where_predicted", agreement >= MIN_SKY_AGREEMENT,
                                f"{agreement:.0%} of the frame the solution puts in space looks like space "
                                f"({MIN_SKY_AGREEMENT:.0%} needed)"))
    if hit.any():
        ground_as_sky = float(observed[hit].mean())
        detail = (f"{ground_as_sky:.0%} of the frame the solution puts on the ground looks like space "
                  f"(at most {MAX_GROUND_AS_SKY:.0%})")
        ok = ground_as_sky <= MAX_GROUND_AS_SKY
        if not ok:
            # As dark as space: a night ocean, or sky the solution wrongly calls ground. Space has stars.
            stars_per_cell = _stars_per_cell(detected_xy, image)
            dark_ground, sky_seen = hit & observed, clear & observed
            sky_density = float(stars_per_cell[sky_seen].mean()) if sky_seen.any() else 0.0
            ground_density = float(stars_per_cell[dark_ground].mean())
            ok = sky_density > 0 and ground_density < MAX_DARK_GROUND_STAR_DENSITY * sky_density
            detail += (f", and holds {ground_density:.2f} detected stars per check cell against {sky_density:.2f} in "
                       f"the sky the solution confirms (under {MAX_DARK_GROUND_STAR_DENSITY:.0%} of it: a starless "
                       "dark ground such as a night ocean)")
        checks.append(StarCheck("ground_where_predicted", ok, detail))
    return checks


def _stars_per_cell(xy: np.ndarray, image: PinholeImage) -> np.ndarray:
    """Detected stars in each cell of the (_CHECK_GRID x _CHECK_GRID) check grid, rows first."""
    cols = np.clip((xy[:, 0] * _CHECK_GRID / image.width).astype(int), 0, _CHECK_GRID - 1)
    rows = np.clip((xy[:, 1] * _CHECK_GRID / image.height).astype(int), 0, _CHECK_GRID - 1)
    counts = np.zeros((_CHECK_GRID, _CHECK_GRID))
    np.add.at(counts, (rows, cols), 1.0)
    return counts

