from __future__ import annotations

import typer

from service.cli.common import print_json
from service.config import get_settings
from service.db import current_revision, upgrade_database

app = typer.Typer(no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or migrate the schema (PostGIS or the embedded SQLite file)."""
    url = get_settings().resolved_database_url
    upgrade_database(url, revision)
    print_json({"database": _redact(url), "revision": current_revision(url)})


@app.command()
def current() -> None:
    """Print the schema revision of the configured database."""
    url = get_settings().resolved_database_url
    print_json({"database": _redact(url), "revision": current_revision(url)})


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
