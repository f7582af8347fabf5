"""Geographic shards of the tile index: what one shard holds, how it is named, stored and loaded.

The database is cut into shards by zoom level and by geographic cell, so that a search restricted
to a region (an ISS visibility region, ~2,300 km radius) opens only the shards meeting it.

**Cells are the Web-Mercator tiles of zoom** ``shard_zoom`` (default 5: 11.25 degrees of longitude,
1,250 km at the equator). A database tile of zoom ``z`` belongs to the cell that contains its
centre, at zoom ``max(0, min(shard_zoom, z - 3))``: coarse zoom levels, which hold few tiles, get
coarser cells, so that no shard has fewer than 64 tile positions. Why this cell:

- it nests with the tile grid: a plain tile lies wholly inside one cell, and tiles of an
  overlapping grid reach at most half a tile beyond it (recorded in the shard's extent);
- every shard of a zoom level holds the same number of tile positions, 4 ** (z - cell zoom),
  because Mercator cells shrink toward the poles exactly as tiles do: at zoom 12 a full cell holds
  16,384 tiles (65,536 vectors with 4 rotations), enough that per-shard overhead is negligible;
  at zoom 8 it holds 64;
- cells a quarter of the region's diameter wide (~41 degrees of arc) keep the cells meeting the
  region close to the region itself: the shards read cover ~1.5-2x the region's area, a few
  percent of the world. Smaller cells would prune a little more but multiply shards and calls.

On disk an index directory holds ``manifest.json`` and ``shards/z{zoom}/c{cz}-{cx}-{cy}.g{n}/``
with ``index.faiss`` (a FAISS index from ``index_factory``, inner product on L2-normalised
descriptors), ``tiles.npy`` (one row per tile: z, x, y, steps and footprint bounds) and
``vectors.npy`` (one row per FAISS id: the tile row and the rotation). The generation ``g{n}``
grows whenever a shard is rewritten, so the manifest never points at a half-written directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from index.files import sha256_file, write_atomically
from index.tiles import Tile, tile_xy_to_lonlat

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARDS_DIR = "shards"
INDEX_FILE, TILES_FILE, VECTORS_FILE = "index.faiss", "tiles.npy", "vectors.npy"
SHARD_FILES = (INDEX_FILE, TILES_FILE, VECTORS_FILE)
DEFAULT_SHARD_ZOOM = 5
# Cells are at least this many zoom levels coarser than their tiles (>= 4**3 = 64 tiles a shard):
# a search pays a fixed cost per shard, which must stay small next to the shard's scan.
MIN_CELL_DEPTH = 3
DEFAULT_ROTATIONS = (0, 90, 180, 270)


def rotations_with_turns(turns_deg: Sequence[int] = ()) -> tuple[int, ...]:
    """The index's rotations when each tile is also described turned by ``turns_deg`` (degrees
    strictly between 0 and 90, e.g. (45,)): the quarter turns first, then each turn's four, in
    the order :class:`index.build.SourceDescriber` gives them."""
    turns = [int(t) for t in turns_deg]
    if any(not 0 < t < 90 for t in turns) or len(set(turns)) != len(turns):
        raise ValueError(f"turns must be distinct degrees strictly between 0 and 90, got {list(turns_deg)!r}")
    return DEFAULT_ROTATIONS + tuple(t + r for t in turns for r in DEFAULT_ROTATIONS)


# One row per tile of a shard; bounds in degrees as index.tiles.tile_bounds gives them (east may
# exceed 180 for a tile straddling the antimeridian).
TILE_DTYPE = np.dtype(
    [("z", "u1"), ("steps", "u1"), ("x", "<i4"), ("y", "<i4"),
     ("west", "<f8"), ("south", "<f8"), ("east", "<f8"), ("north", "<f8")]
)  # fmt: skip
# One row per FAISS id: which tile (row of the tile table) and which rotation (degrees).
VECTOR_DTYPE = np.dtype([("tile", "<i4"), ("rotation", "<i2")])

# Exact below 20,000 vectors (a 2048-d Flat shard is then <= 164 MB and scanned in ~10 ms),
# IVF with 8-bit scalar quantisation above (4x smaller, recall@100 ~0.998 on our benchmarks).
DEFAULT_FACTORIES = "Flat;20000:IVF{nlist},SQ8"
# Everything compressed: the world-wide database (881k tiles x 4 x 2048-d) in ~7.3 GB.
COMPACT_FACTORIES = "SQ8;20000:IVF{nlist},SQ8"
# FAISS index types whose search takes an IDSelector (the exact region filter needs one).
_SELECTABLE = (faiss.IndexFlat, faiss.IndexScalarQuantizer, faiss.IndexIVF)


class TileIndexError(ValueError):
    """Base of the index's own errors (a ValueError: bad input, not a crash)."""


