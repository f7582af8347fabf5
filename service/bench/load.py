"""`astroloc bench load`: the API under load, as issue 18 asks, against a real uvicorn process.

1. Load: ``clients`` threads for ``seconds`` s, each looping POST /localize (a held-out photo of a
   small demo world, with its capture time) and GET /jobs/{id} of its last job. Every answer is
   counted by status; an *error* is anything but 2xx and the documented 429 (queue full) / 503
   (decode slots busy). The jobs run in the same process (embedded mode), so the refinement queue
   fills and 429s are the expected answer to overload.
2. Memory: a fresh API process, warmed by one localization, then ``uploads`` concurrent uploads at
   the size limits (JPEG and PNG at ``max_image_pixels``); the peak resident memory of the process
   (VmHWM) is reported.

The world, its index and the demo model are built once under ``work_dir`` (cached on disk).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from service.config import Settings
from service.db import upgrade_database
from service.memory import ARENA_MAX, MMAP_THRESHOLD_BYTES

DOCUMENTED_BUSY = {429, 503}


@dataclass
class LoadOutcome:
    statuses: Counter = field(default_factory=Counter)
    transport_errors: Counter = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        bad = sum(n for code, n in self.statuses.items() if not (200 <= code < 300 or code in DOCUMENTED_BUSY))
        return bad + sum(self.transport_errors.values())


def prepare(work_dir: Path) -> Settings:
    """A small demo world (zooms 4-5), its index and the demo model under ``work_dir``."""
    from service.demo_stack import ensure_demo_model, ensure_index, ensure_tles, ensure_world

    settings = Settings(data_dir=work_dir / "var", world_dir=work_dir / "world", index_dir=work_dir / "index",
                        model_store_dir=work_dir / "models", world_min_zoom=4, world_max_zoom=5,
                        world_queries=56, world_seed=3, queue_mode="inline", api_keys=[])
    upgrade_database(settings.resolved_database_url)
    ensure_world(settings)
    ensure_index(settings, ensure_demo_model(settings))
    ensure_tles(settings)
    return settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ApiProcess:
    """``uvicorn service.api.app:app`` in its own process, with ``settings`` as its environment."""

    def __init__(self, settings: Settings, data_dir: Path, **overrides: object) -> None:
        self.port = _free_port()
        # No MALLOC_* variables: the API bounds glibc's allocator itself (service.memory), as
        # it does in production.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        values = {"data_dir": data_dir, "world_dir": settings.resolved_world_dir, "index_dir": settings.resolved_index_dir,
                  "model_store_dir": settings.resolved_model_store_dir, "world_min_zoom": settings.world_min_zoom,
                  "world_max_zoom": settings.world_max_zoom, "queue_mode": "inline", "api_keys": ""} | overrides
        env.update({f"ASTROLOC_{k.upper()}": str(v) for k, v in values.items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.api.app:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"], env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("the API did not start within 120 s")

    def _memory_mb(self, field: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def peak_rss_mb(self) -> float:
        return self._memory_mb("VmHWM")

    def rss_mb(self) -> float:
        return self._memory_mb("VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _photos(settings: Settings, count: int) -> list[tuple[bytes, str]]:
    from service.demo_stack import world_photos

    return [(p.image_path.read_bytes(), p.capture_time) for p in world_photos(settings, "test", count)]


def run_load(url: str, photos: list[tuple[bytes, str]], clients: int, seconds: float) -> LoadOutcome:
    outcome = LoadOutcome()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        last_job = None
        with httpx.Client(base_url=url, timeout=120) as http:
            n = index
            while time.monotonic() < stop_at:
                data, captured_at = photos[n % len(photos)]
                n += clients
                started = time.perf_counter()
                try:
                    if last_job and n % 2:
                        answer = http.get(f"/jobs/{last_job}")
                    else:
                        # A fresh photo_id each time: a re-post would be a cheap duplicate answer.
                        answer = http.post("/localize", files={"image": ("p.jpg", data, "image/jpeg")},
                                           data={"timestamp": captured_at,
                                                 "photo_id": f"LOAD-{index}-{n}-{time.monotonic_ns()}"})
                        if answer.status_code == 202:
                            last_job = answer.json()["job_id"]
                except httpx.HTTPError as exc:
                    with lock:
                        outcome.transport_errors[type(exc).__name__] += 1
                    continue
                with lock:
                    outcome.statuses[answer.status_code] += 1
                    outcome.latencies_s.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def max_size_uploads(max_pixels: int, max_bytes: int) -> dict[str, bytes]:
    """A JPEG and a PNG at the pixel cap, photo-like (smooth gradients plus noise) so that they
    stay under the byte cap."""
    side = int(max_pixels ** 0.5)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    base = (np.sin(x / 97.0) + np.cos(y / 131.0)) * 60 + 128
    rgb = np.stack([base, base * 0.8 + 20, base * 0.6 + 40], axis=-1)
    smooth = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))  # a PNG of noise would pass the byte cap
    rgb += rng.normal(0, 6, size=rgb.shape).astype(np.float32)
    noisy = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    del rgb, base, x, y
    uploads = {}
    for fmt, image, options in (("JPEG", noisy, {"quality": 85}), ("PNG", smooth, {"compress_level": 6})):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        if buffer.tell() > max_bytes:
            raise RuntimeError(f"the {fmt} test image has {buffer.tell()} bytes, over the {max_bytes}-byte cap")
        uploads[fmt] = buffer.getvalue()
    return uploads


def run_memory(api: ApiProcess, uploads: dict[str, bytes], concurrent: int, warm_photo: tuple[bytes, str]) -> dict:
    # Warm: a localization in its visibility region and one world-wide (every shard loaded), as the
    # maximum-size uploads below have no capture time.
    for data in ({"timestamp": warm_photo[1], "refine": "false"}, {"refine": "false", "photo_id": "WARM-WORLD"}):
        httpx.post(f"{api.url}/localize", files={"image": ("w.jpg", warm_photo[0], "image/jpeg")}, data=data,
                   timeout=300)
    warm_mb = api.rss_mb()
    results: dict[str, list[int]] = {}
    for fmt, data in uploads.items():
        statuses: list[int] = []

        def upload(i: int, fmt: str = fmt, data: bytes = data) -> None:
            answer = httpx.post(f"{api.url}/localize", files={"image": (f"max.{fmt.lower()}", data, "image/jpeg")},
                                data={"photo_id": f"MAX-{fmt}-{i}", "refine": "false"}, timeout=600)
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(concurrent)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results[fmt] = sorted(statuses)
    return {"warm_mb": warm_mb, "peak_mb": api.peak_rss_mb(), "statuses": results}


def fresh_data_dir(settings: Settings, data_dir: Path) -> Path:
    """An empty data dir whose database has the demo model active and the TLEs (photos and jobs of
    one run never meet the next's)."""
    from service.demo_stack import ensure_demo_model, ensure_tles

    fresh = settings.model_copy(update={"data_dir": data_dir})
    upgrade_database(fresh.resolved_database_url)
    ensure_demo_model(fresh)
    ensure_tles(fresh)
    return data_dir


def run(clients: int = 8, seconds: float = 60.0, uploads: int = 4, work_dir: Path | None = None) -> str:
    work_dir = Path(work_dir or Path("var") / "bench-load").resolve()
    settings = prepare(work_dir)
    photos = _photos(settings, 40)
    lines = []

    with tempfile.TemporaryDirectory(dir=work_dir) as run_dir:
        api = ApiProcess(settings, fresh_data_dir(settings, Path(run_dir) / "var"))
        try:
            outcome = run_load(api.url, photos, clients, seconds)
            peak_load_mb = api.peak_rss_mb()
        finally:
            api.stop()
    total = sum(outcome.statuses.values())
    latencies = np.array(outcome.latencies_s or [0.0])
    by_status = ", ".join(f"{code}: {n}" for code, n in sorted(outcome.statuses.items()))
    lines += [
        f"Load: {clients} clients for {seconds:g} s against `uvicorn service.api.app:app` (embedded mode: SQLite, "
        "refinement jobs in the API process), each looping POST /localize (a held-out photo of a zoom 4-5 demo "
        "world, with its capture time) and GET /jobs/{id}.",
        "",
        "| requests | by status | errors (not 2xx/429/503) | transport errors | p50 / p95 latency | API peak RSS |",
        "|---|---|---|---|---|---|",
        f"| {total} ({total / seconds:.1f}/s) | {by_status} | {outcome.errors} | "
        f"{sum(outcome.transport_errors.values())} | {np.percentile(latencies, 50):.2f} s / "
        f"{np.percentile(latencies, 95):.2f} s | {peak_load_mb:.0f} MB |",
        "",
    ]

    limits = Settings()
    files = max_size_uploads(limits.max_image_pixels, limits.max_upload_bytes)
    with tempfile.TemporaryDirectory(dir=work_dir) as run_dir:
        api = ApiProcess(settings, fresh_data_dir(settings, Path(run_dir) / "var"))
        try:
            memory = run_memory(api, files, uploads, photos[0])
        finally:
            api.stop()
    side = int(limits.max_image_pixels ** 0.5)
    sizes = ", ".join(f"{fmt} {len(data) / 1e6:.1f} MB" for fmt, data in files.items())
    statuses = "; ".join(f"{fmt}: {codes}" for fmt, codes in memory["statuses"].items())
    lines += [
        f"Memory: a fresh API process (glibc's allocator bounded by service.memory: mmap threshold "
        f"{MMAP_THRESHOLD_BYTES >> 20} MB, {ARENA_MAX} arenas) warmed by two localizations, one in a visibility "
        f"region and one world-wide ({memory['warm_mb']:.0f} MB resident), then "
        f"{uploads} concurrent uploads of a {side} x {side} px image (the {limits.max_image_pixels / 1e6:g} MP cap; "
        f"{sizes}), first as JPEG, then as PNG. Answers: {statuses}.",
        "",
        "| peak resident memory of the API (VmHWM) | target |",
        "|---|---|",
        f"| {memory['peak_mb']:.0f} MB | < 1536 MB |",
    ]
    return "\n".join(lines)
