"""Where clouds cost retrieval, and whether handling them in the query photo alone wins it back.
The photos of one split of the demo world, searched in their ISS visibility region as POST
/localize searches them (similarity only, the active model and index; in-region R@1 / R@10):

1. by the photo's cloud fraction (the world's CLOUD_FRACTION column: share of Earth pixels under
   optically thick cloud);
2. with the clouds found in the photo (bright, unsaturated pixels: HSV value >= 200 of 255 and
   saturation <= 40) filled before describing it (OpenCV's Telea inpainting at the model's input
   size, or a blur of the clear ground around them), or kept out of GeM's pooling (each cell of
   the feature grid weighted by its clear share).

    .venv/bin/python scripts/cloud_probe.py --split val
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from service.photos import decode_rgb
from turned_index_by_residual import describe_images, held_out, in_region_hits

CLOUD_VALUE_MIN, CLOUD_SATURATION_MAX = 200, 40
BANDS = ((0.0, 0.05), (0.05, 0.2), (0.2, 0.4), (0.4, 1.0))


def cloud_mask(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: bright, unsaturated pixels (cloud, but also snow, ice and salt flats)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return (hsv[..., 2] >= CLOUD_VALUE_MIN) & (hsv[..., 1] <= CLOUD_SATURATION_MAX)


def inpainted(rgb: np.ndarray, size: int) -> np.ndarray:
    """The photo at ``size`` px with its cloud pixels (dilated by one) inpainted (Telea)."""
    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.dilate(cloud_mask(small).astype(np.uint8), np.ones((3, 3), np.uint8))
    return cv2.inpaint(small, mask, 5, cv2.INPAINT_TELEA)


def blurred_fill(rgb: np.ndarray) -> np.ndarray:
    """Cloud pixels replaced by a Gaussian-weighted mean of the clear ground around them."""
    mask = cv2.dilate(cloud_mask(rgb).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    clear = ((rgb.max(axis=2) > 10) & ~mask).astype(np.float32)  # not cloud, not space
    if not mask.any() or clear.mean() < 0.05:
        return rgb
    sigma = rgb.shape[0] / 16
    weighted = cv2.GaussianBlur(rgb.astype(np.float32) * clear[..., None], (0, 0), sigma)
    weight = cv2.GaussianBlur(clear, (0, 0), sigma)[..., None]
    fill = np.where(weight > 1e-3, weighted / np.maximum(weight, 1e-3), np.median(rgb[clear > 0], axis=0))
    out = rgb.astype(np.float32)
    out[mask] = fill[mask]
    return np.clip(out, 0, 255).astype(np.uint8)


def masked_gem_descriptors(net, images: list[np.ndarray], batch: int = 16) -> np.ndarray:  # noqa: ANN001
    """The network's descriptors with GeM's mean weighted by each grid cell's clear share."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            grid = net.backbone(net.preprocess(chunk)).grid
            h, w = grid.shape[2:]
            clear = [cv2.resize(1.0 - cloud_mask(i).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for i in chunk]
            weight = torch.from_numpy(np.stack(clear))[:, None]
            p = net.aggregator.p
            powered = grid.clamp(min=net.aggregator.eps).pow(p)
            pooled = ((powered * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp(min=1e-6)).pow(1.0 / p)
            out.append(F.normalize(net.projection(F.normalize(pooled, dim=1)), dim=-1).numpy())
    return np.concatenate(out)


def main() -> None:
    split, settings, engine, photos, regions = held_out(__doc__.splitlines()[0])
    if type(engine.net.aggregator).__name__ != "GeM":
        raise SystemExit(f"the masked pooling needs a GeM model, not {type(engine.net.aggregator).__name__}")
    images = [decode_rgb(p.image_path.read_bytes()) for p in photos]

    def hits_of(descriptors: np.ndarray) -> np.ndarray:
        return in_region_hits(engine.index, descriptors, photos, regions, settings.index_nprobe)

    delivered = hits_of(describe_images(engine, images))
    cover = np.array([float(p.columns["CLOUD_FRACTION"]) for p in photos])
    found = np.array([cloud_mask(i).mean() for i in images])
    print(f"{split}: {len(photos)} photos, model {engine.model_ref.label()}; in-region, similarity only; "
          f"cloud fraction mean {cover.mean():.2f}, pixels found cloudy {found.mean():.2f} "
          f"(correlation {np.corrcoef(cover, found)[0, 1]:.2f})")
    print("| cloud fraction | photos | R@1 | R@10 |\n|---|---|---|---|")
    for lo, hi in BANDS:
        band = (cover >= lo) & ((cover < hi) if hi < 1.0 else (cover <= hi))
        print(f"| {lo:.2f}-{hi:.2f} | {int(band.sum())} | {100 * delivered[band, 0].mean():.1f}% | "
              f"{100 * delivered[band, 1].mean():.1f}% |")
    size = engine.net.config.input_size
    rows = [
        ("as delivered", delivered),
        ("clouds inpainted (Telea)", hits_of(describe_images(engine, [inpainted(i, size) for i in images]))),
        ("clouds filled from the clear ground around them", hits_of(describe_images(engine, [blurred_fill(i) for i in images]))),
        ("clouds kept out of GeM's pooling", hits_of(masked_gem_descriptors(engine.net.eval(), images))),
    ]
    print("\n| query photo | R@1 | R@10 |\n|---|---|---|")
    for name, hits in rows:
        print(f"| {name} | {100 * hits[:, 0].mean():.1f}% | {100 * hits[:, 1].mean():.1f}% |", flush=True)


if __name__ == "__main__":
    main()
