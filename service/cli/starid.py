"""`astroloc star-id FILE.json | FRAME --fov-deg F` and `astroloc star-catalog`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from service.cli.common import fail, print_json
from service.config import get_settings


def register(app: typer.Typer) -> None:
    app.command("star-id")(star_id)
    app.command("star-catalog")(star_catalog)


def star_id(
    file: Path = typer.Argument(
        ..., help="A POST /star-id body (JSON; '-' for stdin), or a frame: PNG, JPEG, TIFF or FITS."
    ),
    fov_deg: float = typer.Option(None, "--fov-deg", help="A frame's horizontal field of view (degrees)."),
    sigma_threshold: float = typer.Option(None, help="A frame's detection threshold in noise sigmas (default 5)."),
    psf_sigma_px: float = typer.Option(None, help="A frame's PSF sigma in pixels (default 1)."),
) -> None:
    """Identify the stars of a star-tracker frame (ROSIA) and print the attitude; from a frame,
    also its centroids with their identifications."""
    from service.star_catalog import identify_frame, identify_stars

    try:
        data = typer.get_binary_stream("stdin").read() if str(file) == "-" else file.read_bytes()
    except FileNotFoundError:
        fail(f"no such file: {file}")
    except IsADirectoryError:
        fail(f"{file} is a directory")
    is_json = data.lstrip()[:1] in (b"{", b"[") or file.suffix.lower() == ".json"
    try:
        if is_json:
            try:
                body = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                fail(f"{file} is not valid JSON: {exc}")
            result = identify_stars(get_settings(), body)
        else:
            if fov_deg is None:
                fail(f"{file} is a frame, not JSON: give its field of view with --fov-deg")
            result = identify_frame(get_settings(), data, fov_deg, sigma_threshold, psf_sigma_px)
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
