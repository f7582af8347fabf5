"""HTTPTileSource against a real local HTTP server: retries, timeouts, the disk cache."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np
import pytest

from index.build import SourceDescriber, build_index
from index.remote import HTTPTileSource, TileFetchError
from index.shards import Manifest
from index.sources import CorruptTileError, TileNotFoundError
from index.tiles import Tile, tiles_at_zoom

SIZE = 32


def png(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


class TileServer:
    """Serves ``/xyz/{z}/{x}/{y}.png`` and ``/wmts?TileMatrix=..&TileCol=..&TileRow=..``, with
    scripted failures: ``failures[path] = n`` answers 503 n times, ``slow`` paths sleep."""

    def __init__(self) -> None:
        self.tiles = {(t.z, t.x, t.y): png(i) for i, t in enumerate(tiles_at_zoom(3))}
        self.requests: list[str] = []
        self.failures: dict[str, int] = {}
        self.slow: dict[str, float] = {}
        self.garbage: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                if server.failures.get(self.path, 0) > 0:
                    server.failures[self.path] -= 1
                    return self._send(503, b"busy")
                time.sleep(server.slow.get(self.path, 0.0))
                if self.path in server.garbage:
                    return self._send(200, b"<html>not a tile</html>")
                key = _tile_key(self.path)
                if key not in server.tiles:
                    return self._send(404, b"no such tile")
                self._send(200, server.tiles[key])

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tile_key(path: str) -> tuple[int, int, int] | None:
    parsed = urlparse(path)
    if parsed.path == "/wmts":
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        return int(query["TileMatrix"]), int(query["TileCol"]), int(query["TileRow"])
    parts = parsed.path.removesuffix(".png").split("/")
    return (int(parts[2]), int(parts[3]), int(parts[4])) if len(parts) == 5 and parts[1] == "xyz" else None


@pytest.fixture
def server():
    running = TileServer()
    yield running
    running.stop()


def source(server, tmp_path, **options) -> HTTPTileSource:
    options = {"tile_size": SIZE, "timeout_s": 2.0, "retries": 2, "backoff_s": 0.01, **options}
    return HTTPTileSource(server.url + "/xyz/{z}/{x}/{y}.png", tmp_path / "cache", **options)


def decoded(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_fetched_tiles_are_cached_and_served_without_network(server, tmp_path):
    with source(server, tmp_path) as tiles:
        image = tiles.read_tile(Tile(3, 4, 2))
        np.testing.assert_array_equal(image, decoded(server.tiles[(3, 4, 2)]))
        tiles.read_tile(Tile(3, 4, 2))
    assert server.requests == ["/xyz/3/4/2.png"]  # the second read came from the cache
    assert (tmp_path / "cache" / "3" / "4" / "2.png").is_file()
    server.stop()  # no network from here on
    with source(server, tmp_path, retries=0, timeout_s=0.2) as offline:
        np.testing.assert_array_equal(offline.read_tile(Tile(3, 4, 2)), image)
        with pytest.raises(TileFetchError):
            offline.read_tile(Tile(3, 5, 2))  # not cached: the server is gone


def test_503_is_retried(server, tmp_path):
    server.failures["/xyz/3/1/1.png"] = 2
    with source(server, tmp_path, retries=2) as tiles:
        tiles.read_tile(Tile(3, 1, 1))
    assert server.requests == ["/xyz/3/1/1.png"] * 3
    server.failures["/xyz/3/2/1.png"] = 5
    with source(server, tmp_path, retries=1) as tiles, pytest.raises(TileFetchError, match="HTTP 503 after 2 attempts"):
        tiles.read_tile(Tile(3, 2, 1))
    assert server.requests.count("/xyz/3/2/1.png") == 2


def test_a_slow_server_times_out(server, tmp_path):
    server.slow["/xyz/3/3/3.png"] = 1.5
    started = time.perf_counter()
    with source(server, tmp_path, timeout_s=0.2, retries=1) as tiles, pytest.raises(TileFetchError, match="Timeout"):
        tiles.read_tile(Tile(3, 3, 3))
    assert time.perf_counter() - started < 1.2  # two 0.2 s attempts, not the server's 1.5 s
    assert server.requests.count("/xyz/3/3/3.png") == 2


def test_missing_tiles_are_remembered_and_garbage_is_not_cached(server, tmp_path):
    server.tiles.pop((3, 0, 0))
    server.garbage.add("/xyz/3/6/6.png")
    with source(server, tmp_path) as tiles:
        for _ in range(2):
            with pytest.raises(TileNotFoundError):
                tiles.read_tile(Tile(3, 0, 0))
        assert server.requests.count("/xyz/3/0/0.png") == 1  # the 404 is cached as a marker
        for _ in range(2):
            with pytest.raises(CorruptTileError):
                tiles.read_tile(Tile(3, 6, 6))
        assert server.requests.count("/xyz/3/6/6.png") == 2  # a bad payload is asked for again
    assert not list((tmp_path / "cache" / "3" / "6").glob("6.*"))


def test_wmts_template_and_overlapping_tiles(server, tmp_path):
    template = server.url + "/wmts?layer=s2&TileMatrix={TileMatrix}&TileCol={TileCol}&TileRow={TileRow}"
    tiles = HTTPTileSource(template, tmp_path / "wmts", tile_size=SIZE, backoff_s=0.01)
    assert tiles.url(3, 5, 2).endswith("TileMatrix=3&TileCol=5&TileRow=2")
    image = tiles.read_tile(Tile(3, 9, 3, steps=2))  # cut from the 4 plain tiles under it
    assert image.shape == (SIZE, SIZE, 3) and len(server.requests) == 4
    np.testing.assert_array_equal(image[: SIZE // 2, : SIZE // 2], decoded(server.tiles[(3, 4, 1)])[SIZE // 2 :, SIZE // 2 :])
    tiles.close()


def test_templates_and_caches_are_checked(tmp_path):
    for bad in ["ftp://host/{z}/{x}/{y}.png", "http://host/{z}/{x}.png", "http://host/{z}/{x}/{y}/{q}.png", "tiles/{z}/{x}/{y}"]:
        with pytest.raises(ValueError):
            HTTPTileSource(bad, tmp_path / "a")
    HTTPTileSource("http://127.0.0.1:9/{z}/{x}/{y}.png", tmp_path / "b").close()
    with pytest.raises(ValueError, match="another source"):
        HTTPTileSource("http://127.0.0.1:9/other/{z}/{x}/{y}.png", tmp_path / "b")
    with pytest.raises(ValueError):
        HTTPTileSource("http://127.0.0.1:9/{z}/{x}/{y}.png", tmp_path / "c", retries=-1)


def test_index_build_over_http_skips_what_the_server_cannot_give(server, tmp_path):
    server.tiles.pop((3, 0, 0))
    server.failures["/xyz/3/1/0.png"] = 100  # down for good
    describe = lambda images: np.stack([[np.rot90(cv2.resize(im, (4, 4)), k).ravel() + 1.0 for k in range(4)] for im in images])  # noqa: E731
    with source(server, tmp_path, retries=1) as tiles:
        report = build_index(tmp_path / "index", list(tiles_at_zoom(3)), SourceDescriber(tiles, describe, workers=4),
                             model_version="m", progress=False)  # fmt: skip
    assert report.skipped_by_reason == {"missing": 1, "unavailable": 1}
    assert Manifest.load(tmp_path / "index").counts["tiles"] == 62
