"""Tiles fetched over HTTP from an XYZ or WMTS URL template, with retries, timeouts and a disk cache.

    source = HTTPTileSource("https://tiles.example.org/s2/{z}/{x}/{y}.jpg", cache_dir="var/tiles")
    image = source.read_tile(Tile(10, 530, 370))

Templates use ``{z}``, ``{x}``, ``{y}`` or the WMTS names ``{TileMatrix}``, ``{TileCol}``,
``{TileRow}`` (a WMTS KVP or REST URL for a GoogleMapsCompatible tile matrix set). Every fetched
tile is written to ``cache_dir`` in the ``{z}/{x}/{y}.jpg|png`` layout and read back from there,
so a tile is downloaded once and the cache is itself a :class:`~index.sources.LocalXYZSource`
directory. A 404 leaves a ``{y}.missing`` marker, so known holes (oceans in land-only dumps) are
not asked for again.

Transient failures (timeouts, connection errors, 408/429/5xx) are retried with exponential
backoff (``Retry-After`` is honoured); when retries run out :class:`TileFetchError` is raised, which
the index build counts as an unavailable tile and skips.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from shapely.geometry.base import BaseGeometry

from index.files import claim_with_stamp, write_atomically
from index.sources import CorruptTileError, LocalXYZSource, TileError, TileNotFoundError, TileSource
from index.tiles import DEFAULT_TILE_SIZE, Tile, tiles_at_zoom, tiles_covering

log = logging.getLogger(__name__)

_PLACEHOLDERS = {"z": "z", "x": "x", "y": "y", "TileMatrix": "z", "TileCol": "x", "TileRow": "y"}
_RETRIED_STATUS = {408, 429, 500, 502, 503, 504}
_MISSING_STATUS = {204, 404, 410}
_MAX_RETRY_AFTER_S = 30.0
# Image formats by their first bytes (servers do not always send a truthful Content-Type).
_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"RIFF", ".webp"))
MISSING_SUFFIX = ".missing"


class TileFetchError(TileError):
    """The server did not deliver the tile (after retries, or refused the request)."""


class HTTPTileSource(TileSource):
    """Web-Mercator tiles from an HTTP(S) URL template, cached in a local XYZ directory.

    Args:
        url_template: e.g. ``https://host/tiles/{z}/{x}/{y}.png`` or a WMTS URL with
            ``{TileMatrix}/{TileRow}/{TileCol}``.
        cache_dir: where fetched tiles are kept (created); one cache per template.
        timeout_s: connect/read timeout of one request.
        retries: further attempts after a transient failure.
        backoff_s: wait before the first retry, doubled for each further one.
        coverage: lon/lat geometry the server has tiles for; :meth:`list_tiles` lists the tiles
            covering it (default: the whole world).
        headers: extra request headers (e.g. an API key or a User-Agent the server asks for).
    """

    def __init__(
        self,
        url_template: str,
        cache_dir: Path | str,
        *,
        tile_size: int = DEFAULT_TILE_SIZE,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        coverage: BaseGeometry | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        _check_template(url_template)
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or tile_size < 1:
            raise ValueError(
                f"need timeout_s > 0, retries >= 0, backoff_s >= 0, tile_size >= 1; got {timeout_s}, "
                f"{retries}, {backoff_s}, {tile_size}"
            )
        self.url_template = url_template
        self.tile_size = tile_size
        self.retries = retries
        self.backoff_s = backoff_s
        self.coverage = coverage
        self.cache_dir = Path(cache_dir)
        self._claim_cache_dir()
        self.cache = LocalXYZSource(self.cache_dir, tile_size)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers, follow_redirects=True)
        self._locks: dict[tuple[int, int, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def url(self, z: int, x: int, y: int) -> str:
        """The URL of plain tile ``z/x/y``."""
        values = {"z": z, "x": x, "y": y}
        return re.sub(r"\{(\w+)\}", lambda m: str(values[_PLACEHOLDERS[m.group(1)]]), self.url_template)

    def read_plain_tile(self, z: int, x: int, y: int) -> np.ndarray:
        Tile(z, x, y)  # validates the id before any request
        with self._lock_for(z, x, y):  # one download per tile, however many threads want it
            if self.cache.tile_path(z, x, y) is None:
                self._download(z, x, y)
            try:
                return self.cache.read_plain_tile(z, x, y)
            except CorruptTileError:
                # Do not keep a bad download: the next build asks the server again.
                self.cache.tile_path(z, x, y).unlink(missing_ok=True)
                raise

    def list_tiles(self, z: int) -> Iterator[Tile]:
        if self.coverage is None:
            return tiles_at_zoom(z)
        return iter(tiles_covering(self.coverage, z))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPTileSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- fetching --

    def _download(self, z: int, x: int, y: int) -> None:
        """Fetch a tile into the cache, or raise TileNotFoundError / TileFetchError / CorruptTileError."""
        marker = self.cache_dir / str(z) / str(x) / f"{y}{MISSING_SUFFIX}"
        if marker.is_file():
            raise TileNotFoundError(f"tile {z}/{x}/{y}: the server had none (cached 404)")
        url = self.url(z, x, y)
        response = self._get_with_retries(url)
        if response.status_code in _MISSING_STATUS:
            write_atomically(marker, b"")
            raise TileNotFoundError(f"tile {z}/{x}/{y}: HTTP {response.status_code} from {url}")
        if response.status_code != 200:
            raise TileFetchError(f"tile {z}/{x}/{y}: HTTP {response.status_code} from {url}")
        suffix = next((s for magic, s in _MAGIC if response.content.startswith(magic)), None)
        if suffix is None:
            raise CorruptTileError(f"tile {z}/{x}/{y}: {url} did not return a JPEG/PNG/WebP image")
        write_atomically(self.cache_dir / str(z) / str(x) / f"{y}{suffix}", response.content)

    def _get_with_retries(self, url: str) -> httpx.Response:
        """GET with retries on transient failures; the last response or TileFetchError."""
        for attempt in range(self.retries + 1):
            last_attempt = attempt == self.retries
            try:
                response = self._client.get(url)
            except httpx.TransportError as exc:  # timeouts, refused or dropped connections
                if last_attempt:
                    raise TileFetchError(f"{url}: {type(exc).__name__} after {attempt + 1} attempts: {exc}") from exc
                log.info("retrying %s after %s", url, type(exc).__name__)
                time.sleep(self.backoff_s * 2**attempt)
                continue
            if response.status_code not in _RETRIED_STATUS:
                return response
            if last_attempt:
                raise TileFetchError(f"{url}: HTTP {response.status_code} after {attempt + 1} attempts")
            log.info("retrying %s after HTTP %d", url, response.status_code)
            time.sleep(self._retry_delay(response, attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isdigit():
            return min(float(retry_after), _MAX_RETRY_AFTER_S)
        return self.backoff_s * 2**attempt

    def _lock_for(self, z: int, x: int, y: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((z, x, y), threading.Lock())

    def _claim_cache_dir(self) -> None:
        """One cache per template: tiles of another server must not be served from it."""
        signature = {"source": "http", "url_template": self.url_template, "tile_size": self.tile_size}
        found = claim_with_stamp(self.cache_dir / "source.json", signature)
        if found is not None:
            raise ValueError(
                f"tile cache {self.cache_dir} belongs to another source ({found}); choose another directory"
            )


def _check_template(template: str) -> None:
    if not isinstance(template, str) or not re.match(r"^https?://", template):
        raise ValueError(f"tile URL template must start with http:// or https://, got {template!r}")
    names = re.findall(r"\{(\w+)\}", template)
    unknown = sorted(set(names) - set(_PLACEHOLDERS))
    if unknown:
        raise ValueError(f"unknown placeholders {unknown} in {template!r}; use {{z}} {{x}} {{y}} or WMTS names")
    if {_PLACEHOLDERS[n] for n in names} != {"z", "x", "y"}:
        raise ValueError(f"tile URL template {template!r} must contain zoom, column and row placeholders")
