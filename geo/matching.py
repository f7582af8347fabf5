"""Local features for EarthMatch refinement: RootSIFT, affine view synthesis, mutual matches, masks.

- :func:`content_mask`: the pixels worth a keypoint. Astronaut photos have black borders (space,
  scans), window frames and ISS hardware in the corners: dark, neutral, flat regions that touch
  the image edge. Their sharp rims make strong keypoints that match nothing on the ground.
- :func:`detect`: SIFT keypoints with RootSIFT descriptors (Arandjelovic & Zisserman, CVPR 2012:
  L1-normalise, square-root; Euclidean distance between them is the Hellinger kernel, which
  matches SIFT histograms better than L2).
- Affine view synthesis (ASIFT, Morel & Yu 2009, OpenCV's AffineFeature): an oblique photo
  foreshortens the ground by ``1/cos(tilt)`` along one direction, more than SIFT's descriptors
  tolerate past ~40 deg; SIFT is run on the photo stretched back at a few tilts and directions,
  and every view's keypoints come back in the photo's own pixel frame. Only the photo needs
  this: the satellite surroundings are nadir views.
- :func:`match`: nearest neighbours filtered by AdaLAM (Cavalli et al., ECCV 2020, kornia's
  implementation: no weights): a match is kept when the matches around it agree on one local
  affine map, orientations and scales included. Across a hand-held photo and a Sentinel-2 mosaic
  (other season, sun, haze) the right match is often not much nearer than the second-nearest, so
  Lowe's ratio test drops most of them; the local geometry keeps them (docs/refinement.md).
  ``filter="ratio"``: Lowe's ratio test, optionally kept only where the two images are each
  other's nearest neighbours (mutual NN), with a FLANN k-d forest when the sets are large.

Pure: numpy, OpenCV and kornia (torch, CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.spatial import cKDTree

from geo.refine_params import MATCH_FILTERS, SIFT_CONTRAST

# Tilt steps of the affine simulation: t = 1/cos(theta) = sqrt(2)^k, k = 1..affine_tilts
# (45, 60, 69 deg), each over 180 deg of directions in steps of 72/t deg (Morel & Yu's sampling).
AFFINE_TILT_STEP = float(np.sqrt(2.0))
AFFINE_ROTATE_STEP_DEG = 72.0
# Beyond this many descriptors on both sides a k-d forest is faster than brute force.
_FLANN_ABOVE = 3000
_FLANN_INDEX_KDTREE = 1

_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))


ADALAM_SEED = 0


@dataclass(frozen=True)
class Features:
    """Keypoints (N, 2) in the image's pixel frame (x right, y down), their descriptors (N, D), and
    each keypoint's size (px) and orientation (deg) when the detector gives them."""

    points: np.ndarray
    descriptors: np.ndarray | None
    norm: int = cv2.NORM_L2
    sizes: np.ndarray | None = None
    angles_deg: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.points)

    def moved(self, points: np.ndarray) -> Features:
        """The same keypoints at other positions (another pixel frame of the same image)."""
        return replace(self, points=np.asarray(points, np.float32).reshape(-1, 2))

    @staticmethod
    def empty(norm: int = cv2.NORM_L2) -> Features:
        return Features(np.zeros((0, 2), np.float32), None, norm)


