"""`astroloc bench ...`: the benchmarks behind every figure in docs/benchmarks.md."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from service.bench.report import write_section

app = typer.Typer(no_args_is_help=True)


def _command() -> str:
    return "astroloc " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _report(name: str, title: str, markdown: str, write: bool) -> None:
    typer.echo(markdown)
    if write:
        typer.echo(f"written to {write_section(name, title, _command(), markdown)}")


@app.command()
def model(
    archs: str = typer.Option("astroloc-nano,astroloc-tiny,earthloc,astroloc", help="Comma-separated."),
    batch: int = typer.Option(8, help="Images per forward pass."),
    seconds: float = typer.Option(10.0, help="Timed seconds per architecture and runtime."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """Images/s of each architecture with torch and onnxruntime on this machine."""
    from service.bench import model as bench

    table = bench.run(archs=[a.strip() for a in archs.split(",")], batch=batch, seconds=seconds)
    _report("model", "Retrieval networks: images per second (CPU)", table, write)


@app.command()
def starid(
    scenes: int = typer.Option(1500, help="Sensor scenes per setting of issue 17."),
    optional_scenes: int = typer.Option(300, help="Sensor scenes per optional setting (distortion, FOV error)."),
    paper_scenes: int = typer.Option(300, help="Scenes per setting of the paper's Sec. V sweeps (0: skip)."),
    frames: int = typer.Option(100, help="Rendered frames per SNR for star-ID from images (0: skip)."),
    peer: bool = typer.Option(True, help="Run tetra3rs (pip install '.[bench]') on the same scenes."),
    seed: int = typer.Option(0),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """ROSIA on sensor-like scenes beside tetra3rs, from rendered images, and on the paper's Sec. V."""
    from service.bench import starid as bench

    markdown = bench.run(scenes_per_setting=scenes, optional_scenes=optional_scenes, paper_scenes=paper_scenes,
                         frames=frames, with_peer=peer, seed=seed)
    _report("starid", "Star identification (ROSIA) beside tetra3rs", markdown, write)


