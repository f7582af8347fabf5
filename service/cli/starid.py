"""`astroloc star-id FILE.json` and `astroloc star-catalog`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from service.cli.common import fail, print_json
from service.config import get_settings


def register(app: typer.Typer) -> None:
    app.command("star-id")(star_id)
    app.command("star-catalog")(star_catalog)


def star_id(file: Path = typer.Argument(..., help="A POST /star-id body (JSON); '-' for stdin.")) -> None:
    """Identify the stars of a star-tracker frame (ROSIA) and print the attitude."""
    from service.star_catalog import identify_stars

    try:
        text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
        body = json.loads(text)
    except FileNotFoundError:
        fail(f"no such file: {file}")
    except json.JSONDecodeError as exc:
        fail(f"{file} is not valid JSON: {exc}")
    try:
        result = identify_stars(get_settings(), body)
    except ValueError as exc:
        fail(str(exc))
    print_json(result)
    if result["status"] != "identified":
        raise typer.Exit(1)


def star_catalog(activate: bool = typer.Option(True, help="Make it the active catalogue.")) -> None:
    """Build the Hipparcos 2 star catalogue and publish it to the model store."""
    from service.cli.models import version_summary
    from service.star_catalog import publish_star_catalog

    print_json(version_summary(publish_star_catalog(get_settings(), activate=activate)))