def gray(image: np.ndarray, equalize: bool = True) -> np.ndarray:
    """Grey levels, locally contrast-equalised (CLAHE): haze and colour casts flatten astronaut
    photos, and features need the contrast back (black borders stay black)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return _CLAHE.apply(grey) if equalize else grey


def content_mask(rgb: np.ndarray, margin_px: int = 6) -> np.ndarray:
    """uint8 mask (255: usable) without the dark, neutral, textureless regions touching the border
    (space, black scan borders, window frames, hardware), grown by ``margin_px`` so that their rims
    give no keypoints. Dark ocean is blue, not neutral, and stays."""
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    red, green, blue = cv2.split(rgb)
    brightest = cv2.max(cv2.max(red, green), blue)
    darkest = cv2.min(cv2.min(red, green), blue)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (5, 5))
    spread = np.sqrt(np.clip(cv2.blur(grey * grey, (5, 5)) - mean * mean, 0.0, None))
    dark = ((brightest < 70) & (cv2.subtract(brightest, darkest) < 12) & (spread < 4.0)).astype(np.uint8)
    # Frames and borders are thick; a dark shoreline or shadow is a thin band: an opening keeps the former.
    side = max(3, (min(height, width) // 40) | 1)
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    count, labels = cv2.connectedComponents(dark, connectivity=4)
    if count <= 1:
        return np.full((height, width), 255, np.uint8)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    # Only sizeable regions: a few dark pixels on the edge are just dark ground.
    sizes = np.bincount(labels.ravel(), minlength=count)
    edge = edge[sizes[edge] >= 0.005 * height * width]
    blocked = np.isin(labels, edge).astype(np.uint8)
    if margin_px > 0 and blocked.any():
        blocked = cv2.dilate(blocked, np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8))
    return np.where(blocked > 0, 0, 255).astype(np.uint8)


def root_sift(descriptors: np.ndarray | None) -> np.ndarray | None:
    """RootSIFT: L1-normalise each SIFT descriptor and take the square root."""
    if descriptors is None or not len(descriptors):
        return descriptors
    d = descriptors.astype(np.float32)
    d /= d.sum(axis=1, keepdims=True) + 1e-7
    return np.sqrt(d)


def _to_features(keypoints, descriptors, root: bool, norm: int) -> Features:  # noqa: ANN001
    if not keypoints or descriptors is None:
        return Features.empty(norm)
    points = np.float32([k.pt for k in keypoints])
    return Features(points, root_sift(descriptors) if root else descriptors, norm,
                    np.float32([k.size for k in keypoints]), np.float32([k.angle for k in keypoints]))


def detect(image: np.ndarray, max_features: int, mask: np.ndarray | None = None, *,
           features: str = "sift", root: bool = True, contrast: float = SIFT_CONTRAST) -> Features:
    """Keypoints and descriptors of a grey (or RGB, then CLAHE-equalised) image; ``contrast``:
    SIFT's threshold on an extremum's contrast (lower keeps the faint ones of flat ground)."""
    grey = gray(image) if image.ndim == 3 else image
    if features == "orb":
        keypoints, descriptors = cv2.ORB_create(nfeatures=max_features).detectAndCompute(grey, mask)
        return _to_features(keypoints, descriptors, False, cv2.NORM_HAMMING)
    sift = cv2.SIFT_create(nfeatures=max_features, contrastThreshold=contrast)
    keypoints, descriptors = sift.detectAndCompute(grey, mask)
    return _to_features(keypoints, descriptors, root, cv2.NORM_L2)


def detect_affine(image: np.ndarray, max_features_per_view: int, tilts: int, mask: np.ndarray | None = None,
                  *, root: bool = True, contrast: float = SIFT_CONTRAST) -> Features:
    """ASIFT: SIFT on the photo's affine simulations (tilts sqrt(2)^1..sqrt(2)^tilts, and the
    photo itself), keypoints in the photo's pixel frame, descriptors pooled."""
    grey = gray(image) if image.ndim == 3 else image
    sift = cv2.SIFT_create(nfeatures=max_features_per_view, contrastThreshold=contrast)
    asift = cv2.AffineFeature_create(sift, maxTilt=tilts, minTilt=0, tiltStep=AFFINE_TILT_STEP,
                                     rotateStepBase=AFFINE_ROTATE_STEP_DEG)
    keypoints, descriptors = asift.detectAndCompute(grey, mask)
    return _to_features(keypoints, descriptors, root, cv2.NORM_L2)


def match(a: Features, b: Features, ratio: float, mutual: bool = True,
          filter: str = "ratio") -> tuple[np.ndarray, np.ndarray]:  # noqa: A002 (the filter's name)
    """Indices (into a, into b) of the matches ``filter`` keeps: ``adalam`` (nearest neighbours
    whose neighbourhood agrees on a local affine map; needs sizes and orientations, else falls back
    to the ratio test) or ``ratio`` (Lowe's ratio test, and with ``mutual`` only the pairs that are
    each other's nearest neighbour)."""
    none = np.zeros(0, np.int64)
    if filter not in MATCH_FILTERS:
        raise ValueError(f"filter must be one of {MATCH_FILTERS}, got {filter!r}")
    if a.descriptors is None or b.descriptors is None or len(a) < 2 or len(b) < 2:
        return none, none
    if filter == "adalam" and a.norm == cv2.NORM_L2 and a.sizes is not None and b.sizes is not None:
        return _adalam(a, b)
    forward = _knn(a, b, 2)
    good = [(m.queryIdx, m.trainIdx) for m, *rest in forward if rest and m.distance < ratio * rest[0].distance]
    if not good:
        return none, none
    ia, ib = (np.array(v, np.int64) for v in zip(*good, strict=True))
    if mutual:
        backward = np.full(len(b), -1, np.int64)
        for m, *_ in _knn(b, a, 1):
            backward[m.queryIdx] = m.trainIdx
        keep = backward[ib] == ia
        ia, ib = ia[keep], ib[keep]
    return ia, ib


