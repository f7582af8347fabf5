"""Region-filtered kNN over the sharded tile index.

    index = ShardedIndex.open("var/index", model_version="astroloc-1.0")
    [result] = index.search(query_descriptor, region=visibility_region(lat, lon, alt_km), k=100)
    for hit in result.hits: print(hit.tile, hit.rotation, hit.score)

One search: region -> the shards whose extent meets it -> per shard, the vectors of tiles whose
footprint meets the region (an exact filter, applied inside FAISS as an ID selector, so shards
on the region's edge still give their true nearest neighbours) -> per-shard kNN -> the 4
rotations of a tile collapsed to the best -> merge -> top-k tiles. Each shard is asked for
``rotations * k`` vectors: the first k distinct tiles always lie among them, so with exact
(Flat) shards the result equals brute force over the region.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import shapely
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from index.shards import Manifest, ShardKey, TileShard
from index.tiles import Tile, tile_polygon, wrap_longitudes

DEFAULT_K = 100
DEFAULT_NPROBE = 32  # IVF lists scanned per shard (of ~sqrt(n)); only IVF shards use it
# From this many queries on, a Flat shard on the region's edge is searched by gathering the
# selected vectors and one matrix product; fewer queries scan with an ID selector instead (a
# single query is memory-bound: skipping rows beats copying them).
GATHER_MIN_QUERIES = 8


@dataclass(frozen=True)
class SearchHit:
    """One database tile found for a query: at which rotation it matched best, and how well."""

    tile: Tile
    rotation: int  # degrees: the tile's descriptor at this rotation matched best
    score: float  # cosine similarity (inner product of L2-normalised descriptors)

    @property
    def zoom(self) -> int:
        return self.tile.z

    @property
    def footprint(self) -> BaseGeometry:
        """The tile's lon/lat polygon (two parts when it straddles the antimeridian); made on
        demand: building 100 polygons per query would cost more than the search itself."""
        return tile_polygon(self.tile)

    def to_dict(self) -> dict:
        """JSON-ready: ``{tile, zoom, rotation, score, footprint (GeoJSON)}``."""
        return {
            "tile": str(self.tile),
            "zoom": self.zoom,
            "rotation": self.rotation,
            "score": self.score,
            "footprint": mapping(self.footprint),
        }


@dataclass
class SearchResult:
    """The hits of one query, best first; ``reason`` says why there are none."""

    hits: list[SearchHit] = field(default_factory=list)
    reason: str | None = None
    shards_searched: int = 0


class ShardedIndex:
    """A tile index opened for searching. Shards are loaded on first use (memory-mapped by
    default) and kept; safe to share between threads."""

    def __init__(self, index_dir: Path | str, manifest: Manifest, mmap: bool = True, verify: bool = True) -> None:
        self.index_dir = Path(index_dir)
        self.manifest = manifest
        self.mmap = mmap
        self.verify = verify
        self._names = sorted(manifest.shards)
        self._zooms = np.array([ShardKey.parse(name).zoom for name in self._names], dtype=np.int64)
        extents = [wrap_longitudes(box(*manifest.shards[n].extent)) for n in self._names]
        self._extents = np.array(extents, dtype=object)
        shapely.prepare(self._extents)
        self._shards: dict[str, TileShard] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, index_dir: Path | str, model_version: str, *, mmap: bool = True, verify: bool = True) -> ShardedIndex:
        """Open an index for descriptors of ``model_version`` (another model's index is refused).

        ``verify`` checks each shard's files against the manifest's checksums when first loaded.
        """
        manifest = Manifest.load(index_dir)
        manifest.check_model(model_version)
        return cls(index_dir, manifest, mmap=mmap, verify=verify)

    @property
    def dim(self) -> int | None:
        return self.manifest.dim

    @property
    def rotations(self) -> list[int]:
        return self.manifest.rotations

    def shard(self, name: str) -> TileShard:
        """A shard by name, loaded (and verified) on first use."""
        with self._lock:
            if name not in self._shards:
                entry = self.manifest.shards[name]
                self._shards[name] = TileShard.load(self.index_dir, name, entry, self.mmap, self.verify)
            return self._shards[name]

    def shards_meeting(self, region: BaseGeometry | None, zooms: Iterable[int] | None = None) -> list[str]:
        """Names of the shards whose extent meets the region (all for None), optionally of some zooms."""
        return [self._names[i] for i in self._shards_meeting(prepare_region(region), zooms)]

    def _shards_meeting(self, region: BaseGeometry | None, zooms: Iterable[int] | None) -> np.ndarray:
        keep = np.ones(len(self._names), bool)
        if zooms is not None:
            keep &= np.isin(self._zooms, list(zooms))
        if region is not None and len(self._names):
            keep &= meets(self._extents, region)
        return np.flatnonzero(keep)

    def search(
        self,
        queries: np.ndarray,
        region: BaseGeometry | None | Sequence[BaseGeometry | None] = None,
        k: int = DEFAULT_K,
        *,
        nprobe: int = DEFAULT_NPROBE,
        zooms: Iterable[int] | None = None,
    ) -> list[SearchResult]:
        """The ``k`` best tiles for each query, inside a region.

        Args:
            queries: descriptors ``(dim,)`` or ``(Q, dim)`` of the query model (normalised here).
            region: lon/lat geometry the tiles' footprints must meet (e.g. the ISS visibility
                region; split at the antimeridian or with continuous longitudes); None searches
                the whole world; or a sequence with one region per query.
            k: tiles per query, after collapsing rotations.
            nprobe: inverted lists scanned per IVF shard (speed vs recall).
            zooms: restrict to these zoom levels.

        Returns one :class:`SearchResult` per query; an empty one carries the reason.
        """
        queries = _check_queries(queries, self.dim)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {nprobe}")
        regions = _per_query(region, len(queries))
        zooms = None if zooms is None else sorted(set(zooms))
        results: list[SearchResult | None] = [None] * len(queries)
        for group_region, rows in _group_by_region(regions):
            group = self._search_region(queries[rows], group_region, int(k), nprobe, zooms)
            for row, result in zip(rows, group):
                results[row] = result
        return results  # type: ignore[return-value]

    # -- one region, a batch of queries --

    def _search_region(
        self, queries: np.ndarray, region: BaseGeometry | None, k: int, nprobe: int, zooms: list[int] | None
    ) -> list[SearchResult]:
        region = prepare_region(region)
        if not self._names:
            return _empty(len(queries), "the index holds no tiles")
        if region is not None and region.is_empty:
            return _empty(len(queries), "the search region is empty")
        numbers = self._shards_meeting(region, zooms)
        if not len(numbers):
            return _empty(len(queries), self._no_shard_reason(zooms))
        selections = self._selections(numbers, region)
        if not selections:
            return _empty(len(queries), f"no indexed tile's footprint meets the region ({len(numbers)} shards near it)")
        found = []  # per shard searched: its number, scores and FAISS ids (Q, k') of its kNN
        for number, selected in selections:
            shard = self.shard(self._names[number])
            scores, labels = _search_shard(shard, queries, k * len(self.rotations), selected, nprobe)
            found.append((number, scores, labels))
        return self._merge(found, len(queries), k)

    def _selections(self, numbers: np.ndarray, region: BaseGeometry | None) -> list[tuple[int, np.ndarray | None]]:
        """Per shard met, the mask of its vectors whose tile footprint meets the region (None:
        all of them); shards left with none are dropped. One shapely call for all shards."""
        if region is None:
            return [(int(n), None) for n in numbers]
        inside = shapely.contains(region, self._extents[numbers])
        partial = [self.shard(self._names[n]) for n in numbers[~inside]]
        tables = [shard.tiles for shard in partial]
        meeting = footprints_meeting(np.concatenate(tables), region) if tables else np.zeros(0, bool)
        tile_masks = np.split(meeting, np.cumsum([len(t) for t in tables])[:-1])
        masks = {int(n): m[s.vectors["tile"]] for n, s, m in zip(numbers[~inside], partial, tile_masks) if m.any()}
        for n in numbers[inside]:
            masks[int(n)] = None
        return [(n, None if masks[n] is None or masks[n].all() else masks[n]) for n in sorted(masks)]

    def _merge(self, found: list, n_queries: int, k: int) -> list[SearchResult]:
        """Collapse rotations and merge shards: per query the k best tiles over all shards."""
        scores = np.hstack([scores for _, scores, _ in found])
        labels = np.hstack([labels for _, _, labels in found])
        numbers = np.hstack([np.full(labels.shape[1], number) for number, _, labels in found])
        # A tile's id across shards: its shard's place in `found` times a bound on tile rows, plus its row.
        bound = 1 + max(self.manifest.shards[self._names[n]].tiles for n, _, _ in found)
        tiles = np.hstack([
            np.where(lab >= 0, place * bound + self.shard(self._names[n]).vectors["tile"][np.maximum(lab, 0)], -1)
            for place, (n, _, lab) in enumerate(found)
        ])  # fmt: skip
        scores = np.where(labels >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")
        scores, labels, tiles = (np.take_along_axis(a, order, axis=1) for a in (scores, labels, tiles))
        numbers = numbers[order]
        rows, positions = _best_per_tile(tiles, k)
        results = [SearchResult(shards_searched=len(found)) for _ in range(n_queries)]
        for row, position in zip(rows, positions):
            shard = self.shard(self._names[numbers[row, position]])
            vector = shard.vectors[labels[row, position]]
            record = shard.tiles[vector["tile"]]
            tile = Tile(int(record["z"]), int(record["x"]), int(record["y"]), int(record["steps"]))
            hit = SearchHit(tile, int(vector["rotation"]), float(scores[row, position]))
            results[row].hits.append(hit)
        return results

    def _no_shard_reason(self, zooms: list[int] | None) -> str:
        extents = np.array([self.manifest.shards[n].extent for n in self._names])
        west, south = extents[:, 0].min(), extents[:, 1].min()
        east, north = extents[:, 2].max(), extents[:, 3].max()
        where = f"lon {west:.1f}..{east:.1f}, lat {south:.1f}..{north:.1f}"
        zoom_text = "" if zooms is None else f" at zooms {zooms}"
        return f"the region meets none of the index's {len(self._names)} shards{zoom_text} (tiles cover {where})"


# --- region geometry -------------------------------------------------------------------------------


def prepare_region(region: BaseGeometry | None) -> BaseGeometry | None:
    """Check a search region and fold longitudes beyond +/-180 onto the globe (None: worldwide)."""
    if region is None:
        return None
    if not isinstance(region, BaseGeometry):
        raise ValueError(f"region must be a shapely geometry in lon/lat or None, got {type(region).__name__}")
    if region.is_empty:
        return region
    if not region.is_valid:
        raise ValueError(f"invalid region geometry: {shapely.is_valid_reason(region)}")
    west, south, east, north = region.bounds
    if south < -90.0 or north > 90.0 or west < -540.0 or east > 540.0:
        raise ValueError(f"region is not in lon/lat degrees: bounds {region.bounds}")
    region = wrap_longitudes(region)
    shapely.prepare(region)
    return region


def meets(geometries: np.ndarray, region: BaseGeometry) -> np.ndarray:
    """Which geometries share more than a boundary with an areal region (any point otherwise)."""
    hits = shapely.intersects(geometries, region)
    if region.area > 0:
        # `touches` is slow (a full DE-9IM matrix): ask it only of geometries on the boundary.
        boundary = hits & ~shapely.contains_properly(region, geometries)
        hits[boundary] = ~shapely.touches(geometries[boundary], region)
    return hits


def footprints_meeting(tiles: np.ndarray, region: BaseGeometry) -> np.ndarray:
    """Which rows of a tile table have a footprint meeting the (wrapped) region.

    Tile footprints are lon/lat boxes filling their row's latitude band. For an areal region a
    box meets it exactly when its longitudes overlap those of a piece of the region clipped to
    the band: one clip per band instead of one polygon test per tile (a region-sized shard
    set at zoom 12 holds ~10^5 tiles in ~600 bands).
    """
    west, south, east, north = (np.asarray(tiles[c]) for c in ("west", "south", "east", "north"))
    if region.area == 0:  # points and lines: test the boxes themselves
        hits = meets(shapely.box(west, south, east, north), region)
        straddling = east > 180.0
        hits[straddling] |= meets(shapely.box(west[straddling] - 360, south[straddling], east[straddling] - 360, north[straddling]), region)
        return hits
    bands, band_of = np.unique(np.column_stack([south, north]), axis=0, return_inverse=True)
    starts, ends = _band_intervals(region, bands)
    starts, ends = starts[band_of.ravel()], ends[band_of.ravel()]  # (tiles, intervals); NaN pads
    overlaps = (west[:, None] < ends) & (east[:, None] > starts)
    # A tile straddling the antimeridian also covers [-180, east - 360].
    overlaps |= (west[:, None] - 360.0 < ends) & (east[:, None] - 360.0 > starts)
    return overlaps.any(axis=1)


def _band_intervals(region: BaseGeometry, bands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per latitude band ``(south, north)``, the longitude intervals of the region's pieces
    inside it (open intervals; arrays ``(bands, most pieces)`` padded with NaN).

    A piece with area is the closure of its interior, so the open interval of its longitudes is
    exactly where a box spanning the band's latitudes shares interior points with it; pieces
    without area (where the region only touches the band's edge) are dropped.
    """
    per_band = []
    for south, north in bands:
        pieces = shapely.get_parts(shapely.clip_by_rect(region, -180.0, south, 180.0, north))
        pieces = pieces[shapely.area(pieces) > 0]
        per_band.append(shapely.bounds(pieces)[:, [0, 2]] if len(pieces) else np.zeros((0, 2)))
    width = max(1, max(len(p) for p in per_band))
    starts = np.full((len(bands), width), np.nan)
    ends = np.full((len(bands), width), np.nan)
    for number, intervals in enumerate(per_band):
        starts[number, : len(intervals)] = intervals[:, 0]
        ends[number, : len(intervals)] = intervals[:, 1]
    return starts, ends


