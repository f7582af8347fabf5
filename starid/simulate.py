"""Star-tracker scenes as in the ROSIA paper's Sec. V: random attitude, noise, false stars.

A scene is the catalogue seen through a pinhole camera (default 14 x 14 deg, 1024 x 1024 px, so
1 px = 0.0137 deg) at a uniformly random attitude, with Gaussian noise on the pixel positions
(sigma per axis, in px) and on the magnitudes, plus false stars at uniformly random pixels. False
stars take magnitudes drawn from the catalogue's own magnitude distribution, so brightness alone
cannot tell them apart. Stars pushed out of the image by the noise are lost, as a detector would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from starid.catalog import StarCatalog
from starid.geometry import random_rotation, vectors_to_pixels


@dataclass
class Scene:
    """One simulated frame; hip[i] is the true HIP number of star i, -1 for a false star."""

    pixels: np.ndarray  # (N, 2) x right, y down, origin top-left
    mags: np.ndarray  # (N,)
    hip: np.ndarray  # (N,) int
    rotation: np.ndarray  # true camera -> ICRS
    image_width: int
    image_height: int
    fov_deg: float


def simulate_scene(
    catalog: StarCatalog,
    rng: np.random.Generator,
    fov_deg: float = 14.0,
    image_width: int = 1024,
    image_height: int = 1024,
    position_noise_px: float = 0.0,
    mag_noise: float = 0.0,
    false_stars: int = 0,
) -> Scene:
    """One scene of the paper's Sec. V setup; stars in random order."""
    rotation = random_rotation(rng)
    in_camera = catalog.vectors @ rotation  # rows: R^T c, the catalogue in the camera frame
    ahead = np.flatnonzero(in_camera[:, 2] > 0.0)
    pixels = vectors_to_pixels(in_camera[ahead], image_width, image_height, fov_deg)
    pixels += rng.normal(0.0, position_noise_px, size=pixels.shape) if position_noise_px > 0 else 0.0
    inside = _inside(pixels, image_width, image_height)
    indices = ahead[inside]
    pixels = pixels[inside]
    mags = catalog.magnitudes[indices] + (rng.normal(0.0, mag_noise, len(indices)) if mag_noise > 0 else 0.0)
    hip = catalog.hip[indices].astype(np.int64)

    false_pixels = rng.uniform((0.0, 0.0), (image_width, image_height), size=(false_stars, 2))
    false_mags = rng.choice(catalog.magnitudes, size=false_stars)
    pixels = np.vstack([pixels, false_pixels])
    mags = np.concatenate([mags, false_mags])
    hip = np.concatenate([hip, np.full(false_stars, -1, dtype=np.int64)])
    order = rng.permutation(len(hip))
    return Scene(pixels[order], mags[order], hip[order], rotation, image_width, image_height, fov_deg)


def _inside(pixels: np.ndarray, width: float, height: float) -> np.ndarray:
    return (pixels[:, 0] >= 0) & (pixels[:, 0] <= width) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= height)
