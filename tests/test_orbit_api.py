"""TLEs and the ISS over HTTP and the CLI: import (idempotent, line-numbered errors), position,
visibility, and the search region POST /localize uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.db import session_scope
from service.localize.region import search_region

SAMPLE = resources.files("geo.data").joinpath("iss_sample.tle").read_text()
EPOCH_2008 = "2008-09-20T12:25:40Z"  # first element set of the sample: day 264.51782528 of 2008


def test_tle_import_is_idempotent_and_reports_bad_lines_by_number(api_client):
    first = api_client.post("/tles", content=SAMPLE, headers={"content-type": "text/plain"})
    assert first.status_code == 200, first.text
    assert first.json()["imported"] == 7 and first.json()["rejected"] == []
    again = api_client.post("/tles", json={"text": SAMPLE})
    assert again.json() == {"imported": 0, "already_present": 7, "rejected": []}

    lines = SAMPLE.splitlines()
    broken = list(lines)
    broken[1] = broken[1][:-1] + str((int(broken[1][-1]) + 1) % 10)  # checksum off by one
    answer = api_client.post("/tles", content="\n".join(broken), headers={"content-type": "text/plain"})
    assert answer.status_code == 200
    assert answer.json()["already_present"] == 6  # the valid ones still count
    assert answer.json()["rejected"][0]["line"] == 2 and "checksum" in answer.json()["rejected"][0]["reason"]
    assert api_client.get("/tles").json()["count"] == 7


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [("hello\nworld", "text/plain", 422), ("{oops", "application/json", 422),
     (json.dumps({"lines": []}), "application/json", 422), ("x", "image/png", 415)],
)
def test_bad_tle_bodies_are_refused(api_client, body, content_type, status):
    answer = api_client.post("/tles", content=body, headers={"content-type": content_type})
    assert answer.status_code == status, answer.text
    assert api_client.get("/tles").json()["count"] == 0


def test_iss_position_and_visibility(api_client):
    api_client.post("/tles", content=SAMPLE, headers={"content-type": "text/plain"})
    position = api_client.get("/iss/position", params={"time": EPOCH_2008}).json()
    assert -51.7 <= position["lat"] <= 51.7 and 300 < position["alt_km"] < 450
    assert position["tle_age_days"] < 0.01
    feature = api_client.get("/iss/visibility", params={"time": EPOCH_2008}).json()
    assert feature["type"] == "Feature" and 10e6 < feature["properties"]["area_km2"] < 25e6  # 350-420 km orbits
    assert feature["properties"]["tle_epoch"].startswith("2008-09-20")
    by_nadir = api_client.get("/iss/visibility", params={"nadir_lat": 89.0, "nadir_lon": 179.0}).json()
    assert by_nadir["geometry"]["type"] in ("Polygon", "MultiPolygon")


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [("/iss/position", {"time": "2008-09-20T12:25:40"}, "zone"),
     ("/iss/position", {"time": "not a time"}, "ISO 8601"),
     ("/iss/position", {"time": "2099-01-01T00:00:00Z"}, "days"),
     ("/iss/position", {"time": "2150-01-01T00:00:00Z"}, "2100-01-01"),
     ("/iss/visibility", {"nadir_lat": 91, "nadir_lon": 0}, "nadir_lat"),
     ("/iss/visibility", {}, "either")],
)
def test_iss_bad_input_is_a_422_with_the_reason(api_client, path, params, message):
    api_client.post("/tles", content=SAMPLE, headers={"content-type": "text/plain"})
    answer = api_client.get(path, params=params)
    assert answer.status_code == 422 and message in answer.text


def test_cli_tle_import_and_iss_commands(sqlite_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROLOC_DATA_DIR", str(sqlite_settings.data_dir))
    from service.config import get_settings

    get_settings.cache_clear()
    tle_file = tmp_path / "iss.tle"
    tle_file.write_text(SAMPLE + "\n1 25544U garbage line\n")
    runner = CliRunner()
    try:
        imported = runner.invoke(app, ["tle", "import", str(tle_file)])
        assert imported.exit_code == 0, imported.output
        report = json.loads(imported.output)
        assert report["imported"] == 7 and report["rejected"][0]["line"] == 23
        assert json.loads(runner.invoke(app, ["tle", "import", str(tle_file)]).output)["imported"] == 0
        position = runner.invoke(app, ["iss", "position", "--time", EPOCH_2008])
        assert position.exit_code == 0 and abs(json.loads(position.output)["lat"]) <= 51.7
        region = runner.invoke(app, ["iss", "visibility", "--nadir", "10", "20", "--min-elevation", "10"])
        assert region.exit_code == 0 and json.loads(region.output)["properties"]["min_elevation_deg"] == 10
        naive = runner.invoke(app, ["iss", "position", "--time", "2008-09-20T12:25:40"])
        assert naive.exit_code == 2 and "zone" in naive.output
    finally:
        get_settings.cache_clear()


def test_search_region_rules(sqlite_settings):
    from service.orbit import import_tle_text

    when = datetime(2008, 9, 20, 13, 0, tzinfo=UTC)
    with session_scope(sqlite_settings.resolved_database_url) as session:
        none_yet = search_region(sqlite_settings, session, timestamp=when, nadir=None)
        assert none_yet.mode == "worldwide" and "TLE" in none_yet.reason
        import_tle_text(session, SAMPLE)
        session.commit()
        by_time = search_region(sqlite_settings, session, timestamp=when, nadir=None)
        assert by_time.mode == "visibility" and by_time.iss_position["source"] == "tle"
        assert by_time.region.contains(by_time.region.representative_point())
        by_nadir = search_region(sqlite_settings, session, timestamp=when, nadir=(10.0, 20.0))
        assert by_nadir.iss_position["source"] == "nadir"
        future = search_region(sqlite_settings, session, timestamp=datetime(2090, 1, 1, tzinfo=UTC), nadir=None)
        assert future.mode == "worldwide" and "in the future" in future.reason
        far = search_region(sqlite_settings, session, timestamp=datetime(2012, 1, 1, tzinfo=UTC), nadir=None)
        assert far.mode == "worldwide" and "days" in far.reason  # 3 years from the only TLE's epoch
        assert search_region(sqlite_settings, session, timestamp=when, nadir=None, mode="worldwide").region is None
        with pytest.raises(ValueError, match="visibility region"):
            search_region(sqlite_settings, session, timestamp=None, nadir=None, mode="visibility")
        with pytest.raises(ValueError, match="search mode"):
            search_region(sqlite_settings, session, timestamp=when, nadir=None, mode="everywhere")
