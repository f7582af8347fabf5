"""The sharded tile index: shard assignment, region pruning, exact search, manifest, builds."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon, box

from service.bench.index import SyntheticDescriber, full_cell_tiles, run
from index.build import DescribedTiles, SourceDescriber, build_index
from index.search import ShardedIndex, footprints_meeting, meets, prepare_region
from index.shards import (
    MANIFEST_NAME,
    FactoryPolicy,
    IndexCorruptError,
    IndexMismatchError,
    Manifest,
    TileShard,
    format_stats,
    group_by_shard,
    index_stats,
    shard_key,
    tile_table,
    tiles_of_table,
)
from index.sources import LocalXYZSource
from index.tiles import Tile, tile_bounds, tile_polygon, tiles_at_zoom, wrap_longitudes

REPO = Path(__file__).resolve().parents[1]
DIM = 16
MODEL = "test-model-1"
# Zoom 5 on the overlapping half-step grid (4,032 tiles, some straddling the antimeridian) and
# the plain zoom-4 grid: cells are tiles of zoom 2 and 1 (MIN_CELL_DEPTH = 3).
TILES = list(tiles_at_zoom(4)) + list(tiles_at_zoom(5, steps=2))
DESCRIBER = SyntheticDescriber(DIM, landscapes=8, seed=3)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("index")
    build_index(directory, TILES, DESCRIBER, model_version=MODEL, chunk_tiles=500, progress=False)
    return directory


@pytest.fixture(scope="module")
def index(index_dir) -> ShardedIndex:
    return ShardedIndex.open(index_dir, MODEL)


def queries(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)


# --- an independent oracle: per-tile shapely, brute-force scores ----------------------------------


_ORACLE: dict[Tile, tuple] = {}  # tile -> (footprint polygon, normalised descriptors)


def brute_force(tiles, query, region, k, rotations=(0, 90, 180, 270)):
    """The k best (tile, rotation, score) by exhaustive search over tiles meeting the region,
    testing each footprint polygon with shapely (independently of the index's band filter)."""
    query = query / np.linalg.norm(query)
    found = []
    for tile in tiles:
        if tile not in _ORACLE:
            vectors = DESCRIBER([tile]).descriptors[0]
            _ORACLE[tile] = (tile_polygon(tile), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        footprint, vectors = _ORACLE[tile]
        if region is not None and footprint.intersection(region).area <= 0:
            continue
        scores = vectors @ query
        best = int(np.argmax(scores))
        found.append((float(scores[best]), tile, rotations[best]))
    found.sort(key=lambda item: -item[0])
    return [(tile, rotation, score) for score, tile, rotation in found[:k]]


def assert_same(result, expected):
    assert [h.tile for h in result.hits] == [t for t, _, _ in expected]
    assert [h.rotation for h in result.hits] == [r for _, r, _ in expected]
    np.testing.assert_allclose([h.score for h in result.hits], [s for _, _, s in expected], atol=1e-5)


ANTIMERIDIAN = MultiPolygon([box(165.0, -25.0, 180.0, 15.0), box(-180.0, -25.0, -170.0, 15.0)])
REGIONS = {
    "europe": box(-10.0, 35.0, 30.0, 60.0),
    "antimeridian": ANTIMERIDIAN,
    "arctic": box(-180.0, 70.0, 180.0, 90.0),
    "triangle": Polygon([(100.0, -40.0), (140.0, -10.0), (150.0, -45.0)]),
    "worldwide": None,
}


# --- shard assignment ------------------------------------------------------------------------------


@given(z=st.integers(0, 16), data=st.data(), shard_zoom=st.integers(0, 8))
@settings(max_examples=200, deadline=None)
def test_plain_tiles_belong_to_their_ancestor_cell(z, data, shard_zoom):
    x = data.draw(st.integers(0, 2**z - 1))
    y = data.draw(st.integers(0, 2**z - 1))
    key = shard_key(Tile(z, x, y), shard_zoom)
    cell_zoom = max(0, min(shard_zoom, z - 3))
    assert key.zoom == z
    assert key.cell == Tile(cell_zoom, x >> (z - cell_zoom), y >> (z - cell_zoom))


def test_every_tile_lies_inside_its_shard_extent(index):
    crossing = 0
    for name, entry in index.manifest.shards.items():
        extent = wrap_longitudes(box(*entry.extent)).buffer(1e-9)
        crossing += entry.extent[0] < -180.0 or entry.extent[2] > 180.0
        for tile in tiles_of_table(index.shard(name).tiles):
            assert extent.covers(tile_polygon(tile)), (name, tile)
    assert crossing  # shards holding tiles that straddle the antimeridian


def test_tiles_straddling_the_antimeridian_wrap_to_a_cell_at_its_edge():
    straddling = Tile(5, 63, 20, steps=2)  # the last half-step column spans 174.4..185.6 deg
    assert tile_bounds(straddling).east > 180.0
    key = shard_key(straddling)
    assert key.cell.x == 0  # its centre (180 + a bit) wraps to the first column of cells
    extent = tile_table([straddling])
    assert extent["east"][0] > 180.0


def test_groups_are_sorted_and_deduplicated():
    groups = group_by_shard(TILES + TILES[:10], shard_zoom=5)
    assert sum(len(g) for g in groups.values()) == len(TILES)
    assert list(groups) == sorted(groups, key=lambda k: k.name)
    with pytest.raises(TypeError):
        group_by_shard(["4/1/1"], 5)


# --- region pruning and exact search ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(REGIONS))
@pytest.mark.parametrize("batch", [3, 10])  # ID-selector scan, and gather + matrix product
def test_search_equals_brute_force(index, name, batch):
    region = REGIONS[name]
    results = index.search(queries(batch, seed=batch), region, k=15)
    for query, result in zip(queries(batch, seed=batch)[:3], results):
        assert result.reason is None
        assert_same(result, brute_force(TILES, query, region, 15))


def test_antimeridian_region_split_or_continuous_gives_the_same_answer(index):
    continuous = box(165.0, -25.0, 190.0, 15.0)
    assert index.shards_meeting(continuous) == index.shards_meeting(ANTIMERIDIAN)
    extents = [index.manifest.shards[n].extent for n in index.shards_meeting(ANTIMERIDIAN)]
    assert any(e[0] < -170 for e in extents) and any(e[2] > 165 for e in extents)
    [split_result] = index.search(queries(1)[0], ANTIMERIDIAN, k=200)
    [continuous_result] = index.search(queries(1)[0], continuous, k=200)
    assert split_result.hits == continuous_result.hits
    lons = [h.footprint.centroid.x for h in split_result.hits]
    assert min(lons) < -170 and max(lons) > 165  # tiles on both sides of the antimeridian
    assert all(meets(np.array([h.footprint]), prepare_region(ANTIMERIDIAN))[0] for h in split_result.hits)


def test_polar_region_reads_only_polar_shards(index):
    arctic = REGIONS["arctic"]
    names = index.shards_meeting(arctic)
    assert 0 < len(names) < len(index.manifest.shards) / 3
    assert all(index.manifest.shards[n].extent[3] > 70.0 for n in names)
    [result] = index.search(queries(1)[0], arctic, k=50)
    assert all(h.footprint.bounds[3] > 70.0 for h in result.hits)
    [beyond_mercator] = index.search(queries(1)[0], box(-180, 86, 180, 90))
    assert beyond_mercator.hits == [] and "meets none" in beyond_mercator.reason


def test_band_footprint_filter_matches_polygon_tests():
    table = tile_table(TILES)
    rng = np.random.default_rng(5)
    for _ in range(25):
        west, south = rng.uniform(-200, 170), rng.uniform(-80, 60)
        region = prepare_region(box(west, south, west + rng.uniform(0.5, 60), south + rng.uniform(0.5, 25)))
        boxes = np.array([tile_polygon(t) for t in TILES])
        assert np.array_equal(footprints_meeting(table, region), meets(boxes, region))
    # A region sharing only an edge with tiles does not select them.
    edge = tile_bounds(Tile(4, 3, 5))
    only_that_tile = prepare_region(box(edge.west, edge.south, edge.east, edge.north))
    assert footprints_meeting(table[: 256], only_that_tile).sum() == 1
    # Points select the tiles containing them.
    assert footprints_meeting(table[:256], Point(10.0, 45.0)).sum() >= 1


def test_rotations_collapse_to_the_best_one(tmp_path):
    target, decoy = Tile(4, 8, 5), Tile(4, 9, 5)
    query = np.random.default_rng(1).standard_normal(DIM)

    def describer(tiles):
        out = np.random.default_rng(2).standard_normal((len(tiles), 4, DIM))
        for i, tile in enumerate(tiles):
            if tile in (target, decoy):
                # every rotation close to the query, rotation 180 closest; the decoy a bit further
                # (the decoy's best is worse than 3 of the target's rotations: without the
                # collapse the top 2 would be the target twice)
                spread = np.array([0.3, 0.2, 0.05, 0.25])[:, None] * (1.0 if tile == target else 6.0)
                out[i] = query + spread * np.random.default_rng(i).standard_normal((4, DIM))
        return DescribedTiles(list(tiles), out)

    build_index(tmp_path, list(tiles_at_zoom(4)), describer, model_version=MODEL, progress=False)
    [result] = ShardedIndex.open(tmp_path, MODEL).search(query, None, k=20)
    assert [h.tile for h in result.hits[:2]] == [target, decoy]
    assert result.hits[0].rotation == 180
    assert len({h.tile for h in result.hits}) == len(result.hits) == 20
    assert all(a.score >= b.score for a, b in zip(result.hits, result.hits[1:]))


def test_results_are_distinct_tiles_best_first_and_at_most_k(index):
    for result in index.search(queries(4), REGIONS["europe"], k=30):
        assert len(result.hits) == 30
        assert len({h.tile for h in result.hits}) == 30
        assert all(a.score >= b.score for a, b in zip(result.hits, result.hits[1:]))
        payload = result.hits[0].to_dict()
        assert payload["zoom"] == result.hits[0].tile.z and payload["footprint"]["type"] == "Polygon"
    small = box(10.0, 45.0, 10.5, 45.5)
    [few] = index.search(queries(1)[0], small, k=1000)
    assert 0 < len(few.hits) == sum(tile_polygon(t).intersection(small).area > 0 for t in TILES)


def test_per_query_regions_and_zoom_filter(index):
    regions = [REGIONS["europe"], None, ANTIMERIDIAN]
    results = index.search(queries(3), regions, k=10, zooms=[5])
    for query, region, result in zip(queries(3), regions, results):
        zoom5 = [t for t in TILES if t.z == 5]
        assert_same(result, brute_force(zoom5, query, region, 10))


def test_empty_results_say_why(tmp_path, index):
    hole = Tile(5, 17, 10)  # inside the shard's extent, but not indexed
    build_index(tmp_path, [Tile(5, 16, 10), Tile(5, 16, 11), Tile(5, 17, 11)], DESCRIBER, model_version=MODEL, progress=False)
    small = ShardedIndex.open(tmp_path, MODEL)
    [far] = small.search(queries(1)[0], box(110, -40, 150, -10))
    assert far.hits == [] and "meets none of the index's" in far.reason
    [gap] = small.search(queries(1)[0], tile_polygon(hole).buffer(-0.01))
    assert gap.hits == [] and "no indexed tile's footprint meets the region" in gap.reason
    [empty] = index.search(queries(1)[0], Polygon())
    assert empty.hits == [] and "empty" in empty.reason


@pytest.mark.parametrize(
    "call",
    [
        lambda ix: ix.search(np.ones(DIM + 1)),
        lambda ix: ix.search(np.full(DIM, np.nan)),
        lambda ix: ix.search(np.zeros(DIM)),
        lambda ix: ix.search(np.ones((0, DIM))),
        lambda ix: ix.search(np.ones(DIM), k=0),
        lambda ix: ix.search(np.ones(DIM), nprobe=0),
        lambda ix: ix.search(np.ones(DIM), "POLYGON((0 0, 1 0, 1 1, 0 0))"),
        lambda ix: ix.search(np.ones(DIM), Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])),  # bow-tie
        lambda ix: ix.search(np.ones(DIM), box(0, 80, 10, 95)),
        lambda ix: ix.search(np.ones((2, DIM)), [None]),
    ],
)
def test_bad_search_input_is_a_value_error(index, call):
    with pytest.raises(ValueError):
        call(index)


