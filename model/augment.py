"""Training augmentation: database tiles made to look like astronaut photos (AstroLoc Sec. 4).

Astronaut photos differ from the nadir, cloud-free satellite tiles of the database by their
orientation (any angle), their scale and framing (oblique, cropped), their colours (film, white
balance, sun elevation) and the atmosphere between camera and ground (haze). The paper trains with
rotations, colour jitter and crops; we add a haze veil and, optionally, clouds (white blobs of
smoothed noise: 70% of astronaut photos have some, the tiles none). Generic augmentations, not our
photo simulator (world/photosim.py): the model meets real photos and real Sentinel-2 tiles later.

Built from torchvision.transforms.v2 on uint8 tensors, one image at a time (each its own draw).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

# Blue-grey of Rayleigh-scattering haze (RGB 0-255).
HAZE_RGB = torch.tensor([165.0, 185.0, 215.0]).view(3, 1, 1)
CLOUD_PROBABILITY = 0.7  # share of augmented images given clouds (EOL: most photos have some)


@dataclass(frozen=True)
class Augmentation:
    """Strengths of each augmentation; ``none()`` leaves images unchanged."""

    rotation_deg: float = 180.0  # uniform in [-x, x] on top of the quarter turns of the pairs
    crop_scale: tuple[float, float] = (0.5, 1.0)  # RandomResizedCrop area fraction
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    colour_cast: float = 0.1  # per-channel gains in [1 - x, 1 + x] (white balance, film)
    haze: float = 0.35  # veil opacity drawn uniformly in [0, haze]
    clouds: float = 0.0  # cloud cover drawn uniformly in [0, clouds] (for CLOUD_PROBABILITY of the images)
    probability: float = 0.8  # chance that an image is augmented at all

    @classmethod
    def none(cls) -> Augmentation:
        return cls(rotation_deg=0.0, crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0,
                   saturation=0.0, colour_cast=0.0, haze=0.0, probability=0.0)

    def transform(self, size: int) -> v2.Transform:
        """Crop, rotate, jitter colours (torchvision); haze is added by :func:`augment`."""
        steps: list[v2.Transform] = []
        if self.crop_scale != (1.0, 1.0):
            steps.append(v2.RandomResizedCrop(size, scale=self.crop_scale, ratio=(0.8, 1.25), antialias=True))
        if self.rotation_deg:
            # Rotating a crop leaves black corners: the photos' frames have none, so crop again
            # to the inscribed square afterwards (side / (|cos| + |sin|) at worst, 1/sqrt 2).
            steps += [v2.RandomRotation(self.rotation_deg), v2.CenterCrop(int(size / 2**0.5)),
                      v2.Resize(size, antialias=True)]
        if any((self.brightness, self.contrast, self.saturation)):
            # No hue jitter: torchvision's is 5x the cost of the rest; colour_cast stands for it.
            steps.append(v2.ColorJitter(self.brightness, self.contrast, self.saturation))
        return v2.Compose(steps) if steps else v2.Identity()


def augment(images, augmentation: Augmentation, rng: np.random.Generator) -> list[np.ndarray]:  # noqa: ANN001
    """Augmented copies of uint8 (S, S, 3) images. Draws come from torch's generator (seeded by
    the training run) and ``rng`` (which images, colour cast, haze)."""
    out = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-image ops this small run 50x slower split over busy cores
    try:
        for image in images:
            image = np.array(image)  # a writable copy
            if augmentation.probability <= 0 or rng.random() >= augmentation.probability:
                out.append(image)
                continue
            tensor = augmentation.transform(image.shape[0])(torch.from_numpy(image).permute(2, 0, 1)).float()
            if augmentation.colour_cast:
                gains = rng.uniform(1 - augmentation.colour_cast, 1 + augmentation.colour_cast, size=3)
                tensor = tensor * torch.tensor(gains, dtype=torch.float32).view(3, 1, 1)
            if augmentation.haze:
                opacity = float(rng.uniform(0.0, augmentation.haze))
                tensor = tensor * (1 - opacity) + HAZE_RGB * opacity
            if augmentation.clouds and rng.random() < CLOUD_PROBABILITY:
                veil = torch.from_numpy(cloud_opacity(tensor.shape[1], rng.uniform(0.0, augmentation.clouds), rng))
                brightness = float(rng.uniform(210.0, 250.0))
                tensor = tensor * (1 - veil) + brightness * veil
            out.append(tensor.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    finally:
        torch.set_num_threads(threads)
    return out


def cloud_opacity(size: int, cover: float, rng: np.random.Generator) -> np.ndarray:
    """(size, size) float32 opacity in [0, 1]: white noise smoothed at a random scale (cloud fields
    from a few to tens of pixels across), thresholded so that about ``cover`` of the image is
    under cloud, with soft edges."""
    if cover <= 0.0:
        return np.zeros((size, size), np.float32)
    sigma = float(rng.uniform(0.03, 0.12)) * size
    coarse, fine = (cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), s)
                    for s in (sigma, sigma / 4))
    field = coarse / (coarse.std() + 1e-9) + 0.3 * fine / (fine.std() + 1e-9)  # ragged edges
    threshold = np.quantile(field, 1.0 - cover)
    softness = 0.15 * (field.max() - field.min()) + 1e-6
    return np.clip((field - threshold) / softness + 0.5, 0.0, 1.0).astype(np.float32)
