"""`astroloc world build|render|figure` and `astroloc index build|stats|search` end to end on a
tiny world (zoom 3, 4 photos) and a randomly initialised astroloc-nano (no checkpoint needed)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.config import get_settings
from world.bluemarble import land_tiles

NANO = ["--arch", "astroloc-nano"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A data dir for the commands' defaults, and a tiny world built by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    patch = pytest.MonkeyPatch()
    patch.setenv("ASTROLOC_DATA_DIR", str(root / "var"))
    get_settings.cache_clear()
    runner = CliRunner()
    world = root / "world"
    result = runner.invoke(app, ["world", "build", "--zooms", "3", "--queries", "4", "--seed", "3",
                                 "--out", str(world), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    yield runner, root, world, json.loads(result.output)
    patch.undo()
    get_settings.cache_clear()


def test_world_build_writes_tiles_photos_and_truth(env):
    _, _, world, manifest = env
    assert manifest["tiles"] == {"3": 64} and sum(manifest["queries"].values()) == 4
    assert len(list((world / "tiles" / "3").glob("*/*.jpg"))) == 64
    with (world / "queries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all((world / row["URL"]).is_file() for row in rows)


def test_world_render_reproduces_a_photo_of_the_world(env, tmp_path):
    runner, _, world, _ = env
    with (world / "queries.csv").open() as handle:
        first = next(csv.DictReader(handle))
    result = runner.invoke(app, ["world", "render", "--seed", "3", "--index", first["FRAME"], "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    photo = tmp_path / f"SIM-E-{first['FRAME']}.jpg"
    assert photo.read_bytes() == (world / first["URL"]).read_bytes()
    truth = json.loads((tmp_path / f"SIM-E-{first['FRAME']}.json").read_text())
    assert truth["UL_LAT"] == pytest.approx(float(first["UL_LAT"]))


def test_world_render_explicit_view_and_bad_input(env, tmp_path):
    runner, _, _, _ = env
    ok = runner.invoke(app, ["world", "render", "--lat", "30", "--lon", "31", "--tilt", "10", "--size", "128",
                             "--time", "2019-06-01T10:00:00Z", "--out", str(tmp_path)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    truth = json.loads((tmp_path / "SIM-X-0.json").read_text())
    assert truth["NADIR_LAT"] == 30 and truth["IMAGE_WIDTH"] == 128
    for argv in (["--lat", "30"], ["--lat", "30", "--lon", "31", "--time", "noon"], ["--lat", "30", "--lon", "31", "--tilt", "89"], []):
        bad = runner.invoke(app, ["world", "render", *argv, "--out", str(tmp_path)])
        assert bad.exit_code == 2 and "error:" in bad.output, (argv, bad.output)


def test_world_figure(env, tmp_path):
    runner, _, world, _ = env
    result = runner.invoke(app, ["world", "figure", "--world", str(world), "--out", str(tmp_path / "f.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    missing = runner.invoke(app, ["world", "figure", "--world", str(tmp_path / "none"), "--out", str(tmp_path / "g.png")])
    assert missing.exit_code == 2 and "build it first" in missing.output


@pytest.fixture(scope="module")
def built_index(env):
    runner, root, world, _ = env
    # One corrupt tile among the real ones: skipped and counted, never a crash.
    tiles = root / "tiles"
    shutil.copytree(world / "tiles", tiles)
    (tiles / "3" / "0" / "0.jpg").write_bytes(b"not a jpeg")
    index_dir = root / "index"
    result = runner.invoke(app, ["index", "build", "--tiles-dir", str(tiles), "--zooms", "3", "--steps", "1",
                                 *NANO, "--out", str(index_dir), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return runner, tiles, index_dir, json.loads(result.output[result.output.index("{"):])


def test_index_build_and_stats(built_index):
    runner, _, index_dir, report = built_index
    assert report["tiles_added"] == 63 and report["tiles_skipped"] == 1
    assert report["model_version"] == "astroloc-nano:random-init-seed0"
    stats = runner.invoke(app, ["index", "stats", "--index", str(index_dir), "--json"])
    assert stats.exit_code == 0, stats.output
    summary = json.loads(stats.output)
    assert summary["tiles"] == 63 and summary["vectors"] == 63 * 4 and summary["dim"] == 256
    assert summary["skipped_by_reason"] == {"corrupt": 1}
    text = runner.invoke(app, ["index", "stats", "--index", str(index_dir)])
    assert "model_version" in text.output and "astroloc-nano" in text.output


def test_index_search_finds_the_tile_itself(built_index):
    runner, tiles, index_dir, _ = built_index
    image = tiles / "3" / "4" / "3.jpg"  # around Africa / Europe
    worldwide = runner.invoke(app, ["index", "search", str(image), *NANO, "--index", str(index_dir), "--k", "5"])
    assert worldwide.exit_code == 0, worldwide.output
    body = json.loads(worldwide.output[worldwide.output.index("{"):])
    assert body["search"]["mode"] == "worldwide" and len(body["hits"]) == 5
    best = body["hits"][0]
    assert best["tile"] == "3/4/3" and best["rotation"] == 0 and best["score"] > 0.99
    assert best["footprint"]["type"] == "Polygon"
    # Near the tile: found; on the other side of the Earth: not in the region.
    near = runner.invoke(app, ["index", "search", str(image), *NANO, "--index", str(index_dir), "--nadir", "20", "10"])
    assert json.loads(near.output[near.output.index("{"):])["hits"][0]["tile"] == "3/4/3"
    far = runner.invoke(app, ["index", "search", str(image), *NANO, "--index", str(index_dir), "--nadir", "-20", "-170"])
    far_hits = json.loads(far.output[far.output.index("{"):])["hits"]
    assert far_hits and "3/4/3" not in [hit["tile"] for hit in far_hits]


def test_index_commands_refuse_bad_input(built_index, tmp_path):
    runner, tiles, index_dir, _ = built_index
    image = tiles / "3" / "4" / "3.jpg"
    other_model = runner.invoke(app, ["index", "search", str(image), *NANO, "--seed", "1", "--index", str(index_dir)])
    assert other_model.exit_code == 2 and "built with model" in other_model.output
    not_image = tmp_path / "x.jpg"
    not_image.write_text("hello")
    assert runner.invoke(app, ["index", "search", str(not_image), *NANO, "--index", str(index_dir)]).exit_code == 2
    bad_nadir = runner.invoke(app, ["index", "search", str(image), *NANO, "--index", str(index_dir), "--nadir", "95", "0"])
    assert bad_nadir.exit_code == 2 and "out of range" in bad_nadir.output
    no_index = runner.invoke(app, ["index", "stats", "--index", str(tmp_path / "none")])
    assert no_index.exit_code == 2 and "no tile index" in no_index.output
    bad_zooms = runner.invoke(app, ["index", "build", "--tiles-dir", str(tiles), "--zooms", "6-3", *NANO])
    assert bad_zooms.exit_code == 2 and "zoom range" in bad_zooms.output
    # No --arch and no active model in this data dir's model store: a clear message, not a traceback.
    no_model = runner.invoke(app, ["index", "build", "--tiles-dir", str(tiles), "--zooms", "3", "--out", str(tmp_path / "i")])
    assert no_model.exit_code == 2 and "--arch" in no_model.output


def test_index_build_from_an_http_tile_server(env):
    """--url-template: the same tiles fetched over HTTP (a local http.server) give the same index."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    runner, root, world, _ = env

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(world / "tiles")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        template = f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.jpg"
        index_dir = root / "index-http"
        # ASTROLOC_TILE_URL_TEMPLATE is the source when no --url-template or --tiles-dir is given.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ASTROLOC_TILE_URL_TEMPLATE", template)
            get_settings.cache_clear()
            result = runner.invoke(app, ["index", "build", "--zooms", "3", *NANO,
                                         "--out", str(index_dir), "--no-progress"])  # fmt: skip
        get_settings.cache_clear()
        every = runner.invoke(app, ["index", "build", "--url-template", template, "--zooms", "3", *NANO, "--all-tiles",
                                    "--out", str(root / "index-http-all"), "--no-progress"])  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    land = land_tiles([3])  # a URL template serves the whole grid: the land within |lat| <= 60 is indexed
    assert report["tiles_added"] == len(land) == 20 and report["tiles_skipped"] == 0
    assert every.exit_code == 0, every.output
    assert json.loads(every.output[every.output.index("{"):])["tiles_added"] == 64
    assert len(list((root / "var" / "tiles").rglob("*.jpg"))) == 64  # the HTTP cache (data_dir/tiles)
    both = runner.invoke(app, ["index", "build", "--url-template", template, "--tiles-dir", str(world / "tiles"), *NANO])
    assert both.exit_code == 2 and "not both" in both.output


def test_the_land_plan_of_zooms_9_to_11_is_the_databases_634k_tiles():
    """EarthLoc's database: the land tiles of zooms 9-11 within |lat| <= 60 (the counts of
    docs/operations.md), not the 5.8 M tiles of the grid; an overlapping grid keeps every
    position touching one of them."""
    from index.tiles import lonlat_to_tile_xy
    from world.bluemarble import land_tile_grid

    assert [int(land_tile_grid(z, 60).sum()) for z in (9, 10, 11)] == [31415, 121889, 480958]
    grid = land_tile_grid(9, 60)
    for lon, lat, land in ((2.35, 48.86, True), (-140.0, 0.0, False), (20.0, 75.0, False), (-60.0, -3.0, True)):
        x, y = lonlat_to_tile_xy(lon, lat, 9)
        assert bool(grid[int(y), int(x)]) is land, (lon, lat)
    plain = {(t.x, t.y) for t in land_tiles([4])}
    overlapping = land_tiles([4], steps=2)
    assert {(t.x // 2, t.y // 2) for t in overlapping if t.x % 2 == 0 and t.y % 2 == 0} == plain