class IndexMismatchError(TileIndexError):
    """The index was built by another model version, dimension or format."""


class IndexCorruptError(TileIndexError):
    """A file of the index is missing or its checksum does not match the manifest."""


# --- shard assignment --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ShardKey:
    """A shard: the tiles of one zoom level whose centres fall in one cell (a Web-Mercator tile)."""

    zoom: int
    cell: Tile

    @property
    def name(self) -> str:
        return f"z{self.zoom:02d}/c{self.cell.z}-{self.cell.x}-{self.cell.y}"

    @classmethod
    def parse(cls, name: str) -> ShardKey:
        match = re.fullmatch(r"z(\d+)/c(\d+)-(\d+)-(\d+)", name)
        if not match:
            raise ValueError(f"not a shard name (want zZZ/cZ-X-Y): {name!r}")
        zoom, cz, cx, cy = (int(g) for g in match.groups())
        return cls(zoom, Tile(cz, cx, cy))


def shard_key(tile: Tile, shard_zoom: int = DEFAULT_SHARD_ZOOM) -> ShardKey:
    """The shard a tile belongs to: the cell holding its centre, at zoom
    ``max(0, min(shard_zoom, tile.z - MIN_CELL_DEPTH))``."""
    if shard_zoom < 0:
        raise ValueError(f"shard zoom must be >= 0, got {shard_zoom}")
    cell_zoom = max(0, min(shard_zoom, tile.z - MIN_CELL_DEPTH))
    tx, ty = tile.origin
    per_cell = 2 ** (tile.z - cell_zoom)
    cells = 2**cell_zoom
    # Centres of the last column of an overlapping grid lie past the antimeridian: wrap them.
    cx = int(math.floor((tx + 0.5) / per_cell)) % cells
    cy = min(int(math.floor((ty + 0.5) / per_cell)), cells - 1)
    return ShardKey(tile.z, Tile(cell_zoom, cx, cy))


def group_by_shard(tiles: Iterable[Tile], shard_zoom: int) -> dict[ShardKey, list[Tile]]:
    """Tiles grouped by shard, each group sorted and without duplicates, shards in name order."""
    groups: dict[ShardKey, set[Tile]] = {}
    for tile in tiles:
        if not isinstance(tile, Tile):
            raise TypeError(f"tiles must be index.tiles.Tile, got {type(tile).__name__}")
        groups.setdefault(shard_key(tile, shard_zoom), set()).add(tile)
    return {key: sorted(groups[key]) for key in sorted(groups, key=lambda k: k.name)}


def tile_table(tiles: Sequence[Tile]) -> np.ndarray:
    """The ``TILE_DTYPE`` rows of tiles: ids and footprint bounds (vectorised tile_bounds)."""
    table = np.zeros(len(tiles), TILE_DTYPE)
    if not tiles:
        return table
    for name in ("z", "steps", "x", "y"):
        table[name] = [getattr(t, name) for t in tiles]
    for z in np.unique(table["z"]):
        rows = table["z"] == z
        tx = table["x"][rows] / table["steps"][rows]
        ty = table["y"][rows] / table["steps"][rows]
        west, north = tile_xy_to_lonlat(tx, ty, int(z))
        east, south = tile_xy_to_lonlat(tx + 1.0, ty + 1.0, int(z))
        table["west"][rows], table["north"][rows] = west, north
        table["east"][rows], table["south"][rows] = east, south
    return table


def tiles_of_table(table: np.ndarray) -> list[Tile]:
    """The Tile ids of tile-table rows."""
    return [Tile(int(r["z"]), int(r["x"]), int(r["y"]), int(r["steps"])) for r in table]


