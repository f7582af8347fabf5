"""The refinement's settings (:class:`RefineParams`) and the names they choose among: no OpenCV,
no SciPy, so that the service's settings can default to them cheaply (service/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from geo.acceptance import Acceptance

FEATURES = ("sift", "orb")  # OpenCV 5 moved AKAZE out of the main package
AFFINE_MODES = ("off", "fallback", "always")
FIRST_MATCH_TRIES = ("tile", "surrounding", "tile+asift", "surrounding+asift")
MATCH_FILTERS = ("adalam", "ratio")  # geo.matching.match's filters of tentative matches
# OpenCV's default SIFT contrast threshold: keypoints of weaker extrema are dropped.
SIFT_CONTRAST = 0.04


@dataclass
class RefineParams:
    """Matching settings; defaults chosen with `astroloc bench localize` and scripts/refine_eval.py
    (docs/benchmarks.md, docs/refinement.md).

    These defaults are the only copy: the service's settings (ASTROLOC_REFINE_*) default to them,
    and service.localize.refine.refine_params builds a RefineParams from the settings."""

    features: str = "sift"
    iterations: int = 4  # EarthMatch's
    min_inliers: int = 8  # a floor under the calibrated acceptance (docs/refinement.md)
    max_features: int = 4000  # keypoints of the surrounding image (and of each warped view)
    query_features: int = 2000  # keypoints of the photo
    query_max_side: int = 512  # the photo is matched at this size (320 loses 5% of the photos: docs/refinement.md)
    # Which tentative matches go to RANSAC (geo.matching.match): AdaLAM's local affine agreement, or
    # Lowe's ratio test (``ratio``, with ``mutual``). AdaLAM keeps the cross-season matches the ratio
    # test drops on real photos (docs/refinement.md).
    match_filter: str = "adalam"
    ratio: float = 0.8  # Lowe's ratio test
    # EarthMatch's iterations match the photo against the surrounding warped into its frame: each
    # keypoint only among the other's within this share of the photo's diagonal (geo.matching.match_near).
    iteration_radius: float = 0.08
    # SIFT's contrast threshold (geo.matching.detect): half OpenCV's. Hazy, cloudy and ocean photos
    # keep their faint keypoints: 8 of the 23 demo-world misses given a right tile recovered, 0 wrong
    # (docs/refinement.md), for ~40% more matching time.
    sift_contrast: float = SIFT_CONTRAST / 2
    ransac_reproj_px: float = 6.0
    max_scale: float = 12.0  # the photo may be at most this much larger/smaller than in the surroundings
    min_angle_deg: float = 15.0  # quadrilateral corners sharper than this are shear, not perspective
    stop_at_inliers_factor: float = 3.0  # a candidate this far above the floor, accepted, ends the search
    root_sift: bool = True  # RootSIFT descriptors (Hellinger distance)
    mutual: bool = True  # keep only mutual nearest neighbours after the ratio test
    mask: bool = True  # no keypoints on black borders, window frames, hardware (geo.matching.content_mask)
    affine: str = "fallback"  # ASIFT for the first match: off | fallback (its tries in first_match) | always
    # The first match's tries, in order, until one gives a plausible outline (docs/refinement.md):
    # ``tile``: the photo against the candidate tile (the surrounding's middle third: retrieval says
    # the photo is about that tile, and EarthMatch's first match is against it); ``surrounding``: the
    # whole surrounding (a photo off the tile's centre or larger than it); ``+asift``: the photo's
    # affine simulations instead (oblique views; skipped when ``affine`` is off).
    first_match: tuple[str, ...] = ("tile", "surrounding", "tile+asift")
    # The ``surrounding`` try detects on the surrounding shrunk to this share of its side: a photo
    # that needs it spans more than the tile, so it is coarser there than the surrounding's pixels,
    # and SIFT on the whole full-size surrounding was half a refused candidate's CPU time.
    surrounding_scale: float = 0.5
    affine_tilts: int = 2  # simulated tilts sqrt(2)^1..sqrt(2)^n (45, 60 deg)
    bootstrap: int = 12  # homographies refitted on inlier resamples for the corner uncertainty
    resect: bool = True  # corners from the photo's resected camera (geo.resection), not the homography
    zoom_in_below: float = 4.0  # coarse-to-fine when the photo spans less than 1/this of the surrounding
    acceptance: Acceptance = field(default_factory=Acceptance)

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {self.features!r}")
        if self.iterations < 1 or self.min_inliers < 4:
            raise ValueError("iterations must be >= 1 and min_inliers >= 4 (a homography needs 4)")
        if self.affine not in AFFINE_MODES:
            raise ValueError(f"affine must be one of {AFFINE_MODES}, got {self.affine!r}")
        if self.match_filter not in MATCH_FILTERS:
            raise ValueError(f"match_filter must be one of {MATCH_FILTERS}, got {self.match_filter!r}")
        if not self.first_match or any(name not in FIRST_MATCH_TRIES for name in self.first_match):
            raise ValueError(f"first_match must name some of {FIRST_MATCH_TRIES}, got {self.first_match!r}")
        if not 0.1 <= self.surrounding_scale <= 1.0:
            raise ValueError(f"surrounding_scale must be in [0.1, 1], got {self.surrounding_scale}")
        if self.query_max_side < 64:
            raise ValueError(f"query_max_side must be at least 64 px, got {self.query_max_side}")
