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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from shapely.geometry import Point

from geo import overlapping_pairs
from index.tiles import Tile, tile_at, tile_polygon, tiles_at_zoom
from model.losses import mum_loss, pair_loss, total_loss
from model.mining import SAMPLINGS, cluster_database, random_items
from world.catalogue import read_photos

log = logging.getLogger(__name__)
LOSSES = ("pair", "ms", "pair+ms")
RECALL_AT = (1, 5, 10, 100)


@dataclass
class TrainConfig:
    """One training run; defaults are the paper's (Sec. 5.1) where they fit a CPU demo."""

    world_dir: str = "var/world"
    zooms: list[int] | None = None  # database zoom levels to use (default: all of the world's)
    arch: str = "earthloc-nano"
    init_weights: str | None = None  # a state_dict to start from
    losses: str = "pair+ms"  # pair | ms | pair+ms (the ablation's rows)
    sampling: str = "mum"  # mum | uniform | random: how MUM batches are drawn
    iterations: int = 600  # paper: 30k
    batch_pairs: int = 16  # paper: 48
    batch_quads: int = 8  # paper: 48
    lr: float = 3e-4  # paper: 5e-5 fine-tuning DINOv2; from scratch, higher
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
    validate_every: int = 0  # 0: only at the end (describing the 4-rotation database is costly)
    validation_queries: int = 0  # 0: all validation photos
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
        for name in ("iterations", "batch_pairs", "batch_quads", "clusters", "mining_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 < self.t_iou < 1 or self.lr <= 0:
            raise ValueError("t_iou must lie in (0, 1) and lr be positive")


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
    val_images: np.ndarray
    val_centres: list[Point]
    zooms: list[int] = field(default_factory=list)


def _load_rgb(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))


def load_world(
    world_dir: Path | str, size: int, t_iou: float, validation_queries: int = 0, zooms: list[int] | None = None
) -> WorldData:
    """Tiles and photos of a world at ``size`` px, with each training photo's positive tiles."""
    root = Path(world_dir)
    manifest = json.loads((root / "world.json").read_text())
    available = sorted(int(z) for z in manifest["tiles"])
    zooms = sorted(zooms) if zooms else available
    if not set(zooms) <= set(available):
        raise ValueError(f"the world has tiles at zooms {available}, not {zooms}")
    tiles = [t for z in zooms for t in tiles_at_zoom(z)]
    tile_images = np.stack([_load_rgb(root / "tiles" / f"{t.z}/{t.x}/{t.y}.jpg", size) for t in tiles])
    tile_polygons = [tile_polygon(t) for t in tiles]
    train = read_photos(root, split="train")
    val = read_photos(root, split="val", limit=validation_queries or None)
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
        train_images=np.stack([_load_rgb(train[q].image_path, size) for q in keep]),
        train_polygons=[train_polygons[q] for q in keep],
        train_rotation=rotation,
        positives=[positives[q] for q in keep],
        val_images=np.stack([_load_rgb(p.image_path, size) for p in val]) if val else np.zeros((0, size, size, 3), np.uint8),
        val_centres=[p.truth.centroid for p in val],
        zooms=zooms,
    )


# --- batches ------------------------------------------------------------------------------------


