"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit non-zero with a message on stderr (bad input is not a traceback)."""
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)
