"""Retrieval on the real set (`astroloc bench real`'s protocol) for candidate models: the service's
model, the zero-shot ImageNet trunks, and heads fitted without labels on real Sentinel-2 imagery.

"S2-PCA" rows replace a network's projection by a PCA-whitening head (model.whitening.pca_whitening,
512-d) fitted on the aggregator's outputs of the set's Sentinel-2 imagery: every 512-px tile of
every distinct surrounding image (3 x 3 each), at 4 rotations. No photo is seen by the fit; the
evaluated tiles (the surroundings' middle thirds) are among the fitted crops, as a database's own
tiles would be.

    .venv/bin/python experiments/real_retrieval_probe.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from shapely.geometry import box

import model
from model.whitening import pca_whitening
from service.bench.real import DEFAULT_SET, distinct_tiles, load_set, middle_third, retrieval_recall
from service.config import get_settings
from service.localize.retrieval import active_model


def s2_crops(photos) -> list[np.ndarray]:  # noqa: ANN001
    seen, crops = set(), []
    for photo in photos:
        for candidate in photo.candidates:
            if candidate.tile in seen:
                continue
            seen.add(candidate.tile)
            rgb = candidate.surrounding().image
            side = rgb.shape[0] // 3
            crops += [rgb[r * side:(r + 1) * side, c * side:(c + 1) * side] for r in range(3) for c in range(3)]
    return crops


def with_s2_pca(net, crops: list[np.ndarray], dim: int = 512):  # noqa: ANN001, ANN201
    """The network with its projection replaced by a PCA-whitening head fitted on the crops."""
    from model.preprocessing import preprocess

    outputs = []
    with torch.no_grad():
        for start in range(0, len(crops), 32):
            batch = preprocess(crops[start:start + 32], net.config)
            for turns in range(4):
                outputs.append(net.aggregator(net.backbone(torch.rot90(batch, turns, dims=(2, 3)))).numpy())
    weight, bias = pca_whitening(np.concatenate(outputs), dim)
    projection = torch.nn.Linear(weight.shape[1], dim)
    projection.weight.data = torch.as_tensor(weight, dtype=torch.float32)
    projection.bias.data = torch.as_tensor(bias, dtype=torch.float32)
    net.projection = projection
    net.config = type(net.config)(**{**net.config.__dict__, "descriptor_dim": dim})
    return net


def main() -> None:
    photos = load_set(DEFAULT_SET)
    tiles = distinct_tiles(photos)
    tile_images = [middle_third(t) for t in tiles]
    crops = s2_crops(photos)
    ref = active_model(get_settings())
    rows = [
        ("service's model", lambda: model.create_model(ref.architecture, weights=ref.path)),
        ("lite0-gem 128", lambda: model.create_model("lite0-gem", pretrained=True)),
        ("lite1-gem 128", lambda: model.create_model("lite1-gem", pretrained=True)),
        ("lite2-gem 160", lambda: model.create_model("lite2-gem", pretrained=True, input_size=160)),
        ("lite0-gem 128 + S2-PCA", lambda: with_s2_pca(model.create_model("lite0-gem", pretrained=True), crops)),
        ("service's trunk (gem2s) + S2-PCA", lambda: with_s2_pca(
            model.create_model(ref.architecture, weights=ref.path), crops)),
    ]
    with_right = sum(any(box(*t.tile_bounds).covers(p.truth.centroid) for t in tiles) for p in photos)
    print(f"{len(photos)} photos ({with_right} with a right tile), {len(tiles)} tiles x 4 rotations, "
          f"{len(crops)} Sentinel-2 crops for the S2-PCA heads")
    print("| model | R@1 | R@10 | s |\n|---|---|---|---|")
    for name, make in rows:
        started = time.perf_counter()
        hits = retrieval_recall(make(), photos, tiles, tile_images)
        print(f"| {name} | {hits[1]}/{with_right} | {hits[10]}/{with_right} | {time.perf_counter() - started:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
