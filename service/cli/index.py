"""`astroloc index build|search|stats|bench`: the sharded FAISS tile index from the command line.

The work is done by plain functions of index/ (index.database, index.build, index.search,
index.shards) and service/bench/index.py; this module only resolves options against the settings and the
model store and prints results. Without --arch/--weights/--model-version the model is the model
store's active 'retrieval' version, and the index records the same model key as the service
(model.identity), so `astroloc index build` makes an index the API can serve.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from service.cli.common import fail, print_json, read_image
from service.config import Settings, get_settings

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Mount `astroloc index ...` on the top-level app."""
    root.add_typer(app, name="index", help="The sharded FAISS tile index: build, search, stats, bench.")


# --- which model describes tiles and photos ---------------------------------------------------


@dataclass
class ResolvedModel:
    net: object
    version: str  # what the index records (model.identity)
    label: str


def resolve_model(
    settings: Settings, arch: str | None, weights: Path | None, version_id: int | None, seed: int = 0
) -> ResolvedModel:
    """The descriptor model from --arch/--weights, --model-version ID, or the store's active
    'retrieval' version (in that order); exits with a message when none can be had."""
    from model.describer import load_descriptor_model
    from model.identity import weights_identity

    if arch or weights is not None:
        if version_id is not None:
            fail("give either --arch/--weights or --model-version, not both")
        try:
            net = load_descriptor_model(arch, weights, seed=seed)
            version = weights_identity(arch, weights, seed=seed, net=net)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            fail(f"cannot load the model: {exc}")
        return ResolvedModel(net, version, f"{version} ({'random init' if weights is None else weights})")

    from service import artifacts
    from service.db import upgrade_database
    from service.localize.retrieval import ModelRef, RetrievalUnavailable, active_model

    try:
        upgrade_database(settings.resolved_database_url)
        if version_id is None:
            ref = active_model(settings)
        else:
            stored = artifacts.get_version(settings, version_id)
            if stored.kind != "retrieval" or not stored.architecture:
                fail(f"model version {version_id} is a {stored.kind!r}, not a retrieval model with an architecture")
            path = artifacts.model_store(settings).verify(Path(stored.path), stored.sha256)
            ref = ModelRef(stored.id, stored.name, stored.architecture, stored.sha256, path)
    except RetrievalUnavailable as exc:
        fail(f"{exc}; or pass --arch NAME [--weights FILE]")
    except (LookupError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    net = load_descriptor_model(ref.architecture, ref.path)
    return ResolvedModel(net, ref.index_key, ref.label())


_ARCH = typer.Option(None, "--arch", help="Architecture (e.g. astroloc-nano); without --weights: random init.")
_WEIGHTS = typer.Option(None, "--weights", help="State dict (.pt) for --arch, or an ONNX export (.onnx).")
_VERSION = typer.Option(None, "--model-version", help="Retrieval version id of the model store; default: the active one.")
_SEED = typer.Option(0, "--seed", help="Seed of a randomly initialised network (--arch without --weights).")
_INDEX_DIR = typer.Option(
    None, "--index", "--index-dir", "--out", help="Index directory; default settings.index_dir or data_dir/index."
)


@app.command()
def build(
    tiles_dir: Path = typer.Option(None, help="Local XYZ tile directory; default the demo world's tiles."),
    url_template: str = typer.Option(None, help="HTTP XYZ/WMTS URL template instead of --tiles-dir."),
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
    """Describe database tiles (4 rotations) and add them to the index; resumable, incremental
    (tiles already indexed are skipped), missing or corrupt tiles skipped and counted."""
    from index.build import build_index
    from index.database import grid_tiles, local_tiles, parse_zooms
    from model.describer import tile_describer
    from index.sources import LocalXYZSource

    settings = get_settings()
    try:
        zoom_list = parse_zooms(zooms) if zooms else list(range(settings.world_min_zoom, settings.world_max_zoom + 1))
    except ValueError as exc:
        fail(str(exc))
    if url_template and tiles_dir:
        fail("give either --tiles-dir or --url-template, not both")
    if url_template:
        from index.remote import HTTPTileSource

        try:
            source = HTTPTileSource(
                url_template, cache_dir=settings.tile_cache_dir or settings.data_dir / "tiles",
                timeout_s=settings.tile_http_timeout_s, retries=settings.tile_http_retries,
            )
        except ValueError as exc:
            fail(str(exc))
        tiles = grid_tiles(zoom_list, steps)
    else:
        root = tiles_dir or settings.resolved_tiles_dir
        if not root.is_dir():
            fail(f"tile directory not found: {root} (build the demo world with `astroloc world build`)")
        source = LocalXYZSource(root)
        tiles = local_tiles(source, zoom_list, steps)
        if not tiles:
            fail(f"no tiles of zooms {zoom_list} under {root}")
    resolved = resolve_model(settings, arch, weights, version_id, seed)
    describer = tile_describer(
        resolved.net, source, batch_size=settings.describe_batch_size, workers=settings.index_load_workers
    )
    index_dir = out or settings.resolved_index_dir
    typer.echo(f"indexing {len(tiles):,} tiles (zooms {zoom_list}, steps {steps}) with {resolved.label} into {index_dir}", err=True)
    try:
        report = build_index(
            index_dir, tiles, describer, model_version=resolved.version, shard_zoom=settings.index_shard_zoom,
            factories=factories or settings.index_factories, chunk_tiles=settings.index_build_chunk_tiles,
            progress=progress,
        )
    except ValueError as exc:  # another model's index, another build running, bad factories
        fail(str(exc))
    print_json({"index_dir": str(index_dir), "model_version": resolved.version, **asdict(report)})


@app.command()
def search(
    image: Path = typer.Argument(..., help="The photo to look up (JPEG/PNG)."),
    time: str = typer.Option(None, "--time", help="Capture time (ISO 8601 with zone): ISS position from stored TLEs."),
    nadir: tuple[float, float] | None = typer.Option(None, "--nadir", help="ISS nadir LAT LON: search its visibility region."),
    worldwide: bool = typer.Option(False, "--worldwide", help="Search the whole database (the default without --time/--nadir)."),
    alt_km: float = typer.Option(420.0, help="ISS altitude for --nadir."),
    k: int = typer.Option(10, min=1, max=1000, help="Tiles to return."),
    arch: str = _ARCH,
    weights: Path = _WEIGHTS,
    version_id: int = _VERSION,
    seed: int = _SEED,
    index_dir: Path = _INDEX_DIR,
) -> None:
    """Top-k database tiles (tile, zoom, rotation, score, footprint) for a photo, inside the ISS
    visibility region or worldwide, as JSON."""
    import model
    from index.search import ShardedIndex

    settings = get_settings()
    if not image.is_file():
        fail(f"no such file: {image}")
    rgb = read_image(image, settings.max_image_pixels)
    has_nadir = nadir is not None and None not in nadir
    if sum([bool(time), has_nadir, worldwide]) > 1:
        fail("give one of --time, --nadir, --worldwide")
    where = _search_region(settings, time, nadir if has_nadir else None, alt_km)
    index_dir = index_dir or settings.resolved_index_dir
    resolved = resolve_model(settings, arch, weights, version_id, seed)
    try:
        index = ShardedIndex.open(index_dir, resolved.version, verify=settings.index_verify_checksums)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    descriptor = model.describe(resolved.net, [rgb], rotations=(0,), batch_size=1)[:, 0]
    try:
        [result] = index.search(descriptor, where.region, k=k, nprobe=settings.index_nprobe)
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
