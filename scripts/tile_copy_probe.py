"""How hard a tile-copy pair (``TrainConfig.tile_pairs``) is next to a photo pair, for the demo
model (the committed checkpoint): for an augmented copy of a database tile
(``model.training.tile_copies``, the config's augmentation) and for a training photo turned to its
tile's orientation, the cosine similarity to the matching tile and whether that tile is the
nearest of all database tiles (R@1 over the 5,440 tiles, no region). An easy pair teaches the
loss little; one far harder than the photos pulls towards the augmentation.

    .venv/bin/python scripts/tile_copy_probe.py --config configs/train-lite-large-tile-pairs.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import model
from model.descriptors import describe
from model.training import TrainConfig, load_world, tile_copies
from service.config import get_settings


def report(label: str, queries: np.ndarray, matching: np.ndarray, database: np.ndarray) -> None:
    """Cosine to the matching tile (median) and the share whose matching tile is the nearest."""
    cosine = np.einsum("nd,nd->n", queries, database[matching])
    nearest = np.argmax(queries @ database.T, axis=1)
    print(f"{label}: {len(queries)} pairs, median cosine {np.median(cosine):.3f}, "
          f"matching tile nearest of {len(database)} for {100 * np.mean(nearest == matching):.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--pairs", type=int, default=1000, help="pairs of each kind (drawn with seed 0)")
    args = parser.parse_args()
    config = TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
    settings = get_settings()
    net = model.create_model(settings.demo_architecture, weights=settings.demo_checkpoint).eval()
    data = load_world(config.world_dir, net.config.input_size, config.t_iou, train_world_dir=config.train_world_dir)
    rng = np.random.default_rng(0)
    database = describe(net, data.tile_images, rotations=(0,))[:, 0]

    tiles = rng.choice(len(data.tile_images), min(args.pairs, len(data.tile_images)), replace=False)
    copies = tile_copies(data, config)
    report("tile copy vs clean tile", describe(net, np.stack([copies[t] for t in tiles]), rotations=(0,))[:, 0],
           tiles, database)

    photos = rng.choice(len(data.train_images), min(args.pairs, len(data.train_images)), replace=False)
    matching = np.array([int(rng.choice(data.positives[q])) for q in photos])
    turned = np.stack([np.rot90(data.train_images[q], -int(data.train_rotation[q])) for q in photos])
    report("training photo vs its tile", describe(net, turned, rotations=(0,))[:, 0], matching, database)


if __name__ == "__main__":
    main()
