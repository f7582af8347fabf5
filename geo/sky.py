"""Offline astronomy data for skyfield, and the one rule about times: they carry a zone.

Skyfield downloads Earth-rotation tables and planetary ephemerides on first use; a self-hosted
service must not. The ``skyfield-data`` package ships both files (``finals2000A.all``: UT1-UTC
and polar motion; ``de421.bsp``: Sun, Moon and planets 1900-2050), so everything here loads
from that package's folder and nothing is ever fetched.
"""

from __future__ import annotations

import atexit
import logging
import warnings
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from skyfield.api import Loader
from skyfield.data import iers
from skyfield.jpllib import SpiceKernel
from skyfield.timelib import Time, Timescale
from skyfield_data import get_skyfield_data_path

logger = logging.getLogger(__name__)

EARTH_ROTATION_FILE = "finals2000A.all"
EPHEMERIS_FILE = "de421.bsp"


@lru_cache(maxsize=1)
def _loader() -> Loader:
    # skyfield-data warns once its Earth-rotation predictions run out. The measured past values
    # (all a photo archive needs) stay valid, so say it in the log rather than as a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = Path(get_skyfield_data_path())
    for warning in caught:
        logger.info("skyfield-data: %s", warning.message)
    for name in (EARTH_ROTATION_FILE, EPHEMERIS_FILE):
        if not (folder / name).is_file():
            raise RuntimeError(f"skyfield-data has no {name} in {folder}; reinstall skyfield-data")
    return Loader(str(folder), verbose=False)


@lru_cache(maxsize=1)
def timescale() -> Timescale:
    """Skyfield timescale with IERS UT1-UTC and polar motion, read from skyfield-data."""
    load = _loader()
    scale = load.timescale(builtin=False)
    with load.open(EARTH_ROTATION_FILE) as finals:
        iers.install_polar_motion_table(scale, iers.parse_x_y_dut1_from_finals_all(finals))
    return scale


@lru_cache(maxsize=1)
def ephemeris() -> SpiceKernel:
    """JPL DE421 (1899-07-29 .. 2053-10-09), read from skyfield-data."""
    kernel = _loader()(EPHEMERIS_FILE)
    atexit.register(kernel.close)  # the kernel reads its file lazily, so it stays open until exit
    return kernel


def require_aware(when: datetime, what: str = "time") -> datetime:
    """``when`` converted to UTC; a naive datetime is refused rather than guessed to be UTC."""
    if not isinstance(when, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
        raise ValueError(
            f"{what} {when.isoformat()} has no timezone; give it one (e.g. 'Z' or '+00:00'), "
            "times are never guessed to be UTC"
        )
    return when.astimezone(timezone.utc)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone (``2020-12-09T12:40:00Z``) as a UTC datetime; ValueError otherwise."""
    try:
        when = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"time {text!r} is not ISO 8601 (e.g. 2020-12-09T12:40:00Z)") from None
    return require_aware(when, "time")


def skyfield_time(when: datetime) -> Time:
    """A zone-aware datetime as a skyfield Time."""
    return timescale().from_datetime(require_aware(when))
