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
