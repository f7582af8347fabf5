"""Which 512-d head on the demo model's trunk holds on both worlds: real Sentinel-2 tiles (the real
set, `astroloc bench real`'s retrieval protocol) and the demo world's Blue Marble (validation and
test splits, in-region and world-wide, the database at 4 rotations as the service indexes it).

The trunk and its two-depth GeM pooling (``astroloc-lite-gem2s``) are fixed; only the linear head
changes, so the pooled 1392-d descriptors are computed once per image (cached under
var/experiments/) and every head is a matrix product. Heads (model.whitening):

- ``demo``: the shipped head (learned whitening on Blue Marble photo-tile pairs);
- ``S2-PCA``: PCA-whitening fitted on Sentinel-2 imagery only;
- ``BM+S2-PCA``: PCA-whitening of Blue Marble database tiles and Sentinel-2 imagery, each domain
  weighted equally;
- ``demo -> S2 mean``: the shipped head re-centred on the Sentinel-2 imagery's mean;
- ``demo -> BM+S2-PCA``: the shipped head followed by a PCA-whitening of its outputs on both
  domains (one linear layer once composed).

What the Sentinel-2 fits see, two ways (no photo is ever fitted on):
- "all": every 512-px crop of every distinct surrounding image of the set (945 x 4 rotations),
  the evaluated tiles among them, as a database's own tiles would be;
- "2-fold": photos split in two halves by photo id; a half is evaluated with heads fitted on the
  surroundings of the other half's candidates, leaving out every surrounding that is also a
  candidate of the evaluated half (the evaluated photos' gallery tiles are never fitted on).

    .venv/bin/python experiments/head_selection.py
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from shapely.geometry import box

import model
from index.tiles import tile_polygon, tiles_at_zoom
from model.evaluation import load_retrieval_set, load_rgb, recall_of_descriptors
from model.whitening import pca_whitening
from service.bench.real import DEFAULT_SET, distinct_tiles, load_set, middle_third
from service.config import get_settings
from service.localize.retrieval import active_model

CACHE = Path("var/experiments/head_selection")
DIM = 512


def pooled(net, images, rotations=(0, 90, 180, 270)) -> np.ndarray:  # noqa: ANN001
    """The trunk's L2-normalised two-depth GeM (N, R, 1392), the head left out."""
    projection, config = net.projection, net.config
    net.projection = torch.nn.Identity()
    net.config = replace(config, descriptor_dim=projection.in_features)
    try:
        return model.describe(net, list(images), rotations=rotations, batch_size=64)
    finally:
        net.projection, net.config = projection, config


def cached(name: str, compute) -> np.ndarray:  # noqa: ANN001
    path = CACHE / f"{name}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    values = compute()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    print(f"  {name}: {values.shape} in {time.perf_counter() - started:.0f} s", flush=True)
    return values


def surroundings(candidates) -> list[np.ndarray]:  # noqa: ANN001
    """Every 512-px crop (3 x 3) of each surrounding image."""
    crops = []
    for candidate in candidates:
        rgb = candidate.surrounding().image
        side = rgb.shape[0] // 3
        crops += [rgb[r * side:(r + 1) * side, c * side:(c + 1) * side] for r in range(3) for c in range(3)]
    return crops


def apply(head, features: np.ndarray) -> np.ndarray:  # noqa: ANN001
    weight, bias = head
    out = features @ weight.T + bias
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def compose(first, second):  # noqa: ANN001, ANN201
    """second(first(f)) as one linear layer (first's output is not normalised in between: the
    service's head is one layer, and normalising after it is all the network does)."""
    w1, b1 = first
    w2, b2 = second
    return (w2 @ w1).astype(np.float32), (w2 @ b1 + b2).astype(np.float32)


def balanced(*domains: np.ndarray) -> np.ndarray:
    """Rows of each domain repeated to the largest one's count, so each weighs the same."""
    most = max(len(d) for d in domains)
    return np.concatenate([np.resize(d, (most, d.shape[1])) for d in domains])


