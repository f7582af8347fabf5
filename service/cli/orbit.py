"""`astroloc tle ...` and `astroloc iss ...`: the ISS orbit from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from geo import ISS_ALTITUDE_KM, parse_time, parse_tles
from service import orbit
from service.cli.common import fail, print_json
from service.config import get_settings
from service.db import session_scope, upgrade_database

tle_app = typer.Typer(no_args_is_help=True, help="TLEs in the database: import, list.")
iss_app = typer.Typer(no_args_is_help=True, help="Where the ISS was, and what it could see.")


def register(app: typer.Typer) -> None:
    app.add_typer(tle_app, name="tle")
    app.add_typer(iss_app, name="iss")


@tle_app.command("import")
def import_file(path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Import a TLE file (CelesTrak 3-line or Space-Track 2-line, many objects); idempotent."""
    settings = get_settings()
    upgrade_database(settings.resolved_database_url)
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        fail(f"{path} is not a text file: {exc}")
    with session_scope(settings.resolved_database_url) as session:
        report = orbit.import_tle_text(session, text)
        session.commit()
    print_json(report)
    if report["imported"] == 0 and report["already_present"] == 0:
        fail(f"no valid TLE in {path}")


@tle_app.command("list")
def list_tles(norad_id: int = typer.Option(None, help="NORAD catalogue number (default: the ISS).")) -> None:
    """How many element sets are stored, and their first and last epochs."""
    settings = get_settings()
    with session_scope(settings.resolved_database_url) as session:
        print_json(orbit.tle_summary(session, norad_id or settings.norad_id))


def _tles(settings, tle_file: Path | None):  # noqa: ANN001, ANN202
    if tle_file is not None:
        parsed = parse_tles(tle_file.read_text())
        if not parsed.tles:
            fail(f"no valid TLE in {tle_file}: " + "; ".join(str(e) for e in parsed.errors[:5]))
        return parsed.tles
    with session_scope(settings.resolved_database_url) as session:
        return orbit.stored_tles(session, settings.norad_id)


@iss_app.command()
def position(
    time: str = typer.Option(..., help="ISO 8601 with a zone, e.g. 2020-12-09T12:40:00Z."),
    tle_file: Path = typer.Option(None, exists=True, dir_okay=False, help="TLEs to use instead of the database's."),
) -> None:
    """The ISS sub-point at a time (SGP4 from the nearest TLE), as JSON."""
    settings = get_settings()
    try:
        when = parse_time(time)
        point = orbit.iss_position_at(settings, when, _tles(settings, tle_file))
    except ValueError as exc:
        fail(str(exc))
    print_json({"time": when.isoformat(), **point.as_json()})


@iss_app.command()
def visibility(
    time: str = typer.Option(None, help="ISO 8601 with a zone (or give --nadir)."),
    nadir: tuple[float, float] = typer.Option((None, None), help="LAT LON of the sub-satellite point."),
    alt_km: float = typer.Option(ISS_ALTITUDE_KM, help="Altitude with --nadir."),
    min_elevation: float = typer.Option(None, help="Minimum elevation of the ISS seen from the ground (deg)."),
    tle_file: Path = typer.Option(None, exists=True, dir_okay=False, help="TLEs to use instead of the database's."),
) -> None:
    """GeoJSON Feature of the region that sees the ISS (area_km2, sub-point, TLE used)."""
    settings = get_settings()
    has_nadir = nadir[0] is not None
    if (time is None) == (not has_nadir):
        fail("give either --time or --nadir LAT LON")
    try:
        if time is not None:
            when = parse_time(time)
            point = orbit.iss_position_at(settings, when, _tles(settings, tle_file))
            feature = orbit.visibility_at(settings, point.lat, point.lon, point.alt_km, min_elevation,
                                          {"time": when.isoformat(), "tle_epoch": point.tle_epoch.isoformat(),
                                           "tle_age_days": point.tle_age_days})
        else:
            feature = orbit.visibility_at(settings, nadir[0], nadir[1], alt_km, min_elevation, {"source": "nadir"})
    except ValueError as exc:
        fail(str(exc))
    print_json(feature)
