"""In-region recall of two tile indexes of the active model, by how far each photo is turned from
the nearest quarter turn (its residual, 0-45 deg): does an index with in-between turns
(``index_turns_deg``) find the photos the quarter turns miss? Retrieval only, as POST /localize
ranks by similarity (no prior); the photos of one split of the demo world.

    ASTROLOC_INDEX_TURNS_DEG='[45]' ASTROLOC_INDEX_DIR=var/index-turn45 astroloc bench prior --no-write  # builds it
    .venv/bin/python scripts/turned_index_by_residual.py --split val var/index var/index-turn45
"""

from __future__ import annotations

import argparse

import numpy as np
import shapely

from index.search import ShardedIndex
from model.evaluation import visibility_region_at
from service.bench.prior import describe_photos
from service.config import get_settings
from service.localize.retrieval import active_model, get_engine
from world.catalogue import read_photos
from world.sampling import sample_tles

BANDS = ((0, 15), (15, 30), (30, 45))


def visibility_regions(photos: list) -> list:
    """Each photo's search region: the ground that sees the ISS at its capture time (the TLEs)."""
    tles = sample_tles()
    return [visibility_region_at(photo.capture_time, tles) for photo in photos]


def held_out(description: str) -> tuple:
    """The command line's ``--split`` (val or test): (settings, the retrieval engine of the active
    model, the split's photos, their visibility regions)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--split", choices=("val", "test"), default="val")
    args = parser.parse_args()
    settings = get_settings()
    photos = read_photos(settings.resolved_world_dir, args.split)
    return args.split, settings, get_engine(settings), photos, visibility_regions(photos)


def describe_images(engine, images: list[np.ndarray], batch: int = 16) -> np.ndarray:  # noqa: ANN001
    """Descriptors of decoded photos through the retrieval engine, as POST /localize describes them."""
    return np.concatenate([engine.describe(images[i : i + batch]) for i in range(0, len(images), batch)])


def in_region_hits(index: ShardedIndex, descriptors: np.ndarray, photos: list, regions: list, nprobe: int) -> np.ndarray:
    """(N, 2) bool: the photo's first tile / one of its first 10 contains its footprint's centre."""
    hits = np.zeros((len(photos), 2), bool)
    for n, (photo, descriptor, region) in enumerate(zip(photos, descriptors, regions)):
        [result] = index.search(descriptor[None], region, k=10, nprobe=nprobe)
        found = [shapely.covers(hit.footprint, photo.truth.centroid) for hit in result.hits]
        hits[n] = any(found[:1]), any(found)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("indexes", nargs="+", help="index directories built with the active model")
    args = parser.parse_args()

    settings = get_settings()
    photos = read_photos(settings.resolved_world_dir, args.split)
    descriptors = describe_photos(settings, photos)
    key = active_model(settings).index_key
    regions = visibility_regions(photos)
    residual = np.array([abs((p.orientation_deg + 45) % 90 - 45) for p in photos])
    print(f"{args.split}: {len(photos)} photos; in-region R@1 / R@10 by residual turn (photos per band: "
          + ", ".join(f"{lo}-{hi} deg {int(((residual >= lo) & (residual < hi + (hi == 45))).sum())}" for lo, hi in BANDS) + ")")
    print("| index | rotations | all | " + " | ".join(f"{lo}-{hi} deg" for lo, hi in BANDS) + " |")
    print("|---|---|---|" + "---|" * len(BANDS))
    for directory in args.indexes:
        index = ShardedIndex.open(directory, key)
        hits = in_region_hits(index, descriptors, photos, regions, settings.index_nprobe)
        cells = [f"{100 * hits[:, 0].mean():.1f} / {100 * hits[:, 1].mean():.1f}"]
        for lo, hi in BANDS:
            band = (residual >= lo) & (residual < hi + (hi == 45))
            cells.append(f"{100 * hits[band, 0].mean():.1f} / {100 * hits[band, 1].mean():.1f}")
        print(f"| {directory} | {len(index.rotations)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
