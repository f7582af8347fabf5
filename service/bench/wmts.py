"""`astroloc bench wmts`: what the production database costs (docs/operations.md, "Production database").

The production database is EarthLoc's: Sentinel-2 cloudless (EOX, a WMTS in the
GoogleMapsCompatible tile matrix set) at zooms 9, 10 and 11, every tile described at 0/90/180/270
degrees. This bench measures, on this machine:

1. tile counts: every tile of zooms 9-11 within the latitudes the ISS photographs (|lat| <= 60;
   orbit inclination 51.6 deg plus oblique views), and those with land (basemap's 10' land mask,
   sampled at 3 x 3 points per tile; sea-only tiles are left out of the database as in EarthLoc);
2. the download rate of index/remote.HTTPTileSource (the index build's tile source, retries and
   disk cache included) against a local WMTS emulator (http.server) that serves real JPEG tiles
   of the size Sentinel-2 cloudless serves, with ``index_load_workers`` threads;
3. the description rate of the production architecture (4 rotations per tile), from
   `astroloc bench model`'s function on random weights;
and from these the disk (tile cache, index) and the hours of a full build.
"""

from __future__ import annotations

import io
import math
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from index.remote import HTTPTileSource
from index.tiles import Tile
from service.config import Settings

ZOOMS = (9, 10, 11)
MAX_LAT_DEG = 60.0
ROTATIONS = 4
PRODUCTION_ARCHS = ("astroloc", "earthloc", "astroloc-nano")
TEMPLATE = "/wmts/s2cloudless-2020_3857/default/GoogleMapsCompatible/{TileMatrix}/{TileRow}/{TileCol}.jpg"


def tile_counts(zooms=ZOOMS, max_lat_deg: float = MAX_LAT_DEG) -> dict[int, tuple[int, int]]:
    """Per zoom: (tiles within |lat| <= max_lat_deg, of them with land): world.bluemarble's
    planner, the one `astroloc index build --url-template` indexes."""
    from world.bluemarble import land_tile_grid

    counts = {}
    for z in zooms:
        n = 2 ** z
        y = np.arange(n)
        lat_top = np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * y / n))))
        lat_bottom = np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * (y + 1) / n))))
        in_band = int(((lat_bottom <= max_lat_deg) & (lat_top >= -max_lat_deg)).sum())
        counts[z] = (in_band * n, int(land_tile_grid(z, max_lat_deg).sum()))
    return counts


def sample_tile_jpeg() -> bytes:
    """A real 256 px tile as JPEG at quality 85 (Sentinel-2 cloudless tiles are ~15-40 KB)."""
    from PIL import Image

    from world.bluemarble import BlueMarbleTileSource

    rgb = BlueMarbleTileSource().read_tile(Tile(6, 35, 24))
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class WMTSEmulator:
    """A local WMTS (REST, GoogleMapsCompatible) serving one real tile for every address."""

    def __init__(self, tile: bytes, latency_ms: float = 0.0) -> None:
        body, delay = tile, latency_ms / 1000

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                if delay:
                    time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{TEMPLATE}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def download_rate(tiles: int, latency_ms: float, workers: int) -> tuple[float, float]:
    """(tiles/s, cached bytes per tile) of HTTPTileSource against the emulator."""
    emulator = WMTSEmulator(sample_tile_jpeg(), latency_ms)
    try:
        with tempfile.TemporaryDirectory() as cache:
            source = HTTPTileSource(emulator.url, cache)
            addresses = [Tile(11, 1000 + i % 500, 600 + i // 500) for i in range(tiles)]
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(source.read_tile, addresses))
            elapsed = time.perf_counter() - started
            cached = sum(p.stat().st_size for p in Path(cache).rglob("*.jpg"))
    finally:
        emulator.close()
    return tiles / elapsed, cached / tiles


def describe_rates(archs=PRODUCTION_ARCHS, seconds: float = 5.0) -> dict[str, tuple[float, int]]:
    """Network inputs per second and descriptor dimension, per architecture (random weights)."""
    import torch

    import model
    from service.bench.model import images_per_second

    rates = {}
    for arch in archs:
        net = model.create_model(arch).eval()
        size, dim = net.config.input_size, net.config.descriptor_dim
        batch = torch.rand(8, 3, size, size)
        with torch.inference_mode():
            rates[arch] = (images_per_second(net, batch, seconds), dim)
        del net
    return rates


def run(tiles: int = 2000, latency_ms: float = 0.0) -> str:
    settings = Settings()
    counts = tile_counts()
    total_land = sum(land for _, land in counts.values())
    fetch_rate, tile_bytes = download_rate(tiles, latency_ms, settings.index_load_workers)
    rates = describe_rates()

    lines = [
        f"Tiles of zooms {ZOOMS[0]}-{ZOOMS[-1]} within |lat| <= {MAX_LAT_DEG:g} deg, and those with land "
        "(basemap 10' land mask, 3 x 3 samples per tile):",
        "",
        "| zoom | tiles in the band | with land | vectors (x4 rotations) |",
        "|---|---|---|---|",
    ]
    for z, (band, land) in counts.items():
        lines.append(f"| {z} | {band:,} | {land:,} | {land * ROTATIONS:,} |")
    lines += [
        f"| all | {sum(b for b, _ in counts.values()):,} | {total_land:,} | {total_land * ROTATIONS:,} |",
        f"| whole grid (no band, no land filter) | {sum(4 ** z for z in ZOOMS):,} | - | "
        f"{sum(4 ** z for z in ZOOMS) * ROTATIONS:,} |",
        "",
        f"Download: `index.remote.HTTPTileSource` (retries, disk cache) with {settings.index_load_workers} threads "
        f"against a local WMTS emulator (http.server, REST GoogleMapsCompatible, one real 256 px JPEG tile of "
        f"{tile_bytes / 1e3:.1f} KB, {latency_ms:g} ms added latency): **{fetch_rate:,.0f} tiles/s** over {tiles:,} "
        "tiles. This is the client's ceiling on this machine; a real server's latency and rate limit "
        "(EOX asks for moderate use) set the actual rate: at 100 ms a tile and 4 threads, 40 tiles/s.",
        "",
        "| architecture | dim | inputs/s (CPU, random weights) | describe hours (x4 rotations) | index disk SQ8 / Flat |",
        "|---|---|---|---|---|",
    ]
    vectors = total_land * ROTATIONS
    for arch, (rate, dim) in rates.items():
        lines.append(f"| {arch} | {dim} | {rate:.1f} | {vectors / rate / 3600:,.0f} h | "
                     f"{vectors * dim / 1e9:,.1f} GB / {vectors * dim * 4 / 1e9:,.1f} GB |")
    download_h = total_land / fetch_rate / 3600
    download_40_h = total_land / 40 / 3600
    lines += [
        "",
        f"Tile cache on disk: {total_land:,} tiles x {tile_bytes / 1e3:.1f} KB = "
        f"{total_land * tile_bytes / 1e9:,.1f} GB. Download time: {download_h:,.1f} h at the emulator's rate, "
        f"{download_40_h:,.1f} h at 40 tiles/s. Description dominates on a CPU: a GPU "
        "(or several workers, `astroloc index build` resumes per chunk) is the production choice for `astroloc`.",
    ]
    return "\n".join(lines)
