"""Building the sharded tile index: streaming, resumable, incremental.

    describer = SourceDescriber(source, lambda images: model.describe(net, images), workers=4)
    report = build_index("var/index", tiles, describer, model_version="astroloc-1.0")

:func:`build_index` creates an index, resumes one whose build was interrupted, or adds tiles to
a finished one (tiles already indexed are left alone): call it again with the same arguments
after a crash, or with new tiles later. It works shard by shard and chunk by chunk:

1. tiles are grouped by shard (see :mod:`index.shards`); per shard, the tiles not yet indexed are
   described in chunks (images loaded by a thread pool, skipped when missing or corrupt) and the
   L2-normalised descriptors appended to a staging file on disk, with a checkpoint after every
   chunk. Only one chunk of descriptors is ever in RAM while describing.
2. when a shard is fully described its FAISS index is trained on a sample of the staging file and
   filled from it in slices (or the existing shard is extended), written to a new directory, and
   recorded in the manifest. The largest shard is the most that is in RAM at once.

A crash loses at most the chunk being described: the next run continues from the checkpoint and
ends with the same index as an uninterrupted build (chunks are cut at the same places, so even
the descriptor function sees the same batches).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from index.shards import (
    DEFAULT_FACTORIES,
    DEFAULT_ROTATIONS,
    DEFAULT_SHARD_ZOOM,
    MANIFEST_NAME,
    VECTOR_DTYPE,
    FactoryPolicy,
    IndexMismatchError,
    Manifest,
    ShardKey,
    TileShard,
    generation_of,
    group_by_shard,
    remove_unreferenced_shards,
    rotations_with_turns,
    tile_keys,
    tile_table,
    write_shard,
)
from index.files import claim_with_stamp, write_atomically
from index.surroundings import turned_tile_images
from index.sources import CorruptTileError, TileError, TileNotFoundError, TileSource
from index.tiles import Tile

log = logging.getLogger(__name__)

BUILD_DIR = ".build"
TRAINING_SAMPLE = 20_000  # vectors FAISS trains a shard's quantiser on (164 MB at 2048-d)
ADD_SLICE = 8_192  # vectors handed to FAISS per add() while filling a shard
LOGGED_SKIPS = 20  # skipped tiles logged one by one per build; the rest are only counted


# --- describing tiles ------------------------------------------------------------------------------


@dataclass
class DescribedTiles:
    """A describer's answer for a chunk of tiles.

    ``tiles``: the tiles described, in the chunk's order; ``descriptors``: float array
    ``(len(tiles), rotations, dim)``; ``skipped``: tile -> reason ``"kind: detail"`` for the rest.
    """

    tiles: list[Tile]
    descriptors: np.ndarray
    skipped: dict[Tile, str] = field(default_factory=dict)


TileDescriber = Callable[[Sequence[Tile]], DescribedTiles]


class SourceDescriber:
    """Describe tiles of a :class:`~index.sources.TileSource`: images read by a thread pool,
    described by ``describe_images`` (a list of RGB arrays -> ``(N, rotations, dim)``, e.g.
    ``lambda images: model.describe(net, images)``). Missing and corrupt tiles are skipped.

    ``turns_deg`` (e.g. (45,)): each tile is also read turned by these degrees with its
    neighbours' ground in the corners (:func:`index.surroundings.turned_tile_images`) and described
    the same way; their descriptors follow the plain ones on the second axis, in the order of
    :func:`index.shards.rotations_with_turns`."""

    def __init__(
        self, source: TileSource, describe_images: Callable[[list[np.ndarray]], np.ndarray], workers: int = 4,
        turns_deg: Sequence[int] = (),
    ) -> None:  # fmt: skip
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        rotations_with_turns(turns_deg)  # validates the turns
        self.source = source
        self.describe_images = describe_images
        self.workers = workers
        self.turns_deg = tuple(int(t) for t in turns_deg)

    def __call__(self, tiles: Sequence[Tile]) -> DescribedTiles:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="tile-load") as pool:
            loaded = list(pool.map(self._load, tiles))
        kept = [(tile, image) for tile, (image, _) in zip(tiles, loaded) if image is not None]
        skipped = {tile: reason for tile, (_, reason) in zip(tiles, loaded) if reason is not None}
        if not kept:
            return DescribedTiles([], np.zeros((0, 0, 0), np.float32), skipped)
        descriptors = [np.asarray(self.describe_images([image for _, image in kept]))]
        if self.turns_deg:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="tile-turn") as pool:
                turned = list(pool.map(lambda tile: turned_tile_images(self.source, tile, self.turns_deg),
                                       [t for t, _ in kept]))
            for n in range(len(self.turns_deg)):  # one turn of every tile at a time: the order of the turns
                descriptors.append(np.asarray(self.describe_images([images[n] for images in turned])))
        return DescribedTiles([tile for tile, _ in kept], np.concatenate(descriptors, axis=1), skipped)

    def _load(self, tile: Tile) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.source.read_tile(tile), None
        except TileNotFoundError as exc:
            return None, f"missing: {exc}"
        except CorruptTileError as exc:
            return None, f"corrupt: {exc}"
        except TileError as exc:  # e.g. an HTTP source that kept failing
            return None, f"unavailable: {exc}"
        except OSError as exc:
            return None, f"unreadable: {exc}"


# --- the build -------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    """What one :func:`build_index` call did."""

    tiles_added: int = 0
    vectors_added: int = 0
    tiles_skipped: int = 0
    tiles_already_indexed: int = 0
    tiles_resumed: int = 0  # described by an earlier, interrupted run
    shards_written: int = 0
    seconds: float = 0.0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


def build_index(
    index_dir: Path | str,
    tiles: Iterable[Tile],
    describer: TileDescriber,
    *,
    model_version: str,
    rotations: Sequence[int] = DEFAULT_ROTATIONS,
    shard_zoom: int | None = None,
    factories: str = DEFAULT_FACTORIES,
    chunk_tiles: int = 256,
    commit_every_s: float = 60.0,
    progress: bool = True,
) -> BuildReport:
    """Create, resume or extend the tile index in ``index_dir`` with ``tiles``.

    Args:
        tiles: the tiles to index; those already in the index are left as they are.
        describer: chunk of tiles -> :class:`DescribedTiles` (e.g. a :class:`SourceDescriber`).
        model_version: the descriptor model's version; an existing index of another model is
            refused (its descriptors are not comparable).
        rotations: degrees of the descriptors' second axis (the database's 4 rotations).
        shard_zoom: zoom of the shard cells, fixed when the index is created (None: the
            index's own, or DEFAULT_SHARD_ZOOM for a new index).
        factories: :class:`~index.shards.FactoryPolicy` text choosing each new shard's FAISS index.
        chunk_tiles: tiles per describer call and per checkpoint.
        commit_every_s: how often finished shards are recorded in the manifest (every shard
            would rewrite a large manifest thousands of times).
    """
    started = time.perf_counter()
    if not isinstance(model_version, str) or not model_version.strip():
        raise ValueError("model_version must be a non-empty string")
    rotations = _check_rotations(rotations)
    if chunk_tiles < 1:
        raise ValueError(f"chunk_tiles must be >= 1, got {chunk_tiles}")
    policy = FactoryPolicy.parse(factories)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)

    with _build_lock(index_dir):
        manifest = _open_or_create_manifest(index_dir, model_version, rotations, shard_zoom, policy)
        remove_unreferenced_shards(index_dir, manifest)
        run = _BuildRun(index_dir, manifest, describer, policy, chunk_tiles, commit_every_s)
        run.check_checkpoint()
        plan = run.plan(group_by_shard(tiles, manifest.shard_zoom))
        with tqdm(total=sum(len(p) for p in plan.values()), unit="tile", desc="index build",
                  disable=not progress, smoothing=0.1) as bar:  # fmt: skip
            for key, pending in plan.items():
                run.build_shard(key, pending, bar)
        run.commit()
        shutil.rmtree(index_dir / BUILD_DIR / "staging", ignore_errors=True)
        (index_dir / BUILD_DIR / "state.json").unlink(missing_ok=True)
    run.report.seconds = time.perf_counter() - started
    return run.report


class _BuildRun:
    """The state of one build_index call (kept out of the public function to keep it short)."""

    def __init__(
        self, index_dir: Path, manifest: Manifest, describer: TileDescriber, policy: FactoryPolicy,
        chunk_tiles: int, commit_every_s: float,
    ) -> None:  # fmt: skip
        self.index_dir = index_dir
        self.manifest = manifest
        self.describer = describer
        self.policy = policy
        self.chunk_tiles = chunk_tiles
        self.commit_every_s = commit_every_s
        self.staging = index_dir / BUILD_DIR / "staging"
        self.report = BuildReport()
        self.uncommitted: list[tuple[Path, Path | None]] = []  # staging stem, old shard directory
        self.last_commit = time.monotonic()
        self.skips_logged = 0

    def check_checkpoint(self) -> None:
        """Refuse to continue staged work of another model (its descriptors would be mixed in)."""
        state_path = self.index_dir / BUILD_DIR / "state.json"
        state = {"model_version": self.manifest.model_version, "rotations": self.manifest.rotations,
                 "shard_zoom": self.manifest.shard_zoom}  # fmt: skip
        found = claim_with_stamp(state_path, state)
        if found is not None:
            raise IndexMismatchError(
                f"{state_path.parent} holds an interrupted build with {found}, not {state}: "
                f"resume it with the same settings or delete {state_path.parent}"
            )

    def plan(self, groups: dict[ShardKey, list[Tile]]) -> dict[ShardKey, list[Tile]]:
        """Per shard, the tiles not yet in the index (in order); shards with none are dropped."""
        plan = {}
        for key, tiles in groups.items():
            entry = self.manifest.shards.get(key.name)
            if entry is not None:
                present = TileShard.load(self.index_dir, key.name, entry, mmap=True, verify=False).tiles
                indexed = np.isin(tile_keys(tile_table(tiles)), tile_keys(present))
                self.report.tiles_already_indexed += int(indexed.sum())
                tiles = [t for t, done in zip(tiles, indexed) if not done]
            if tiles:
                plan[key] = tiles
        return plan

    # -- one shard --

    def build_shard(self, key: ShardKey, pending: list[Tile], bar: tqdm) -> None:
        stem = self.staging / key.name.replace("/", "__")
        state = self._stage(key, pending, stem, bar)
        described = [t for t in pending if str(t) not in state["skipped"]]
        self._record_skips(state["skipped"])
        old_directory = self._write_shard(key, described, stem) if described else None
        self.manifest.skipped.update(state["skipped"])
        self.uncommitted.append((stem, old_directory))
        if time.monotonic() - self.last_commit > self.commit_every_s:
            self.commit()

    def _stage(self, key: ShardKey, pending: list[Tile], stem: Path, bar: tqdm) -> dict:
        """Describe the shard's pending tiles chunk by chunk into ``stem.f32``, checkpointing."""
        plan_sha = hashlib.sha256(tile_keys(tile_table(pending)).tobytes()).hexdigest()
        state_path, data_path = stem.with_suffix(".json"), stem.with_suffix(".f32")
        state = json.loads(state_path.read_text()) if state_path.is_file() else None
        if state is None or state["plan_sha256"] != plan_sha:
            state = {"plan_sha256": plan_sha, "tiles_done": 0, "rows": 0, "dim": None, "skipped": {}}
            data_path.unlink(missing_ok=True)
        else:
            # A new index learns its dimension from the first chunk, possibly in a crashed run.
            self.manifest.dim = self.manifest.dim or state["dim"]
            self.report.tiles_resumed += state["tiles_done"]
            bar.update(state["tiles_done"])
        data_path.parent.mkdir(parents=True, exist_ok=True)
        with open(data_path, "ab") as data:
            data.truncate(state["rows"] * self._row_bytes())  # drop a chunk written after the checkpoint
        for start in range(state["tiles_done"], len(pending), self.chunk_tiles):
            chunk = pending[start : start + self.chunk_tiles]
            tiles, descriptors, skipped = self._describe(chunk)
            with open(data_path, "ab") as data:
                data.write(descriptors.tobytes())
                data.flush()
                _fsync_handle(data)
            state["tiles_done"] = start + len(chunk)
            state["rows"] += len(tiles)
            state["dim"] = self.manifest.dim
            state["skipped"].update({str(t): reason for t, reason in skipped.items()})
            write_atomically(state_path, json.dumps(state).encode(), durable=True)
            bar.update(len(chunk))
        return state

    def _describe(self, chunk: list[Tile]) -> tuple[list[Tile], np.ndarray, dict[Tile, str]]:
        """Run the describer on a chunk and check its answer; normalised float32 descriptors."""
        answer = self.describer(chunk)
        skipped = dict(answer.skipped)
        if answer.tiles != [t for t in chunk if t not in skipped] or set(skipped) - set(chunk):
            raise ValueError("the describer must return the chunk's tiles in order, minus those it skipped")
        if not answer.tiles:
            return [], np.zeros((0, len(self.manifest.rotations), self.manifest.dim or 0), np.float32), skipped
        descriptors = np.asarray(answer.descriptors, dtype=np.float32)
        self._check_shape(descriptors, len(answer.tiles))
        norms = np.linalg.norm(descriptors, axis=2, keepdims=True)
        good = np.all(np.isfinite(norms) & (norms > 0), axis=(1, 2))
        for tile in (t for t, ok in zip(answer.tiles, good) if not ok):
            skipped[tile] = "bad descriptor: zero or not finite"
        tiles = [t for t, ok in zip(answer.tiles, good) if ok]
        return tiles, np.ascontiguousarray(descriptors[good] / norms[good]), skipped

    def _check_shape(self, descriptors: np.ndarray, count: int) -> None:
        rotations = len(self.manifest.rotations)
        if descriptors.ndim != 3 or descriptors.shape[:2] != (count, rotations):
            raise ValueError(
                f"descriptors must have shape ({count}, {rotations}, dim) for {count} tiles at "
                f"{rotations} rotations, got {descriptors.shape}"
            )
        if self.manifest.dim is None:
            self.manifest.dim = int(descriptors.shape[2])
        elif descriptors.shape[2] != self.manifest.dim:
            raise IndexMismatchError(
                f"descriptors have dimension {descriptors.shape[2]}, the index holds {self.manifest.dim}"
            )

    def _write_shard(self, key: ShardKey, described: list[Tile], stem: Path) -> Path | None:
        """Fill the shard's FAISS index from the staging file and write its new generation;
        returns the directory of the generation it replaces (deleted once committed)."""
        dim, rotations = self.manifest.dim, self.manifest.rotations
        staged = np.memmap(stem.with_suffix(".f32"), np.float32, "r", shape=(len(described) * len(rotations), dim))
        old = self.manifest.shards.get(key.name)
        if old is not None:  # incremental add: extend the shard as it is (trained quantisers kept)
            shard = TileShard.load(self.index_dir, key.name, old, mmap=False, verify=True)
            index, factory = shard.index, old.factory
            tiles, vectors = np.asarray(shard.tiles), np.asarray(shard.vectors)
        else:
            factory = self.policy.factory_for(len(staged))
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
            tiles, vectors = tile_table([]), np.zeros(0, VECTOR_DTYPE)
        if not index.is_trained:
            # Evenly spaced rows: a deterministic sample spread over the whole cell.
            sample = np.linspace(0, len(staged) - 1, min(len(staged), TRAINING_SAMPLE)).astype(np.int64)
            index.train(np.ascontiguousarray(staged[sample]))
        for start in range(0, len(staged), ADD_SLICE):
            index.add(np.ascontiguousarray(staged[start : start + ADD_SLICE]))
        new_vectors = np.zeros(len(staged), VECTOR_DTYPE)
        new_vectors["tile"] = len(tiles) + np.repeat(np.arange(len(described)), len(rotations))
        new_vectors["rotation"] = np.tile(rotations, len(described))
        entry = write_shard(
            self.index_dir, key, index, np.concatenate([tiles, tile_table(described)]),
            np.concatenate([vectors, new_vectors]), factory, generation_of(old) + 1,
        )  # fmt: skip
        self.manifest.shards[key.name] = entry
        for tile in described:
            self.manifest.skipped.pop(str(tile), None)  # a tile skipped before may be there now
        self.report.tiles_added += len(described)
        self.report.vectors_added += len(staged)
        self.report.shards_written += 1
        del staged  # close the memory map before the staging file is deleted
        return None if old is None else self.index_dir / old.directory

    def _record_skips(self, skipped: dict[str, str]) -> None:
        for tile, reason in skipped.items():
            kind = reason.split(":", 1)[0]
            self.report.skipped_by_reason[kind] = self.report.skipped_by_reason.get(kind, 0) + 1
            if self.skips_logged < LOGGED_SKIPS:
                log.warning("skipping tile %s: %s", tile, reason)
            elif self.skips_logged == LOGGED_SKIPS:
                log.warning("more tiles skipped; see the manifest's 'skipped' for all of them")
            self.skips_logged += 1
        self.report.tiles_skipped += len(skipped)

    def commit(self) -> None:
        """Record finished shards in the manifest, then drop their staging and old directories."""
        self.manifest.factories = str(self.policy)
        self.manifest.save(self.index_dir)
        for stem, old_directory in self.uncommitted:
            stem.with_suffix(".f32").unlink(missing_ok=True)
            stem.with_suffix(".json").unlink(missing_ok=True)
            if old_directory is not None:
                shutil.rmtree(old_directory, ignore_errors=True)
        self.uncommitted.clear()
        self.last_commit = time.monotonic()

    def _row_bytes(self) -> int:
        return 4 * len(self.manifest.rotations) * (self.manifest.dim or 0)


def _open_or_create_manifest(
    index_dir: Path, model_version: str, rotations: list[int], shard_zoom: int | None, policy: FactoryPolicy
) -> Manifest:
    if not (index_dir / MANIFEST_NAME).is_file():
        shard_zoom = DEFAULT_SHARD_ZOOM if shard_zoom is None else shard_zoom
        if not 0 <= shard_zoom <= 23:
            raise ValueError(f"shard_zoom must be in 0..23, got {shard_zoom}")
        return Manifest(model_version, rotations, shard_zoom, str(policy))
    manifest = Manifest.load(index_dir)
    manifest.check_model(model_version)
    if manifest.rotations != rotations:
        raise IndexMismatchError(f"the index holds rotations {manifest.rotations}, not {rotations}")
    if shard_zoom is not None and manifest.shard_zoom != shard_zoom:
        raise IndexMismatchError(
            f"the index is sharded at zoom {manifest.shard_zoom}, not {shard_zoom}: "
            "shards cannot be re-cut in place; build a new index"
        )
    return manifest


def _check_rotations(rotations: Sequence[int]) -> list[int]:
    values = list(rotations) if not isinstance(rotations, (int, str)) else []
    if not values or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) for r in values):
        raise ValueError(f"rotations must be a non-empty sequence of integer degrees, got {rotations!r}")
    if len(set(values)) != len(values) or any(not 0 <= r < 360 for r in values):
        raise ValueError(f"rotations must be distinct degrees in [0, 360), got {rotations!r}")
    return [int(r) for r in values]


@contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index directory (a second one would interleave checkpoints)."""
    path = index_dir / BUILD_DIR / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another build is running on {index_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_handle(handle) -> None:
    os.fsync(handle.fileno())


def unindexed_tiles(index_dir: Path | str, tiles: Iterable[Tile]) -> list[Tile]:
    """The tiles of ``tiles`` not yet in the index of ``index_dir`` (every one when there is no
    index there), grouped by shard: what a build of them would describe."""
    tiles = list(tiles)
    index_dir = Path(index_dir)
    if not (index_dir / MANIFEST_NAME).is_file():
        return tiles
    manifest = Manifest.load(index_dir)
    pending: list[Tile] = []
    for key, group in group_by_shard(tiles, manifest.shard_zoom).items():
        entry = manifest.shards.get(key.name)
        if entry is not None:
            present = TileShard.load(index_dir, key.name, entry, mmap=True, verify=False).tiles
            indexed = np.isin(tile_keys(tile_table(group)), tile_keys(present))
            group = [t for t, done in zip(group, indexed) if not done]
        pending += group
    return pending
