"""The descriptor network of an index build or a search: loading it, and describing tiles with it.

    net = load_descriptor_model("astroloc-nano", weights=None)      # torch; or an ONNX file
    describer = tile_describer(net, LocalXYZSource("var/world/tiles"), batch_size=32, workers=4)
    build_index("var/index", tiles, describer, model_version=weights_identity("astroloc-nano"))

index/ builds and searches shards of any descriptors; this module is where a network meets it
(model may import index, never the reverse).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from index.build import SourceDescriber
from index.shards import DEFAULT_ROTATIONS
from index.sources import TileSource


def load_descriptor_model(arch: str | None = None, weights: Path | str | None = None, *, seed: int = 0):
    """The network describing tiles and photos.

    ``weights`` ending in ``.onnx``: an ONNX export (``model.load_onnx``; ``arch`` is read from
    the file). Otherwise ``model.create_model(arch, weights=weights)``; without weights the
    network is randomly initialised from ``seed`` (reproducibly: an index built with it can be
    searched later by a network made the same way, see model.identity.random_init_identity).
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


def tile_describer(
    net, source: TileSource, *, batch_size: int = 32, workers: int = 4, rotations: Sequence[int] = DEFAULT_ROTATIONS,
    turns_deg: Sequence[int] = (),
) -> SourceDescriber:
    """A describer for :func:`index.build.build_index`: tiles read from ``source`` by ``workers``
    threads, described by ``net`` (torch or ONNX) at ``rotations`` -> ``(N, R, dim)``, and again
    turned by each of ``turns_deg`` (the index's rotations: ``index.shards.rotations_with_turns``)."""
    import model

    def describe_images(images):
        return model.describe(net, images, rotations=tuple(rotations), batch_size=batch_size)

    return SourceDescriber(source, describe_images, workers=workers, turns_deg=turns_deg)
