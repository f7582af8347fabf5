"""Training the retrieval model the AstroLoc way, on a world of tiles and astronaut photos.

Each iteration draws a batch of B query-tile pairs (a photo and a database tile overlapping its
footprint with IoU > t_iou, no two pairs of the batch overlapping on the ground, so every other
pair is a negative: pair_loss, Eq. 1-5) and a MUM batch of H quadruplets (4 views of one place:
a tile, the tile turned, a crop of it, the tile of the next zoom level at its centre; all drawn
from one cluster of the database chosen by the queries' cluster counts: mum_loss, Eq. 9). The
clusters are recomputed every ``mining_every`` iterations with the current model (Sec. 4.3).

Pure training code: reads a world directory (world/ layout: tiles/{z}/{x}/{y}.jpg,
queries.csv, queries/*.jpg), writes checkpoints, the final state_dict and metrics into ``out_dir``.
The training job (worker/train.py) publishes them to the model store.

Fine-tuning an ImageNet trunk (``pretrained``: ``astroloc-lite``, ``astroloc-lite-gem``) takes what the
paper's recipe takes for granted with DINOv2 (docs/training.md, "Why careless fine-tuning loses
recall"): the head trained first on a frozen trunk (``head_warmup``), a lower rate for the trunk
than for the head (``trunk_lr_scale``), the first stages and the batch-norm statistics kept
(``frozen_stages``, ``freeze_bn``), a warm-up + cosine schedule, photo-like augmentation of the
tiles (model/augment.py) and model selection on the validation split (``validate_every``: the
best validation checkpoint becomes the model; the test split is evaluated once, at the end).
Recall is measured as the service searches: inside the ISS visibility region, and world-wide
(model/evaluation.py).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from shapely import STRtree
from tqdm import tqdm

from geo import overlapping_pairs
from geo.lonlat import geodesic_distance_km
from index.tiles import Tile, tile_at, tile_polygon, tiles_at_zoom
from model.augment import Augmentation, augment
from model.evaluation import (
    ROTATIONS,
    RetrievalSet,
    describe_tiles,
    load_retrieval_set,
    load_rgb,
    recall_of_descriptors,
    retrieval_recall,
)
from model.feature_cache import PrefixRunner, suffix_descriptors
from model.losses import mum_loss, pair_loss, total_loss
from model.mining import SAMPLINGS, cluster_database, random_items
from world.catalogue import read_photos

log = logging.getLogger(__name__)
LOSSES = ("pair", "ms", "pair+ms")
SCHEDULES = ("constant", "cosine")
# How the head starts, and how reports say it (closed-form heads: model.whitening).
HEAD_INIT_WORDS = {
    "random": "at random",
    "whitening": "by learned whitening on the training pairs",
    "pca-whitening": "by PCA-whitening of the database tiles",
}
HEAD_INITS = tuple(HEAD_INIT_WORDS)
# Augmentations by name: "jitter" is mild brightness/contrast only (what the from-scratch demo
# model used), "photo" the paper's Sec. 4 set: rotations, crops, colours, haze (model/augment.py).
AUGMENTATIONS = {
    "none": Augmentation.none(),
    "jitter": Augmentation(rotation_deg=0.0, crop_scale=(1.0, 1.0), brightness=0.2, contrast=0.2,
                           saturation=0.0, colour_cast=0.0, haze=0.0, probability=1.0),
    "photo": Augmentation(),
    # "photo" with clouds (white blobs of smoothed noise, cover up to 50%): what the nuisance
    # ablation (scripts/nuisance_ablation.py) found retrieval loses most to.
    "photo-clouds": Augmentation(clouds=0.5),
}


@dataclass
class TrainConfig:
    """One training run; defaults are the paper's (Sec. 5.1) where they fit a CPU demo."""

    world_dir: str = "var/world"
    # Training photos from another world (``astroloc world build`` with the same seed and more
    # queries: its first photos and its splits are world_dir's); tiles, validation and test stay
    # world_dir's. None: world_dir's own training photos.
    train_world_dir: str | None = None
    zooms: list[int] | None = None  # database zoom levels to use (default: all of the world's)
    arch: str = "earthloc-nano"
    pretrained: bool = False  # start the backbone from its packaged ImageNet weights
    init_weights: str | None = None  # a state_dict to start from (over the pretrained trunk)
    losses: str = "pair+ms"  # pair | ms | pair+ms (the ablation's rows)
    sampling: str = "mum"  # mum | uniform | random: how MUM batches are drawn
    iterations: int = 600  # paper: 30k
    batch_pairs: int = 16  # paper: 48
    batch_quads: int = 8  # paper: 48
    lr: float = 3e-4  # paper: 5e-5 fine-tuning DINOv2; from scratch, higher
    trunk_lr_scale: float = 1.0  # the backbone's rate is lr x this
    schedule: str = "constant"  # constant | cosine (down to lr / 10), after lr_warmup linear steps
    lr_warmup: int = 0
    head_warmup: int = 0  # first iterations with the whole backbone frozen: the head learns first
    head_init: str = "random"  # random | whitening (learned, on the training pairs) | pca-whitening
    # (PCA of the database tiles' descriptors, no labels): closed-form heads of model.whitening
    whitening_shrinkage: float = 0.1  # of the within-place covariance towards its mean eigenvalue
    whitening_power: float = 0.25  # pca-whitening: variances to the power -this (0.5 whitens fully)
    # learned whitening: also every database tile against one augmented copy of it (``augment``,
    # turned at most 45 deg) as a matching pair, so that what augmentation changes (clouds, haze,
    # colours) is whitened away at every place the service searches, not only the training ones
    whitening_tile_pairs: bool = False
    # pair loss: this many extra pairs a batch, each an augmented copy of a database tile (as above,
    # drawn once per tile) against the clean tile: self-supervised pairs at every place the service
    # searches, so that the trainable stages see the tiles under clouds and haze, not only the
    # training photos' places
    tile_pairs: int = 0
    # pair loss: when > 0, a batch's photo pairs are drawn first among the training photos whose
    # footprint centre lies within this distance (km) of a random photo's, so that the in-batch
    # negatives are the neighbouring places a visibility region holds (it reaches ~2,250 km from the
    # nadir at 0 deg elevation) rather than the far ones a world-wide batch is made of; 0: world-wide
    pair_region_km: float = 0.0
    frozen_stages: int = 0  # backbone stem + this many block stages never trained (EfficientNet-Lite)
    freeze_bn: bool = False  # keep the initialisation's batch-norm statistics (BN layers in eval mode)
    augment: str = "jitter"  # none | jitter | photo | photo-clouds (AUGMENTATIONS)
    cache_prefix: bool = False  # frozen stages + frozen BN: compute their features once (feature_cache)
    prefix_cache: str | None = None  # where to keep that cache (default: the run directory); runs
    # with the same worlds (train_world_dir too), zooms, frozen stages, seed and validation photos
    # can share one file
    select_init: bool = True  # the initialisation competes in the model selection
    evaluation_rotate: str = "database"  # final figures: database at 4 rotations, or queries turned
    alpha_1: float = 1.0
    beta_1: float = 50.0
    alpha_2: float = 1.0
    beta_2: float = 50.0
    lambda_1: float = 1.0
    lambda_2: float = 1.0
    t_iou: float = 0.2
    clusters: int = 50  # K
    mining_every: int = 200  # M (paper: 5000)
    checkpoint_every: int = 50
    validate_every: int = 0  # 0: only at the end; else model selection on the validation split
    validation_queries: int = 0  # validation photos for the selection during training (0: all)
    test: bool = True  # evaluate the selected model once on the test split at the end
    threads: int = 2
    seed: int = 0
    name: str = "astroloc-demo"
    activate: bool = False  # make the published version the active retrieval model

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if self.losses not in LOSSES:
            raise ValueError(f"losses must be one of {LOSSES}, got {self.losses!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        for name in ("batch_pairs", "batch_quads", "clusters", "mining_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        # 0 iterations: the closed-form head alone is the model (configs/demo-lite-pca.json).
        if self.iterations < (0 if self.head_init != "random" else 1):
            raise ValueError("iterations must be >= 1 (>= 0 with a closed-form head_init)")
        if not 0 < self.t_iou < 1 or self.lr <= 0:
            raise ValueError("t_iou must lie in (0, 1) and lr be positive")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {sorted(AUGMENTATIONS)}, got {self.augment!r}")
        if self.trunk_lr_scale < 0 or min(self.lr_warmup, self.head_warmup, self.frozen_stages) < 0:
            raise ValueError("trunk_lr_scale, lr_warmup, head_warmup and frozen_stages must be >= 0")
        if self.cache_prefix and not (self.frozen_stages and self.freeze_bn):
            raise ValueError("cache_prefix needs frozen_stages > 0 and freeze_bn: only a frozen prefix can be cached")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")
        if not 0.0 <= self.whitening_shrinkage < 1.0:
            raise ValueError("whitening_shrinkage must lie in [0, 1)")
        if not 0.0 <= self.whitening_power <= 0.5:
            raise ValueError("whitening_power must lie in [0, 0.5]")
        if self.pair_region_km < 0:
            raise ValueError(f"pair_region_km must be >= 0, got {self.pair_region_km}")
        if self.tile_pairs < 0 or (self.tile_pairs and "pair" not in self.losses):
            raise ValueError(f"tile_pairs must be >= 0 and needs the pair loss, got {self.tile_pairs} with {self.losses!r}")
        if self.evaluation_rotate not in ("database", "query"):
            raise ValueError(f"evaluation_rotate must be 'database' or 'query', got {self.evaluation_rotate!r}")


# --- the world, in memory at the network's input size ----------------------------------------------


@dataclass
class WorldData:
    tiles: list[Tile]
    tile_images: np.ndarray  # (T, S, S, 3) uint8
    tile_polygons: list
    tile_lookup: dict[tuple[int, int, int], int]
    train_images: np.ndarray  # (Q, S, S, 3)
    train_polygons: list
    train_rotation: np.ndarray  # (Q,) quarter turns making a tile look like the photo
    positives: list[np.ndarray]  # train query -> tile indices with IoU > t_iou
    zooms: list[int] = field(default_factory=list)

    def held_out(self, world_dir: Path | str, split: str, limit: int = 0) -> RetrievalSet:
        """The ``split`` photos at this world's input size, with their search regions' tiles."""
        return load_retrieval_set(world_dir, split, self.tile_images.shape[1], self.tile_polygons, limit)


def training_photos(world_dir: Path | str, train_world_dir: Path | str | None = None) -> list:
    """The training photos: ``world_dir``'s, or ``train_world_dir``'s, refused when any of those
    overlaps one of ``world_dir``'s validation or test footprints (a world of another seed)."""
    if train_world_dir is None:
        return read_photos(world_dir, split="train")
    train = read_photos(train_world_dir, split="train")
    held_out = STRtree([p.truth for p in read_photos(world_dir, split=("val", "test"))])
    leaking = sorted({int(q) for q in held_out.query([p.truth for p in train], predicate="intersects")[0]})
    if leaking:
        raise ValueError(
            f"{len(leaking)} training photos of {train_world_dir} overlap validation or test footprints of "
            f"{world_dir} (first: {train[leaking[0]].photo_id}): build it with the same seed as {world_dir}")
    return train


def load_world(world_dir: Path | str, size: int, t_iou: float, zooms: list[int] | None = None,
               train_world_dir: Path | str | None = None) -> WorldData:
    """Tiles and training photos of a world at ``size`` px, with each photo's positive tiles
    (training photos from ``train_world_dir`` when given: :func:`training_photos`)."""
    root = Path(world_dir)
    manifest = json.loads((root / "world.json").read_text())
    if manifest.get("showcase"):
        raise ValueError(f"the world in {root} holds only the demo's {manifest['showcase']} photos: "
                         "build it whole with `astroloc world build`")
    available = sorted(int(z) for z in manifest["tiles"])
    zooms = sorted(zooms) if zooms else available
    if not set(zooms) <= set(available):
        raise ValueError(f"the world has tiles at zooms {available}, not {zooms}")
    tiles = [t for z in zooms for t in tiles_at_zoom(z)]
    tile_images = np.stack([load_rgb(root / "tiles" / f"{t.z}/{t.x}/{t.y}.jpg", size) for t in tiles])
    tile_polygons = [tile_polygon(t) for t in tiles]
    train = training_photos(root, train_world_dir)
    train_polygons = [p.truth for p in train]
    i, j, _ = overlapping_pairs(train_polygons, tile_polygons, t_iou)
    positives = [j[i == q] for q in range(len(train_polygons))]
    keep = [q for q in range(len(train_polygons)) if len(positives[q])]
    # The photo's "up" has compass bearing ORIENTATION: a north-up tile turned counter-clockwise by
    # the nearest quarter turn looks like it (the database's 4 rotations, AstroLoc Sec. 5.1).
    rotation = np.array([round(train[q].orientation_deg / 90.0) % 4 for q in keep])
    return WorldData(
        tiles=tiles,
        tile_images=tile_images,
        tile_polygons=tile_polygons,
        tile_lookup={(t.z, t.x, t.y): n for n, t in enumerate(tiles)},
        train_images=np.stack([load_rgb(train[q].image_path, size) for q in keep]),
        train_polygons=[train_polygons[q] for q in keep],
        train_rotation=rotation,
        positives=[positives[q] for q in keep],
        zooms=zooms,
    )


# --- batches ------------------------------------------------------------------------------------


def pair_batch(data: WorldData, rng: np.random.Generator, size: int,
               order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``size`` (query, positive tile) index pairs, no two pairs overlapping on the ground; the
    photos are tried in ``order`` (default: a random permutation)."""
    chosen_q, chosen_t, taken = [], [], []
    for q in rng.permutation(len(data.train_images)) if order is None else order:
        t = int(rng.choice(data.positives[q]))
        area = data.train_polygons[q].union(data.tile_polygons[t])
        if any(area.intersects(other) for other in taken):
            continue
        chosen_q.append(q)
        chosen_t.append(t)
        taken.append(area)
        if len(chosen_q) == size:
            break
    return np.array(chosen_q), np.array(chosen_t)


def photo_centres_deg(data: WorldData) -> np.ndarray:
    """(Q, 2) ``(lat, lon)`` of the training photos' footprint centres."""
    # representative_point, not centroid: it lies inside a footprint split at the antimeridian
    points = [polygon.representative_point() for polygon in data.train_polygons]
    return np.array([(point.y, point.x) for point in points])


def regional_order(centres_deg: np.ndarray, rng: np.random.Generator, radius_km: float) -> np.ndarray:
    """Every training photo once, in random order, those within ``radius_km`` of a random anchor
    photo's centre first (``pair_region_km``): the order :func:`pair_batch` tries them in."""
    anchor = centres_deg[rng.integers(len(centres_deg))]
    distance_km = geodesic_distance_km(anchor[0], anchor[1], centres_deg[:, 0], centres_deg[:, 1])
    near = rng.permutation(np.flatnonzero(distance_km <= radius_km))
    far = rng.permutation(np.flatnonzero(distance_km > radius_km))
    return np.concatenate([near, far])


def tile_pair_batch(data: WorldData, rng: np.random.Generator, size: int, q_idx: np.ndarray,
                    t_idx: np.ndarray) -> np.ndarray:
    """``size`` database tiles (``tile_pairs``) overlapping neither each other nor the ground of
    the photo pairs ``q_idx`` / ``t_idx`` already in the batch: no pair is another's negative by mistake."""
    taken = [data.train_polygons[q].union(data.tile_polygons[t]) for q, t in zip(q_idx, t_idx)]
    chosen = []
    for t in rng.permutation(len(data.tile_images)):
        if any(data.tile_polygons[t].intersects(other) for other in taken):
            continue
        chosen.append(int(t))
        taken.append(data.tile_polygons[t])
        if len(chosen) == size:
            break
    return np.array(chosen, dtype=np.int64)


def quadruplet_views(data: WorldData, t: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Four views of one place: the tile, the tile turned, a turned crop, the next zoom's tile."""
    image = data.tile_images[t]
    size = image.shape[0]
    turned = np.rot90(image, int(rng.integers(1, 4)))
    side = int(size * rng.uniform(0.6, 0.9))
    y0, x0 = rng.integers(0, size - side + 1, size=2)
    crop = np.asarray(Image.fromarray(image[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.BILINEAR))
    other = other_zoom_tile(data, t)
    fourth = data.tile_images[other] if other is not None else np.fliplr(image)
    return [image, turned, np.rot90(crop, int(rng.integers(0, 4))), np.rot90(fourth, int(rng.integers(0, 4)))]


def other_zoom_tile(data: WorldData, t: int) -> int | None:
    """The tile of the next zoom level (else the previous one) at the centre of tile ``t``."""
    tile = data.tiles[t]
    centre = data.tile_polygons[t].centroid
    for zoom in (tile.z + 1, tile.z - 1):
        if zoom in data.zooms:
            near = tile_at(centre.x, centre.y, zoom)
            return data.tile_lookup.get((near.z, near.x, near.y))
    return None


def mum_batch(data: WorldData, items: np.ndarray, rng: np.random.Generator, count: int,
              views_of: Callable = quadruplet_views) -> tuple[list, np.ndarray]:
    """Quadruplets of ``count`` distinct places among ``items`` (no two overlapping), with labels."""
    views, labels, taken = [], [], []
    for t in items:
        polygon = data.tile_polygons[int(t)]
        if any(polygon.intersects(other) for other in taken):
            continue
        taken.append(polygon)
        views.extend(views_of(data, int(t), rng))
        labels.extend([len(taken) - 1] * 4)
        if len(taken) == count:
            break
    return views, np.array(labels)


# --- a frozen prefix computed once (model/feature_cache.py) -------------------------------------


class CachedPrefix:
    """Features of the network's frozen prefix (stem + ``frozen_stages`` stages, batch norms
    frozen) for every image of a run: tiles at their 4 rotations, training photos, the
    validation photos at 4 rotations, and one augmented copy of each training photo's positive
    tiles turned as the photo (photometric and geometric augmentation happen on images, before
    the prefix). The MUM views are made from the tiles' rotations and crops of their feature
    maps. Saved in the run directory, so a resumed run does not recompute them."""

    def __init__(self, net, data: WorldData, config: TrainConfig, validation: RetrievalSet | None,  # noqa: ANN001
                 out: Path, pair_augmentation: Augmentation) -> None:
        self.stages = config.frozen_stages
        self.runner = PrefixRunner(net, self.stages, threads=config.threads)
        path = Path(config.prefix_cache) if config.prefix_cache else out / "prefix_cache.npz"
        if path.is_file():
            arrays = dict(np.load(path))
        else:
            rng = np.random.default_rng(config.seed + 1)
            keys = [(q, int(t)) for q in range(len(data.train_images)) for t in data.positives[q]]
            turned = [np.rot90(data.tile_images[t], data.train_rotation[q]) for q, t in keys]
            arrays = {
                "tiles": self.runner(data.tile_images, rotations=(0, 1, 2, 3), desc="prefix: tiles x 4"),
                "train": self.runner(data.train_images, desc="prefix: training photos")[:, 0],
                "pair_keys": np.array(keys, dtype=np.int64).reshape(-1, 2),
                "pair_tiles": self.runner(augment(turned, pair_augmentation, rng), desc="prefix: augmented pairs")[:, 0],
            }
            if validation is not None:
                arrays["val"] = self.runner(validation.images, rotations=(0, 1, 2, 3), desc="prefix: validation")
            temporary = path.with_name(f"{path.stem}.tmp.npz")
            np.savez(temporary, **arrays)
            temporary.replace(path)
        self.tiles, self.train, self.val = arrays["tiles"], arrays["train"], arrays.get("val")
        self.pair_tiles = arrays["pair_tiles"]
        self.pair_index = {(int(q), int(t)): n for n, (q, t) in enumerate(arrays["pair_keys"])}
        self._tile_copies: np.ndarray | None = None

    def tile_copies(self, data: WorldData, config: TrainConfig) -> np.ndarray:
        """Prefix features (T, C, h, w) of :func:`tile_copies` (computed on first use, then kept)."""
        if self._tile_copies is None:
            self._tile_copies = self.runner(tile_copies(data, config), desc="prefix: augmented tiles")[:, 0]
        return self._tile_copies

    def descriptors(self, net, features: np.ndarray | list) -> torch.Tensor:  # noqa: ANN001
        """Descriptors (with gradients) of a batch of cached features (B, C, h, w)."""
        return net.forward_from(torch.from_numpy(np.stack(features).astype(np.float32)), self.stages)

    def pair_features(self, data: WorldData, q_idx: np.ndarray, t_idx: np.ndarray, rng: np.random.Generator,
                      augmented: float) -> tuple[np.ndarray, list]:
        """The photos' features and their tiles' (turned as the photo; the augmented copy with
        probability ``augmented``)."""
        tiles = [self.pair_tiles[self.pair_index[(int(q), int(t))]] if rng.random() < augmented
                 else self.tiles[t, data.train_rotation[q]] for q, t in zip(q_idx, t_idx)]
        return self.train[q_idx], tiles

    def quadruplet(self, data: WorldData, t: int, rng: np.random.Generator) -> list[np.ndarray]:
        """:func:`quadruplet_views` on features: the tile and a turn of it, a turned crop of its
        feature map resized back, the other zoom's tile at a random turn."""
        first, second, third = rng.choice(4, size=3, replace=False)
        grid = self.tiles[t, third].astype(np.float32)
        side = grid.shape[-1]
        crop_side = int(rng.integers(math.ceil(0.6 * side), side))
        y0, x0 = rng.integers(0, side - crop_side + 1, size=2)
        crop = torch.nn.functional.interpolate(
            torch.from_numpy(grid[None, :, y0: y0 + crop_side, x0: x0 + crop_side]), size=(side, side),
            mode="bilinear", align_corners=False)[0].numpy()
        other = other_zoom_tile(data, t)
        fourth = self.tiles[other, int(rng.integers(4))] if other is not None else self.tiles[t, first][..., ::-1]
        return [self.tiles[t, first], self.tiles[t, second], crop, np.ascontiguousarray(fourth)]

    def database(self, net, rotations: int = 4) -> np.ndarray:  # noqa: ANN001
        """Tile descriptors (T, R, D) with the current network."""
        return suffix_descriptors(net, self.tiles[:, :rotations], self.stages)

    def photos(self, net, images: np.ndarray, rotations: tuple = (0,)) -> np.ndarray:  # noqa: ANN001
        """Descriptors (N, R, D) of photos not in the cache (computed through the prefix now)."""
        return suffix_descriptors(net, self.runner(images, rotations=rotations), self.stages)


# --- the loop -----------------------------------------------------------------------------------


ProgressFn = Callable[[float, dict], None]


def pair_augmentation_of(augmentation: Augmentation) -> Augmentation:
    """The augmentation of a pair's tile: a pair's tile is already turned by the quarter turn
    nearest the photo's orientation (the database's 4 rotations), so what is left to learn is
    at most 45 degrees either way."""
    return replace(augmentation, rotation_deg=min(augmentation.rotation_deg, 45.0))


def augmented_tile_pairs(net, data: WorldData, cache: CachedPrefix | None, config: TrainConfig  # noqa: ANN001
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled descriptors (T, D) of every database tile and of its :func:`tile_copies`: the learned
    whitening's extra pairs (``whitening_tile_pairs``)."""
    from model.descriptors import describe

    if cache is not None:
        clean = cache.database(net, 1)[:, 0]
        augmented = suffix_descriptors(net, cache.tile_copies(data, config)[:, None], cache.stages)[:, 0]
    else:
        clean = describe(net, data.tile_images, rotations=(0,))[:, 0]
        augmented = describe(net, np.stack(tile_copies(data, config)), rotations=(0,))[:, 0]
    return clean, augmented


def tile_copies(data: WorldData, config: TrainConfig) -> list[np.ndarray]:
    """One augmented copy of every database tile (``config.augment`` always applied, turned at most
    45 deg; drawn from ``config.seed``): the other side of the tile pairs (``whitening_tile_pairs``,
    ``tile_pairs``)."""
    augmentation = replace(pair_augmentation_of(AUGMENTATIONS[config.augment]), probability=1.0)
    return augment(data.tile_images, augmentation, np.random.default_rng(config.seed + 2))


def whitening_head(net, data: WorldData, cache: CachedPrefix | None, config: TrainConfig) -> None:  # noqa: ANN001
    """``head_init`` "whitening" or "pca-whitening": the projection fitted in closed form
    (model.whitening) on the pooled descriptors, of every training photo and each of its
    positive tiles turned as the photo (the pairs the pair loss sees), or of every database tile
    at its 4 rotations (no labels: the places the service searches)."""
    from model.descriptors import describe
    from model.whitening import learned_whitening, pca_whitening, set_linear

    projection = net.projection
    net.projection = torch.nn.Identity()  # the pooled descriptor itself (GeM's output is L2-normalised)
    try:
        if config.head_init == "pca-whitening":
            tiles = cache.database(net, 4) if cache is not None else describe_tiles(net, data.tile_images)
            weight, bias = pca_whitening(tiles.reshape(-1, tiles.shape[-1]), projection.out_features,
                                         config.whitening_power)
            fitted_on = f"{len(tiles)} database tiles x {tiles.shape[1]} rotations"
        else:
            pairs = np.array([(q, int(t)) for q in range(len(data.train_images)) for t in data.positives[q]],
                             dtype=np.int64)
            q_idx, t_idx = pairs[:, 0], pairs[:, 1]
            if cache is not None:
                photos = suffix_descriptors(net, cache.train[q_idx][:, None], cache.stages)[:, 0]
                tiles = suffix_descriptors(net, cache.tiles[t_idx, data.train_rotation[q_idx]][:, None],
                                           cache.stages)[:, 0]
            else:
                photos = describe(net, data.train_images[q_idx], rotations=(0,))[:, 0]
                turned = [np.rot90(data.tile_images[t], data.train_rotation[q]) for q, t in zip(q_idx, t_idx)]
                tiles = describe(net, np.stack(turned), rotations=(0,))[:, 0]
            fitted_on = f"{len(pairs)} training pairs"
            if config.whitening_tile_pairs:
                clean, augmented = augmented_tile_pairs(net, data, cache, config)
                photos, tiles = np.concatenate([photos, augmented]), np.concatenate([tiles, clean])
                fitted_on += f" + {len(clean)} database tiles against an augmented copy ({config.augment})"
            weight, bias = learned_whitening(photos, tiles, projection.out_features, config.whitening_shrinkage)
    finally:
        net.projection = projection
    set_linear(projection, weight, bias)
    log.info("head initialised by %s on %s", config.head_init, fitted_on)


def train_mode(net: torch.nn.Module, frozen: list[torch.nn.Module], freeze_bn: bool) -> None:
    """``net.train()``, except the batch norms that must keep their statistics: all of them with
    ``freeze_bn``, else those inside the ``frozen`` stages."""
    net.train()
    kept = {id(inner) for stage in frozen for inner in stage.modules()}
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and (freeze_bn or id(module) in kept):
            module.eval()


def freeze_stages(backbone: torch.nn.Module, stages: int) -> list[torch.nn.Module]:
    """Stop training the stem and the first ``stages`` block stages of an EfficientNet-Lite
    trunk; returns the frozen modules (their batch norms must stay in eval mode too)."""
    if not stages:
        return []
    if not hasattr(backbone, "conv_stem"):
        raise ValueError(f"frozen_stages needs an EfficientNet-Lite trunk, not {type(backbone).__name__}")
    if stages > len(backbone.blocks):
        raise ValueError(f"the trunk has {len(backbone.blocks)} stages, cannot freeze {stages}")
    frozen = [backbone.conv_stem, backbone.bn1, *backbone.blocks[:stages]]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def lr_factors(iteration: int, config: TrainConfig) -> tuple[float, float]:
    """(head, trunk) multipliers of ``config.lr`` at ``iteration`` (0-based): a linear warm-up
    over ``lr_warmup`` steps, then constant or cosine down to 1/10; the trunk waits
    ``head_warmup`` iterations at 0 and then warms up the same way, at ``trunk_lr_scale``."""

    def factor(step: int) -> float:
        if step < config.lr_warmup:
            return (step + 1) / config.lr_warmup
        if config.schedule == "constant":
            return 1.0
        done = (iteration - config.lr_warmup) / max(1, config.iterations - config.lr_warmup)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, done))))

    trunk = 0.0 if iteration < config.head_warmup else factor(iteration - config.head_warmup) * config.trunk_lr_scale
    return factor(iteration), trunk


def selection_score(metrics: dict) -> float:
    """What model selection maximises on the validation split: in-region R@1 + R@10."""
    return metrics.get("region_recall@1", 0.0) + metrics.get("region_recall@10", 0.0)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def train(config: TrainConfig, out_dir: Path | str, progress: ProgressFn | None = None) -> dict:
    """Train (or resume) a run in ``out_dir``; returns the metrics. Writes ``model.pt`` (the
    selected state_dict), ``checkpoint.pt`` (resumable), ``best.pt`` (best on validation so
    far), ``log.jsonl``, ``metrics.json``, ``config.json``."""
    import model as models
    from model.preprocessing import preprocess

    config.check()
    torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))
    net = models.create_model(config.arch, weights=config.init_weights, pretrained=config.pretrained)
    size = net.config.input_size
    started = time.perf_counter()
    data = load_world(config.world_dir, size, config.t_iou, config.zooms, config.train_world_dir)
    validation = data.held_out(config.world_dir, "val", config.validation_queries) if config.validate_every else None
    log.info("world loaded in %.0f s: %d tiles, %d training photos with positives",
             time.perf_counter() - started, len(data.tiles), len(data.train_images))
    frozen = freeze_stages(net.backbone, config.frozen_stages)
    trunk_params = [p for p in net.backbone.parameters() if p.requires_grad]
    head_params = [p for name, p in net.named_parameters() if not name.startswith("backbone.")]
    optimizer = torch.optim.Adam([{"params": head_params}, {"params": trunk_params}], lr=config.lr)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    iteration, history, best = 0, [], {"score": -1.0, "iteration": None, "validation": None}
    validation_s = 0.0
    checkpoint, best_path = out / "checkpoint.pt", out / "best.pt"
    if checkpoint.is_file():  # resume after a crash or a killed worker
        state = torch.load(checkpoint, weights_only=False)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        iteration, history = state["iteration"], state["history"]
        best, validation_s = state.get("best", best), state.get("validation_s", 0.0)
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed at iteration %d", iteration)
    augmentation = AUGMENTATIONS[config.augment]
    pair_augmentation = pair_augmentation_of(augmentation)

    cache = CachedPrefix(net, data, config, validation, out, pair_augmentation) if config.cache_prefix else None
    if cache is not None:
        log.info("frozen prefix cached: %.0f s since the start", time.perf_counter() - started)
    if iteration == 0 and config.head_init != "random":
        whitening_head(net, data, cache, config)

    def batch_tensor(images) -> torch.Tensor:  # noqa: ANN001
        return preprocess([np.ascontiguousarray(i) for i in images], net.config)

    def select(at: int) -> None:
        nonlocal validation_s
        if validation is None:
            return
        begun = time.perf_counter()
        if cache is not None:  # the same figures as rotate="query", from the cache
            metrics = recall_of_descriptors(suffix_descriptors(net, cache.val, cache.stages), cache.database(net, 1),
                                            data.tile_polygons, validation)
        else:
            metrics = retrieval_recall(net, data.tile_images, data.tile_polygons, validation, rotate="query")
        validation_s += time.perf_counter() - begun
        if selection_score(metrics) > best["score"]:
            best.update(score=selection_score(metrics), iteration=at, validation=metrics)
            torch.save(net.state_dict(), best_path)
        line = {"iteration": at, "validation": metrics, "best_iteration": best["iteration"]}
        with (out / "log.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        log.info("validation at %d: in-region R@1 %.3f R@10 %.3f (best at %s)", at,
                 metrics.get("region_recall@1", 0), metrics.get("region_recall@10", 0), best["iteration"])

    if iteration == 0 and config.validate_every and config.select_init:
        select(0)  # the initialisation competes too: training must beat it
    sampler = copies = centres_deg = None
    uses_pairs, uses_ms = "pair" in config.losses, "ms" in config.losses
    bar = tqdm(total=config.iterations, initial=iteration, desc=config.name, unit="it", mininterval=2.0)
    loop_started, loop_start_iteration = time.perf_counter(), iteration
    while iteration < config.iterations:
        if uses_ms and config.sampling != "random" and (sampler is None or iteration % config.mining_every == 0):
            sampler = _mine(net, data, config, cache)
        head_factor, trunk_factor = lr_factors(iteration, config)
        optimizer.param_groups[0]["lr"] = config.lr * head_factor
        optimizer.param_groups[1]["lr"] = config.lr * trunk_factor
        for parameter in trunk_params:  # no backward through a trunk that is not learning yet
            parameter.requires_grad_(trunk_factor > 0)
        train_mode(net, frozen, config.freeze_bn)
        pair_term = ms_term = None
        if uses_pairs:
            order = None
            if config.pair_region_km:
                if centres_deg is None:
                    centres_deg = photo_centres_deg(data)
                order = regional_order(centres_deg, rng, config.pair_region_km)
            q_idx, t_idx = pair_batch(data, rng, config.batch_pairs, order)
            if cache is not None:
                photos, tiles = cache.pair_features(data, q_idx, t_idx, rng, augmentation.probability)
                q, d = cache.descriptors(net, photos), cache.descriptors(net, tiles)
            else:
                tiles = [np.rot90(data.tile_images[t], k) for t, k in zip(t_idx, data.train_rotation[q_idx])]
                q = net(batch_tensor(data.train_images[q_idx]))
                d = net(batch_tensor(augment(tiles, pair_augmentation, rng)))
            if config.tile_pairs:
                tt = tile_pair_batch(data, rng, config.tile_pairs, q_idx, t_idx)
                if cache is not None:
                    q_tiles = cache.descriptors(net, cache.tile_copies(data, config)[tt])
                    d_tiles = cache.descriptors(net, cache.tiles[tt, 0])
                else:
                    if copies is None:
                        copies = tile_copies(data, config)
                    q_tiles = net(batch_tensor([copies[t] for t in tt]))
                    d_tiles = net(batch_tensor(data.tile_images[tt]))
                q, d = torch.cat([q, q_tiles]), torch.cat([d, d_tiles])
            pair_term = pair_loss(q, d, config.alpha_1, config.beta_1)
        if uses_ms:
            pool = (random_items(rng, len(data.tiles), config.batch_quads * 4) if config.sampling == "random"
                    else sampler.sample_items(rng, config.batch_quads * 4))
            if cache is not None:
                views, labels = mum_batch(data, pool, rng, config.batch_quads, views_of=cache.quadruplet)
                h = cache.descriptors(net, views)
            else:
                views, labels = mum_batch(data, pool, rng, config.batch_quads)
                h = net(batch_tensor(augment(views, augmentation, rng)))
            ms_term = mum_loss(h, torch.as_tensor(labels), config.alpha_2, config.beta_2)
        loss = total_loss(pair_term, ms_term, config.lambda_1, config.lambda_2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        iteration += 1
        rate = (time.perf_counter() - loop_started) / (iteration - loop_start_iteration)
        entry = {"iteration": iteration, "loss": round(loss.item(), 5),
                 "pair": None if pair_term is None else round(pair_term.item(), 5),
                 "mum": None if ms_term is None else round(ms_term.item(), 5),
                 "lr_head": round(config.lr * head_factor, 8), "lr_trunk": round(config.lr * trunk_factor, 8),
                 "elapsed_s": round(time.perf_counter() - started, 1),
                 "eta_s": round(rate * (config.iterations - iteration), 0)}
        history.append(entry)
        with (out / "log.jsonl").open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        bar.update(1)
        bar.set_postfix(loss=f"{entry['loss']:.3f}", best=best["iteration"], refresh=False)
        if config.validate_every and (iteration % config.validate_every == 0 or iteration == config.iterations):
            select(iteration)
            entry["validation"] = best["validation"]
        if progress:
            progress(iteration / config.iterations, entry)
        if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
            _save(checkpoint, net, optimizer, iteration, history, rng, best=best, validation_s=validation_s)
    bar.close()
    train_s = time.perf_counter() - started

    if config.validate_every and best_path.is_file():
        net.load_state_dict(torch.load(best_path, weights_only=True))  # the model selected on validation
    torch.save(net.state_dict(), out / "model.pt")
    metrics = {"iterations": iteration, "selected_iteration": best["iteration"],
               "train_seconds": round(train_s, 1), "validation_seconds": round(validation_s, 1),
               "final_loss": history[-1]["loss"] if history else None}
    metrics.update(evaluate(net, data, config, cache))
    metrics["peak_memory_mb"] = peak_memory_mb()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if progress:
        progress(1.0, {"iteration": iteration, "validation": metrics["validation"]})
    return metrics


def _mine(net, data: WorldData, config: TrainConfig, cache: CachedPrefix | None = None):  # noqa: ANN001, ANN202
    """Describe the database and the training photos with the current model; cluster (Sec. 4.3)."""
    import model as models

    if cache is not None:
        database = cache.database(net, 1)[:, 0]
        queries = suffix_descriptors(net, cache.train[:, None], cache.stages)[:, 0]
    else:
        database = models.describe(net, list(data.tile_images), rotations=(0,))[:, 0]
        queries = models.describe(net, list(data.train_images), rotations=(0,))[:, 0]
    return cluster_database(database, queries, config.clusters, config.sampling, config.seed)


def evaluate(net, data: WorldData, config: TrainConfig, cache: CachedPrefix | None = None) -> dict:  # noqa: ANN001
    """In-region and world-wide recall on every validation photo and (``config.test``) on the
    test split; the database at 4 rotations as the service indexes it (``evaluation_rotate``
    "database") or the photos turned instead (4x cheaper)."""
    rotate = config.evaluation_rotate
    query_rotations = (0,) if rotate == "database" else ROTATIONS
    if cache is not None:
        database = cache.database(net, 4 if rotate == "database" else 1)
    else:
        database = describe_tiles(net, data.tile_images, rotate)
    results = {}
    for split in ("val", "test") if config.test else ("val",):
        photos = data.held_out(config.world_dir, split)
        key = "validation" if split == "val" else "test"
        if cache is not None:
            queries = cache.photos(net, photos.images, tuple(r // 90 for r in query_rotations))
            results[key] = recall_of_descriptors(queries, database, data.tile_polygons, photos)
        else:
            results[key] = retrieval_recall(net, data.tile_images, data.tile_polygons, photos, rotate, database)
        results[key]["rotate"] = rotate
    return results


def _save(path: Path, net, optimizer, iteration: int, history: list, rng: np.random.Generator, **extra) -> None:  # noqa: ANN001
    temporary = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration,
                "history": history, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), **extra},
               temporary)
    temporary.replace(path)


