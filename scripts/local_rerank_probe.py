"""Whether re-ranking the in-region shortlist by local features wins back what clouds cost the
global descriptor. The photos of one split of the demo world, searched in their ISS visibility
region as POST /localize searches them (the active model and index); the first K tiles are then
re-scored by how well the photo's grid of trunk features finds its cells in each tile's grid
(at the rotation the index matched), and the recall of the re-ranked list is reported.

    .venv/bin/python scripts/local_rerank_probe.py --split val
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import shapely
import torch
import torch.nn.functional as F

import model as models
from index.sources import LocalXYZSource
from service.localize.retrieval import active_model
from service.photos import decode_rgb
from turned_index_by_residual import describe_images, held_out

SHORTLIST = 50
WEIGHTS = (0.5, 1.0, 2.0, 4.0, None)  # None: local score alone


def grids(net, images: list[np.ndarray], size: int, stages: int | None, turns: list[int]) -> torch.Tensor:  # noqa: ANN001
    """(N, h*w, C) float16 L2-normalised trunk cells of each image turned counter-clockwise by turns[n]."""
    config = replace(net.config, input_size=size)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), 32):
            batch = models.preprocess(images[start : start + 32], config)
            batch = torch.stack([torch.rot90(b, k, dims=(1, 2)) for b, k in zip(batch, turns[start : start + 32])])
            x = net.backbone.prefix(batch, stages) if stages else net.backbone(batch).grid
            out.append(F.normalize(x.flatten(2).transpose(1, 2), dim=-1).half())
    return torch.cat(out)


def main() -> None:
    split, settings, engine, photos, regions = held_out(__doc__.splitlines()[0])
    ref = active_model(settings)
    net = models.create_model(ref.architecture, weights=ref.path).eval()
    source = LocalXYZSource(settings.resolved_tiles_dir)
    images = [decode_rgb(p.image_path.read_bytes()) for p in photos]
    descriptors = describe_images(engine, images)
    shortlists = []
    for descriptor, region in zip(descriptors, regions):
        [result] = engine.index.search(descriptor[None], region, k=SHORTLIST, nprobe=settings.index_nprobe)
        shortlists.append(result.hits)
    right = [np.array([shapely.covers(h.footprint, p.truth.centroid) for h in hits]) for p, hits in zip(photos, shortlists)]
    reachable = np.mean([r.any() for r in right])
    print(f"{split}: {len(photos)} photos, model {ref.label()}; right tile among the first {SHORTLIST}: {100 * reachable:.1f}%")
    pairs = sorted({(h.tile, h.rotation) for hits in shortlists for h in hits}, key=str)
    slot = {pair: n for n, pair in enumerate(pairs)}
    tile_images = {tile: source.read_tile(tile) for tile in {t for t, _ in pairs}}
    print(f"{len(pairs)} distinct tile-rotations in the shortlists")

    # The trunk's last grid (the 1x1 head's 1280 channels: 4 x 4 cells at 128 px, 8 x 8 at 256 px);
    # the shallower grids (``stages``: 5 or 6) are the function's too, not measured (docs/benchmarks.md).
    variants = [("final grid, 128 px", 128, None), ("final grid, 256 px", 256, None)]
    print("| local cells | score | weight | R@1 | R@10 |\n|---|---|---|---|---|")
    base = np.array([[r[:1].any(), r[:10].any()] for r in right])
    print(f"| none (delivered) | - | - | {100 * base[:, 0].mean():.1f}% | {100 * base[:, 1].mean():.1f}% |", flush=True)
    for name, size, stages in variants:
        started = time.perf_counter()
        database = grids(net, [tile_images[t] for t, _ in pairs], size, stages, [r // 90 for _, r in pairs])
        queries = grids(net, images, size, stages, [0] * len(images))
        chamfer, centred, mutual = [], [], []
        for query, hits in zip(queries, shortlists):
            tiles = database[[slot[(h.tile, h.rotation)] for h in hits]].float()  # (K, T, C)
            similarity = torch.einsum("qc,ktc->kqt", query.float(), tiles)  # (K, Q, T)
            best = similarity.max(dim=2).values  # (K, Q): each query cell's best cell in each tile
            chamfer.append(best.mean(dim=1).numpy())
            centred.append((best - best.mean(dim=0, keepdim=True)).clamp(min=0).mean(dim=1).numpy())
            forward = similarity.argmax(dim=2)  # (K, Q)
            backward = similarity.argmax(dim=1)  # (K, T)
            is_mutual = torch.gather(backward, 1, forward) == torch.arange(similarity.shape[1])
            mutual.append(is_mutual.float().mean(dim=1).numpy())
        seconds = time.perf_counter() - started
        for score_name, local_scores in (("chamfer", chamfer), ("centred", centred), ("mutual NN", mutual)):
            for weight in WEIGHTS:
                hits_at = []
                for hits, local, r in zip(shortlists, local_scores, right):
                    global_score = np.array([h.score for h in hits])
                    z = (local - local.mean()) / (local.std() + 1e-6)
                    g = (global_score - global_score.mean()) / (global_score.std() + 1e-6)
                    score = z if weight is None else g + weight * z
                    order = np.argsort(-score, kind="stable")
                    hits_at.append((r[order][:1].any(), r[order][:10].any()))
                hits_at = np.array(hits_at)
                label = "alone" if weight is None else f"{weight}"
                print(f"| {name} | {score_name} | {label} | {100 * hits_at[:, 0].mean():.1f}% | "
                      f"{100 * hits_at[:, 1].mean():.1f}% |", flush=True)
        print(f"({name}: {seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
