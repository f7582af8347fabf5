"""Whether describing a photo by several crops finds its tile more often than one descriptor of the
whole frame: a crop that misses a cloud bank may match its tile where the whole frame does not.
The photos of one split of the demo world, each described whole and by crops (the active model, as
POST /localize describes), every crop searched in the photo's ISS visibility region in the service's
index; a tile's score is the whole frame's similarity, or the mean / max over the frame and its crops.
In-region R@1 / R@10, similarity only.

    .venv/bin/python scripts/multicrop_probe.py --split val
"""

from __future__ import annotations

import numpy as np
import shapely

from service.photos import decode_rgb
from turned_index_by_residual import describe_images, held_out

K_ALL = 400  # more than any visibility region holds: every tile of the region is scored


def crops(image: np.ndarray, fraction: float) -> list[np.ndarray]:
    """The four corner crops and the centre crop, each ``fraction`` of the side."""
    side = image.shape[0]
    size = int(round(side * fraction))
    far = side - size
    mid = far // 2
    return [image[y : y + size, x : x + size] for y, x in ((0, 0), (0, far), (far, 0), (far, far), (mid, mid))]


def main() -> None:
    split, settings, engine, photos, regions = held_out(__doc__.splitlines()[0])
    images = [decode_rgb(p.image_path.read_bytes()) for p in photos]
    print(f"{split}: {len(photos)} photos")
    print("| crops | combination | R@1 | R@10 |\n|---|---|---|---|")
    whole = describe_images(engine, images)
    for fraction in (0.5, 0.7):
        pieces = describe_images(engine, [c for image in images for c in crops(image, fraction)]).reshape(len(images), 5, -1)
        results = {name: [] for name in ("whole", "mean", "max", "whole + mean of crops")}
        for n, (photo, region) in enumerate(zip(photos, regions)):
            views = np.concatenate([whole[n][None], pieces[n]])
            searched = engine.index.search(views, [region] * len(views), k=K_ALL, nprobe=settings.index_nprobe)
            tiles = [h.tile for h in searched[0].hits]
            table = np.full((len(views), len(tiles)), np.nan)
            column = {t: j for j, t in enumerate(tiles)}
            for v, result in enumerate(searched):
                for h in result.hits:
                    if h.tile in column:
                        table[v, column[h.tile]] = h.score
            table = np.nan_to_num(table, nan=-1.0)
            right = np.array([shapely.covers(h.footprint, photo.truth.centroid) for h in searched[0].hits])
            for name, score in (("whole", table[0]), ("mean", table.mean(axis=0)), ("max", table.max(axis=0)),
                                ("whole + mean of crops", table[0] + table[1:].mean(axis=0))):
                order = np.argsort(-score, kind="stable")
                results[name].append((right[order][:1].any(), right[order][:10].any()))
        for name, hits in results.items():
            hits = np.array(hits)
            print(f"| 5 at {fraction:.0%} of the side | {name} | {100 * hits[:, 0].mean():.1f}% | {100 * hits[:, 1].mean():.1f}% |", flush=True)


if __name__ == "__main__":
    main()
