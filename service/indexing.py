"""The tile index from the service's side: which model describes tiles, building an index, searching it.

`astroloc index build|search` call these (the CLI only turns options into arguments and prints).
Every refusal is an :class:`IndexingError` (a service.errors.InvalidInput) with a message for the user. The model is
given as --arch/--weights, as a model-store version id, or is the store's active 'retrieval'
version; the index records the same model identity as the service (model.identity), so an index
built here is one the API can serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry.base import BaseGeometry

from service.config import Settings
from service.errors import InvalidInput


class IndexingError(InvalidInput):
    """The index cannot be built or searched as asked (the message says why)."""


@dataclass
class ResolvedModel:
    net: object
    version: str  # the identity the index records (model.identity)
    label: str


def resolve_model(
    settings: Settings, arch: str | None, weights: Path | None, version_id: int | None, seed: int = 0
) -> ResolvedModel:
    """The descriptor model from arch/weights, a model-store version id, or the store's active
    'retrieval' version (in that order)."""
    from model.describer import load_descriptor_model
    from model.identity import weights_identity

    if arch or weights is not None:
        if version_id is not None:
            raise IndexingError("give either --arch/--weights or --model-version, not both")
        try:
            net = load_descriptor_model(arch, weights, seed=seed)
            version = weights_identity(arch, weights, seed=seed, net=net)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise IndexingError(f"cannot load the model: {exc}") from None
        return ResolvedModel(net, version, f"{version} ({'random init' if weights is None else weights})")

    from service import artifacts
    from service.db import upgrade_database
    from service.localize.retrieval import ModelRef, RetrievalUnavailable, active_model, describing_model

    try:
        upgrade_database(settings.resolved_database_url)
        if version_id is None:
            ref = active_model(settings)
        else:
            stored = artifacts.get_version(settings, version_id)
            if stored.kind != "retrieval" or not stored.architecture:
                raise IndexingError(
                    f"model version {version_id} is a {stored.kind!r}, not a retrieval model with an architecture"
                )
            path = artifacts.model_store(settings).verify(Path(stored.path), stored.sha256)
            ref = ModelRef(stored.id, stored.name, stored.architecture, stored.sha256, path)
    except RetrievalUnavailable as exc:
        raise IndexingError(f"{exc}; or pass --arch NAME [--weights FILE]") from None
    except (LookupError, FileNotFoundError) as exc:
        raise IndexingError(str(exc)) from None
    # A store version describes through its parity-checked ONNX export (exported when missing).
    net, runtime = describing_model(settings, ref, export_missing=True)
    return ResolvedModel(net, ref.index_key, f"{ref.label()} through {runtime}")


def database_tiles(settings: Settings, tiles_dir: Path | None, url_template: str | None, zooms: str | None,
                   steps: int, *, all_tiles: bool = False, max_lat_deg: float = 60.0):  # noqa: ANN201
    """The tile source (a local XYZ directory, by default the demo world's, or an XYZ/WMTS URL
    template, by default ``settings.tile_url_template`` when set) and the tiles of ``zooms``
    (default the world's) it holds, on ``steps`` per tile. A URL template serves the whole grid: its database is the tiles with land within |lat| <=
    ``max_lat_deg`` (world.bluemarble.land_tiles: 634,262 of the 5.8 M tiles of zooms 9-11), or
    every tile with ``all_tiles``."""
    from index.database import grid_tiles, local_tiles, parse_zooms

    zoom_list = parse_zooms(zooms) if zooms else list(range(settings.world_min_zoom, settings.world_max_zoom + 1))
    recipe = SourceRecipe.of(settings, tiles_dir, url_template)
    source = recipe.open(settings)
    if recipe.url_template:
        if all_tiles:
            return source, grid_tiles(zoom_list, steps), zoom_list
        from world.bluemarble import land_tiles

        try:
            return source, land_tiles(zoom_list, steps, max_lat_deg), zoom_list
        except ValueError as exc:  # a latitude out of range
            raise IndexingError(str(exc)) from None
    tiles = local_tiles(source, zoom_list, steps)
    if not tiles:
        raise IndexingError(f"no tiles of zooms {zoom_list} under {recipe.tiles_dir}")
    return source, tiles, zoom_list


@dataclass(frozen=True)
class SourceRecipe:
    """Where database tiles come from, as another process (an index worker) opens it again: a
    local XYZ directory or an XYZ/WMTS URL template."""

    tiles_dir: str | None = None
    url_template: str | None = None

    @classmethod
    def of(cls, settings: Settings, tiles_dir: Path | None, url_template: str | None) -> SourceRecipe:
        """The given source; by default ``settings.tile_url_template``, else the demo world's tiles."""
        if url_template and tiles_dir:
            raise IndexingError("give either --tiles-dir or --url-template, not both")
        if tiles_dir is None and url_template is None:
            url_template = settings.tile_url_template  # ASTROLOC_TILE_URL_TEMPLATE: the deployment's source
        if url_template:
            return cls(url_template=url_template)
        root = Path(tiles_dir or settings.resolved_tiles_dir).resolve()
        if not root.is_dir():
            raise IndexingError(f"tile directory not found: {root} (build the demo world with `astroloc world build`)")
        return cls(tiles_dir=str(root))

    def open(self, settings: Settings):  # noqa: ANN201
        if self.url_template:
            from index.remote import HTTPTileSource

            return HTTPTileSource(
                self.url_template, cache_dir=settings.tile_cache_dir or settings.data_dir / "tiles",
                timeout_s=settings.tile_http_timeout_s, retries=settings.tile_http_retries,
            )
        from index.sources import LocalXYZSource

        return LocalXYZSource(Path(self.tiles_dir))


def search(settings: Settings, rgb: np.ndarray, region: BaseGeometry | None, resolved: ResolvedModel, *,
           index_dir: Path | None = None, k: int = 10):  # noqa: ANN201
    """The top-k database tiles for one photo inside ``region`` (None: worldwide)."""
    import model
    from index.search import ShardedIndex

    try:
        index = ShardedIndex.open(index_dir or settings.resolved_index_dir, resolved.version,
                                  verify=settings.index_verify_checksums)
    except FileNotFoundError as exc:
        raise IndexingError(str(exc)) from None
    descriptor = model.describe(resolved.net, [rgb], rotations=(0,), batch_size=1)[:, 0]
    [result] = index.search(descriptor, region, k=k, nprobe=settings.index_nprobe)
    return result


def centre_model(settings: Settings, source, tiles, source_label: str, *, version_id: int | None = None,  # noqa: ANN001
                 sample: int = 2000, seed: int = 0, name: str | None = None, activate: bool = False,
                 progress: bool = True):  # noqa: ANN201
    """Publish a retrieval version whose linear head is centred on the imagery to be indexed
    (model.whitening.centre_head): the mean of its head's inputs over ``sample`` of ``tiles``
    (drawn with ``seed``) at the index's rotations. The projection is kept; no labels, no photo.
    A model whose head was fitted on other imagery (the demo model: Blue Marble) is centred on
    the database before that database is indexed with it (docs/operations.md). ``source_label``
    says in the version's record what the tiles were."""
    import tempfile

    import torch
    from tqdm import tqdm

    import model
    from service import artifacts
    from service.db import upgrade_database
    from index.sources import TileError
    from model.whitening import centre_on_tiles, linear_head

    upgrade_database(settings.resolved_database_url)
    try:
        if version_id is None:
            found = artifacts.active_artifact(settings, "retrieval")
            if found is None:
                raise IndexingError("no active retrieval model: import one or pass --version")
            parent, path = found
        else:
            parent = artifacts.get_version(settings, version_id)
            path = artifacts.model_store(settings).verify(Path(parent.path), parent.sha256)
    except (LookupError, FileNotFoundError) as exc:
        raise IndexingError(str(exc)) from None
    if parent.kind != "retrieval" or not parent.architecture:
        raise IndexingError(f"version {parent.id} is a {parent.kind!r}, not a retrieval model with an architecture")
    if sample < 1:
        raise IndexingError(f"--sample must be at least 1 tile, got {sample}")
    net = model.create_model(parent.architecture, weights=Path(path))
    try:
        linear_head(net)
    except ValueError as exc:
        raise IndexingError(str(exc)) from None
    chosen = list(tiles)
    if len(chosen) > sample:
        picks = np.random.default_rng(seed).choice(len(chosen), sample, replace=False)
        chosen = [chosen[i] for i in sorted(picks)]
    unreadable = 0

    def batches():  # noqa: ANN202
        nonlocal unreadable
        step = max(1, settings.describe_batch_size // len(settings.index_rotations))
        for start in tqdm(range(0, len(chosen), step), desc="centring on the tiles", unit="batch",
                          disable=not progress):
            images = []
            for tile in chosen[start:start + step]:
                try:
                    images.append(source.read_tile(tile))
                except TileError:  # a missing, corrupt or unfetchable tile: the mean of the others
                    unreadable += 1
            yield images

    if not centre_on_tiles(net, batches(), settings.index_rotations, settings.describe_batch_size):
        raise IndexingError(f"none of the {len(chosen)} sampled tiles could be read")
    centred_on = {"tiles": len(chosen) - unreadable, "unreadable": unreadable, "rotations": list(settings.index_rotations),
                  "source": source_label, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "centred.pt"
        torch.save(net.state_dict(), weights)
        return artifacts.publish(
            settings, weights, name=name or f"{parent.name}-centred", kind="retrieval",
            architecture=parent.architecture,
            config={"centred_from_version": parent.id, "centred_from_sha256": parent.sha256, "centred_on": centred_on},
            activate=activate,
        )