# --- manifest ------------------------------------------------------------------------------------------


def test_index_of_another_model_is_refused(index_dir):
    with pytest.raises(IndexMismatchError, match="built with model 'test-model-1'"):
        ShardedIndex.open(index_dir, "another-model")
    with pytest.raises(IndexMismatchError):
        build_index(index_dir, TILES[:4], DESCRIBER, model_version="another-model", progress=False)


def test_checksum_mismatch_is_refused(index_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(index_dir, copy)
    manifest = Manifest.load(copy)
    name, entry = next(iter(manifest.shards.items()))
    tiles_file = copy / entry.directory / "tiles.npy"
    data = bytearray(tiles_file.read_bytes())
    data[-1] ^= 0xFF  # same size, one bit pattern changed
    tiles_file.write_bytes(bytes(data))
    damaged = ShardedIndex.open(copy, MODEL)
    with pytest.raises(IndexCorruptError, match="checksum"):
        damaged.search(queries(1)[0], None)
    ShardedIndex.open(copy, MODEL, verify=False).shard(name)  # loads when asked not to verify
    (copy / entry.directory / "index.faiss").unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        ShardedIndex.open(copy, MODEL, verify=False).shard(name)


def test_manifest_records_counts_factories_and_checksums(index_dir):
    data = json.loads((index_dir / MANIFEST_NAME).read_text())
    assert data["model_version"] == MODEL and data["dim"] == DIM and data["rotations"] == [0, 90, 180, 270]
    assert data["counts"]["tiles"] == len(TILES) and data["counts"]["vectors"] == 4 * len(TILES)
    assert data["counts"]["tiles_by_zoom"] == {"4": 256, "5": len(TILES) - 256}
    entry = next(iter(data["shards"].values()))
    assert entry["factory"] == "Flat" and len(entry["files"]["index.faiss"]["sha256"]) == 64
    stats = index_stats(index_dir)
    assert stats["shards"] == len(data["shards"]) and stats["shards_by_factory"] == {"Flat": stats["shards"]}
    assert "test-model-1" in format_stats(stats)


def test_shards_are_memory_mapped(index_dir, index):
    name = next(iter(index.manifest.shards))
    shard = TileShard.load(index_dir, name, index.manifest.shards[name], mmap=True)
    assert isinstance(shard.tiles.base, np.memmap) and isinstance(shard.vectors.base, np.memmap)
    vectors = shard.flat_vectors()
    assert vectors.shape == (shard.index.ntotal, DIM) and not vectors.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_factory_policy():
    policy = FactoryPolicy.parse("Flat;20000:IVF{nlist},SQ8")
    assert policy.factory_for(19_999) == "Flat"
    assert policy.factory_for(40_000) == "IVF200,SQ8"
    assert FactoryPolicy.parse(str(policy)) == policy
    for bad in ["", "10:Flat", "Flat;10:SQ8;5:SQ4", "Bogus", "PQ8", "LSH", "Flat;x:SQ8"]:
        with pytest.raises(ValueError):
            FactoryPolicy.parse(bad)


# --- builds --------------------------------------------------------------------------------------------

KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from service.bench.index import SyntheticDescriber
    from index.build import build_index
    from index.tiles import tiles_at_zoom
    inner, calls = SyntheticDescriber({dim}, landscapes=8, seed=3), []
    def describer(tiles):
        calls.append(1)
        if len(calls) == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup, no exception handlers
        return inner(tiles)
    build_index(sys.argv[1], {tiles}, describer, model_version="{model}",
                factories="{factories}", chunk_tiles=48, commit_every_s=0, progress=False)
    """
)


def test_build_killed_midway_resumes_to_the_same_index(tmp_path):
    # Zoom-4 half-step shards hold ~250 tiles (SQ8, trained), zoom-5 ones 64 tiles (Flat).
    factories = "Flat;500:SQ8"
    tiles_code = "list(tiles_at_zoom(5)) + list(tiles_at_zoom(4, steps=2))"
    tiles = eval(tiles_code)
    script = KILL_SCRIPT.format(dim=DIM, kill_at=9, model=MODEL, factories=factories, tiles=tiles_code)
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "resumed")], cwd=REPO, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    assert (tmp_path / "resumed" / ".build" / "staging").is_dir()  # progress left on disk
    partial = Manifest.load(tmp_path / "resumed")
    assert 0 < partial.counts["tiles"] < len(tiles)  # some shards were committed before the crash

    report = build_index(tmp_path / "resumed", tiles, SyntheticDescriber(DIM, landscapes=8, seed=3),
                         model_version=MODEL, factories=factories, chunk_tiles=48, progress=False)  # fmt: skip
    assert report.tiles_resumed > 0 and report.tiles_already_indexed == partial.counts["tiles"]
    build_index(tmp_path / "straight", tiles, SyntheticDescriber(DIM, landscapes=8, seed=3),
                model_version=MODEL, factories=factories, chunk_tiles=48, progress=False)  # fmt: skip
    resumed, straight = Manifest.load(tmp_path / "resumed"), Manifest.load(tmp_path / "straight")
    assert resumed.counts == straight.counts
    assert {e.factory for e in straight.shards.values()} == {"Flat", "SQ8"}
    for name, entry in straight.shards.items():
        assert resumed.shards[name].files == entry.files  # byte-identical shard files
    assert not (tmp_path / "resumed" / ".build" / "staging").exists()


def test_interrupted_build_resumes_where_it_stopped(tmp_path):
    calls = []

    def flaky(tiles):
        calls.append(len(tiles))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return DESCRIBER(tiles)

    tiles = list(tiles_at_zoom(4))
    with pytest.raises(KeyboardInterrupt):
        build_index(tmp_path, tiles, flaky, model_version=MODEL, chunk_tiles=10, progress=False)
    described_before = sum(calls[:3])
    calls.clear()
    report = build_index(tmp_path, tiles, DESCRIBER, model_version=MODEL, chunk_tiles=10, progress=False)
    assert report.tiles_resumed == described_before  # nothing described twice
    assert Manifest.load(tmp_path).counts["tiles"] == len(tiles)


def test_incremental_add_equals_a_single_build(tmp_path, index):
    first, second = TILES[::2], TILES[1::2] + TILES[:20:2]  # 10 tiles given twice
    build_index(tmp_path, first, DESCRIBER, model_version=MODEL, progress=False)
    before = Manifest.load(tmp_path)
    report = build_index(tmp_path, second, DESCRIBER, model_version=MODEL, progress=False)
    assert report.tiles_already_indexed == 10 and report.tiles_added == len(TILES) - len(first)
    after = Manifest.load(tmp_path)
    assert after.counts["tiles"] == len(TILES)
    grown = [n for n in before.shards if after.shards[n].directory != before.shards[n].directory]
    assert grown and all(after.shards[n].directory.endswith(".g2") for n in grown)
    assert not any((tmp_path / before.shards[n].directory).exists() for n in grown)  # old generations gone
    added = ShardedIndex.open(tmp_path, MODEL)
    for region in (REGIONS["europe"], ANTIMERIDIAN, None):
        got = added.search(queries(3), region, k=25)
        want = index.search(queries(3), region, k=25)
        assert [r.hits for r in got] == [r.hits for r in want]


def test_incremental_add_to_ivf_shards(tmp_path):
    tiles = list(tiles_at_zoom(5))
    policy = "Flat;50:IVF{nlist},Flat"  # every shard is IVF from the first build on
    build_index(tmp_path, tiles[::3], DESCRIBER, model_version=MODEL, factories=policy, progress=False)
    build_index(tmp_path, tiles, DESCRIBER, model_version=MODEL, factories=policy, progress=False)
    ivf = ShardedIndex.open(tmp_path, MODEL)
    assert {e.factory.split(",")[0][:3] for e in ivf.manifest.shards.values()} == {"IVF"}
    # probing every list makes IVF,Flat exact
    [result] = ivf.search(queries(1)[0], REGIONS["europe"], k=20, nprobe=10_000)
    assert_same(result, brute_force(tiles, queries(1)[0], REGIONS["europe"], 20))


def _write_png(path: Path, rng) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))


def describe_pixels(images):
    """A stand-in for the model: 4 rotations of a 4x4 thumbnail, 48-d."""
    out = []
    for image in images:
        thumb = cv2.resize(image, (4, 4), interpolation=cv2.INTER_AREA).astype(np.float32)
        out.append([np.rot90(thumb, k).ravel() + 1.0 for k in range(4)])
    return np.asarray(out)


def test_missing_and_corrupt_tiles_are_skipped_and_counted(tmp_path, caplog):
    rng = np.random.default_rng(0)
    tiles = list(tiles_at_zoom(3))
    for tile in tiles:
        _write_png(tmp_path / "xyz" / f"{tile.z}/{tile.x}/{tile.y}.png", rng)
    missing, corrupt = tiles[:3], tiles[10:12]
    for tile in missing:
        (tmp_path / "xyz" / f"{tile.z}/{tile.x}/{tile.y}.png").unlink()
    for tile in corrupt:
        (tmp_path / "xyz" / f"{tile.z}/{tile.x}/{tile.y}.png").write_bytes(b"\x89PNG not really")
    describer = SourceDescriber(LocalXYZSource(tmp_path / "xyz", tile_size=32), describe_pixels, workers=3)
    report = build_index(tmp_path / "index", tiles, describer, model_version=MODEL, chunk_tiles=16, progress=False)
    assert report.skipped_by_reason == {"missing": 3, "corrupt": 2}
    manifest = Manifest.load(tmp_path / "index")
    assert manifest.counts["tiles"] == len(tiles) - 5
    assert manifest.counts["skipped_by_reason"] == {"missing": 3, "corrupt": 2}
    assert set(manifest.skipped) == {str(t) for t in missing + corrupt}
    assert "skipping tile 3/0/0: missing" in caplog.text
    # The tile appears later: the next build adds it and forgets it was skipped.
    _write_png(tmp_path / "xyz" / "3/0/0.png", rng)
    report = build_index(tmp_path / "index", tiles, describer, model_version=MODEL, progress=False)
    assert report.tiles_added == 1
    manifest = Manifest.load(tmp_path / "index")
    assert "3/0/0" not in manifest.skipped and manifest.counts["skipped"] == 4


def test_bad_descriptors_are_skipped_and_bad_shapes_refused(tmp_path):
    def with_nan(tiles):
        out = DESCRIBER(tiles).descriptors
        out[0, 2] = np.nan
        return DescribedTiles(list(tiles), out)

    tiles = list(tiles_at_zoom(3))
    report = build_index(tmp_path / "a", tiles, with_nan, model_version=MODEL, chunk_tiles=32, progress=False)
    assert report.skipped_by_reason == {"bad descriptor": 2}  # the first tile of each chunk
    with pytest.raises(ValueError, match="shape"):
        build_index(tmp_path / "b", tiles, lambda t: DescribedTiles(list(t), np.ones((len(t), 3, DIM))),
                    model_version=MODEL, progress=False)  # fmt: skip
    with pytest.raises(IndexMismatchError, match="dimension"):
        build_index(tmp_path / "a", list(tiles_at_zoom(4)), SyntheticDescriber(DIM + 1), model_version=MODEL,
                    progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="in order"):
        build_index(tmp_path / "c", tiles, lambda t: DescribedTiles(list(t)[::-1], DESCRIBER(t).descriptors),
                    model_version=MODEL, progress=False)  # fmt: skip


def test_a_second_concurrent_build_is_refused(tmp_path):
    lock = tmp_path / ".build" / "lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another build"):
            build_index(tmp_path, TILES[:4], DESCRIBER, model_version=MODEL, progress=False)


def test_build_arguments_are_checked(tmp_path):
    for kwargs in ({"model_version": ""}, {"model_version": MODEL, "rotations": (0, 0)},
                   {"model_version": MODEL, "chunk_tiles": 0}, {"model_version": MODEL, "factories": "PQ4"}):  # fmt: skip
        with pytest.raises(ValueError):
            build_index(tmp_path, TILES[:4], DESCRIBER, progress=False, **kwargs)
    build_index(tmp_path, TILES[:4], DESCRIBER, model_version=MODEL, shard_zoom=4, progress=False)
    with pytest.raises(IndexMismatchError, match="sharded at zoom 4"):
        build_index(tmp_path, TILES[:4], DESCRIBER, model_version=MODEL, shard_zoom=5, progress=False)


# --- the benchmark -------------------------------------------------------------------------------------


def test_benchmark_reports_speed_recall_and_memory(tmp_path):
    report = run(zooms=(5,), dim=DIM, world_tiles=full_cell_tiles(7, 5), world_dim=64, regions=2,
                 queries_per_region=4, k=10, nprobes=(1, 4), workdir=tmp_path)  # fmt: skip
    assert "| flat scan, whole database |" in report and "| sharded, exact Flat shards |" in report
    exact_row = next(line for line in report.splitlines() if line.startswith("| sharded, exact"))
    assert exact_row.rstrip(" |").endswith("1.0000")  # exact shards: recall 1 against exact search
    assert "### World-wide search" in report and "GB" in report
    assert list(tmp_path.iterdir()) == []  # scratch removed


def test_benchmark_with_a_describer_describes_each_tile_once(tmp_path):
    import faiss

    calls = []
    synthetic = SyntheticDescriber(DIM)

    def describer(tiles):
        calls.extend(tiles)
        return synthetic(tiles)

    tiles = full_cell_tiles(7, 5)
    threads = faiss.omp_get_max_threads()
    report = run(describer=describer, tiles=tiles, model_version="m", regions=1, queries_per_region=4, k=10,
                 nprobes=(1,), workdir=tmp_path, extrapolate=False, threads=1,
                 extra_world_factories=["SQfp16"])  # fmt: skip
    assert sorted(calls) == sorted(tiles)  # region and world parts share one description
    assert "`SQfp16` (SQfp16)" in report and "Extrapolation" not in report
    assert "1 FAISS threads" in report and faiss.omp_get_max_threads() == threads
