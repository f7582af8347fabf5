"""Two-line element sets (TLEs): parsing with per-line validation, and choosing one for a time.

A TLE file holds many element sets, each as two 69-character lines, optionally preceded by a
name line (three-line form; Space-Track prefixes it with ``0 ``). Every line is checked on its
own (length, line number, fixed columns, numeric fields, modulo-10 checksum) so that one bad
line is reported with its line number and reason while the valid element sets around it are
still returned. An element set that parses must also describe a possible low-Earth orbit
(:func:`orbit_problem`: eccentricity below 1 with the perigee above the ground, mean motion of a
LEO, a real epoch, SGP4 propagating at the epoch): one impossible set stored would otherwise be
the nearest TLE of every capture time around its epoch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from sgp4.api import Satrec
from sgp4.conveniences import sat_epoch_datetime

from geo.sky import require_aware

TLE_LINE_LENGTH = 69
SECONDS_PER_DAY = 86_400.0
# Low-Earth orbit: a period under 128 min (> 11.25 rev/day); above ~17 rev/day an orbit is below
# the atmosphere's top (the ISS flies at 15.5).
LEO_MEAN_MOTION_REV_PER_DAY = (11.25, 17.0)
MIN_PERIGEE_ALTITUDE_KM = 80.0  # lower, the satellite has re-entered
EARTH_EQUATORIAL_RADIUS_KM = 6378.137
EARTH_MU_KM3_S2 = 398_600.4418
FIRST_EPOCH = datetime(1957, 10, 4, tzinfo=timezone.utc)  # Sputnik 1
LAST_EPOCH = datetime(2100, 1, 1, tzinfo=timezone.utc)

# Fixed-column layout of the two lines (1-based columns as in the NORAD documentation), each
# field with the pattern it must match. Columns not listed must be blank.
_NUMBER = r"[ +-]?\s*\d*\.?\d+"
_EXPONENTIAL = r"[ +-]\d{5}[ +-]\d"  # ' 12345-6' means 0.12345e-6
_SATNUM = r"[0-9A-Z ]\s*\d*"  # Alpha-5 allows a leading letter beyond 99999
_LAYOUT: dict[str, list[tuple[str, int, int, str]]] = {
    "1": [
        ("satellite number", 3, 7, _SATNUM),
        ("classification", 8, 8, r"[UCS ]"),
        ("international designator", 10, 17, r"[\w ]*"),
        ("epoch", 19, 32, r"\s*\d{2}[\d ]{3}\.\d+"),
        ("first derivative of mean motion", 34, 43, r"[ +-]\.\d{8}|[ +-]?\s*\d*\.\d+"),
        ("second derivative of mean motion", 45, 52, _EXPONENTIAL),
        ("BSTAR drag term", 54, 61, _EXPONENTIAL),
        ("ephemeris type", 63, 63, r"[\d ]"),
        ("element set number", 65, 68, r"\s*\d+"),
    ],
    "2": [
        ("satellite number", 3, 7, _SATNUM),
        ("inclination", 9, 16, _NUMBER),
        ("right ascension of the ascending node", 18, 25, _NUMBER),
        ("eccentricity", 27, 33, r"\d{7}"),
        ("argument of perigee", 35, 42, _NUMBER),
        ("mean anomaly", 44, 51, _NUMBER),
        ("mean motion", 53, 63, _NUMBER),
        ("revolution number", 64, 68, r"\s*\d*"),
    ],
}
_BLANK_COLUMNS = {"1": (2, 9, 18, 33, 44, 53, 62, 64), "2": (2, 8, 17, 26, 34, 43, 52)}


@dataclass(frozen=True)
class TLE:
    """One validated element set. ``epoch`` is a timezone-aware UTC datetime."""

    norad_id: int
    name: str | None
    epoch: datetime
    line1: str
    line2: str


@dataclass(frozen=True)
class TLELineError:
    """A rejected line: its 1-based number in the input, its text and why it was rejected."""

    line_number: int
    line: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}"


@dataclass(frozen=True)
class ParsedTLEs:
    """What :func:`parse_tles` found: the valid element sets and one error per rejected line."""

    tles: list[TLE]
    errors: list[TLELineError]


def tle_checksum(line: str) -> int:
    """NORAD modulo-10 checksum of the first 68 columns: digits count their value, '-' counts 1."""
    return sum(int(c) if c.isdigit() else c == "-" for c in line[: TLE_LINE_LENGTH - 1]) % 10


def tle_line_problem(line: str, line_number: str) -> str | None:
    """Why ``line`` is not a valid TLE line ``line_number`` ('1' or '2'), or None when it is."""
    if len(line) != TLE_LINE_LENGTH:
        return f"a TLE line has {TLE_LINE_LENGTH} characters, this one has {len(line)}"
    if line[0] != line_number or line[1] != " ":
        return f"expected line {line_number} of an element set (starting '{line_number} ')"
    for column in _BLANK_COLUMNS[line_number]:
        if line[column - 1] != " ":
            return f"column {column} must be blank, found {line[column - 1]!r}"
    for name, first, last, pattern in _LAYOUT[line_number]:
        text = line[first - 1 : last]
        if not re.fullmatch(pattern, text):
            return f"columns {first}-{last} ({name}) are malformed: {text!r}"
    if not line[68].isdigit():
        return f"column 69 (checksum) must be a digit, found {line[68]!r}"
    expected = tle_checksum(line)
    if int(line[68]) != expected:
        return f"checksum mismatch: the line says {line[68]}, its contents sum to {expected}"
    return None


@lru_cache(maxsize=65_536)  # callers pass the same stored element sets again and again
def tle_from_lines(line1: str, line2: str, name: str | None = None) -> TLE:
    """Validate one element set and return it as a :class:`TLE`; ValueError says what is wrong."""
    line1, line2 = line1.rstrip(), line2.rstrip()
    for number, line in (("1", line1), ("2", line2)):
        problem = tle_line_problem(line, number)
        if problem:
            raise ValueError(f"invalid TLE line {number} {line!r}: {problem}")
    if line1[2:7] != line2[2:7]:
        raise ValueError(
            f"TLE lines belong to different satellites ({line1[2:7].strip()} and {line2[2:7].strip()})"
        )
    try:
        satrec = Satrec.twoline2rv(line1, line2)
    except ValueError as exc:  # sgp4's own parser has the last word on the numbers
        raise ValueError(f"sgp4 rejects the element set: {exc}") from None
    problem = orbit_problem(satrec, line1)
    if problem:
        raise ValueError(f"impossible element set: {problem}")
    epoch = sat_epoch_datetime(satrec).astimezone(timezone.utc)
    return TLE(norad_id=int(satrec.satnum), name=name, epoch=epoch, line1=line1, line2=line2)


def orbit_problem(satrec: Satrec, line1: str) -> str | None:
    """Why a parsed element set cannot be a low-Earth orbit, or None: eccentricity >= 1 or a
    perigee under MIN_PERIGEE_ALTITUDE_KM, mean motion outside LEO_MEAN_MOTION_REV_PER_DAY, an
    epoch day that is not a day of a year, an epoch outside 1957-2100, SGP4 failing at the epoch."""
    eccentricity = satrec.ecco
    mean_motion = satrec.no_kozai * 1440.0 / (2 * math.pi)  # rad/min -> rev/day
    low, high = LEO_MEAN_MOTION_REV_PER_DAY
    if not low <= mean_motion <= high:
        return (f"mean motion {mean_motion:.8g} rev/day is not a low-Earth orbit ({low:g}-{high:g} rev/day; "
                "the ISS makes ~15.5)")
    if not 0 <= eccentricity < 1:
        return f"eccentricity {eccentricity:.7f} must be below 1"
    semi_major_km = (EARTH_MU_KM3_S2 / (mean_motion * 2 * math.pi / SECONDS_PER_DAY) ** 2) ** (1 / 3)
    perigee_km = semi_major_km * (1 - eccentricity) - EARTH_EQUATORIAL_RADIUS_KM
    if perigee_km < MIN_PERIGEE_ALTITUDE_KM:
        return (f"eccentricity {eccentricity:.7f} puts the perigee at {perigee_km:.0f} km, below "
                f"{MIN_PERIGEE_ALTITUDE_KM:g} km")
    day = float(line1[20:32])
    if not 1 <= day < 367:  # day 366 of a common year is taken, as sgp4 does, as January 1st after
        return f"epoch day {day:g} is not a day of a year (1 to 367 exclusive)"
    epoch = sat_epoch_datetime(satrec).astimezone(timezone.utc)
    if not FIRST_EPOCH <= epoch < LAST_EPOCH:
        return f"epoch {epoch:%Y-%m-%d} lies outside {FIRST_EPOCH:%Y-%m-%d} - {LAST_EPOCH:%Y-%m-%d}"
    error, position, _velocity = satrec.sgp4(satrec.jdsatepoch, satrec.jdsatepochF)
    if error != 0 or not all(math.isfinite(v) for v in position):
        return f"SGP4 cannot propagate it at its epoch (sgp4 error {error})"
    return None


def parse_tles(text: str) -> ParsedTLEs:
    """Every element set in a TLE file (2-line or 3-line form, any number of objects).

    Each invalid line is reported with its 1-based line number and the reason, and the
    element set it belongs to is skipped; all other element sets are still returned, in file
    order. Blank lines are ignored; any other line that is not a TLE line is a name line.
    """
    tles: list[TLE] = []
    errors: list[TLELineError] = []
    name: tuple[int, str] | None = None  # the last name line (number, text) not yet used
    pending: tuple[int, str, str | None] | None = None  # a valid line 1 (and name) awaiting line 2

    def reject(number: int, line: str, reason: str) -> None:
        errors.append(TLELineError(number, line, reason))

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        kind = _line_kind(line)
        if pending and kind != "2":
            reject(pending[0], pending[1], "line 1 is not followed by its line 2")
            pending = None
        if kind == "name":
            if name:
                reject(*name, "text line not followed by an element set")
            name = (number, line)
            continue
        problem = tle_line_problem(line, kind)
        if kind == "1":
            if problem:
                reject(number, line, problem)
            else:
                pending = (number, line, _name_text(name[1]) if name else None)
            name = None  # a name belongs to the element set right after it
            continue
        if pending is None:
            reject(number, line, problem or "line 2 without a valid line 1 before it")
            continue
        _, line1, line1_name = pending
        pending = None
        if problem:
            reject(number, line, problem)
            continue
        try:
            tles.append(tle_from_lines(line1, line, line1_name))
        except ValueError as exc:
            reject(number, line, str(exc))
    if pending:
        reject(pending[0], pending[1], "line 1 is not followed by its line 2")
    if name:
        reject(*name, "text line not followed by an element set")
    errors.sort(key=lambda error: error.line_number)
    return ParsedTLEs(tles, errors)


def _line_kind(line: str) -> str:
    """'1' or '2' for (possibly malformed) element lines, 'name' for the title line of 3-line form."""
    if line[:2] in ("1 ", "2 ") or (line[0] in "12" and len(line) >= TLE_LINE_LENGTH - 2):
        return line[0]
    return "name"


def _name_text(line: str) -> str:
    """The object name of a 3-line form title line; Space-Track writes it as '0 NAME'."""
    return line[2:].strip() if line.startswith("0 ") else line.strip()


def as_tles(items: Iterable[object]) -> list[TLE]:
    """Element sets given as :class:`TLE`, ``(line1, line2)`` pairs or objects with ``line1`` and
    ``line2`` attributes (e.g. rows of the ``tles`` table), validated, as a list of TLE."""
    tles = []
    for item in items:
        if isinstance(item, TLE):
            tles.append(item)
        elif hasattr(item, "line1") and hasattr(item, "line2"):
            tles.append(tle_from_lines(item.line1, item.line2, getattr(item, "name", None)))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(s, str) for s in item):
            tles.append(tle_from_lines(*item))
        else:
            raise ValueError(f"expected a TLE or a (line1, line2) pair of strings, got {item!r}")
    return tles


def tle_age_days(tle: TLE, when: datetime) -> float:
    """Days between the element set's epoch and ``when`` (never negative)."""
    return abs((require_aware(when) - tle.epoch).total_seconds()) / SECONDS_PER_DAY


def nearest_tle(when: datetime, tles: Iterable[object]) -> tuple[TLE, float]:
    """The element set whose epoch is nearest to ``when``, and its age in days at ``when``.

    ``tles`` takes anything :func:`as_tles` does. ValueError when there are none.
    """
    when = require_aware(when)
    candidates = as_tles(tles)
    if not candidates:
        raise ValueError("no TLEs given: cannot place the satellite")
    best = min(candidates, key=lambda tle: abs(when - tle.epoch))
    return best, tle_age_days(best, when)