def tile_keys(table: np.ndarray) -> np.ndarray:
    """One int64 per tile-table row, equal for equal tiles (for set operations on tile ids)."""
    # Bit fields: z (6 bits) | steps (8) | x (25) | y (25): enough up to zoom 23 on a half-step grid.
    if len(table) and max(int(table["x"].max()), int(table["y"].max())) >= 2**25:
        raise ValueError("tile ids beyond zoom 23 (half-step grid) are not supported by the index")
    return (
        (table["z"].astype(np.int64) << 58)
        | (table["steps"].astype(np.int64) << 50)
        | (table["x"].astype(np.int64) << 25)
        | table["y"].astype(np.int64)
    )


def table_extent(table: np.ndarray) -> list[float]:
    """``[west, south, east, north]`` around a shard's tiles, longitudes continuous (may pass 180).

    A shard's tiles are close together, so longitudes are unwrapped around the first tile's: a
    cell at the antimeridian then gets e.g. ``[168.75, ..., 180.3, ...]`` rather than the globe.
    """
    reference = float(table["west"][0])
    west = (table["west"] - reference + 180.0) % 360.0 - 180.0 + reference
    east = west + (table["east"] - table["west"])
    return [float(west.min()), float(table["south"].min()), float(east.max()), float(table["north"].max())]


# --- which FAISS index for which shard ---------------------------------------------------------


@dataclass(frozen=True)
class FactoryPolicy:
    """FAISS ``index_factory`` strings by shard size: ``"Flat;20000:IVF{nlist},SQ8"`` means Flat
    below 20,000 vectors and IVF with scalar quantisation from there on. ``{nlist}`` becomes
    round(sqrt(n)): k-means training stays cheap (seconds per shard at 2048-d) and a list holds
    ~sqrt(n) vectors."""

    steps: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, text: str) -> FactoryPolicy:
        steps = []
        for number, part in enumerate(p.strip() for p in text.split(";")):
            threshold, sep, factory = part.partition(":")
            if not sep or not threshold.strip().isdigit():
                threshold, factory = ("0" if number == 0 else ""), part
            if not threshold.strip().isdigit():
                raise ValueError(f"factory policy entry {part!r} needs a vector count: 'N:factory'")
            steps.append((int(threshold), factory.strip()))
        if not steps or steps[0][0] != 0:
            raise ValueError(f"factory policy {text!r} must start with a factory for small shards")
        if any(b[0] <= a[0] for a, b in zip(steps, steps[1:])):
            raise ValueError(f"factory policy {text!r}: vector counts must increase")
        for _, factory in steps:
            check_factory(factory)
        return cls(tuple(steps))

    def __str__(self) -> str:
        return ";".join(f if n == 0 else f"{n}:{f}" for n, f in self.steps)

    def factory_for(self, vectors: int) -> str:
        """The factory string (``{nlist}`` filled in) for a shard of ``vectors`` vectors."""
        chosen = [f for threshold, f in self.steps if vectors >= threshold][-1]
        return chosen.replace("{nlist}", str(max(1, round(math.sqrt(vectors)))))


