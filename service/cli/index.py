"""`astroloc index build|search|stats|bench`: the sharded FAISS tile index from the command line.

The work is done by service/indexing.py over index/ (index.database, index.build, index.search,
index.shards) and service/bench/index.py; this module only resolves options against the settings and the
model store and prints results. Without --arch/--weights/--model-version the model is the model
store's active 'retrieval' version, and the index records the same model key as the service
(model.identity), so `astroloc index build` makes an index the API can serve.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from geo.orbit import ISS_ALTITUDE_KM
from service.cli.common import ALL_TILES, MAX_LAT, TILES_DIR, URL_TEMPLATE, fail, print_json, read_image
from service.config import Settings, get_settings

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Mount `astroloc index ...` on the top-level app."""
    root.add_typer(app, name="index", help="The sharded FAISS tile index: build, search, stats, bench.")


_ARCH = typer.Option(None, "--arch", help="Architecture (e.g. astroloc-nano); without --weights: random init.")
_WEIGHTS = typer.Option(None, "--weights", help="State dict (.pt) for --arch, or an ONNX export (.onnx).")
_VERSION = typer.Option(None, "--model-version", help="Retrieval version id of the model store; default: the active one.")
_SEED = typer.Option(0, "--seed", help="Seed of a randomly initialised network (--arch without --weights).")
_INDEX_DIR = typer.Option(
    None, "--index", "--index-dir", "--out", help="Index directory; default settings.index_dir or data_dir/index."
)


@app.command()
def build(
    tiles_dir: Path = TILES_DIR,
    url_template: str = URL_TEMPLATE,
    max_lat: float = MAX_LAT,
    all_tiles: bool = ALL_TILES,
    zooms: str = typer.Option(None, help="Zoom levels, e.g. 3-6; default the world's zooms."),
    steps: int = typer.Option(1, min=1, max=4, help="Tile positions per tile width: 1 plain grid, 2 overlapping."),
    arch: str = _ARCH,
    weights: Path = _WEIGHTS,
    version_id: int = _VERSION,
    seed: int = _SEED,
    out: Path = _INDEX_DIR,
    factories: str = typer.Option(None, help="FAISS factory policy; default settings.index_factories."),
    progress: bool = typer.Option(True, help="Progress bar."),
) -> None:
    """Describe database tiles (4 rotations) and add them to the index, as chunk jobs on the
    'index' queue (any number of `astroloc worker --queues index`; in this process on the embedded
    default), then assemble the index; resumable, incremental (tiles already indexed are
    skipped), missing or corrupt tiles skipped and counted."""
    from service import index_jobs, indexing

    settings = get_settings()
    try:
        source, tiles, zoom_list = indexing.database_tiles(settings, tiles_dir, url_template, zooms, steps,
                                                           all_tiles=all_tiles, max_lat_deg=max_lat)
        recipe = indexing.SourceRecipe.of(settings, tiles_dir, url_template)
        model_recipe = index_jobs.ModelRecipe(version_id=version_id, arch=arch,
                                              weights=str(weights.resolve()) if weights else None, seed=seed)
        typer.echo(f"indexing {len(tiles):,} tiles (zooms {zoom_list}, steps {steps}) in chunks of "
                   f"{settings.index_build_chunk_tiles} on the {index_jobs.INDEX_QUEUE!r} queue "
                   f"({'`astroloc worker --queues index` processes' if settings.queue_mode == 'rq' else 'in this process'})",
                   err=True)
        # ValueError: another model's index, another build running, bad factories, a bad zoom range
        print_json(index_jobs.build_with_jobs(settings, recipe, tiles, model_recipe, index_dir=out,
                                              factories=factories, progress=progress))
    except ValueError as exc:
        fail(str(exc))


@app.command()
def search(
    image: Path = typer.Argument(..., help="The photo to look up (JPEG/PNG)."),
    time: str = typer.Option(None, "--time", help="Capture time (ISO 8601 with zone): ISS position from stored TLEs."),
    nadir: tuple[float, float] | None = typer.Option(None, "--nadir", help="ISS nadir LAT LON: search its visibility region."),
    worldwide: bool = typer.Option(False, "--worldwide", help="Search the whole database (the default without --time/--nadir)."),
    alt_km: float = typer.Option(ISS_ALTITUDE_KM, help="ISS altitude for --nadir."),
    k: int = typer.Option(10, min=1, max=1000, help="Tiles to return."),
    arch: str = _ARCH,
    weights: Path = _WEIGHTS,
    version_id: int = _VERSION,
    seed: int = _SEED,
    index_dir: Path = _INDEX_DIR,
) -> None:
    """Top-k database tiles (tile, zoom, rotation, score, footprint) for a photo, inside the ISS
    visibility region or worldwide, as JSON."""
    from service import indexing

    settings = get_settings()
    if not image.is_file():
        fail(f"no such file: {image}")
    rgb = read_image(image, settings.max_image_pixels)
    has_nadir = nadir is not None and None not in nadir
    if sum([bool(time), has_nadir, worldwide]) > 1:
        fail("give one of --time, --nadir, --worldwide")
    where = _search_region(settings, time, nadir if has_nadir else None, alt_km)
    try:
        resolved = indexing.resolve_model(settings, arch, weights, version_id, seed)
        result = indexing.search(settings, rgb, where.region, resolved, index_dir=index_dir, k=k)
    except ValueError as exc:
        fail(str(exc))
    print_json({
        "search": {key: value for key, value in where.to_dict().items() if key != "region"},
        "shards_searched": result.shards_searched,
        "reason": result.reason,
        "hits": [hit.to_dict() for hit in result.hits],
    })  # fmt: skip


def _search_region(settings: Settings, time: str | None, nadir: tuple[float, float] | None, alt_km: float):
    """service.localize.region for the CLI: visibility region from --time (stored TLEs) or --nadir,
    else worldwide; exits with a message when --time cannot be placed."""
    from sqlalchemy.exc import SQLAlchemyError

    from geo import parse_time
    from service.db import session_scope
    from service.localize.region import search_region

    try:
        if not time and nadir is None:
            return search_region(settings, None, timestamp=None, nadir=None, mode="worldwide")  # type: ignore[arg-type]
        timestamp = parse_time(time) if time else None
        with session_scope(settings.resolved_database_url) as session:
            return search_region(settings, session, timestamp=timestamp, nadir=nadir, alt_km=alt_km, mode="visibility")
    except ValueError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:  # no database yet in this data dir
        fail(f"cannot read the ISS TLEs from the database ({type(exc).__name__}); run `astroloc db upgrade` "
             "and import TLEs, or pass --nadir LAT LON")  # fmt: skip


@app.command()
def stats(
    index_dir: Path = _INDEX_DIR,
    as_json: bool = typer.Option(False, "--json", help="JSON instead of aligned text."),
) -> None:
    """The manifest's summary: model version, dimension, shards, tiles, vectors, bytes, skips."""
    from index.shards import format_stats, index_stats

    index_dir = index_dir or get_settings().resolved_index_dir
    try:
        summary = index_stats(index_dir)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(json.dumps(summary, indent=2) if as_json else format_stats(summary))


@app.command("bench")
def bench_command(
    quick: bool = typer.Option(False, help="Reduced scale (a smoke run of a minute or two)."),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """Same as `astroloc bench index` (its defaults)."""
    from service.cli.bench import index as bench_index

    bench_index(arch="astroloc-nano", weights=None, trained=True, tiles_dir=None, zooms="3-5", steps=1, regions=8,
                per_region=32, synthetic=True, region_zoom=8, region_dim=512, threads=1, quick=quick,
                write=write)  # fmt: skip
