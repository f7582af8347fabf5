"""`astroloc bench ...`: the benchmarks behind every figure in docs/benchmarks.md."""

from __future__ import annotations

import shlex
import sys

import typer

from service.benchmarks import write_section

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
    from model import bench

    table = bench.run(archs=[a.strip() for a in archs.split(",")], batch=batch, seconds=seconds)
    _report("model", "Retrieval networks: images per second (CPU)", table, write)


@app.command()
def starid(
    scenes: int = typer.Option(2000, help="Simulated scenes per setting."),
    seed: int = typer.Option(0),
    write: bool = typer.Option(True, help="Write the tables to docs/benchmarks.md."),
) -> None:
    """ROSIA on the paper's Sec. V simulations: ID rate, no-result, false positives, runtime."""
    from starid import bench

    _report("starid", "Star identification (ROSIA), paper Sec. V setup",
            bench.run(scenes_per_setting=scenes, seed=seed), write)


@app.command()
def localize(
    photos: int = typer.Option(100, help="Held-out demo-world photos to localize."),
    split: str = typer.Option("test", help="World split: test or val."),
    top_k: int = typer.Option(None, help="Candidates refined per photo (default: settings)."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """Retrieval recall, refinement success, footprint IoU / centre error and s/photo on the demo world."""
    from service import bench_localize
    from service.config import get_settings

    table = bench_localize.run(get_settings(), photos=photos, split=split, top_k=top_k)
    _report("localize", "Localization end to end on the demo world", table, write)


@app.command()
def ingest(
    photos: int = typer.Option(60, help="Held-out demo-world photos to ingest."),
    workers: int = typer.Option(2, min=1, help="RQ worker processes."),
    concurrency: int = typer.Option(4, min=1, help="Requests the ingester keeps in flight."),
    admin_url: str = typer.Option("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                  help="PostgreSQL URL allowed to CREATE DATABASE (a scratch one per run)."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """Photos per hour through API + workers + PostGIS + Redis, and where the time goes."""
    from service import bench_ingest
    from service.config import get_settings

    table = bench_ingest.run(get_settings(), photos=photos, workers=workers, concurrency=concurrency,
                             admin_url=admin_url)
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
    import time
    from pathlib import Path

    from index import bench as index_bench
    from index.database import load_descriptor_model, local_tiles, model_describer, model_version, parse_zooms
    from index.sources import LocalXYZSource
    from service.cli.common import fail
    from service.config import get_settings

    settings = get_settings()
    started = time.perf_counter()
    root = Path(tiles_dir) if tiles_dir else settings.resolved_tiles_dir
    if not root.is_dir():
        fail(f"tile directory not found: {root} (build the demo world: `astroloc world build`)")
    models = [(arch, weights, "random init" if weights is None else str(weights))]
    if trained and settings.demo_checkpoint.is_file() and not quick:
        models.append((settings.demo_architecture, str(settings.demo_checkpoint), "trained demo checkpoint"))
    try:
        zoom_list = parse_zooms("3-4" if quick else zooms)
    except ValueError as exc:
        fail(str(exc))
    source = LocalXYZSource(root)
    tiles = local_tiles(source, zoom_list, steps)
    if not tiles:
        fail(f"no tiles of zooms {zoom_list} under {root}")
    size = {"regions": 2, "queries_per_region": 8} if quick else {"regions": regions, "queries_per_region": per_region}
    # fp16 codes: twice SQ8's memory; shows what SQ8's rounding costs in recall.
    fp16 = "SQfp16;20000:IVF{nlist},SQfp16"
    parts = [
        "**Part 1: our models' descriptors over real imagery tiles.** Database descriptors from the "
        f"networks named below over the demo world's Blue Marble tiles (zooms {zoom_list[0]}-{zoom_list[-1]}, "
        f"{'plain' if steps == 1 else f'{steps} positions per tile width'}); queries are noisy copies of "
        "one rotation of a database tile inside each region (a photo is never its tile). This part is "
        "about recall on real descriptors; at a few thousand vectors its timings are fixed costs "
        "(Part 2 measures speed at scale)."
    ]
    for number, (name, file, how) in enumerate(models):
        try:
            net = load_descriptor_model(name, file)
            version = model_version(name, file, net=net)
        except ValueError as exc:
            fail(str(exc))
        describer = model_describer(net, source, batch_size=settings.describe_batch_size, workers=settings.index_load_workers)
        describer.name = f"`{name}`, {how}"
        parts.append(
            f"#### Part 1{'ab'[number]}: `{name}` ({how})\n\n"
            + index_bench.run(describer=describer, tiles=tiles, model_version=version, extrapolate=False,
                              progress=True, threads=threads, extra_world_factories=[fp16], **size)  # fmt: skip
        )
    if synthetic:
        scale = ({"zooms": (6,), "world_tiles": index_bench.full_cell_tiles(9, settings.index_shard_zoom)} if quick
                 else {"zooms": (region_zoom,), "dim": region_dim})
        parts.append(
            "**Part 2: 2048-d at full scale (synthetic descriptors).** Our CPU models are 256-d; the "
            "world-wide target is about AstroLoc's 2048-d descriptors, so memory, IVF recall and "
            "the extrapolation are measured on clustered synthetic descriptors of that size "
            "(see index/bench.py for how they are made).\n\n"
            + index_bench.run(progress=True, threads=threads, extra_world_factories=[fp16], **size, **scale)
        )
    parts.append(f"Total benchmark time {time.perf_counter() - started:.0f} s.")
    _report("index", "Tile index: sharded FAISS search, recall, memory", "\n\n".join(parts), write)


@app.command()
def train(
    world_dir: str = typer.Option("var/world", help="The demo world (astroloc world build)."),
    zooms: str = typer.Option("4,5", help="Database zooms (fewer tiles: cheaper validation)."),
    iterations: int = typer.Option(200, help="Iterations per row (the same budget for every row; 200: the "
                                   "demo model's, ~8 min a row here)."),
    lr: float = typer.Option(5e-4, help="Adam learning rate (configs/train-demo.json's)."),
    validation_queries: int = typer.Option(0, help="Validation photos (0: all)."),
    write: bool = typer.Option(True, help="Write the table to docs/benchmarks.md."),
) -> None:
    """AstroLoc's ablation (Tab. 6) in miniature: recall@1/5/10/100 per loss and mining choice."""
    import platform
    import tempfile
    import time

    from model.training import TrainConfig, ablation

    started = time.monotonic()
    base = TrainConfig.from_dict({
        "world_dir": world_dir, "zooms": [int(z) for z in zooms.split(",")], "iterations": iterations,
        "mining_every": max(1, iterations // 2), "checkpoint_every": iterations, "lr": lr,
        "validation_queries": validation_queries, "name": "ablation",
    })
    with tempfile.TemporaryDirectory(prefix="ablation-") as work:
        rows = ablation(base, work)
    queries = rows[0][1].get("queries", 0)
    lines = [
        f"`{base.arch}` trained from scratch for {iterations} iterations per row (batch {base.batch_pairs} pairs "
        f"+ {base.batch_quads} quadruplets, Adam lr {base.lr}, K = {base.clusters}, mining every "
        f"{base.mining_every}) on the demo world's training photos; validated on {queries} validation photos "
        f"against every tile of zooms {zooms} at 4 rotations, world-wide (a tile is correct when it contains "
        f"the photo footprint's centre). {platform.machine()}, CPU.",
        "",
        "| row | R@1 | R@5 | R@10 | R@100 |",
        "|---|---|---|---|---|",
    ]
    for label, metrics in rows:
        lines.append(f"| {label} | " + " | ".join(f"{metrics.get(f'recall@{k}', 0):.1%}" for k in (1, 5, 10, 100)) + " |")
    lines += ["", f"Total time {(time.monotonic() - started) / 60:.0f} min ({len(rows) - 1} trained rows + the untrained network)."]
    _report("train", "Training: the AstroLoc ablation in miniature", "\n".join(lines), write)
