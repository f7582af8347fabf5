"""TLE parsing, per-line validation and choice of the nearest element set (geo/tle.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from geo import TLE, as_tles, nearest_tle, parse_tles, tle_from_lines
from geo.tle import tle_checksum, tle_line_problem

SAMPLE = Path(__file__).resolve().parents[1] / "geo" / "data" / "iss_sample.tle"
# Real ISS element sets (Wikipedia's TLE article; the second is the last one of the sample file).
LINE1 = "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927"
LINE2 = "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537"
LATER1 = "1 25544U 98067A   19366.82137887  .00016717  00000-0  10270-3 0  9129"
LATER2 = "2 25544  51.6392  96.6358 0005156  88.7140 271.4601 15.49497216  6061"
# ../shared/data/README.md: checksum errors, one per line.
BAD_CHECKSUM1 = "1 25544U 98067A   20344.52777778  .00001264  00000-0  29611-4 0  9993"
BAD_CHECKSUM2 = "2 25544  51.6460  21.4613 0007417  45.5487 314.5526 15.49112347256347"


def test_checksum_counts_digits_and_minus_signs():
    assert tle_checksum(LINE1) == 7 and tle_checksum(LINE2) == 7
    assert tle_checksum("1 " + "0" * 66 + "-" + "5") == 1
    assert tle_line_problem(LINE1, "1") is None and tle_line_problem(LINE2, "2") is None


def test_three_line_file_gives_named_utc_element_sets():
    parsed = parse_tles(f"ISS (ZARYA)\n{LINE1}\n{LINE2}\nISS (ZARYA)\n{LATER1}\n{LATER2}\n")
    assert parsed.errors == []
    first, second = parsed.tles
    assert (first.norad_id, first.name, first.line1, first.line2) == (25544, "ISS (ZARYA)", LINE1, LINE2)
    # Epoch 08264.51782528: day 264 of 2008 (a leap year) is 20 September; .51782528 d = 12:25:40.104
    # (the 8 decimals resolve 0.9 ms).
    expected = datetime(2008, 9, 20, 12, 25, 40, 104192, tzinfo=timezone.utc)
    assert abs(first.epoch - expected) < timedelta(milliseconds=1)
    assert first.epoch.utcoffset() == timedelta(0)
    assert second.epoch.date().isoformat() == "2020-01-01"  # day 366 of 2019 rolls over


def test_two_line_and_space_track_forms_and_blank_lines():
    two_line = parse_tles(f"\n{LINE1}\n{LINE2}\n\n{LATER1}\r\n{LATER2}   \n")
    assert two_line.errors == [] and [t.name for t in two_line.tles] == [None, None]
    space_track = parse_tles(f"0 ISS (ZARYA)\n{LINE1}\n{LINE2}\n")
    assert space_track.errors == [] and space_track.tles[0].name == "ISS (ZARYA)"


def test_every_shipped_sample_element_set_is_valid():
    parsed = parse_tles(SAMPLE.read_text())
    assert parsed.errors == [] and len(parsed.tles) == 7
    assert all(t.norad_id == 25544 for t in parsed.tles)


def test_real_tle_file_parses_whole(shared_data):
    parsed = parse_tles((shared_data / "iss_tles.txt").read_text())
    assert parsed.errors == []
    assert len(parsed.tles) == 34
    epochs = [t.epoch for t in parsed.tles]
    assert epochs == sorted(epochs) and epochs[0].year == 2016 and epochs[-1].year == 2025
    assert {t.norad_id for t in parsed.tles} == {25544} and {t.name for t in parsed.tles} == {"ISS (ZARYA)"}


def test_bad_checksums_are_reported_with_line_numbers_and_valid_sets_kept():
    name = "ISS (ZARYA)"
    text = "\n".join([name, LINE1, LINE2, name, BAD_CHECKSUM1, BAD_CHECKSUM2, name, LATER1, LATER2])
    parsed = parse_tles(text)
    assert [t.line1 for t in parsed.tles] == [LINE1, LATER1]
    assert [e.line_number for e in parsed.errors] == [5, 6]
    assert "checksum" in parsed.errors[0].reason and "says 3" in parsed.errors[0].reason
    assert parsed.errors[1].line == BAD_CHECKSUM2
    assert str(parsed.errors[0]).startswith("line 5: checksum mismatch")


@pytest.mark.parametrize(
    ("line", "number", "expected"),
    [
        (LINE1[:60], "1", "has 60"),
        (LINE1 + "0", "1", "has 70"),
        (LINE2, "1", "expected line 1"),
        (LINE1[:8] + "X" + LINE1[9:], "1", "column 9 must be blank"),
        (LINE1[:7] + "Q" + LINE1[8:], "1", "classification"),
        (LINE1[:20] + "2a4.5178252" + LINE1[31:], "1", "epoch"),
        (LINE2[:26] + "0.06703" + LINE2[33:], "2", "eccentricity"),
        (LINE2[:52] + "15.7x125391" + LINE2[63:], "2", "mean motion"),
        (LINE1[:68] + "x", "1", "checksum"),
    ],
)
def test_line_format_problems_are_named(line, number, expected):
    assert expected in tle_line_problem(line, number)


def test_malformed_pairs_and_stray_lines_are_reported():
    text = "\n".join([
        "ISS (ZARYA)",  # 1: a name followed by another name line
        "SOME JUNK",  # 2
        LINE1,  # 3: line 1 without its line 2
        LATER1,  # 4
        LATER2,  # 5: fine
        LINE2,  # 6: line 2 alone
        LINE1[:40],  # 7: truncated line 1
        "trailing text",  # 8
    ])
    parsed = parse_tles(text)
    assert [t.line1 for t in parsed.tles] == [LATER1]
    reasons = {e.line_number: e.reason for e in parsed.errors}
    assert set(reasons) == {1, 3, 6, 7, 8}
    assert "not followed by an element set" in reasons[1]
    assert "not followed by its line 2" in reasons[3]
    assert "without a valid line 1" in reasons[6]
    assert "this one has 40" in reasons[7]
    assert parsed.tles[0].name is None  # "SOME JUNK" named the element set of line 3, rejected


def test_lines_of_different_satellites_are_not_paired():
    other2 = "2 25545" + LINE2[7:68]
    other2 += str(tle_checksum(other2 + "0"))
    parsed = parse_tles(f"{LINE1}\n{other2}\n")
    assert parsed.tles == [] and "different satellites" in parsed.errors[0].reason
    assert parsed.errors[0].line_number == 2


def test_as_tles_accepts_pairs_objects_and_rows():
    row = SimpleNamespace(line1=LINE1, line2=LINE2, name="ISS")
    tles = as_tles([(LINE1, LINE2), tle_from_lines(LATER1, LATER2), row])
    assert all(isinstance(t, TLE) for t in tles)
    assert tles[0].epoch == tles[2].epoch and tles[2].name == "ISS"
    with pytest.raises(ValueError, match="checksum"):
        as_tles([(BAD_CHECKSUM1, LINE2)])
    with pytest.raises(ValueError, match=r"expected a TLE or a \(line1, line2\) pair"):
        as_tles(["just one string"])


def test_nearest_tle_and_its_age():
    tles = as_tles([(LINE1, LINE2), (LATER1, LATER2)])
    when = tles[0].epoch + timedelta(days=3, hours=12)
    tle, age = nearest_tle(when, tles)
    assert tle == tles[0] and age == pytest.approx(3.5)
    before = tles[1].epoch - timedelta(hours=6)  # a time before the epoch counts the same way
    assert nearest_tle(before, tles) == (tles[1], pytest.approx(0.25))
    in_tokyo = before.astimezone(timezone(timedelta(hours=9)))
    assert nearest_tle(in_tokyo, tles)[1] == pytest.approx(0.25)


def test_nearest_tle_refuses_naive_times_and_empty_input():
    with pytest.raises(ValueError, match="no timezone"):
        nearest_tle(datetime(2008, 9, 20, 12), [(LINE1, LINE2)])
    with pytest.raises(ValueError, match="no TLEs"):
        nearest_tle(datetime(2008, 9, 20, 12, tzinfo=timezone.utc), [])
