"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import typer


# The options that name a database's tiles (`index build`, `model centre`): one definition each.
TILES_DIR = typer.Option(None, help="Local XYZ tile directory; default the demo world's tiles.")
URL_TEMPLATE = typer.Option(None, help="HTTP XYZ/WMTS URL template instead of --tiles-dir.")
MAX_LAT = typer.Option(60.0, help="--url-template: only tiles within |lat| <= this (degrees).")
ALL_TILES = typer.Option(False, "--all-tiles", help="--url-template: every tile of the grid, sea and poles "
                         "included (default: land tiles within --max-lat).")


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit non-zero with a message on stderr (bad input is not a traceback)."""
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


def read_image(path: Path, max_pixels: int) -> np.ndarray:
    """A photo file as RGB, checked like an upload (format, size, fully decodable), or exit 2
    with the reason."""
    from service.photos import ImageRejected, check_image

    try:
        return check_image(path.read_bytes(), max_pixels).rgb
    except (OSError, ImageRejected) as exc:
        fail(f"{path}: {exc}")
