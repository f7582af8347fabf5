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
- :func:`match`: Lowe's ratio test, optionally kept only where the two images are each other's
  nearest neighbours (mutual NN), with a FLANN k-d forest when the sets are large.

Pure: numpy and OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Tilt steps of the affine simulation: t = 1/cos(theta) = sqrt(2)^k, k = 1..affine_tilts
# (45, 60, 69 deg), each over 180 deg of directions in steps of 72/t deg (Morel & Yu's sampling).
AFFINE_TILT_STEP = float(np.sqrt(2.0))
AFFINE_ROTATE_STEP_DEG = 72.0
# Beyond this many descriptors on both sides a k-d forest is faster than brute force.
_FLANN_ABOVE = 3000
_FLANN_INDEX_KDTREE = 1

_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8))


@dataclass(frozen=True)
class Features:
    """Keypoints (N, 2) in the image's pixel frame (x right, y down) and their descriptors (N, D)."""

    points: np.ndarray
    descriptors: np.ndarray | None
    norm: int = cv2.NORM_L2

    def __len__(self) -> int:
        return len(self.points)

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
    channels = rgb.astype(np.int16)
    brightest, darkest = channels.max(axis=2), channels.min(axis=2)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (5, 5))
    spread = np.sqrt(np.clip(cv2.blur(grey * grey, (5, 5)) - mean * mean, 0.0, None))
    dark = ((brightest < 70) & (brightest - darkest < 12) & (spread < 4.0)).astype(np.uint8)
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
    return Features(points, root_sift(descriptors) if root else descriptors, norm)


# OpenCV's default SIFT contrast threshold: keypoints of weaker extrema are dropped.
SIFT_CONTRAST = 0.04


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


def match(a: Features, b: Features, ratio: float, mutual: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into a, into b) of matches passing Lowe's ratio test, and with ``mutual`` only
    those where each point is the other's nearest neighbour."""
    none = np.zeros(0, np.int64)
    if a.descriptors is None or b.descriptors is None or len(a) < 2 or len(b) < 2:
        return none, none
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


def _knn(a: Features, b: Features, k: int):  # noqa: ANN202
    if a.norm == cv2.NORM_L2 and len(a) > _FLANN_ABOVE and len(b) > _FLANN_ABOVE // 2:
        matcher = cv2.FlannBasedMatcher({"algorithm": _FLANN_INDEX_KDTREE, "trees": 4}, {"checks": 64})
        return matcher.knnMatch(a.descriptors, b.descriptors, k=k)
    return cv2.BFMatcher(a.norm).knnMatch(a.descriptors, b.descriptors, k=k)


def matched_points(a: Features, b: Features, ratio: float, mutual: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The matched point pairs (points in a, points in b) of :func:`match`."""
    ia, ib = match(a, b, ratio, mutual)
    return a.points[ia], b.points[ib]
