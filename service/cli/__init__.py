"""The ``astroloc`` command: one entry point for the service, the workers and the tools.

Each area has its own small module of commands (service/cli/*.py), mounted here.
"""

from __future__ import annotations

import logging

import typer

from service.cli import bench, db, demo, index, ingest, models, orbit, refine, run, starid, train, world

app = typer.Typer(
    name="astroloc",
    help="Geolocalization of astronaut photos and star-tracker frames.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db", help="Database schema (Alembic migrations).")
app.add_typer(models.app, name="model", help="The model store: list, import, activate, export.")
run.register(app)
starid.register(app)
for area in (orbit, world, index, refine, train, ingest):
    area.register(app)
app.add_typer(bench.app, name="bench", help="Benchmarks; results go to docs/benchmarks.md.")
app.command()(demo.demo)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll is noise
    app()