def check_factory(factory: str, dim: int = 64) -> None:
    """Refuse factory strings FAISS cannot build or cannot search with an ID filter."""
    try:
        index = faiss.index_factory(dim, factory.replace("{nlist}", "4"), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"FAISS cannot build index factory {factory!r}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(_searched_part(index), _SELECTABLE):
        raise ValueError(
            f"index factory {factory!r} gives a {type(index).__name__}; the region filter needs "
            "Flat, SQ or IVF (optionally behind a transform such as PCA or OPQ)"
        )


def _searched_part(index: faiss.Index) -> faiss.Index:
    """The index behind any pre-transforms (PCA, OPQ, ...)."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


# --- the manifest --------------------------------------------------------------------------------


@dataclass
class ShardEntry:
    """What the manifest knows about one shard."""

    directory: str  # relative to the index directory
    factory: str
    tiles: int
    vectors: int
    extent: list[float]  # west, south, east, north; longitudes continuous
    files: dict[str, dict]  # file name -> {"sha256": ..., "bytes": ...}


@dataclass
class Manifest:
    """The index's table of contents (``manifest.json``)."""

    model_version: str
    rotations: list[int]
    shard_zoom: int
    factories: str
    dim: int | None = None  # known once the first descriptor is seen
    format_version: int = FORMAT_VERSION
    metric: str = "inner_product on L2-normalised descriptors"
    created_utc: str = field(default_factory=lambda: _now())
    updated_utc: str = field(default_factory=lambda: _now())
    counts: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # tile id -> reason
    shards: dict[str, ShardEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, index_dir: Path | str) -> Manifest:
        path = Path(index_dir) / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no tile index at {index_dir} ({MANIFEST_NAME} missing)")
        try:
            data = json.loads(path.read_text())
            if data.get("format_version") != FORMAT_VERSION:
                raise IndexMismatchError(
                    f"index {index_dir} has format version {data.get('format_version')}, "
                    f"this code reads {FORMAT_VERSION}: rebuild it"
                )
            data["shards"] = {name: ShardEntry(**entry) for name, entry in data["shards"].items()}
            return cls(**data)
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise IndexCorruptError(f"unreadable manifest {path}: {exc}") from exc

    def save(self, index_dir: Path | str) -> None:
        """Recount and write the manifest atomically (readers see the old or the new one)."""
        self.updated_utc = _now()
        self.counts = self._recount()
        write_atomically(Path(index_dir) / MANIFEST_NAME, json.dumps(asdict(self), indent=1).encode(), durable=True)

    def check_model(self, model_version: str) -> None:
        """Refuse to serve descriptors of another model: their spaces are unrelated."""
        if model_version != self.model_version:
            raise IndexMismatchError(
                f"the index was built with model {self.model_version!r}, not {model_version!r}: "
                "descriptors of different models cannot be compared; rebuild the index"
            )

    def _recount(self) -> dict:
        by_zoom: dict[str, int] = {}
        for name, entry in self.shards.items():
            zoom = str(ShardKey.parse(name).zoom)
            by_zoom[zoom] = by_zoom.get(zoom, 0) + entry.tiles
        reasons: dict[str, int] = {}
        for reason in self.skipped.values():
            kind = reason.split(":", 1)[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        return {
            "shards": len(self.shards),
            "tiles": sum(e.tiles for e in self.shards.values()),
            "vectors": sum(e.vectors for e in self.shards.values()),
            "tiles_by_zoom": dict(sorted(by_zoom.items(), key=lambda kv: int(kv[0]))),
            "skipped": len(self.skipped),
            "skipped_by_reason": reasons,
            "bytes": sum(f["bytes"] for e in self.shards.values() for f in e.files.values()),
        }


# --- one shard -----------------------------------------------------------------------------------


@dataclass
class TileShard:
    """A loaded shard: its FAISS index, tile table and id -> (tile, rotation) table."""

    key: ShardKey
    index: faiss.Index
    tiles: np.ndarray  # TILE_DTYPE, one row per tile
    vectors: np.ndarray  # VECTOR_DTYPE, row i describes FAISS id i
    factory: str

    def __post_init__(self) -> None:
        # (read_index already returns the concrete class; a downcast here would make a second,
        # non-owning wrapper whose owner could be freed under it.) What search needs to know, found once: an exact Flat index, or IVF needing nprobe.
        self.is_flat = isinstance(self.index, faiss.IndexFlat)
        self.is_ivf = faiss.try_extract_index_ivf(self.index) is not None

    def flat_vectors(self) -> np.ndarray:
        """The stored vectors of a Flat shard, a read-only view (memory-mapped when loaded so)."""
        flat = self.index
        view = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        view.flags.writeable = False
        return view

    @classmethod
    def load(cls, index_dir: Path, name: str, entry: ShardEntry, mmap: bool = True, verify: bool = True) -> TileShard:
        """Open a shard; ``mmap`` maps the files instead of reading them (the page cache holds
        what searches touch); ``verify`` compares every file with its manifest checksum first."""
        directory = Path(index_dir) / entry.directory
        for file_name in SHARD_FILES:
            path = directory / file_name
            if not path.is_file():
                raise IndexCorruptError(f"shard {name}: {path} is missing")
            expected = entry.files[file_name]
            if path.stat().st_size != expected["bytes"] or (verify and sha256_file(path) != expected["sha256"]):
                raise IndexCorruptError(
                    f"shard {name}: {path} does not match the manifest's checksum "
                    "(changed or damaged since the build): rebuild the index"
                )
        flags = _mmap_flags(entry.factory) if mmap else 0
        index = faiss.read_index(str(directory / INDEX_FILE), flags)
        # Plain ndarray views of the maps: numpy's memmap subclass is slow to index in a loop.
        tiles = np.load(directory / TILES_FILE, mmap_mode="r" if mmap else None).view(np.ndarray)
        vectors = np.load(directory / VECTORS_FILE, mmap_mode="r" if mmap else None).view(np.ndarray)
        if tiles.dtype != TILE_DTYPE or vectors.dtype != VECTOR_DTYPE or len(vectors) != index.ntotal:
            raise IndexCorruptError(f"shard {name}: tables do not match its index ({directory})")
        return cls(ShardKey.parse(name), index, tiles, vectors, entry.factory)


def _mmap_flags(factory: str) -> int:
    """FAISS read flags that map a shard's index instead of reading it: IO_FLAG_MMAP maps IVF
    lists, IO_FLAG_MMAP_IFC flat code arrays (Flat, SQ); the two do not combine."""
    return (faiss.IO_FLAG_MMAP if "IVF" in factory else faiss.IO_FLAG_MMAP_IFC) | faiss.IO_FLAG_READ_ONLY


def write_shard(
    index_dir: Path, key: ShardKey, index: faiss.Index, tiles: np.ndarray, vectors: np.ndarray,
    factory: str, generation: int,
) -> ShardEntry:
    """Write a shard into a fresh generation directory and return its manifest entry."""
    relative = f"{SHARDS_DIR}/{key.name}.g{generation}"
    directory = Path(index_dir) / relative
    if directory.exists():  # left by a crash before the manifest referenced it
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    faiss.write_index(index, str(directory / INDEX_FILE))
    np.save(directory / TILES_FILE, np.ascontiguousarray(tiles, TILE_DTYPE))
    np.save(directory / VECTORS_FILE, np.ascontiguousarray(vectors, VECTOR_DTYPE))
    files = {}
    for file_name in SHARD_FILES:
        path = directory / file_name
        _fsync(path)
        files[file_name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return ShardEntry(relative, factory, len(tiles), len(vectors), table_extent(tiles), files)


def generation_of(entry: ShardEntry | None) -> int:
    """The generation number of a shard directory (0 when there is none yet)."""
    return 0 if entry is None else int(entry.directory.rsplit(".g", 1)[1])


def remove_unreferenced_shards(index_dir: Path, manifest: Manifest) -> None:
    """Delete shard directories the manifest does not point at (left by crashes or rewrites)."""
    root = Path(index_dir) / SHARDS_DIR
    if not root.is_dir():
        return
    referenced = {(Path(index_dir) / e.directory).resolve() for e in manifest.shards.values()}
    for zoom_dir in root.iterdir():
        for directory in zoom_dir.iterdir():
            if directory.resolve() not in referenced:
                shutil.rmtree(directory)


# --- statistics (``astroloc index stats``) ---------------------------------------------------------


def index_stats(index_dir: Path | str) -> dict:
    """Counts, sizes and settings of an index, from its manifest alone (no shard is opened)."""
    manifest = Manifest.load(index_dir)
    factories: dict[str, int] = {}
    for entry in manifest.shards.values():
        base = re.sub(r"IVF\d+", "IVF", entry.factory)
        factories[base] = factories.get(base, 0) + 1
    largest = max((e.vectors for e in manifest.shards.values()), default=0)
    return {
        "index_dir": str(index_dir),
        "model_version": manifest.model_version,
        "dim": manifest.dim,
        "rotations": manifest.rotations,
        "shard_zoom": manifest.shard_zoom,
        "factory_policy": manifest.factories,
        "shards_by_factory": factories,
        "largest_shard_vectors": largest,
        "updated_utc": manifest.updated_utc,
        **manifest.counts,
    }


def format_stats(stats: Mapping) -> str:
    """``index_stats`` as aligned ``key: value`` lines for a terminal."""
    width = max(len(k) for k in stats)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in stats.items())


# --- files -----------------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