def pair_batch(data: WorldData, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` (query, positive tile) index pairs, no two pairs overlapping on the ground."""
    chosen_q, chosen_t, taken = [], [], []
    for q in rng.permutation(len(data.train_images)):
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


def quadruplet_views(data: WorldData, t: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Four views of one place: the tile, the tile turned, a turned crop, the next zoom's tile."""
    image = data.tile_images[t]
    size = image.shape[0]
    turned = np.rot90(image, int(rng.integers(1, 4)))
    side = int(size * rng.uniform(0.6, 0.9))
    y0, x0 = rng.integers(0, size - side + 1, size=2)
    crop = np.asarray(Image.fromarray(image[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.BILINEAR))
    tile = data.tiles[t]
    centre = data.tile_polygons[t].centroid
    other = None
    for zoom in (tile.z + 1, tile.z - 1):
        if zoom in data.zooms:
            near = tile_at(centre.x, centre.y, zoom)
            other = data.tile_lookup.get((near.z, near.x, near.y))
            break
    fourth = data.tile_images[other] if other is not None else np.fliplr(image)
    return [image, turned, np.rot90(crop, int(rng.integers(0, 4))), np.rot90(fourth, int(rng.integers(0, 4)))]


def mum_batch(data: WorldData, items: np.ndarray, rng: np.random.Generator, count: int) -> tuple[list, np.ndarray]:
    """Quadruplets of ``count`` distinct places among ``items`` (no two overlapping), with labels."""
    views, labels, taken = [], [], []
    for t in items:
        polygon = data.tile_polygons[int(t)]
        if any(polygon.intersects(other) for other in taken):
            continue
        taken.append(polygon)
        views.extend(quadruplet_views(data, int(t), rng))
        labels.extend([len(taken) - 1] * 4)
        if len(taken) == count:
            break
    return views, np.array(labels)


def _jitter(images: list[np.ndarray] | np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Mild brightness/contrast changes: database tiles meet photos under haze and colour casts."""
    out = []
    for image in images:
        gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        out.append(np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8))
    return out


# --- the loop -----------------------------------------------------------------------------------


ProgressFn = Callable[[float, dict], None]


def train(config: TrainConfig, out_dir: Path | str, progress: ProgressFn | None = None) -> dict:
    """Train (or resume) a run in ``out_dir``; returns the metrics. Writes ``model.pt`` (the
    state_dict), ``checkpoint.pt`` (resumable), ``log.jsonl``, ``metrics.json``, ``config.json``."""
    import model as models
    from model.preprocessing import preprocess

    config.check()
    torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))
    net = models.create_model(config.arch, weights=config.init_weights)
    size = net.config.input_size
    started = time.perf_counter()
    data = load_world(config.world_dir, size, config.t_iou, config.validation_queries, config.zooms)
    log.info("world loaded in %.0f s: %d tiles, %d training photos with positives, %d validation photos",
             time.perf_counter() - started, len(data.tiles), len(data.train_images), len(data.val_images))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    iteration, history = 0, []
    checkpoint = out / "checkpoint.pt"
    if checkpoint.is_file():  # resume after a crash or a killed worker
        state = torch.load(checkpoint, weights_only=False)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        iteration, history = state["iteration"], state["history"]
        rng.bit_generator.state = state["rng"]
        log.info("resumed at iteration %d", iteration)

    def batch_tensor(images) -> torch.Tensor:  # noqa: ANN001
        return preprocess([np.ascontiguousarray(i) for i in images], net.config)

    sampler = None
    uses_pairs, uses_ms = "pair" in config.losses, "ms" in config.losses
    while iteration < config.iterations:
        if uses_ms and config.sampling != "random" and (sampler is None or iteration % config.mining_every == 0):
            sampler = _mine(net, data, config)
        net.train()
        pair_term = ms_term = None
        if uses_pairs:
            q_idx, t_idx = pair_batch(data, rng, config.batch_pairs)
            tiles = [np.rot90(data.tile_images[t], k) for t, k in zip(t_idx, data.train_rotation[q_idx])]
            q = net(batch_tensor(data.train_images[q_idx]))
            d = net(batch_tensor(_jitter(tiles, rng)))
            pair_term = pair_loss(q, d, config.alpha_1, config.beta_1)
        if uses_ms:
            pool = (random_items(rng, len(data.tiles), config.batch_quads * 4) if config.sampling == "random"
                    else sampler.sample_items(rng, config.batch_quads * 4))
            views, labels = mum_batch(data, pool, rng, config.batch_quads)
            h = net(batch_tensor(_jitter(views, rng)))
            ms_term = mum_loss(h, torch.as_tensor(labels), config.alpha_2, config.beta_2)
        loss = total_loss(pair_term, ms_term, config.lambda_1, config.lambda_2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        iteration += 1
        entry = {"iteration": iteration, "loss": round(loss.item(), 5),
                 "pair": None if pair_term is None else round(pair_term.item(), 5),
                 "mum": None if ms_term is None else round(ms_term.item(), 5),
                 "elapsed_s": round(time.perf_counter() - started, 1)}
        history.append(entry)
        with (out / "log.jsonl").open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        if config.validate_every and iteration % config.validate_every == 0 and iteration < config.iterations:
            entry["validation"] = validate(net, data)
        if progress:
            progress(iteration / config.iterations, entry)
        if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
            _save(checkpoint, net, optimizer, iteration, history, rng)

    metrics = {"validation": validate(net, data), "iterations": iteration,
               "train_seconds": round(time.perf_counter() - started, 1),
               "final_loss": history[-1]["loss"] if history else None}
    torch.save(net.state_dict(), out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if progress:
        progress(1.0, {"iteration": iteration, "validation": metrics["validation"]})
    return metrics


def _mine(net, data: WorldData, config: TrainConfig):  # noqa: ANN001, ANN202
    """Describe the database and the training photos with the current model; cluster (Sec. 4.3)."""
    import model as models

    database = models.describe(net, list(data.tile_images), rotations=(0,))[:, 0]
    queries = models.describe(net, list(data.train_images), rotations=(0,))[:, 0]
    return cluster_database(database, queries, config.clusters, config.sampling, config.seed)


def validate(net, data: WorldData) -> dict:  # noqa: ANN001
    """Recall@1/5/10/100 of the validation photos against every tile at 4 rotations, world-wide.

    A retrieved tile is correct when it contains the centre of the photo's true footprint; a tile
    counts once, at its best rotation (as the service ranks them).
    """
    import model as models

    if not len(data.val_images):
        return {}
    database = models.describe(net, list(data.tile_images))  # (T, 4, D)
    queries = models.describe(net, list(data.val_images), rotations=(0,))[:, 0]
    scores = np.einsum("qd,trd->qtr", queries, database).max(axis=2)  # best rotation per tile
    order = np.argsort(-scores, axis=1)[:, : max(RECALL_AT)]
    hits = np.array([[data.tile_polygons[t].covers(c) for t in row] for row, c in zip(order, data.val_centres)])
    return {f"recall@{k}": round(float(hits[:, :k].any(axis=1).mean()), 4) for k in RECALL_AT} | {
        "queries": len(data.val_images)
    }


def _save(path: Path, net, optimizer, iteration: int, history: list, rng: np.random.Generator) -> None:  # noqa: ANN001
    temporary = path.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration,
                "history": history, "rng": rng.bit_generator.state}, temporary)
    temporary.replace(path)


def untrained_metrics(config: TrainConfig) -> dict:
    """Validation recall of the randomly initialised network (the ablation's baseline row)."""
    import model as models

    torch.manual_seed(config.seed)
    net = models.create_model(config.arch)
    data = load_world(config.world_dir, net.config.input_size, config.t_iou, config.validation_queries, config.zooms)
    return validate(net, data)


ABLATION = (  # AstroLoc Tab. 6 in miniature: (row, losses, sampling)
    ("pair loss only", "pair", "mum"),
    ("MUM only", "ms", "mum"),
    ("MS, uniform clusters (EarthLoc)", "ms", "uniform"),
    ("pair + MS, random quadruplets", "pair+ms", "random"),
    ("pair + MUM (AstroLoc)", "pair+ms", "mum"),
)


def ablation(base: TrainConfig, work_dir: Path | str) -> list[tuple[str, dict]]:
    """Train every row of the ablation with the same budget; returns (row, validation metrics)."""
    rows = [("untrained network", untrained_metrics(base))]
    for label, losses, sampling in ABLATION:
        config = TrainConfig.from_dict({**asdict(base), "losses": losses, "sampling": sampling})
        run_dir = Path(work_dir) / f"{losses}-{sampling}"
        rows.append((label, train(config, run_dir)["validation"]))
    return rows


__all__ = ["ABLATION", "TrainConfig", "ablation", "load_world", "train", "untrained_metrics", "validate"]
