"""`astroloc demo`: the main job on the embedded default (SQLite + inline jobs, no server needed).

It starts the API as a real HTTP server in a child process, talks to it over HTTP like a user would,
then prints the URL of the map with the demo's photos on it and keeps serving until Ctrl-C (or
stops at once with --exit).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import typer

from service.config import get_settings


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it can be bound on 127.0.0.1, else a free port the system picks."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free TCP port on 127.0.0.1")


@contextmanager
def running_api(env: dict[str, str], log_path: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `astroloc serve` (on ``port`` when free, else any free port); yield its base URL and
    process; stop it afterwards."""
    port = free_port(port)
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
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_job(
    client: httpx.Client, job_url: str, on_progress: Callable[[dict], None] | None = None, timeout_s: float = 600
) -> dict:
    """Poll a job until it ends; ``on_progress(job)`` sees each poll."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(job_url).json()
        if on_progress is not None:
            on_progress(job)
        if job["status"] in ("finished", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job at {job_url} did not end within {timeout_s} s")


def map_url(base: str, footprints: list) -> str:  # noqa: ANN001 (shapely geometries)
    """The map, framed on ``footprints`` (all of them, with a margin), or the whole map."""
    if not footprints:
        return f"{base}/"
    from shapely.ops import unary_union

    west, south, east, north = unary_union(footprints).bounds
    pad_lon, pad_lat = max(2.0, 0.1 * (east - west)), max(2.0, 0.1 * (north - south))
    box = (max(-180.0, west - pad_lon), max(-85.0, south - pad_lat), min(180.0, east + pad_lon), min(85.0, north + pad_lat))
    return f"{base}/#bbox=" + ",".join(f"{v:.2f}" for v in box)


def localize_night_photo(client: httpx.Client, settings):  # noqa: ANN001, ANN201 (Settings -> shapely geometry)
    """One night photo of the dark Earth, sent like the others (no method given: the service
    takes the star path by itself), located by the stars above its limb; its ground footprint,
    or None when it is not localized (the reason is printed)."""
    from shapely.geometry import shape

    from geo import footprint_iou
    from service.night_world import demo_night_photo

    typer.echo("a night photo (stars above the limb, no daylight imagery to match) ...")
    chosen = demo_night_photo(settings)
    if chosen is None:
        typer.echo("  no night photo of the demo set shows enough stars; skipped")
        return None
    photo, truth = chosen
    form = {"photo_id": photo.photo_id, "timestamp": photo.capture_time,
            "focal_mm": photo.columns["FOCAL_MM"], "sensor_width_mm": photo.columns["SENSOR_WIDTH_MM"]}
    answer = client.post("/localize", files={"image": (photo.image_path.name, photo.image_path.read_bytes(),
                                                        "image/jpeg")}, data=form)
    if answer.status_code not in (200, 202):
        typer.echo(f"  {photo.photo_id}: refused {answer.status_code}: {answer.json()}", err=True)
        return None
    job = wait_for_job(client, f"/jobs/{answer.json()['job_id']}")
    result = job.get("result") or {}
    if job["status"] != "finished" or not result.get("localized"):
        typer.echo(f"  {photo.photo_id}: not localized: {job.get('error') or result.get('reason')}")
        return None
    footprint = shape(result["footprint"])
    attitude = result.get("attitude") or {}
    iou = footprint_iou(footprint, truth.ground_footprint) if truth.ground_footprint is not None else float("nan")
    typer.echo(f"  {photo.photo_id}: localized by its {result.get('method')} ({len(result.get('stars_used') or [])} "
               f"named; boresight RA {attitude.get('ra_deg', float('nan')):.2f}, Dec "
               f"{attitude.get('dec_deg', float('nan')):.2f} deg): ground footprint {result.get('area_km2') or 0:,.0f} km2, "
               f"IoU with truth {iou:.2f}")
    return footprint


def demo(
    photos: int = typer.Option(None, help="Held-out demo photos to localize (default: settings.demo_photos)."),
    port: int = typer.Option(8000, help="Port of the API and the map (another free one when taken)."),
    exit_after: bool = typer.Option(
        False, "--exit", help="Stop the API once the photos are localized, instead of serving the map until Ctrl-C."
    ),
) -> None:
    """Localize held-out photos of the demo world end to end on the embedded default.

    Builds or reuses the demo world, its TLEs, the demo model and the tile index; starts the API
    (SQLite + inline jobs); sends each photo through POST /localize and GET /jobs/{id}; prints the
    footprint with its IoU against the truth; writes the footprint pictures; prints the URL of the
    map with the demo's photos on it and serves it until Ctrl-C (or stops with --exit).
    """
    from shapely.geometry import shape
    from tqdm import tqdm

    from geo import footprint_iou
    from service.demo_stack import prepare_demo, world_photos

    settings = get_settings()
    if settings.database_url and not settings.is_embedded:
        typer.echo("note: the demo runs on the embedded store; ASTROLOC_DATABASE_URL is ignored here")
    settings = settings.model_copy(update={"database_url": None, "queue_mode": "inline"})
    started = time.monotonic()
    typer.echo(f"preparing the demo world, model and index in {settings.data_dir.resolve()} (cached) ...")
    shown = photos or settings.demo_photos
    # Only the photos it shows: the benchmark world's 1,500 are `astroloc world build`'s (minutes).
    stack = prepare_demo(settings, progress=True, showcase=shown)
    typer.echo(f"  world: {sum(stack.world['queries'].values())} photos, tiles at zooms "
               f"{', '.join(stack.world['tiles'])}; model: {stack.model.label()}; "
               f"index: {stack.tiles_indexed} tiles x 4 rotations ({time.monotonic() - started:.0f} s)")

    chosen = world_photos(settings, "test", limit=shown)
    out_dir = settings.data_dir / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ASTROLOC_QUEUE_MODE="inline")
    env.pop("ASTROLOC_DATABASE_URL", None)  # the embedded store, whatever the shell says
    log_path = settings.data_dir / "demo-api.log"
    typer.echo(f"starting the API on the embedded store (log: {log_path}) ...")
    rows: list[tuple[str, float | None]] = []
    footprints = []
    with running_api(env, log_path, port) as (base, process), httpx.Client(base_url=base, timeout=120) as client:
        health = client.get("/health").json()
        typer.echo(f"API up at {base} (docs: {base}/docs): {health['status']}, queue {health['queue']['mode']}")
        bar = tqdm(chosen, desc="localizing", unit="photo", dynamic_ncols=True)
        for photo in bar:
            bar.set_postfix_str(photo.photo_id)
            with photo.image_path.open("rb") as image:
                answer = client.post(
                    "/localize",
                    files={"image": (photo.image_path.name, image, "image/jpeg")},
                    data={"photo_id": photo.photo_id, "timestamp": photo.capture_time},
                )
            if answer.status_code not in (200, 202):
                bar.close()
                typer.echo(f"{photo.photo_id}: refused {answer.status_code}: {answer.json()}", err=True)
                raise typer.Exit(1)
            body = answer.json()

            def show_candidate(job: dict, photo_id: str = photo.photo_id) -> None:
                detail = job.get("detail") or {}
                if detail.get("candidates"):
                    bar.set_postfix_str(f"{photo_id}: candidate {detail['candidate']} of {detail['candidates']}")

            job = wait_for_job(client, f"/jobs/{body['job_id']}", show_candidate)
            result = job.get("result") or {}
            if job["status"] != "finished" or not result.get("localized"):
                bar.write(f"{photo.photo_id}: not localized: {job.get('error') or result.get('reason')}")
                rows.append((photo.photo_id, None))
                continue
            footprint = shape(result["footprint"])
            footprints.append(footprint)
            iou = footprint_iou(footprint, photo.truth)
            png_path = out_dir / f"{photo.photo_id}.png"
            png_path.write_bytes(client.get(f"/photos/{photo.photo_id}/footprint.png").content)
            centre = result["center"]
            bar.write(f"{photo.photo_id}: ({centre['lat']:.2f}, {centre['lon']:.2f}), {result['area_km2']:,.0f} km2, "
                      f"{result['inliers']} inliers, candidate #{result['candidate']['rank']}, "
                      f"IoU with truth {iou:.2f} -> {png_path}")
            rows.append((photo.photo_id, iou))
        bar.close()
        ious = sorted(iou for _, iou in rows if iou is not None)
        typer.echo(f"localized {len(ious)}/{len(rows)} held-out photos; "
                   f"median IoU {ious[len(ious) // 2] if ious else 0:.2f}; total {time.monotonic() - started:.0f} s")
        night = localize_night_photo(client, settings)
        if night is not None:
            footprints.append(night)
        typer.echo(f"\nmap of the demo's photos: {map_url(base, footprints)}")
        if exit_after:
            return
        typer.echo("serving the map and the API until Ctrl-C ...")
        # A SIGTERM stops the API too (the context above terminates it), as Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            process.wait()
        except KeyboardInterrupt:
            typer.echo("\nstopping the API")
        else:
            typer.echo(f"the API stopped (exit {process.returncode}); see {log_path}", err=True)
            raise typer.Exit(1)
