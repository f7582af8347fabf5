"""Two-line element sets (TLEs): parsing with per-line validation, and choosing one for a time.

A TLE file holds many element sets, each as two 69-character lines, optionally preceded by a
name line (three-line form; Space-Track prefixes it with ``0 ``). Every line is checked on its
own (length, line number, fixed columns, numeric fields, modulo-10 checksum) so that one bad
line is reported with its line number and reason while the valid element sets around it are
still returned.
"""

from __future__ import annotations

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
    epoch = sat_epoch_datetime(satrec).astimezone(timezone.utc)
    return TLE(norad_id=int(satrec.satnum), name=name, epoch=epoch, line1=line1, line2=line2)


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
