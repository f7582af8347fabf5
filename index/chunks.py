"""The index build split into chunks that any number of processes describe (service/index_jobs.py).

A build is planned as a list of chunks of tiles (:func:`plan_chunks`), in the order
:func:`index.build.build_index` would describe them. Each chunk's descriptors are written to one
file of the build's chunk directory (:func:`write_chunk`), whole or not at all (written beside,
then renamed): a process killed mid-chunk leaves nothing, and a chunk described twice (a job run
again after its worker was presumed lost) writes the same file again. When every chunk is there,
:class:`StoredDescriber` hands the stored descriptors to ``build_index`` as its describer, which
trains each shard's quantiser once and writes the sharded index as an in-process build would.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from index.build import DescribedTiles
from index.files import write_atomically
from index.tiles import Tile

CHUNK_SUFFIX = ".npz"


def plan_chunks(tiles: Iterable[Tile], chunk_tiles: int) -> list[list[Tile]]:
    """``tiles`` cut into consecutive chunks of ``chunk_tiles``."""
    if chunk_tiles < 1:
        raise ValueError(f"chunk_tiles must be >= 1, got {chunk_tiles}")
    tiles = list(tiles)
    return [tiles[start:start + chunk_tiles] for start in range(0, len(tiles), chunk_tiles)]


def tiles_array(tiles: Sequence[Tile]) -> np.ndarray:
    """(N, 4) int64 rows z, x, y, steps."""
    return np.array([(t.z, t.x, t.y, t.steps) for t in tiles], np.int64).reshape(-1, 4)


def tiles_from_array(rows: np.ndarray) -> list[Tile]:
    return [Tile(int(z), int(x), int(y), int(s)) for z, x, y, s in rows]


def chunk_path(directory: Path | str, number: int) -> Path:
    return Path(directory) / f"chunk-{number:06d}{CHUNK_SUFFIX}"


def chunk_done(directory: Path | str, number: int) -> bool:
    return chunk_path(directory, number).is_file()


def write_chunk(directory: Path | str, number: int, described: DescribedTiles) -> Path:
    """Store a chunk's descriptors (float32) with its tiles and the skipped ones, atomically."""
    path = chunk_path(directory, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    skipped = list(described.skipped.items())
    buffer = io.BytesIO()
    np.savez(
        buffer,
        tiles=tiles_array(described.tiles),
        descriptors=np.asarray(described.descriptors, np.float32),
        skipped_tiles=tiles_array([t for t, _ in skipped]),
        skipped_reasons=np.array([reason for _, reason in skipped], dtype=str),
    )
    write_atomically(path, buffer.getvalue(), durable=True)
    return path


def read_chunk(directory: Path | str, number: int) -> DescribedTiles:
    with np.load(chunk_path(directory, number)) as stored:
        skipped = dict(zip(tiles_from_array(stored["skipped_tiles"]), (str(r) for r in stored["skipped_reasons"])))
        return DescribedTiles(tiles_from_array(stored["tiles"]), stored["descriptors"], skipped)


class StoredDescriber:
    """A :data:`index.build.TileDescriber` answering from the chunk files of a planned build
    (every chunk must be there), for any grouping of the planned tiles; the last ``cached``
    chunks read stay in memory."""

    def __init__(self, directory: Path | str, chunks: Sequence[Sequence[Tile]], cached: int = 64) -> None:
        self.directory = Path(directory)
        self.chunk_of = {tile: number for number, chunk in enumerate(chunks) for tile in chunk}
        self.cached = cached
        self._chunks: OrderedDict[int, tuple[dict[Tile, int], DescribedTiles]] = OrderedDict()

    def _chunk(self, number: int) -> tuple[dict[Tile, int], DescribedTiles]:
        if number in self._chunks:
            self._chunks.move_to_end(number)
        else:
            described = read_chunk(self.directory, number)
            self._chunks[number] = ({tile: row for row, tile in enumerate(described.tiles)}, described)
            if len(self._chunks) > self.cached:
                self._chunks.popitem(last=False)
        return self._chunks[number]

    def __call__(self, tiles: Sequence[Tile]) -> DescribedTiles:
        kept, rows, skipped = [], [], {}
        for tile in tiles:
            if tile not in self.chunk_of:
                raise ValueError(f"tile {tile} is not in the planned build")
            row_of, described = self._chunk(self.chunk_of[tile])
            if tile in described.skipped:
                skipped[tile] = described.skipped[tile]
            else:
                kept.append(tile)
                rows.append(described.descriptors[row_of[tile]])
        descriptors = np.stack(rows) if rows else np.zeros((0, 0, 0), np.float32)
        return DescribedTiles(kept, descriptors, skipped)