@app.command()
def localize(
    photos: int = typer.Option(100, help="Held-out demo-world photos to localize."),
    split: str = typer.Option("test", help="World split: test or val."),
    top_k: int = typer.Option(None, help="Candidates refined per photo (default: settings)."),
    lost_in_space: bool = typer.Option(
        False, "--lost-in-space", help="Send no time and no nadir: world-wide, coarse to fine, within the time budget."
    ),
    night: bool = typer.Option(
        False, "--night", help="Night photos by their stars instead (the night set: astroloc world build --night 150)."
    ),
    reuse: bool = typer.Option(
        False, "--reuse", help="Report and refit from the outcomes the last run saved (var/bench/), without matching."
    ),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """Retrieval recall, refinement success, footprint IoU / centre error and s/photo on the demo world."""
    if night:
        from service.bench import night as bench_night
        from service.config import get_settings as night_settings

        _report("localize-night", "Night photos localized by their stars",
                bench_night.run(night_settings(), photos=photos), write)
        return
    from service.config import get_settings

    if lost_in_space:
        from service.bench import lost_in_space as bench_lost

        table = bench_lost.run(get_settings(), photos=photos, split=split)
        _report("localize-lost-in-space", "Lost in space: no time, no nadir, world-wide", table, write)
        return
    from service.bench import localize as bench_localize

    try:
        table = bench_localize.run(get_settings(), photos=photos, split=split, top_k=top_k, reuse=reuse)
    except ValueError as exc:  # --reuse without matching saved outcomes
        raise typer.BadParameter(str(exc)) from exc
    _report("localize", "Localization end to end on the demo world", table, write)


@app.command()
def prior(
    pool: int = typer.Option(100, min=1, help="Most similar tiles in the region re-ranked per photo."),
    photos: int = typer.Option(None, min=1, help="At most this many photos per split (default: all)."),
    refit: bool = typer.Option(False, help="Refit geo/data/obliquity_prior.json from ../shared/data first."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """The obliquity prior: in-region R@1/R@10 with and without it (weights fitted on val, test reported)."""
    from service.bench import prior as bench_prior
    from service.config import get_settings

    settings = get_settings()
    table = bench_prior.run(settings, pool=pool, limit=photos, refit=refit)
    world = settings.resolved_world_dir.name  # one section per world (the default one, the oblique one)
    _report(f"prior-{world}", f"Obliquity prior: in-region retrieval on {world}", table, write)


@app.command()
def ingest(
    photos: int = typer.Option(60, help="Held-out demo-world photos to ingest."),
    workers: int = typer.Option(2, min=1, help="RQ worker processes."),
    concurrency: int = typer.Option(4, min=1, help="Requests the ingester keeps in flight."),
    admin_url: str = typer.Option("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                  help="PostgreSQL URL allowed to CREATE DATABASE (a scratch one per run)."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
    photo_size: str = typer.Option(None, metavar="WxH", help="Enlarge each photo into a JPEG of this size first "
                                   "(e.g. 3000x2000, a catalogue photo's), so decoding is measured too."),
) -> None:
    """Photos per hour through API + workers + PostGIS + Redis, and where the time goes."""
    from service.bench import ingest as bench_ingest
    from service.config import get_settings

    size = None
    if photo_size:
        try:
            size = tuple(int(v) for v in photo_size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2 or min(size) < 64:
            raise typer.BadParameter(f"--photo-size must be WxH, e.g. 3000x2000, got {photo_size!r}")
    table = bench_ingest.run(get_settings(), photos=photos, workers=workers, concurrency=concurrency,
                             admin_url=admin_url, photo_size=size)
    _report("ingest", "Batch ingestion throughput (full pipeline)", table, write)


@app.command()
def index(
    arch: str = typer.Option("astroloc-nano", help="Descriptor network of the real-imagery part."),
    weights: str = typer.Option(None, help="Its weights (.pt) or ONNX file; default: random init (seed 0)."),
    trained: bool = typer.Option(True, help="Also the demo model (settings.demo_checkpoint), when present."),
    tiles_dir: str = typer.Option(None, help="XYZ tiles of the real-imagery part; default the demo world's."),
    zooms: str = typer.Option(
        "3-5", help="Zooms of the real-imagery database (3-5: 1,344 tiles, described in ~2-4 min per model)."
    ),
    steps: int = typer.Option(1, min=1, max=4, help="Tile positions per tile width (2: overlapping grid)."),
    regions: int = typer.Option(8, min=1, help="ISS visibility regions drawn per part."),
    per_region: int = typer.Option(32, min=1, help="Queries per region (one batch)."),
    synthetic: bool = typer.Option(True, help="Also the 2048-d synthetic part (full-size shard, memory)."),
    region_zoom: int = typer.Option(8, min=4, max=10, help="Synthetic part: zoom of its region-search database "
                                    "(8: 172k vectors; 9: 688k, the size of the Texas-L anchor)."),
    region_dim: int = typer.Option(512, min=16, help="Synthetic part: descriptor size of its region-search database."),
    threads: int = typer.Option(
        1, min=1, help="FAISS threads while timing; 1: on this shared 2-core machine, 2 OpenMP threads "
        "wait on each other whenever another job holds a core, which makes every call erratic.",
    ),
    quick: bool = typer.Option(False, help="Reduced scale: a smoke run of a minute or two."),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """Tile index: region-sharded search vs a flat scan, recall@100 vs exact, memory, build time."""
    from service.bench import index as bench_index
    from service.cli.common import fail
    from service.config import get_settings

    try:
        markdown = bench_index.report(
            get_settings(), arch=arch, weights=weights, trained=trained, tiles_dir=tiles_dir, zooms=zooms,
            steps=steps, regions=regions, per_region=per_region, synthetic=synthetic, region_zoom=region_zoom,
            region_dim=region_dim, threads=threads, quick=quick,
        )
    except bench_index.BenchError as exc:
        fail(str(exc))
    _report("index", "Tile index: sharded FAISS search, recall, memory", markdown, write)


@app.command()
def train(
    world_dir: str = typer.Option("var/world", help="The demo world (astroloc world build)."),
    zooms: str = typer.Option("4,5", help="Database zooms (fewer tiles: cheaper validation)."),
    iterations: int = typer.Option(200, help="Iterations per row (the same budget for every row; 200: the "
                                   "demo model's, ~8 min a row here)."),
    lr: float = typer.Option(5e-4, help="Adam learning rate (configs/train-demo.json's)."),
    validation_queries: int = typer.Option(0, help="Validation photos (0: all)."),
    config: Path = typer.Option(None, help="Recipe every row starts from (default configs/train-demo.json)."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """AstroLoc's ablation (Tab. 6) in miniature: recall@1/5/10/100 per loss and mining choice."""
    from service.bench import train as bench_train

    markdown = bench_train.run(world_dir=world_dir, zooms=zooms, iterations=iterations, lr=lr,
                               validation_queries=validation_queries, config=config or bench_train.DEMO_CONFIG)
    _report("train", "Training: the AstroLoc ablation in miniature", markdown, write)


@app.command()
def load(
    clients: int = typer.Option(8, help="Concurrent clients."),
    seconds: float = typer.Option(60.0, help="Duration of the load, s."),
    uploads: int = typer.Option(4, help="Concurrent maximum-size uploads of the memory run."),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """The API under load (issue 18): errors other than 429/503, latency, memory with max-size uploads."""
    from service.bench import load as bench_load

    markdown = bench_load.run(clients=clients, seconds=seconds, uploads=uploads)
    _report("load", "API under load: 8 clients, maximum-size uploads", markdown, write)


@app.command("index-workers")
def index_workers(
    workers: str = typer.Option("1,2", help="Worker counts to run, comma-separated."),
    zooms: str = typer.Option("5,6", help="Zooms of the demo world's tiles to index."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """The index build on N `astroloc worker --queues index` processes (RQ, one thread each):
    tiles/s, speed-up over one worker, and whether the indexes are the same."""
    from service.bench import index_workers as bench
    from service.cli.common import fail
    from service.config import get_settings
    from index.database import parse_zooms

    try:
        table = bench.run(get_settings(), [int(w) for w in workers.split(",")], parse_zooms(zooms))
    except ValueError as exc:
        fail(str(exc))
    _report("index-workers", "Index build on N workers (RQ)", table, write)


@app.command()
def wmts(
    tiles: int = typer.Option(2000, help="Tiles fetched from the local WMTS emulator."),
    latency_ms: float = typer.Option(0.0, help="Latency the emulator adds to each tile, ms."),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """The production database recipe (Sentinel-2 cloudless, zooms 9-11, 4 rotations): tile counts,
    download rate against a local WMTS emulator, description rate, disk and hours."""
    from service.bench import wmts as bench_wmts

    markdown = bench_wmts.run(tiles=tiles, latency_ms=latency_ms)
    _report("wmts", "Production database recipe: Sentinel-2 cloudless from a WMTS", markdown, write)


@app.command()
def real(
    set_dir: Path = typer.Option(None, "--set", help="A real-earthmatch set (default: ../shared/data/real-earthmatch)."),
    photos: int = typer.Option(None, help="Only the first N photos of the set."),
    retrieval: bool = typer.Option(True, help="Also rank the set's distinct tiles with the model and the trunk."),
    reuse: bool = typer.Option(False, "--reuse", help="Report from the outcomes the last run saved (var/bench/real.json)."),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """Refinement and retrieval on real ISS photos against their real Sentinel-2 candidates."""
    from service.bench import real as bench_real
    from service.config import get_settings

    directory = set_dir or bench_real.DEFAULT_SET
    try:
        bench_real.load_set(directory)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from exc

    def said(outcome: bench_real.RealOutcome) -> None:
        typer.echo(f"{outcome.photo_id}: {outcome.verdict}"
                   + (f" (IoU {outcome.iou:.2f})" if outcome.iou is not None else f" ({outcome.reason})"), err=True)

    markdown = bench_real.run(get_settings(), directory, limit=photos, retrieval=retrieval, reuse=reuse,
                              on_photo=said)
    _report("real", "Real ISS photos against real Sentinel-2 candidates", markdown, write and photos is None)


@app.command()
def acceptance(
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """The refinement's acceptance fitted on the demo world's and the real photos' candidates together
    (the saved outcomes of `bench localize` and `bench real`), cross-fitted; prints the fit."""
    from service.bench import acceptance as bench_acceptance
    from service.config import get_settings

    try:
        markdown, fitted = bench_acceptance.run(get_settings())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _report("acceptance", "Acceptance fitted on real and demo-world candidates", markdown, write)
    typer.echo(bench_acceptance.as_json(fitted))
