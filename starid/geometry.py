"""Directions, rotations and the pinhole camera shared by the catalogue, the search and the simulator.

Conventions used everywhere in starid/:
- Camera frame: x right, y down, z along the boresight; pixel origin at the image's top-left corner,
  boresight through the image centre (width / 2, height / 2); the field of view is horizontal.
- A rotation R maps camera vectors to ICRS: c = R s. Quaternions are (w, x, y, z) of that R.
- Angles between unit vectors come from dot products; axis-angle vectors r (|r| = angle) parametrise
  rotations for the branch-and-bound, as in the paper (Sec. III).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.spatial import cKDTree


def radec_to_vectors(ra_rad: np.ndarray, dec_rad: np.ndarray) -> np.ndarray:
    """Right ascension / declination (radians) -> (N, 3) ICRS unit vectors."""
    cos_dec = np.cos(dec_rad)
    return np.column_stack([cos_dec * np.cos(ra_rad), cos_dec * np.sin(ra_rad), np.sin(dec_rad)])


def focal_length_px(image_width: float, fov_deg: float) -> float:
    """Pinhole focal length in pixels for a horizontal field of view."""
    return 0.5 * image_width / math.tan(math.radians(fov_deg) / 2.0)


def pixels_to_vectors(
    pixels: np.ndarray, image_width: float, image_height: float, fov_deg: float
) -> np.ndarray:
    """(N, 2) pixel centroids (x right, y down, origin top-left) -> (N, 3) camera unit vectors."""
    focal = focal_length_px(image_width, fov_deg)
    rays = np.column_stack(
        [
            (pixels[:, 0] - 0.5 * image_width) / focal,
            (pixels[:, 1] - 0.5 * image_height) / focal,
            np.ones(len(pixels)),
        ]
    )
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def vectors_to_pixels(
    vectors: np.ndarray, image_width: float, image_height: float, fov_deg: float
) -> np.ndarray:
    """(N, 3) camera vectors with z > 0 -> (N, 2) pixel coordinates (inverse of pixels_to_vectors)."""
    focal = focal_length_px(image_width, fov_deg)
    return np.column_stack(
        [
            0.5 * image_width + focal * vectors[:, 0] / vectors[:, 2],
            0.5 * image_height + focal * vectors[:, 1] / vectors[:, 2],
        ]
    )


def merge_by_flux(
    points: np.ndarray, flux: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points closer than `radius` to another (transitively) -> one each, as a detector sees close
    stars: (flux-weighted centres (G, D), summed fluxes (G,), index of each group's brightest
    member (G,), group sizes (G,)). Points may be pixels (D = 2) or unit vectors (D = 3; chord
    radius, centres left to renormalise)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray") if len(points) > 1 else np.empty((0, 2), int)
    if len(pairs) == 0:
        return points, flux, np.arange(len(points)), np.ones(len(points), np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2)
    groups, label = connected_components(graph, directed=False)
    total = np.bincount(label, flux, groups)
    centre = np.column_stack(
        [np.bincount(label, flux * points[:, axis], groups) / total for axis in range(points.shape[1])]
    )
    brightest = np.full(groups, -1)
    for member in np.argsort(flux, kind="stable"):  # brightest last: it overwrites
        brightest[label[member]] = member
    return centre, total, brightest, np.bincount(label, minlength=groups)


def nearest_neighbour_angles(vectors: np.ndarray) -> np.ndarray:
    """(N, 2) angles (radians) from each unit vector to its nearest and second-nearest other vector.

    These are the triplet features: (phi_1, phi_2) for catalogue stars, (theta_1, theta_2) for the
    query stars of one image (paper Sec. IV-A). Needs N >= 3.
    """
    chords, _ = cKDTree(vectors).query(vectors, k=3)
    # chord length d between unit vectors <-> angle 2 asin(d / 2); column 0 is the star itself.
    return 2.0 * np.arcsin(np.minimum(chords[:, 1:3] / 2.0, 1.0))


@numba.njit(cache=True)
def axis_angle_to_matrix(r: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: axis-angle vector r (angle = |r|, any length) -> 3x3 rotation matrix."""
    angle = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    rotation = np.eye(3)
    if angle < 1e-12:
        # First order is exact to machine precision here.
        rotation[0, 1] = -r[2]
        rotation[0, 2] = r[1]
        rotation[1, 0] = r[2]
        rotation[1, 2] = -r[0]
        rotation[2, 0] = -r[1]
        rotation[2, 1] = r[0]
        return rotation
    kx, ky, kz = r[0] / angle, r[1] / angle, r[2] / angle
    s, c = math.sin(angle), math.cos(angle)
    t = 1.0 - c
    rotation[0, 0] = c + kx * kx * t
    rotation[0, 1] = kx * ky * t - kz * s
    rotation[0, 2] = kx * kz * t + ky * s
    rotation[1, 0] = ky * kx * t + kz * s
    rotation[1, 1] = c + ky * ky * t
    rotation[1, 2] = ky * kz * t - kx * s
    rotation[2, 0] = kz * kx * t - ky * s
    rotation[2, 1] = kz * ky * t + kx * s
    rotation[2, 2] = c + kz * kz * t
    return rotation


