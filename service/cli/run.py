"""Long-running processes: `astroloc serve` (the API) and `astroloc worker` (RQ workers, worker/ by name)."""

from __future__ import annotations

import typer

from service.cli.common import fail
from service.config import get_settings


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Uvicorn worker processes (rq queue mode only)."),
) -> None:
    """Run the HTTP API (Swagger UI at /docs). Migrates the database at start."""
    import uvicorn

    settings = get_settings()
    if workers > 1 and settings.queue_mode == "inline":
        fail("several API processes need queue_mode=rq (inline jobs live in one process)")
    uvicorn.run("service.api.app:app", host=host, port=port, workers=workers, log_level="info")


def worker(
    queues: str = typer.Option("default,localize", help="Comma-separated RQ queues to consume."),
    burst: bool = typer.Option(False, help="Exit when the queues are empty."),
) -> None:
    """Run an RQ worker (needs ASTROLOC_QUEUE_MODE=rq and Redis). The trainer uses --queues train."""
    from service.jobs import WORKER_MAIN, resolve

    settings = get_settings()
    if settings.queue_mode != "rq":
        fail("`astroloc worker` serves queue_mode=rq; set ASTROLOC_QUEUE_MODE=rq")
    try:
        # worker/ imports service/, never the reverse: the worker process is known here by name.
        resolve(WORKER_MAIN)(settings, [q.strip() for q in queues.split(",") if q.strip()], burst=burst)
    except ValueError as exc:
        fail(str(exc))
