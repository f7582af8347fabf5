"""Choose ``lost_in_space_coarse_k`` (service/localize/worldwide.py) on a held-out split.

Not the service's benchmark (that is `astroloc bench localize --lost-in-space`, which also
refines): retrieval only, so that several settings cost seconds. For each photo of ``--split``
sent with no time and no nadir, the first rank of a tile holding its footprint's centre in the
coarse-to-fine search at each ``--coarse-k``, and in a flat search over every zoom at once.

    .venv/bin/python scripts/coarse_k_sweep.py --split val --coarse-k 10 20 30 50 100
"""

from __future__ import annotations

import argparse

from shapely.geometry import Point
from tqdm import tqdm

from service.bench.lost_in_space import first_correct_rank
from service.config import get_settings
from service.localize.retrieval import get_engine
from service.localize.worldwide import CoarseToFine, coarse_to_fine_search
from service.photos import decode_rgb
from world.catalogue import read_photos

POOL = 100  # candidates the refinement job tries at most (settings.lost_in_space_max_candidates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", help="world split (choose on val; test is for reporting)")
    parser.add_argument("--coarse-k", type=int, nargs="+", default=[10, 20, 30, 50, 100])
    args = parser.parse_args()

    settings = get_settings()
    engine = get_engine(settings)
    photos = read_photos(settings.resolved_world_dir, split=args.split)
    ranks: dict[str, list[int | None]] = {f"coarse to fine, coarse_k {k}": [] for k in args.coarse_k} | {"flat": []}
    for photo in tqdm(photos, desc=args.split):
        descriptor = engine.describe([decode_rgb(photo.image_path.read_bytes())])
        centre = Point(photo.truth.centroid.x, photo.truth.centroid.y)
        for k in args.coarse_k:
            plan = CoarseToFine.for_index(engine.index, coarse_k=k)
            found = coarse_to_fine_search(engine.index, descriptor, POOL, plan, settings.index_nprobe)
            ranks[f"coarse to fine, coarse_k {k}"].append(first_correct_rank(found.hits, centre))
        [flat] = engine.index.search(descriptor, None, k=POOL, nprobe=settings.index_nprobe)
        ranks["flat"].append(first_correct_rank(flat.hits, centre))

    print(f"{len(photos)} photos of the {args.split} split, world-wide, no time and no nadir\n")
    print("| search | R@1 | R@10 | R@100 |\n|---|---|---|---|")
    for name, found_at in ranks.items():
        recalls = [sum(r is not None and r <= k for r in found_at) / len(found_at) for k in (1, 10, 100)]
        print(f"| {name} | " + " | ".join(f"{r:.1%}" for r in recalls) + " |")


if __name__ == "__main__":
    main()
