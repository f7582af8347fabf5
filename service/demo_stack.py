"""The embedded default, made ready: demo world, ISS TLEs, demo model, tile index.

`astroloc demo`, the end-to-end tests and `astroloc bench localize` all need the same stack; each
step is cached on disk and returns at once when its result is already there:

1. the demo world (world/): Blue Marble tiles + simulated ISS photos with ground truth;
2. the ISS TLEs the world's photos were taken under (geo/data/iss_sample.tle) in the database;
3. our demo retrieval model (model/checkpoints/, trained by `astroloc train`) published to the
   model store and activated, unless another retrieval model is already active;
4. the tile index of the world's tiles described by that model (rebuilt when the model changes).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from index.database import grid_tiles
from index.shards import Manifest
from service import artifacts, crud
from service.config import Settings
from service.db import session_scope, upgrade_database
from service.localize.retrieval import ModelRef, RetrievalUnavailable, active_model
from world.build import build_world
from world.catalogue import WorldPhoto, read_photos
from world.sampling import sample_tles

log = logging.getLogger(__name__)


@dataclass
class DemoStack:
    world: dict
    model: ModelRef
    index_dir: Path
    tiles_indexed: int


def world_zooms(settings: Settings) -> list[int]:
    return list(range(settings.world_min_zoom, settings.world_max_zoom + 1))


def ensure_world(settings: Settings, progress: bool = False, showcase: int | None = None) -> dict:
    """Build (or reuse) the demo world; returns its manifest. ``showcase``: only that many test
    photos are needed (world.build.build_world); a full world there serves as it is."""
    return build_world(
        settings.resolved_world_dir, zooms=world_zooms(settings), n_queries=settings.world_queries,
        seed=settings.world_seed, workers=settings.world_workers, progress=progress, showcase=showcase,
    )


def ensure_tles(settings: Settings) -> int:
    """Import the ISS TLEs shipped with the project (the demo photos' orbits); returns added."""
    with session_scope(settings.resolved_database_url) as session:
        added, _ = crud.import_tles(session, [(t.norad_id, t.name, t.epoch, t.line1, t.line2) for t in sample_tles()])
        session.commit()
    return added


def ensure_demo_model(settings: Settings) -> ModelRef:
    """The active retrieval model; publishes and activates our demo checkpoint if none is."""
    try:
        return active_model(settings)
    except RetrievalUnavailable:
        pass
    checkpoint = settings.demo_checkpoint
    if not checkpoint.is_file():
        raise RetrievalUnavailable(f"demo checkpoint {checkpoint} is missing (train it: see docs/training.md)")
    artifacts.publish(
        settings, checkpoint, name=checkpoint.stem, kind="retrieval",
        architecture=settings.demo_architecture, activate=True,
        config={"source": "demo checkpoint committed in model/checkpoints"},
    )
    return active_model(settings)


def ensure_index(
    settings: Settings,
    model_ref: ModelRef,
    progress: bool = False,
    *,
    zooms: list[int] | None = None,
    steps: int = 1,
    tiles_dir: Path | None = None,
    index_dir: Path | None = None,
) -> int:
    """Index the tiles of ``tiles_dir`` (default: the demo world's) at ``zooms`` with
    ``model_ref`` at ``settings.index_rotations``; an index of another model or rotations there is replaced, one of this model is extended
    with the tiles it lacks (nothing to do when complete). Tiles are described by the model's ONNX
    export (exported when missing; torch when that fails) in chunk jobs (service.index_jobs).
    Returns the tiles in the index."""
    index_dir = index_dir or settings.resolved_index_dir
    if (index_dir / "manifest.json").is_file():
        built = Manifest.load(index_dir)
        if built.model_version != model_ref.index_key or tuple(built.rotations) != settings.index_rotations:
            log.info("index in %s belongs to another model or rotations (%s); rebuilding it for %s at %s",
                     index_dir, built.rotations, model_ref.label(), list(settings.index_rotations))
            shutil.rmtree(index_dir)
    from service.index_jobs import ModelRecipe, build_with_jobs
    from service.indexing import SourceRecipe

    tiles = grid_tiles(zooms or world_zooms(settings), steps)
    # The index build's chunk jobs (in this process's pool on the embedded default); on a complete
    # index there is nothing to describe.
    report = build_with_jobs(settings, SourceRecipe.of(settings, tiles_dir or settings.resolved_tiles_dir, None), tiles,
                             ModelRecipe(version_id=model_ref.version_id), index_dir=index_dir, progress=progress)
    return report["tiles_added"] + report["tiles_already_indexed"]


def prepare_demo(settings: Settings, progress: bool = False, showcase: int | None = None) -> DemoStack:
    """Everything the embedded default needs to localize the demo world's photos (only the first
    ``showcase`` test photos of its world when given: `astroloc demo`)."""
    upgrade_database(settings.resolved_database_url)
    world = ensure_world(settings, progress, showcase)
    ensure_tles(settings)
    model_ref = ensure_demo_model(settings)
    tiles = ensure_index(settings, model_ref, progress)
    return DemoStack(world, model_ref, settings.resolved_index_dir, tiles)


def world_photos(settings: Settings, split: str = "test", limit: int | None = None) -> list[WorldPhoto]:
    """Photos of the demo world's ``split`` (train / val / test) that see only Earth, in CSV order."""
    return read_photos(settings.resolved_world_dir, split=split, limit=limit)
