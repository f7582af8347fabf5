"""Building the demo world: Blue Marble tiles, simulated photos and their catalogue, resumably.

We cannot download Sentinel-2 tiles or NASA's photos here, so the demo, the tests and the
benchmarks run on a coarse but real world (see docs/world.md):

- database tiles: Web-Mercator XYZ tiles rendered from NASA's Blue Marble
  (:class:`~world.bluemarble.BlueMarbleTileSource`), zooms 3-6 by default;
- queries: photos taken by a simulated camera on real ISS orbits (:mod:`world.camera`), ray-cast
  onto the WGS84 ellipsoid, textured with Blue Marble and spoilt by the nuisances of
  :mod:`world.photosim`; their ground truth is written in the EOL CSV layout plus extra columns
  (:mod:`world.catalogue`);
- a train / val / test split by geography (:mod:`world.split`): no footprint overlaps one from
  another split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from geo.prior import load_prior
from geo.tle import TLE, as_tles
from index.files import write_atomically
from world.bluemarble import BlueMarbleTileSource
from world.catalogue import WorldPaths, simulated_photo_id, truth_row, write_queries_csv
from world.sampling import QuerySampling, sample_tles, sample_view
from world.split import SPLITS, GeographicSplit
from world.view import ViewSpec, footprint_of, render_view

log = logging.getLogger(__name__)

WORLD_FORMAT_VERSION = 1

DEFAULT_ZOOMS = (3, 4, 5, 6)


@dataclass(frozen=True)
class PlannedQuery:
    index: int
    view: ViewSpec
    split: str

    @property
    def photo_id(self) -> str:
        return simulated_photo_id(self.index)


def plan_queries(
    n_queries: int,
    seed: int,
    tles: Sequence[TLE | tuple[str, str]],
    sampling: QuerySampling = QuerySampling(),
    split: GeographicSplit | None = None,
) -> list[PlannedQuery]:
    """Draw ``n_queries`` views and their splits (cheap: nothing is rendered).

    Candidate ``i`` is drawn from its own generator ``(seed, i)`` and candidates are accepted in
    order, so asking for more queries later keeps the first ones unchanged.
    """
    if n_queries < 0:
        raise ValueError(f"number of queries must be >= 0, got {n_queries}")
    split = split or GeographicSplit(seed)
    planned: list[PlannedQuery] = []
    candidate = 0
    while len(planned) < n_queries:
        view = sample_view(np.random.default_rng([seed, candidate]), tles, sampling)
        assigned = split.try_accept(footprint_of(view.camera()))
        if assigned is not None:
            planned.append(PlannedQuery(candidate, view, assigned))
        candidate += 1
    log.info("planned %d queries from %d candidates (split overlaps refused)", n_queries, candidate)
    return planned


def build_world(
    out_dir: Path | str,
    zooms: Iterable[int] = DEFAULT_ZOOMS,
    n_queries: int = 500,
    seed: int = 0,
    sampling: QuerySampling = QuerySampling(),
    tles: Sequence[TLE | tuple[str, str]] | None = None,
    workers: int = 1,
    progress: bool = False,
    showcase: int | None = None,
) -> dict:
    """Build (or finish building) the demo world in ``out_dir``; returns its manifest.

    Writes Blue Marble tiles for ``zooms`` under ``tiles/``, ``n_queries`` simulated photos
    under ``queries/`` and their ground truth in ``queries.csv``. Idempotent and resumable:
    existing tiles and photos are kept, and a finished world with the same parameters returns
    at once.

    ``showcase``: render only the first ``showcase`` Earth-only photos of the test split (in
    plan order: the same photos, with the same truth, as a full world's first test photos), for
    a demo that shows them; the manifest records ``"showcase": N``. A full world already built
    there is returned as it is (it holds them); a later full build keeps the rendered photos.
    """
    zooms = sorted(set(int(z) for z in zooms))
    if not zooms or zooms[0] < 0 or zooms[-1] > 12:
        raise ValueError(f"zoom levels must lie in 0..12 (Blue Marble is ~7 km/px), got {zooms}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    paths = WorldPaths(Path(out_dir))
    tles = as_tles(tles) if tles is not None else sample_tles()
    parameters = {
        "format_version": WORLD_FORMAT_VERSION,
        "zooms": zooms,
        "n_queries": n_queries,
        "seed": seed,
        "sampling": sampling_parameters(sampling),
        # Hash of the line pairs (the form earlier worlds recorded), so built worlds stay valid.
        "tles_sha256": hashlib.sha256(json.dumps([[t.line1, t.line2] for t in tles]).encode()).hexdigest(),
    }
    parameters = json.loads(json.dumps(parameters))  # as it reads back from world.json
    finished = _read_manifest(paths)
    if finished and finished.get("parameters") == parameters and paths.csv.is_file():
        shown = finished.get("showcase")  # absent: a full world, which holds every photo
        if shown is None or (showcase is not None and shown >= showcase):
            log.info("world in %s is up to date", paths.root)
            return finished
    if showcase is not None and showcase < 1:
        raise ValueError(f"showcase must be at least 1 photo, got {showcase}")

    started = datetime.now(timezone.utc)
    tile_source = BlueMarbleTileSource(paths.tiles)
    rendered_tiles = tile_source.fill_cache(zooms, progress=progress)
    planned = plan_queries(n_queries, seed, tles, sampling)
    if showcase is None:
        rows = _render_queries(planned, paths, workers, progress)
    else:
        rows = _render_showcase(planned, paths, showcase)
    write_queries_csv(paths.csv, rows)
    manifest = {
        "parameters": parameters,
        "built_at": started.isoformat(),
        "build_seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "tiles": {str(z): 4**z for z in zooms},
        "tiles_rendered_this_run": rendered_tiles,
        "queries": {s: sum(r["SPLIT"] == s for r in rows) for s in SPLITS},
        "earth_limb_queries": sum(r["EARTH_LIMB"] == 1 for r in rows),
        **({"showcase": showcase} if showcase is not None else {}),
    }
    write_atomically(paths.manifest, json.dumps(manifest, indent=2).encode())
    return manifest


def sampling_parameters(sampling: QuerySampling) -> dict:
    """The sampling as world.json records it. ``tilt_law`` came later: recorded only when not
    the default, so worlds built before it stay up to date; with the EOL law the fitted prior is
    recorded too, so a refit of geo/data/obliquity_prior.json is a different world."""
    values = asdict(sampling)
    if values["tilt_law"] == "uniform":
        del values["tilt_law"]
    else:
        values["tilt_prior"] = load_prior().to_json()
    return values


def _render_queries(planned: list[PlannedQuery], paths: WorldPaths, workers: int, progress: bool) -> list[dict]:
    """Render every planned photo lacking its truth file; returns all rows in photo order."""
    paths.queries.mkdir(parents=True, exist_ok=True)
    todo = [q for q in planned if not (paths.queries / f"{q.photo_id}.json").is_file()]
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            _drain(pool.map(_render_and_store, todo, [paths] * len(todo), chunksize=4), len(todo), progress)
    else:
        _drain(map(_render_and_store, todo, [paths] * len(todo)), len(todo), progress)
    return [json.loads((paths.queries / f"{q.photo_id}.json").read_text()) for q in planned]


def _render_showcase(planned: list[PlannedQuery], paths: WorldPaths, count: int) -> list[dict]:
    """Render the test split's planned photos in order until ``count`` see only Earth; their rows."""
    paths.queries.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for query in planned:
        if query.split != "test":
            continue
        truth = paths.queries / f"{query.photo_id}.json"
        if not truth.is_file():
            _render_and_store(query, paths)
        rows.append(json.loads(truth.read_text()))
        if sum(row["EARTH_LIMB"] != 1 for row in rows) >= count:
            break
    return rows


def _drain(results: Iterable, total: int, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=total, desc="simulated photos", unit="photo")
    for _ in results:
        pass


def _render_and_store(query: PlannedQuery, paths: WorldPaths) -> None:
    """Render one photo, write its JPEG, then its truth row (the row marks it done)."""
    rendered = render_view(query.view)
    image_path = paths.queries / f"{query.photo_id}.jpg"
    write_atomically(image_path, rendered.jpeg)
    row = truth_row(rendered, query.photo_id, query.index, query.split, image_path.relative_to(paths.root))
    write_atomically(paths.queries / f"{query.photo_id}.json", json.dumps(row).encode())


def _read_manifest(paths: WorldPaths) -> dict | None:
    try:
        return json.loads(paths.manifest.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
