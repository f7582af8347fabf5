"""`astroloc ingest CSV` (a client of the API) and `astroloc export` (from the database)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from service.cli.common import fail, print_json
from service.config import get_settings


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(export)


def ingest(
    catalogue: Path = typer.Argument(..., exists=True, dir_okay=False, help="Catalogue CSV (EOL layout)."),
    images: Path = typer.Option(None, file_okay=False, help="Folder of images named <MISSION>-<ROLL>-<FRAME>.JPG."),
    url_template: str = typer.Option(None, help="Image URL, e.g. https://host/{mission}/{photo_id}.JPG (cached)."),
    api: str = typer.Option("http://127.0.0.1:8000", envvar="ASTROLOC_API_URL", help="The service's base URL."),
    api_key: str = typer.Option(None, envvar="ASTROLOC_API_KEY", help="X-API-Key for the service."),
    concurrency: int = typer.Option(4, min=1, max=64, help="Photos in flight at once."),
    out: Path = typer.Option(Path("ingest-out"), help="State, results.csv, rejects.csv, flags.csv go here."),
    column_map: str = typer.Option(None, help='JSON {"OUR_NAME": "their column"} for other layouts.'),
    refine: bool = typer.Option(True, help="Refine (EarthMatch) or retrieval only."),
    search: str = typer.Option("auto", help="auto | visibility | worldwide."),
    dry_run: bool = typer.Option(False, help="Validate the rows only (no images, no API)."),
    limit: int = typer.Option(None, min=1, help="Only the first N valid rows."),
) -> None:
    """Localize a catalogue of photos through the API, resumably (re-run to resume; nothing is
    submitted twice). Bad rows go to rejects.csv with their line number and reason."""
    from service.ingest import ImageFinder, IngestOptions
    from service.ingest import ingest as run_ingest

    try:
        mapping = json.loads(column_map) if column_map else None
    except json.JSONDecodeError as exc:
        fail(f"--column-map is not JSON: {exc}")
    finder = ImageFinder(catalogue, images, url_template, cache_dir=out / "image-cache")
    options = IngestOptions(api_url=api, api_key=api_key, concurrency=concurrency, refine=refine,
                            search=search, limit=limit)
    try:
        summary = run_ingest(catalogue, out, finder, options, mapping, dry_run=dry_run)
    except ValueError as exc:
        fail(str(exc))
    print_json(summary)


def export(
    out: Path = typer.Argument(..., help="Output file."),
    format: str = typer.Option("geojson", "--format", help="geojson | csv (EOL layout) | gpkg."),
    bbox: str = typer.Option(None, help="W,S,E,N: only footprints meeting this box."),
) -> None:
    """Export the stored footprints (each photo's latest) from the database."""
    from service.db import session_scope
    from service.export import export as run_export
    from service.photos import parse_bbox

    settings = get_settings()
    try:
        region = parse_bbox(bbox) if bbox else None
        with session_scope(settings.resolved_database_url) as session:
            count = run_export(session, out, format, region)
    except ValueError as exc:
        fail(str(exc))
    print_json({"exported": count, "file": str(out), "format": format})