def match_near(a: Features, b: Features, radius_px: float, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into a, into b) of guided matches between two images already brought into one
    pixel frame (an EarthMatch iteration: the surrounding warped into the photo's frame by the
    current estimate): each keypoint is matched among the other image's keypoints within
    ``radius_px`` of it only, kept when the pair are each other's nearest there and pass Lowe's
    ratio test against the next nearest there. The few keypoints nearby leave far fewer look-alikes
    than the whole image, so the ratio test keeps the cross-season matches it drops globally."""
    none = np.zeros(0, np.int64)
    if a.descriptors is None or b.descriptors is None or len(a) < 2 or len(b) < 2:
        return none, none
    da, db = a.descriptors.astype(np.float32), b.descriptors.astype(np.float32)
    near = cKDTree(b.points).sparse_distance_matrix(cKDTree(a.points), radius_px, output_type="ndarray")
    if not len(near):
        return none, none
    ia, ib = near["j"].astype(np.int64), near["i"].astype(np.int64)
    # Squared L2 distances of the descriptors of the pairs near each other (descriptors of any norm).
    # (One product of the whole sets is cheaper than gathering the pairs' descriptors.)
    distance = np.maximum(0.0, (da * da).sum(1)[ia] + (db * db).sum(1)[ib] - 2.0 * (da @ db.T)[ia, ib])
    by_row = np.lexsort((distance, ia))  # per keypoint of a, its neighbours nearest first
    rows = ia[by_row]
    first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    has_second = np.r_[first[1:], len(rows)] - first > 1
    best = by_row[first]
    runner_up = np.full(len(first), np.inf)
    runner_up[has_second] = distance[by_row[first[has_second] + 1]]
    # Mutual: b's nearest among its own neighbours must be the same keypoint of a.
    by_column = np.lexsort((distance, ib))
    columns = ib[by_column]
    column_best = np.full(len(b), -1, np.int64)
    column_best[columns[::-1]] = ia[by_column[::-1]]  # the last write per column is its nearest
    keep = (column_best[ib[best]] == ia[best]) & (np.sqrt(distance[best]) < ratio * np.sqrt(runner_up))
    return ia[best][keep], ib[best][keep]


def _lafs(features: Features):  # noqa: ANN202 (a torch tensor)
    import torch
    from kornia.feature import laf_from_center_scale_ori

    centres = torch.from_numpy(np.ascontiguousarray(features.points, np.float32))[None]
    scales = torch.from_numpy(np.ascontiguousarray(features.sizes, np.float32) / 2.0)[None, :, None, None]
    angles = torch.from_numpy(np.ascontiguousarray(features.angles_deg, np.float32))[None, :, None]
    return laf_from_center_scale_ori(centres, scales, angles)


def _adalam(a: Features, b: Features) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from kornia.feature import match_adalam
    from kornia.feature.adalam import get_adalam_default_config

    config = get_adalam_default_config()
    # AdaLAM's local RANSACs draw from torch's global generator: seeded here (and the caller's state
    # restored), so that a photo and a candidate always give the same matches.
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(ADALAM_SEED)
        scores, pairs = match_adalam(torch.from_numpy(np.ascontiguousarray(a.descriptors, np.float32)),
                                     torch.from_numpy(np.ascontiguousarray(b.descriptors, np.float32)),
                                     _lafs(a), _lafs(b), config=config)
    # Matches a local model accepted score at most 1 / min_confidence; when no seed survives, kornia
    # returns a loose ratio test's matches instead (scores up to 0.95): those are no AdaLAM matches.
    kept = scores.reshape(-1).numpy() <= 1.0 / config["min_confidence"]
    pairs = pairs.numpy().astype(np.int64)[kept]
    return pairs[:, 0], pairs[:, 1]


def _knn(a: Features, b: Features, k: int):  # noqa: ANN202
    if a.norm == cv2.NORM_L2 and len(a) > _FLANN_ABOVE and len(b) > _FLANN_ABOVE // 2:
        matcher = cv2.FlannBasedMatcher({"algorithm": _FLANN_INDEX_KDTREE, "trees": 4}, {"checks": 64})
        return matcher.knnMatch(a.descriptors, b.descriptors, k=k)
    return cv2.BFMatcher(a.norm).knnMatch(a.descriptors, b.descriptors, k=k)


def matched_points(a: Features, b: Features, ratio: float, mutual: bool = True,
                   filter: str = "ratio") -> tuple[np.ndarray, np.ndarray]:  # noqa: A002
    """The matched point pairs (points in a, points in b) of :func:`match`."""
    ia, ib = match(a, b, ratio, mutual, filter)
    return a.points[ia], b.points[ib]
