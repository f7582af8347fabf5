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
import shapely
import torch
import torch.nn.functional as F

import model as models
from index.tiles import tile_polygon, tiles_at_zoom
from model.evaluation import load_rgb, visibility_tiles
from service.config import get_settings
from world.catalogue import read_photos
from world.sampling import sample_tles

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
    photos = read_photos(world, args.split)
    tiles = [t for z in range(settings.world_min_zoom, settings.world_max_zoom + 1) for t in tiles_at_zoom(z)]
    polygons = np.asarray([tile_polygon(t) for t in tiles], dtype=object)
    tles = sample_tles()
    regions = [visibility_tiles(p.capture_time, polygons, tles) for p in photos]
    used = np.unique(np.concatenate(regions))
    truth = [shapely.covers(polygons, p.truth.centroid) for p in photos]
    net = models.create_model("lite0-gem", pretrained=True).eval()
    print(f"{args.split}: {len(photos)} photos, {len(used)} tiles in their regions")
    for size in args.sizes:
        started = time.perf_counter()
        tile_images = np.stack([load_rgb(world / "tiles" / f"{t.z}/{t.x}/{t.y}.jpg", size) for t in (tiles[i] for i in used)])
        photo_images = np.stack([load_rgb(p.image_path, size) for p in photos])
        database = [pooled(net, tile_images, size, k) for k in range(4)]
        queries = pooled(net, photo_images, size, 0)
        print(f"{size} px: described in {time.perf_counter() - started:.0f} s")
        print("| size | stage | pooling | dim | R@1 | R@10 |\n|---|---|---|---|---|---|")
        row = {int(t): n for n, t in enumerate(used)}
        for key in sorted(queries) + [COMBINED]:
            db, q = descriptors(database, queries, key)
            hits = []
            for n, region in enumerate(regions):
                scores = np.einsum("c,trc->tr", q[n], db[[row[int(t)] for t in region]]).max(axis=1)
                ranked = region[np.argsort(-scores, kind="stable")]
                right = truth[n][ranked]
                hits.append((right[:1].any(), right[:10].any()))
            hits = np.array(hits)
            stage, pooling = ("5 + 7", "gem, concatenated") if key == COMBINED else key
            print(f"| {size} | {stage} | {pooling} | {q.shape[1]} | {100 * hits[:, 0].mean():.1f}% | {100 * hits[:, 1].mean():.1f}% |", flush=True)


if __name__ == "__main__":
    main()
