"""Tile sources: where database tile images come from, behind one small interface.

A :class:`TileSource` hands out RGB tiles for :class:`~index.tiles.Tile` ids. Sources implement
``read_plain_tile`` for the plain XYZ grid; tiles of an overlapping grid (``steps > 1``) are cut
from a mosaic of the plain tiles beneath them, by the base class, for every source alike.

- :class:`LocalXYZSource` reads a directory ``{z}/{x}/{y}.jpg|png`` (s2maps-style tile dumps).
- :func:`decode_tile` / :func:`encode_jpeg`: the tile image codec every source shares.

The demo world's Blue Marble renderer is :class:`world.bluemarble.BlueMarbleTileSource`;
:mod:`index.remote` fetches XYZ tiles over HTTP into a :class:`LocalXYZSource` cache.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from index.tiles import DEFAULT_TILE_SIZE, Tile

log = logging.getLogger(__name__)

TILE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


class TileError(Exception):
    """A tile could not be provided."""


class TileNotFoundError(TileError, LookupError):
    """The source has no such tile."""


class CorruptTileError(TileError):
    """The tile exists but cannot be decoded."""


# --- the interface ---------------------------------------------------------------------------


class TileSource(ABC):
    """Square RGB tiles (``uint8``, ``tile_size x tile_size x 3``) for Web-Mercator tile ids."""

    tile_size: int = DEFAULT_TILE_SIZE

    @abstractmethod
    def read_plain_tile(self, z: int, x: int, y: int) -> np.ndarray:
        """The plain XYZ tile ``z/x/y``; raises TileNotFoundError or CorruptTileError."""

    @abstractmethod
    def list_tiles(self, z: int) -> Iterator[Tile]:
        """The plain tiles this source can provide at zoom ``z``."""

    def read_tile(self, tile: Tile) -> np.ndarray:
        """The image of any tile, overlapping grids included."""
        if tile.steps == 1:
            return self.read_plain_tile(tile.z, tile.x, tile.y)
        return self._cut_from_plain_tiles(tile)

    def _cut_from_plain_tiles(self, tile: Tile) -> np.ndarray:
        """Cut an offset tile out of the (up to) 2 x 2 plain tiles it overlaps."""
        size, steps = self.tile_size, tile.steps
        if size % steps:
            raise ValueError(f"tile size {size} is not divisible by {steps} grid steps per tile")
        n = 2**tile.z
        column, dx = divmod(tile.x, steps)
        row, dy = divmod(tile.y, steps)
        offset_x, offset_y = dx * size // steps, dy * size // steps
        mosaic = np.zeros((2 * size, 2 * size, 3), np.uint8)
        for j in range(2 if dy else 1):
            for i in range(2 if dx else 1):
                # Columns wrap around the antimeridian; rows of an offset tile never leave the map.
                plain = self.read_plain_tile(tile.z, (column + i) % n, row + j)
                mosaic[j * size : (j + 1) * size, i * size : (i + 1) * size] = plain
        return mosaic[offset_y : offset_y + size, offset_x : offset_x + size].copy()


# --- a directory of XYZ tiles ----------------------------------------------------------------


class LocalXYZSource(TileSource):
    """Tiles stored as ``root/{z}/{x}/{y}.{jpg,jpeg,png,webp}``.

    Tiles of another square size are resized to ``tile_size`` (area interpolation).
    """

    def __init__(self, root: Path | str, tile_size: int = DEFAULT_TILE_SIZE) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"tile directory not found: {self.root}")
        if tile_size < 1:
            raise ValueError(f"tile size must be positive, got {tile_size}")
        self.tile_size = tile_size

    def tile_path(self, z: int, x: int, y: int) -> Path | None:
        """The file holding tile ``z/x/y``, or None."""
        folder = self.root / str(z) / str(x)
        for extension in TILE_EXTENSIONS:
            path = folder / f"{y}{extension}"
            if path.is_file():
                return path
        return None

    def read_plain_tile(self, z: int, x: int, y: int) -> np.ndarray:
        path = self.tile_path(z, x, y)
        if path is None:
            raise TileNotFoundError(f"no tile {z}/{x}/{y} under {self.root}")
        return decode_tile(path.read_bytes(), self.tile_size, str(path))

    def list_tiles(self, z: int) -> Iterator[Tile]:
        zoom_dir = self.root / str(z)
        if not zoom_dir.is_dir():
            return
        number = re.compile(r"^\d+$")
        for column in sorted((d for d in zoom_dir.iterdir() if number.match(d.name)), key=_as_int):
            rows = {p.stem for p in column.iterdir() if p.suffix.lower() in TILE_EXTENSIONS}
            for y in sorted((int(r) for r in rows if number.match(r))):
                try:
                    yield Tile(z, int(column.name), y)
                except ValueError:
                    log.warning("ignoring %s/%s/%s: outside the zoom-%d grid", z, column.name, y, z)

    def zooms(self) -> list[int]:
        """Zoom levels present in the directory."""
        return sorted(int(d.name) for d in self.root.iterdir() if d.is_dir() and d.name.isdigit())


def _as_int(path: Path) -> int:
    return int(path.name)


def decode_tile(data: bytes, tile_size: int, where: str) -> np.ndarray:
    """An encoded tile image as RGB ``uint8`` of ``tile_size``; CorruptTileError when it is not one."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptTileError(f"cannot decode tile image {where}")
    height, width = image.shape[:2]
    if height != width:
        raise CorruptTileError(f"tile {where} is {width}x{height}, not square")
    if width != tile_size:
        image = cv2.resize(image, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB ``uint8`` image (OpenCV's encoder: deterministic)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"want an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()
