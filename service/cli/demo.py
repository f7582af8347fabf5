"""`astroloc demo`: the main job on the embedded default (SQLite + inline jobs, no server needed).

It starts the API as a real HTTP server in a child process, talks to it over HTTP like a user would,
and stops it at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import httpx
import typer

from service.config import get_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_api(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Start `astroloc serve` on a free port; yield its base URL; stop it afterwards."""
    port = _free_port()
    astroloc = str(Path(sys.executable).parent / "astroloc")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [astroloc, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the API exited at start; see {log_path}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer within 120 s; see {log_path}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_job(client: httpx.Client, status_url: str, echo=typer.echo, timeout_s: float = 600) -> dict:
    """Poll a job until it ends, echoing each change of status or progress."""
    last = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(status_url).json()
        state = (job["status"], round(job["progress"], 2))
        if state != last:
            echo(f"  job {job['id'][:8]}: {job['status']:<8} progress {job['progress']:.0%}")
            last = state
        if job["status"] in ("finished", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job at {status_url} did not end within {timeout_s} s")


def demo(
    photos: int = typer.Option(None, help="Held-out demo photos to localize (default: settings.demo_photos)."),
) -> None:
    """Localize held-out photos of the demo world end to end on the embedded default.

    Builds or reuses the demo world, its TLEs, the demo model and the tile index; starts the API
    (SQLite + inline jobs); sends each photo through POST /localize and GET /jobs/{id}; prints the
    footprint with its IoU against the truth; writes the footprint pictures.
    """
    from geo import footprint_iou
    from service.demo_stack import prepare_demo, world_photos

    settings = get_settings()
    if settings.database_url and not settings.is_embedded:
        typer.echo("note: the demo runs on the embedded store; ASTROLOC_DATABASE_URL is ignored here")
    settings = settings.model_copy(update={"database_url": None, "queue_mode": "inline"})
    started = time.monotonic()
    typer.echo(f"preparing the demo world, model and index in {settings.data_dir.resolve()} (cached) ...")
    stack = prepare_demo(settings, progress=True)
    typer.echo(f"  world: {sum(stack.world['queries'].values())} photos, tiles at zooms "
               f"{', '.join(stack.world['tiles'])}; model: {stack.model.label()}; "
               f"index: {stack.tiles_indexed} tiles x 4 rotations ({time.monotonic() - started:.0f} s)")

    chosen = world_photos(settings, "test", limit=photos or settings.demo_photos)
    out_dir = settings.data_dir / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ASTROLOC_QUEUE_MODE="inline")
    env.pop("ASTROLOC_DATABASE_URL", None)  # the embedded store, whatever the shell says
    log_path = settings.data_dir / "demo-api.log"
    typer.echo("starting the API on the embedded store ...")
    rows = []
    with running_api(env, log_path) as base, httpx.Client(base_url=base, timeout=120) as client:
        health = client.get("/health").json()
        typer.echo(f"API up at {base} (docs: {base}/docs): {health['status']}, queue {health['queue']['mode']}")
        for photo in chosen:
            with photo.image_path.open("rb") as image:
                answer = client.post(
                    "/localize",
                    files={"image": (photo.image_path.name, image, "image/jpeg")},
                    data={"photo_id": photo.photo_id, "timestamp": photo.capture_time},
                )
            if answer.status_code not in (200, 202):
                typer.echo(f"{photo.photo_id}: refused {answer.status_code}: {answer.json()}", err=True)
                raise typer.Exit(1)
            body = answer.json()
            search = body.get("search") or {}
            typer.echo(f"{photo.photo_id}: search {search.get('mode', 'previous job')} "
                       f"({search.get('reason', '')}); {len(body['candidates'])} candidates")
            job = wait_for_job(client, body["status_url"])
            result = job.get("result") or {}
            if job["status"] != "finished" or not result.get("localized"):
                reason = job.get("error") or result.get("reason")
                typer.echo(f"  not localized: {reason}")
                rows.append((photo.photo_id, None, None))
                continue
            from shapely.geometry import shape

            iou = footprint_iou(shape(result["footprint"]), photo.truth)
            picture = client.get(f"/photos/{photo.photo_id}/footprint.png")
            png_path = out_dir / f"{photo.photo_id}.png"
            png_path.write_bytes(picture.content)
            centre = result["center"]
            typer.echo(f"  footprint centre ({centre['lat']:.3f}, {centre['lon']:.3f}), "
                       f"{result['area_km2']:.0f} km2, {result['inliers']} inliers, "
                       f"candidate #{result['candidate']['rank']}, IoU with truth {iou:.2f} -> {png_path}")
            rows.append((photo.photo_id, iou, result["runtime_s"]))
    localized = [r for r in rows if r[1] is not None]
    typer.echo(f"localized {len(localized)}/{len(rows)} held-out photos; "
               f"median IoU {sorted(r[1] for r in localized)[len(localized) // 2] if localized else 0:.2f}; "
               f"total {time.monotonic() - started:.0f} s")
