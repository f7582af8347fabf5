"""Which depth of the ImageNet trunk tells a photo's tile from its neighbours best? In-region recall
of global descriptors pooled from each stage of EfficientNet-Lite0 (nothing trained): the photos of
one split of the demo world at 0 degrees against the tiles meeting their ISS visibility region at
4 rotations, as POST /localize ranks by similarity (no prior).

    .venv/bin/python scripts/stage_probe.py --split val
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

import model as models
from index.tiles import tile_polygon, tiles_at_zoom
from model.evaluation import RetrievalSet, load_retrieval_set, load_rgb, recall_of_descriptors
from service.config import get_settings

STAGES = (3, 4, 5, 6, 7)  # block stages kept; 7 = with the 1x1 head (1280 channels)
COMBINED = ((5, "gem"), (7, "gem"))  # one row: stage 5 and the head, concatenated


def pooled(net, images: np.ndarray, size: int, turns: int) -> dict:  # noqa: ANN001
    """{(stage, pooling): (N, C) descriptors} of the images turned counter-clockwise by ``turns``."""
    trunk = net.backbone
    config = replace(net.config, input_size=size)
    out: dict = {}
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            batch = models.preprocess(list(images[start : start + 64]), config)
            x = torch.rot90(batch, turns, dims=(2, 3))
            x = trunk.bn1(trunk.conv_stem(x))
            for stage, block in enumerate(trunk.blocks, start=1):
                x = block(x)
                grids = [(stage, x)] if stage in STAGES and stage < 7 else []
                if stage == 7:
                    grids.append((7, trunk.bn2(trunk.conv_head(x))))
                for key, grid in grids:
                    gem = grid.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
                    out.setdefault((key, "gem"), []).append(gem)
                    out.setdefault((key, "avg"), []).append(grid.mean(dim=(2, 3)))
                    out.setdefault((key, "max"), []).append(grid.amax(dim=(2, 3)))
    return {key: torch.cat(parts).numpy() for key, parts in out.items()}


def normalised(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    x = x - mean
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-9)


def descriptors(database: list[dict], queries: dict, key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Tiles (T, 4, C) and photos (N, C) of one pooled stage, centred on the upright tiles' mean
    and L2-normalised; a tuple of keys concatenates their descriptors, each normalised."""
    if isinstance(key[0], tuple):
        parts = [descriptors(database, queries, part) for part in key]
        return (normalised(np.concatenate([d for d, _ in parts], axis=-1), 0.0),
                normalised(np.concatenate([q for _, q in parts], axis=-1), 0.0))
    mean = database[0][key].mean(axis=0)
    return np.stack([normalised(d[key], mean) for d in database], axis=1), normalised(queries[key], mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    settings = get_settings()
    world = settings.resolved_world_dir
    tiles = [t for z in range(settings.world_min_zoom, settings.world_max_zoom + 1) for t in tiles_at_zoom(z)]
    polygons = np.asarray([tile_polygon(t) for t in tiles], dtype=object)
    net = models.create_model("lite0-gem", pretrained=True).eval()
    for size in args.sizes:
        started = time.perf_counter()
        photos = load_retrieval_set(world, args.split, size, polygons)
        # Only the tiles some photo's region meets are described; regions renumbered into them.
        used = np.unique(np.concatenate(photos.region_tiles))
        row = np.full(len(tiles), -1)
        row[used] = np.arange(len(used))
        in_used = RetrievalSet(photos.split, photos.images, photos.centres, [row[r] for r in photos.region_tiles])
        tile_images = np.stack([load_rgb(world / "tiles" / f"{t.z}/{t.x}/{t.y}.jpg", size) for t in (tiles[i] for i in used)])
        database = [pooled(net, tile_images, size, k) for k in range(4)]
        queries = pooled(net, photos.images, size, 0)
        print(f"{args.split}: {len(photos)} photos, {len(used)} tiles in their regions; "
              f"{size} px: described in {time.perf_counter() - started:.0f} s")
        print("| size | stage | pooling | dim | R@1 | R@10 |\n|---|---|---|---|---|---|")
        for key in sorted(queries) + [COMBINED]:
            db, q = descriptors(database, queries, key)
            recall = recall_of_descriptors(q[:, None], db, polygons[used], in_used)
            stage, pooling = ("5 + 7", "gem, concatenated") if key == COMBINED else key
            print(f"| {size} | {stage} | {pooling} | {q.shape[1]} | {100 * recall['region_recall@1']:.1f}% | "
                  f"{100 * recall['region_recall@10']:.1f}% |", flush=True)

if __name__ == "__main__":
    main()
