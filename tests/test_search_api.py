"""POST /localize's search block: metadata checks, day or night, the union region, the schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shapely.geometry import Point, shape

from geo import footprint_iou
from tests.test_localize import _client, _held_out, _wait  # one copy of the end-to-end helpers


def _checks(search: dict) -> dict[str, dict]:
    return {c["name"]: c for c in search["checks"]}


def test_a_nadir_20_degrees_off_its_orbit_is_flagged_and_the_photo_still_localized(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var")
    photo = _held_out(settings)[0]
    lat, lon = photo.nadir
    wrong = (lat - 20.0 if lat > 0 else lat + 20.0, lon)
    with _client(settings) as client:
        answer = client.post(
            "/localize",
            files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
            data={"photo_id": photo.photo_id, "timestamp": photo.capture_time,
                  "nadir_lat": str(wrong[0]), "nadir_lon": str(wrong[1]), "top_k": "10"},
        )
        assert answer.status_code == 202, answer.text
        search = answer.json()["search"]
        checks = _checks(search)
        assert checks["capture_time"]["ok"] is True and checks["tle_age"]["ok"] is True
        flagged = checks["nadir_vs_orbit"]
        assert flagged["ok"] is False and "both visibility regions" in flagged["detail"]
        # The union of both visibility regions: the true nadir's and the given one's.
        region = shape(search["region"])
        assert region.contains(Point(lon, lat)) and region.contains(Point(wrong[1], wrong[0]))
        assert search["area_km2"] > 1.5 * 16.0e6  # more than one ~16 million km² disc
        assert isinstance(search["sun_elevation_deg"], float) and search["daylight"] is True
        job = _wait(client, answer.json()["status_url"], timeout_s=1800.0)  # refinement on a shared machine
    assert job["status"] == "finished", job
    result = job["result"]
    assert result["localized"] is True, result
    assert footprint_iou(shape(result["footprint"]), photo.truth) >= 0.5


def test_an_agreeing_nadir_passes_and_a_night_time_is_reported(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var")
    photo = _held_out(settings)[0]
    with _client(settings) as client:
        agreeing = client.post(
            "/localize", files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
            data={"timestamp": photo.capture_time, "nadir_lat": str(photo.nadir[0]),
                  "nadir_lon": str(photo.nadir[1]), "refine": "false"},
        ).json()["search"]
        assert _checks(agreeing)["nadir_vs_orbit"]["ok"] is True
        assert agreeing["reason"] == "ISS nadir given with the photo"
        # Twelve hours later the ISS is elsewhere: the Sun is reported where the orbit puts it.
        later = (datetime.fromisoformat(photo.capture_time) + timedelta(hours=12)).isoformat()
        shifted = client.post(
            "/localize", files={"image": ("q.png", _png(), "image/png")},
            data={"timestamp": later, "refine": "false"},
        ).json()["search"]
        assert shifted["mode"] == "visibility" and isinstance(shifted["daylight"], bool)
        assert (shifted["sun_elevation_deg"] > -0.833) is shifted["daylight"]


def test_lost_in_space_and_impossible_times(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var")
    with _client(settings) as client:
        lost = client.post("/localize", files={"image": ("a.png", _png(), "image/png")},
                           data={"refine": "false"}).json()["search"]
        assert lost["mode"] == "worldwide" and lost["sun_elevation_deg"] is None and lost["daylight"] is None
        assert lost["checks"] == []
        future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        ahead = client.post("/localize", files={"image": ("b.png", _png(1), "image/png")},
                            data={"timestamp": future, "refine": "false"}).json()["search"]
        assert _checks(ahead)["capture_time"]["ok"] is False and "future" in _checks(ahead)["capture_time"]["detail"]
        assert ahead["mode"] == "worldwide" and ahead["sun_elevation_deg"] is None
        early = client.post("/localize", files={"image": ("c.png", _png(2), "image/png")},
                            data={"timestamp": "1990-05-01T10:00:00Z", "nadir_lat": "10", "nadir_lon": "20",
                                  "refine": "false"}).json()["search"]
        assert _checks(early)["capture_time"]["ok"] is False and "1998-11-20" in _checks(early)["capture_time"]["detail"]
        assert early["mode"] == "visibility"  # the nadir still places the search
        assert "nadir_vs_orbit" not in _checks(early)  # no orbit to compare with


def test_an_old_tle_is_flagged(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var", tle_max_age_days=0.001)
    photo = _held_out(settings)[0]
    with _client(settings) as client:
        search = client.post(
            "/localize", files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
            data={"timestamp": (datetime.fromisoformat(photo.capture_time) + timedelta(days=2)).isoformat(),
                  "refine": "false"},
        ).json()["search"]
    assert _checks(search)["tle_age"]["ok"] is False and search["mode"] == "worldwide"


def test_a_reference_footprint_beyond_the_horizon_is_flagged(localize_world, tmp_path):
    settings = localize_world(data_dir=tmp_path / "var")
    photo = _held_out(settings)[0]
    lat, lon = photo.nadir
    west = min(((lon + 60.0 + 180.0) % 360.0) - 180.0, 178.0)  # a 1-degree box 60 deg east of the nadir
    south = min(max(lat, -80.0), 79.0)
    far = [[west, south], [west, south + 1], [west + 1, south + 1], [west + 1, south]]
    with _client(settings) as client:
        search = client.post(
            "/localize", files={"image": ("p.jpg", photo.image_path.read_bytes(), "image/jpeg")},
            data={"timestamp": photo.capture_time, "refine": "false",
                  "reference_footprint": str(far).replace("'", '"')},
        ).json()["search"]
    assert _checks(search)["footprint_horizon"]["ok"] is False


def test_the_answer_schema_documents_the_search_block(api_client):
    schema = api_client.get("/openapi.json").json()
    search = schema["components"]["schemas"]["SearchSummary"]["properties"]
    assert {"checks", "sun_elevation_deg", "daylight", "mode", "region", "reason"} <= set(search)
    check = schema["components"]["schemas"]["SearchCheck"]["properties"]
    assert set(check) == {"name", "ok", "detail"}
    assert "description" in search["sun_elevation_deg"] and "description" in search["daylight"]


def _png(shade: int = 0) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (30 + shade, 80, 140)).save(buffer, "PNG")
    return buffer.getvalue()