def solve_wahba(camera_vectors: np.ndarray, catalog_vectors: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum |c_i - R s_i|^2 (Wahba's problem), by SVD (Markley 1988).

    camera_vectors s_i and catalog_vectors c_i are (N, 3) matched unit vectors, N >= 2.
    """
    attitude_profile = catalog_vectors.T @ camera_vectors  # B = sum c_i s_i^T
    u, _, vt = np.linalg.svd(attitude_profile)
    # The middle factor keeps det(R) = +1 (a proper rotation, not a reflection).
    correction = np.diag([1.0, 1.0, np.linalg.det(u) * np.linalg.det(vt)])
    return u @ correction @ vt


def rotation_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation matrix -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    # Pivot on the largest of (w, x, y, z) to avoid dividing by a small number.
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    pivot = int(np.argmax(candidates))
    if pivot == 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = (0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s)
    elif pivot == 1:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = ((m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s)
    elif pivot == 2:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s)
    quaternion = np.array(q) / np.linalg.norm(q)
    if quaternion[0] < 0:
        quaternion = -quaternion
    return tuple(float(v) for v in quaternion)


def quaternion_to_rotation(quaternion: tuple[float, float, float, float]) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> 3x3 rotation matrix."""
    w, x, y, z = np.asarray(quaternion, dtype=float) / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def boresight_ra_dec_roll(rotation: np.ndarray) -> tuple[float, float, float]:
    """Camera -> ICRS rotation -> (ra, dec, roll) of the boresight in degrees.

    roll is the position angle of the image's "up" direction (-y): 0 when up points to celestial
    north, 90 when it points east; range [0, 360). At the celestial poles north is undefined and the
    ICRS +x direction stands in for it.
    """
    boresight = rotation[:, 2]
    up = -rotation[:, 1]
    ra = math.degrees(math.atan2(boresight[1], boresight[0])) % 360.0
    dec = math.degrees(math.asin(max(-1.0, min(1.0, boresight[2]))))
    east = np.cross([0.0, 0.0, 1.0], boresight)
    if np.linalg.norm(east) < 1e-12:
        east = np.cross([1.0, 0.0, 0.0], boresight)
    east /= np.linalg.norm(east)
    north = np.cross(boresight, east)
    roll = math.degrees(math.atan2(float(up @ east), float(up @ north))) % 360.0
    return ra, dec, roll


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees) of the rotation taking a to b: the attitude error between two estimates."""
    relative = a.T @ b
    # atan2(sin, cos) keeps full precision for tiny angles, where acos of the trace alone does not.
    sine = 0.5 * math.hypot(
        relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0], relative[1, 0] - relative[0, 1]
    )
    cosine = 0.5 * (np.trace(relative) - 1.0)
    return math.degrees(math.atan2(sine, cosine))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation drawn uniformly from SO(3) (normalised Gaussian quaternion)."""
    quaternion = rng.normal(size=4)
    return quaternion_to_rotation(tuple(quaternion / np.linalg.norm(quaternion)))