def real_hits(queries: np.ndarray, database: np.ndarray, photos, tiles, keep) -> tuple[int, int, int]:  # noqa: ANN001
    """(R@1, R@10, photos with a right tile) over the photos with ``keep`` true."""
    scores = np.einsum("qd,trd->qtr", queries, database).max(axis=2)
    polygons = [box(*t.tile_bounds) for t in tiles]
    r1 = r10 = total = 0
    for photo, row, kept in zip(photos, scores, keep, strict=True):
        right = np.array([p.covers(photo.truth.centroid) for p in polygons])
        if not kept or not right.any():
            continue
        ranked = np.argsort(-row, kind="stable")
        total += 1
        r1 += bool(right[ranked[:1]].any())
        r10 += bool(right[ranked[:10]].any())
    return r1, r10, total


def main() -> None:  # noqa: PLR0915
    settings = get_settings()
    ref = active_model(settings)
    net = model.create_model(ref.architecture, weights=ref.path)
    demo_head = (net.projection.weight.detach().numpy().astype(np.float64),
                 net.projection.bias.detach().numpy().astype(np.float64))
    size = net.config.input_size
    print(f"trunk and demo head: {ref.label()}; cache {CACHE}")

    # --- the demo world (Blue Marble) ---
    world = Path(settings.data_dir) / "world"
    zooms = sorted(int(z) for z in json.loads((world / "world.json").read_text())["tiles"])
    bm_tiles = [t for z in zooms for t in tiles_at_zoom(z)]
    bm_polygons = [tile_polygon(t) for t in bm_tiles]
    bm_db = cached("bm_tiles", lambda: pooled(net, [load_rgb(world / "tiles" / f"{t.z}/{t.x}/{t.y}.jpg", size)
                                                    for t in bm_tiles]))
    splits = {s: load_retrieval_set(world, s, size, bm_polygons) for s in ("val", "test")}
    bm_q = {s: cached(f"bm_{s}", lambda s=s: pooled(net, splits[s].images, rotations=(0,))) for s in splits}

    # --- the real set (Sentinel-2) ---
    photos = load_set(DEFAULT_SET)
    tiles = distinct_tiles(photos)
    from PIL import Image

    s2_db = cached("s2_tiles", lambda: pooled(net, [middle_third(t) for t in tiles]))
    s2_q = cached("s2_photos", lambda: pooled(
        net, [np.asarray(Image.open(p.photo_path).convert("RGB")) for p in photos], rotations=(0,)))[:, 0]
    crop_features = cached("s2_crops", lambda: pooled(net, surroundings(tiles)))  # (105 * 9, 4, D)
    crops_of = {t.tile: crop_features[9 * n:9 * (n + 1)].reshape(-1, crop_features.shape[-1])
                for n, t in enumerate(tiles)}

    bm_fit = bm_db.reshape(-1, bm_db.shape[-1])

    def heads(s2_fit: np.ndarray) -> dict:
        mean_shift = (demo_head[0], -demo_head[0] @ s2_fit.mean(axis=0))
        demo_out_bm = bm_fit @ demo_head[0].T + demo_head[1]
        demo_out_s2 = s2_fit @ demo_head[0].T + demo_head[1]
        rows = {
            "demo": demo_head,
            "S2-PCA": pca_whitening(s2_fit, DIM),
            "BM+S2-PCA": pca_whitening(balanced(bm_fit, s2_fit), DIM),
            "BM-PCA": pca_whitening(bm_fit, DIM),
            "demo -> S2 mean": mean_shift,
            "demo -> BM+S2-PCA": compose(demo_head, pca_whitening(balanced(demo_out_bm, demo_out_s2), DIM)),
        }
        return {k: (np.asarray(w, np.float64), np.asarray(b, np.float64)) for k, (w, b) in rows.items()}

    # Real set: fitted on all the crops, and 2-fold.
    all_heads = heads(np.concatenate(list(crops_of.values())))
    order = sorted(range(len(photos)), key=lambda i: photos[i].photo_id)
    folds = [set(order[0::2]), set(order[1::2])]
    fold_heads = []
    for held in folds:
        evaluated_tiles = {c.tile for i in held for c in photos[i].candidates}
        fit_tiles = {c.tile for i in range(len(photos)) if i not in held for c in photos[i].candidates}
        fit = np.concatenate([crops_of[t] for t in sorted(fit_tiles - evaluated_tiles)])
        print(f"  fold of {len(held)} photos: fitted on {len(fit_tiles - evaluated_tiles)} surroundings "
              f"({len(fit)} crop views)", flush=True)
        fold_heads.append((held, heads(fit)))

    # Fitted on each database's own tiles (Blue Marble for the demo world, Sentinel-2 for the real
    # set): what an index build could fit, unsupervised, on the imagery it indexes.
    def own_database(fit: np.ndarray) -> dict:
        out = fit @ demo_head[0].T + demo_head[1]
        return {
            "demo, centred on the database": (demo_head[0], -demo_head[0] @ fit.mean(axis=0)),
            "demo -> database PCA (power 0.25)": compose(demo_head, pca_whitening(out, DIM)),
            "trunk + database PCA": pca_whitening(fit, DIM),
        }

    per_database_bm = own_database(bm_fit)
    per_database_s2 = own_database(np.concatenate(list(crops_of.values())))
    per_database_folds = []
    for held in folds:
        evaluated_tiles = {c.tile for i in held for c in photos[i].candidates}
        fit_tiles = {c.tile for i in range(len(photos)) if i not in held for c in photos[i].candidates}
        per_database_folds.append((held, own_database(np.concatenate([crops_of[t] for t in sorted(fit_tiles - evaluated_tiles)]))))

    print("\n| head | real R@1 (all) | real R@10 (all) | real R@1 (2-fold) | real R@10 (2-fold) "
          "| BM val in-region R@1 / R@10 | BM val world R@100 | BM test in-region R@1 / R@10 | BM test world R@100 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, head in all_heads.items():
        r1, r10, total = real_hits(apply(head, s2_q), apply(head, s2_db), photos, tiles, [True] * len(photos))
        f1 = f10 = 0
        for held, fitted in fold_heads:
            keep = [i in held for i in range(len(photos))]
            a, b, _ = real_hits(apply(fitted[name], s2_q), apply(fitted[name], s2_db), photos, tiles, keep)
            f1, f10 = f1 + a, f10 + b
        cells = [f"{r1}/{total}", f"{r10}/{total}", f"{f1}/{total}", f"{f10}/{total}"]
        for split in ("val", "test"):
            m = recall_of_descriptors(apply(head, bm_q[split]), apply(head, bm_db), bm_polygons, splits[split])
            cells += [f"{m['region_recall@1']:.1%} / {m['region_recall@10']:.1%}", f"{m['recall@100']:.1%}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    for name in per_database_bm:
        s2_head = tuple(np.asarray(a, np.float64) for a in per_database_s2[name])
        r1, r10, total = real_hits(apply(s2_head, s2_q), apply(s2_head, s2_db), photos, tiles, [True] * len(photos))
        f1 = f10 = 0
        for held, fitted in per_database_folds:
            keep = [i in held for i in range(len(photos))]
            head = tuple(np.asarray(a, np.float64) for a in fitted[name])
            a, b, _ = real_hits(apply(head, s2_q), apply(head, s2_db), photos, tiles, keep)
            f1, f10 = f1 + a, f10 + b
        cells = [f"{r1}/{total}", f"{r10}/{total}", f"{f1}/{total}", f"{f10}/{total}"]
        bm_head = tuple(np.asarray(a, np.float64) for a in per_database_bm[name])
        for split in ("val", "test"):
            m = recall_of_descriptors(apply(bm_head, bm_q[split]), apply(bm_head, bm_db), bm_polygons, splits[split])
            cells += [f"{m['region_recall@1']:.1%} / {m['region_recall@10']:.1%}", f"{m['recall@100']:.1%}"]
        print(f"| {name} (fitted per database) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