# --- per-shard kNN and the rotation collapse --------------------------------------------------------


def _search_shard(
    shard: TileShard, queries: np.ndarray, k: int, selected: np.ndarray | None, nprobe: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product kNN in one shard, over the selected vectors only; labels -1 pad short lists."""
    available = shard.index.ntotal if selected is None else int(selected.sum())
    k = min(k, available)
    if selected is not None and shard.is_flat and len(queries) >= GATHER_MIN_QUERIES:
        ids = np.flatnonzero(selected)
        scores, positions = faiss.knn(queries, shard.flat_vectors()[ids], k, metric=faiss.METRIC_INNER_PRODUCT)
        return scores, np.where(positions >= 0, ids[positions], -1)
    if selected is None and not shard.is_ivf:
        return shard.index.search(queries, k)
    bitmap = None if selected is None else np.packbits(selected, bitorder="little")
    selector = None if bitmap is None else faiss.IDSelectorBitmap(len(selected), faiss.swig_ptr(bitmap))
    return shard.index.search(queries, k, params=_search_parameters(shard.index, selector, nprobe))


def _search_parameters(index: faiss.Index, selector: faiss.IDSelector | None, nprobe: int) -> faiss.SearchParameters:
    """FAISS search parameters carrying the ID selector (and nprobe for IVF), through transforms."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        return faiss.SearchParametersPreTransform(index_params=_search_parameters(inner.index, selector, nprobe))
    if isinstance(inner, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=min(nprobe, inner.nlist))
    return faiss.SearchParameters(sel=selector)


def _best_per_tile(tiles: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapse rotations: positions of the first (best) entry of each tile per query row, at
    most k per row. ``tiles``: (Q, n) tile ids, each row sorted best first, -1 for no hit."""
    rows, positions = np.nonzero(tiles >= 0)  # row-major: each row best first
    ids = tiles[rows, positions]
    _, first = np.unique(rows * (int(ids.max(initial=0)) + 1) + ids, return_index=True)
    first.sort()  # back in (query, score) order
    rows, positions = rows[first], positions[first]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # place within the query's list
    return rows[rank < k], positions[rank < k]


# --- input checks ----------------------------------------------------------------------------------


def _check_queries(queries: np.ndarray, dim: int | None) -> np.ndarray:
    array = np.asarray(queries, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"queries must have shape (dim,) or (Q, dim) with Q >= 1, got {np.shape(queries)}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"queries have dimension {array.shape[1]}, the index holds {dim}-d descriptors")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("query descriptors must be finite and non-zero")
    return np.ascontiguousarray(array / norms)


def _per_query(region, count: int) -> list:
    if isinstance(region, (list, tuple)):
        if len(region) != count:
            raise ValueError(f"{len(region)} regions given for {count} queries")
        return list(region)
    return [region] * count


def _group_by_region(regions: list) -> list[tuple[BaseGeometry | None, list[int]]]:
    """Queries sharing one region object are searched together (one batch per shard)."""
    groups: dict[int, tuple[BaseGeometry | None, list[int]]] = {}
    for row, region in enumerate(regions):
        groups.setdefault(id(region), (region, []))[1].append(row)
    return list(groups.values())


def _empty(count: int, reason: str) -> list[SearchResult]:
    return [SearchResult(reason=reason) for _ in range(count)]
