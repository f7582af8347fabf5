"""`astroloc world build|render|figure`: the demo world (docs/world.md) from the command line.

Thin wrappers over the world package: build_world, sample_view / ViewSpec + render_view, make_figure.
Defaults come from the settings (ASTROLOC_WORLD_*).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from geo.orbit import ISS_ALTITUDE_KM
from service.cli.common import fail, print_json
from service.config import get_settings

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Mount `astroloc world ...` on the top-level app."""
    root.add_typer(app, name="world", help="The demo world: Blue Marble tiles + simulated ISS photos.")


@app.command()
def build(
    zooms: str = typer.Option(None, help="Tile zooms, e.g. 3-6; default settings world_min_zoom-world_max_zoom."),
    queries: int = typer.Option(None, min=0, help="Simulated photos; default settings.world_queries."),
    seed: int = typer.Option(None, help="Seed of the photos and the split; default settings.world_seed."),
    workers: int = typer.Option(None, min=1, help="Processes rendering photos; default settings.world_workers."),
    out: Path = typer.Option(None, help="World directory; default settings.world_dir or data_dir/world."),
    tilt_law: str = typer.Option(
        "uniform", help="Camera tilts: uniform (0-60 deg) or eol (as oblique as the real catalogue, 0-70 deg)."
    ),
    progress: bool = typer.Option(True, help="Progress bars."),
    night: int = typer.Option(
        None, min=0, help="Instead: N night photos with stars above the limb (the star path's held-out set), "
        "into --out or beside the world (var/world-night)."
    ),
) -> None:
    """Build (or finish, or reuse) the demo world: tiles, photos, queries.csv, world.json."""
    if night is not None:
        from service.night_world import build_night

        try:
            manifest = build_night(get_settings(), night, seed=0 if seed is None else seed, out=out, progress=progress)
        except ValueError as exc:
            fail(str(exc))
        print_json(manifest)
        return
    from index.database import parse_zooms
    from world.build import build_world
    from world.sampling import EOL_TILT_SAMPLING, QuerySampling

    settings = get_settings()
    try:
        zoom_list = parse_zooms(zooms) if zooms else list(range(settings.world_min_zoom, settings.world_max_zoom + 1))
        manifest = build_world(
            out or settings.resolved_world_dir,
            zooms=zoom_list,
            n_queries=settings.world_queries if queries is None else queries,
            seed=settings.world_seed if seed is None else seed,
            workers=workers or settings.world_workers,
            sampling=EOL_TILT_SAMPLING if tilt_law == "eol" else QuerySampling(tilt_law=tilt_law),
            progress=progress,
        )
    except ValueError as exc:
        fail(str(exc))
    print_json(manifest)


@app.command()
def render(
    seed: int = typer.Option(None, help="Draw the view like photo INDEX of a world with this seed."),
    index: int = typer.Option(0, min=0, help="With --seed: the candidate number (a world's FRAME)."),
    lat: float = typer.Option(None, help="ISS nadir latitude (explicit view)."),
    lon: float = typer.Option(None, help="ISS nadir longitude (explicit view)."),
    alt_km: float = typer.Option(ISS_ALTITUDE_KM, help="ISS altitude, km."),
    tilt: float = typer.Option(0.0, help="Off-nadir angle of the camera, degrees (0-75)."),
    azimuth: float = typer.Option(0.0, help="Compass direction the camera leans towards, degrees."),
    roll: float = typer.Option(0.0, help="Camera roll about its axis, degrees."),
    focal_mm: float = typer.Option(20.0, help="Lens focal length on a 36 mm full-frame sensor."),
    time: str = typer.Option(None, "--time", help="Capture time, ISO 8601 with zone (explicit view; default now)."),
    size: int = typer.Option(None, help="Photo side, px; default settings.world_image_size."),
    out: Path = typer.Option(Path("."), help="Directory for PHOTO.jpg and PHOTO.json."),
) -> None:
    """Render one simulated photo (JPEG) and its ground truth (JSON, a queries.csv row)."""
    import numpy as np

    from geo import parse_time
    from world.catalogue import simulated_photo_id, truth_row
    from world.sampling import QuerySampling, sample_tles, sample_view
    from world.view import ViewSpec, render_view

    settings = get_settings()
    side = size or settings.world_image_size
    explicit = lat is not None or lon is not None
    if explicit == (seed is not None):
        fail("give either --seed [--index] or an explicit view (--lat and --lon, ...)")
    try:
        if explicit:
            if lat is None or lon is None:
                fail("an explicit view needs both --lat and --lon")
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                fail(f"nadir ({lat}, {lon}) is out of range")
            when = parse_time(time) if time else datetime.now(UTC)
            view = ViewSpec(when, lon, lat, alt_km, tilt, azimuth, roll, focal_mm, width=side, height=side)
            photo_id, frame = simulated_photo_id(0, roll="X"), 0
        else:
            sampling = QuerySampling(width=side, height=side)
            view = sample_view(np.random.default_rng([seed, index]), sample_tles(), sampling)
            photo_id, frame = simulated_photo_id(index), index
        rendered = render_view(view)
    except ValueError as exc:  # bad time, tilt out of range, a camera looking past the Earth
        fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    image_path = out / f"{photo_id}.jpg"
    image_path.write_bytes(rendered.jpeg)
    row = truth_row(rendered, photo_id, frame, "unassigned", image_path.name)
    (out / f"{photo_id}.json").write_text(json.dumps(row, indent=1))
    print_json({"image": str(image_path), "truth": str(out / f"{photo_id}.json"), **row})


@app.command()
def figure(
    world: Path = typer.Option(None, help="Built world; default settings.world_dir or data_dir/world."),
    out: Path = typer.Option(Path("docs/world_figure.png"), help="PNG to write."),
) -> None:
    """Draw sample photos beside their ground-truth tiles (the figure of docs/world.md)."""
    from world.figure import make_figure

    try:
        path = make_figure(world or get_settings().resolved_world_dir, out)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(str(path))