ZERO_SHOT_ARCH = "lite0-gem"  # the ImageNet trunk with GeM pooling: nothing trained


def zero_shot_metrics(config: TrainConfig, arch: str = ZERO_SHOT_ARCH, input_size: int | None = None) -> dict:
    """Recall of an untrained network (``arch`` with its ImageNet trunk when it has one, random
    otherwise; at ``input_size`` px instead of its own when given) on the same photos and tiles
    as a run of ``config``: the ablation's first row. Runs through onnxruntime (nothing to train;
    ~10x torch's speed on this shared CPU)."""
    import tempfile

    import model as models

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    try:
        net = models.create_model(arch, pretrained=True, input_size=input_size)
    except ValueError:
        net = models.create_model(arch, input_size=input_size)
    data = load_world(config.world_dir, net.config.input_size, config.t_iou, config.zooms, config.train_world_dir)
    with tempfile.TemporaryDirectory() as workdir:
        served = models.load_onnx(models.export_onnx(net, Path(workdir) / f"{arch}.onnx"),
                                  providers=["CPUExecutionProvider"], threads=config.threads)
        return evaluate(served, data, config)


ABLATION = (  # AstroLoc Tab. 6 in miniature: (row, losses, sampling)
    ("pair loss only", "pair", "mum"),
    ("MUM only", "ms", "mum"),
    ("MS, uniform clusters (EarthLoc)", "ms", "uniform"),
    ("pair + MS, random quadruplets", "pair+ms", "random"),
    ("pair + MUM (AstroLoc)", "pair+ms", "mum"),
)


def ablation(base: TrainConfig, work_dir: Path | str) -> list[tuple[str, dict]]:
    """Every row of the ablation from the same initialisation with the same budget and the same
    model selection on validation; returns (row, metrics with "validation" and "test"). Rows
    with a cached prefix share one cache (the same frozen ImageNet stages for all)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = [("zero-shot ImageNet trunk (GeM, no training)" if base.pretrained else "untrained network",
             zero_shot_metrics(base, ZERO_SHOT_ARCH if base.pretrained else base.arch))]
    shared = {"prefix_cache": base.prefix_cache or str(work / "prefix_cache.npz")} if base.cache_prefix else {}
    for label, losses, sampling in ABLATION:
        config = TrainConfig.from_dict({**asdict(base), "losses": losses, "sampling": sampling, **shared})
        rows.append((label, train(config, work / f"{losses}-{sampling}")))
    return rows


__all__ = ["ABLATION", "AUGMENTATIONS", "TrainConfig", "ablation", "evaluate", "load_world", "train", "training_photos",
           "zero_shot_metrics"]
