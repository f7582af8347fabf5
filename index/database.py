"""Putting a tile database together: which tiles, which descriptor model, which model version.

The pieces the CLI (`astroloc index build|search`), the benchmark and the localization service
all need to build or query an index programmatically:

    net = load_descriptor_model("astroloc-nano", weights=None)     # torch; or an ONNX file
    version = model_version("astroloc-nano", weights=None)         # "astroloc-nano:random-init-seed0"
    source = LocalXYZSource("var/world/tiles")
    tiles = local_tiles(source, zooms=parse_zooms("3-6"), steps=2)  # overlapping grid
    describer = model_describer(net, source, batch_size=32, workers=4)
    build_index("var/index", tiles, describer, model_version=version)

- :func:`parse_zooms`: ``"3-6"`` / ``"3,5,6"`` -> sorted zoom levels;
- :func:`local_tiles`: the tiles of a zoom range that a local XYZ directory can serve, on a plain
  (``steps=1``) or overlapping (``steps=2``: every half tile) grid;
- :func:`grid_tiles`: every tile of a zoom range (for sources that render any tile);
- :func:`load_descriptor_model`: a torch network (``model.create_model``) or an ONNX export
  (``model.load_onnx``) from an architecture name / weights file / ``.onnx`` path;
- :func:`model_version`: the string an index records for that model (``arch:sha256-of-weights``,
  the same key the service's model store uses, or ``arch:random-init-seed{N}``);
- :func:`model_describer`: a :class:`~index.build.SourceDescriber` running the model's
  ``describe`` over tile images at the index's 4 rotations.

Nothing here reads settings: callers pass plain values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from index.build import SourceDescriber
from index.shards import DEFAULT_ROTATIONS
from index.sources import LocalXYZSource, TileSource
from index.tiles import MAX_ZOOM, Tile, grid_shape, tiles_at_zoom

RANDOM_INIT = "random-init"


def parse_zooms(text: str) -> list[int]:
    """Zoom levels from ``"6"``, ``"3-6"`` or ``"3,5-6"``, sorted and without duplicates."""
    zooms: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise ValueError(f"not a zoom range (want e.g. 3-6 or 3,5,6): {text!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if first > last or last > MAX_ZOOM:
            raise ValueError(f"zoom range {part!r} must go upwards within 0..{MAX_ZOOM}")
        zooms.update(range(first, last + 1))
    return sorted(zooms)


def grid_tiles(zooms: Iterable[int], steps: int = 1) -> list[Tile]:
    """Every tile of the zooms on a grid of ``steps`` positions per tile width."""
    return [tile for z in zooms for tile in tiles_at_zoom(z, steps)]


def local_tiles(source: LocalXYZSource | Path | str, zooms: Iterable[int], steps: int = 1) -> list[Tile]:
    """The tiles of ``zooms`` a local XYZ directory can serve, on a grid of ``steps`` per tile.

    ``steps=1``: the plain tiles present. ``steps > 1``: the overlapping tiles all of whose
    plain tiles beneath are present (the source cuts them from those), so a sparse directory
    (one region) gives the overlapping grid over that region only.
    """
    if steps < 1:
        raise ValueError(f"steps per tile must be >= 1, got {steps}")
    if not isinstance(source, LocalXYZSource):
        source = LocalXYZSource(source)
    found: list[Tile] = []
    for z in zooms:
        plain = {(t.x, t.y) for t in source.list_tiles(z)}
        if steps == 1:
            found += [Tile(z, x, y) for x, y in sorted(plain, key=lambda p: (p[1], p[0]))]
            continue
        n = 2**z
        columns, rows = grid_shape(z, steps)
        candidates = {(x * steps + i, y * steps + j) for x, y in plain for i in range(steps) for j in range(steps)}
        for gx, gy in sorted(candidates, key=lambda p: (p[1], p[0])):
            if gy >= rows:
                continue
            # An offset tile spans the plain tiles under its origin and, when offset, the next ones.
            x0, y0 = gx // steps, gy // steps
            need_x = [x0, (x0 + 1) % n] if gx % steps else [x0]
            need_y = [y0, y0 + 1] if gy % steps else [y0]
            if all((x, y) in plain for x in need_x for y in need_y):
                found.append(Tile(z, gx % columns, gy, steps))
    return found


def load_descriptor_model(arch: str | None = None, weights: Path | str | None = None, *, seed: int = 0):
    """The network describing tiles and photos.

    ``weights`` ending in ``.onnx``: an ONNX export (``model.load_onnx``; ``arch`` is read from
    the file). Otherwise ``model.create_model(arch, weights=weights)``; without weights the
    network is randomly initialised from ``seed`` (reproducibly: an index built with it can be
    searched later by a network made the same way).
    """
    import model

    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        return model.load_onnx(weights)
    if not arch:
        raise ValueError("an architecture is needed (e.g. astroloc-nano) unless weights is an .onnx file")
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"weights file not found: {weights}")
    if weights is None:
        import torch

        torch.manual_seed(seed)
    return model.create_model(arch, weights=weights)


def model_version(arch: str | None, weights: Path | str | None = None, *, seed: int = 0, net=None) -> str:
    """What an index records as its model: ``arch:sha256`` of the weights file (the key the
    service's model store uses too) or ``arch:random-init-seed{seed}``.

    For an ONNX file ``arch`` may be None: it is taken from the loaded ``net``'s config.
    """
    if arch is None and net is not None:
        arch = net.config.arch
    if not arch:
        raise ValueError("the model's architecture is needed to name its version")
    if weights is None:
        return f"{arch}:{RANDOM_INIT}-seed{seed}"
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return f"{arch}:{digest.hexdigest()}"


def model_describer(
    net, source: TileSource, *, batch_size: int = 32, workers: int = 4, rotations: Sequence[int] = DEFAULT_ROTATIONS
) -> SourceDescriber:
    """A describer for :func:`index.build.build_index`: tiles read from ``source`` by ``workers``
    threads, described by ``net`` (torch or ONNX) at ``rotations`` -> ``(N, R, dim)``."""
    import model

    def describe_images(images):
        return model.describe(net, images, rotations=tuple(rotations), batch_size=batch_size)

    return SourceDescriber(source, describe_images, workers=workers)
