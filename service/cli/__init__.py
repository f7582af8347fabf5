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


# Our own packages: their INFO lines are meant for the person at the terminal.
OWN_PACKAGES = ("service", "worker", "geo", "index", "model", "starid", "world")


class _PersonFormatter(logging.Formatter):
    """INFO lines as plain sentences; warnings and errors say what they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {message}"


def configure_logging(verbose: bool) -> None:
    """Libraries (Alembic, httpx, numba, ...) say only warnings unless ``verbose``; ours say INFO.

    ``verbose`` turns every logger's INFO on, with times and logger names.
    """
    root = logging.getLogger()
    if verbose:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        root.setLevel(logging.INFO)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(_PersonFormatter("%(message)s"))
        logging.basicConfig(handlers=[handler])
        root.setLevel(logging.WARNING)
    for name in OWN_PACKAGES:
        logging.getLogger(name).setLevel(logging.INFO)
    # One line per poll or per migration step is noise even for our own logs' readers.
    for name in ("httpx", "alembic"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


@app.callback()
def options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the libraries' INFO logs too (Alembic, ...)."),
) -> None:
    """Geolocalization of astronaut photos and star-tracker frames."""
    configure_logging(verbose)


def main() -> None:
    app()
