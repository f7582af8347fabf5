"""The retrieval stage of localization: the active model + the tile index, loaded once per process.

A query photo is described at 0 degrees only; the database holds every tile at 0/90/180/270, so
the best-matching rotation of each tile says how the photo is turned (AstroLoc Sec. 3). The index
is tied to the model that described it: its manifest records the model's checkpoint sha256, and
:meth:`index.search.ShardedIndex.open` refuses an index built by another model.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.search import ShardedIndex
from service import artifacts
from service.config import Settings

log = logging.getLogger(__name__)


class RetrievalUnavailable(RuntimeError):
    """No active retrieval model or no index for it: the service cannot localize (a 503)."""


@dataclass(frozen=True)
class ModelRef:
    """Which retrieval model describes queries and tiles (a model-store version)."""

    version_id: int
    name: str
    architecture: str
    sha256: str
    path: Path

    @property
    def index_key(self) -> str:
        """What an index built with this model records as its model version (model.identity)."""
        from model.identity import model_identity

        return model_identity(self.architecture, self.sha256)

    def label(self) -> str:
        return f"{self.name} (v{self.version_id}, {self.architecture}, sha256 {self.sha256[:12]})"


def active_model(settings: Settings) -> ModelRef:
    """The active 'retrieval' version of the model store (RetrievalUnavailable when none)."""
    found = artifacts.active_artifact(settings, "retrieval")
    if found is None:
        raise RetrievalUnavailable(
            "no active retrieval model: import one with `astroloc model import` and activate it "
            "(the demo does this with its committed checkpoint)"
        )
    version, path = found
    if not version.architecture:
        raise RetrievalUnavailable(f"retrieval model v{version.id} has no architecture recorded")
    return ModelRef(version.id, version.name, version.architecture, version.sha256, Path(path))


def served_onnx(settings: Settings, model_ref: ModelRef) -> Path | None:
    """The active 'retrieval-onnx' artifact when it was exported from ``model_ref`` (else None:
    an ONNX graph of another checkpoint would describe queries in another space)."""
    found = artifacts.active_artifact(settings, "retrieval-onnx")
    if found is None:
        return None
    version, path = found
    if (version.config or {}).get("source_sha256") != model_ref.sha256:
        log.warning("active ONNX model v%s was exported from another checkpoint; serving torch", version.id)
        return None
    return Path(path)


def describing_model(settings: Settings, model_ref: ModelRef, *, export_missing: bool = False):  # noqa: ANN201
    """(network, runtime) describing tiles and photos for ``model_ref``: its active parity-checked
    ONNX export through onnxruntime (several times torch's speed on a CPU: `astroloc bench
    model`); with ``export_missing``, one is exported, checked and published when there is none.
    torch when there is no export, or when the export fails (logged). On ``settings.model_device``
    (auto: CUDA when there is one)."""
    import model

    import torch

    onnx_path = served_onnx(settings, model_ref)
    if onnx_path is None and export_missing:
        onnx_path = _export_onnx(settings, model_ref)
    cuda = settings.model_device == "cuda" or (settings.model_device == "auto" and torch.cuda.is_available())
    if onnx_path is not None:
        providers = None if settings.model_device == "auto" else (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"])
        return model.load_onnx(onnx_path, providers=providers, threads=settings.model_threads), "onnxruntime"
    net = model.create_model(model_ref.architecture, weights=model_ref.path)
    if cuda:
        net = net.to("cuda")  # settings.model_device "cuda" without a GPU: torch says so here
    if settings.model_threads:
        torch.set_num_threads(settings.model_threads)
    return net, "torch"


def _export_onnx(settings: Settings, model_ref: ModelRef) -> Path | None:
    import tempfile

    import model

    try:
        net = model.create_model(model_ref.architecture, weights=model_ref.path)
        with tempfile.TemporaryDirectory() as tmp:
            exported = model.export_onnx(net, Path(tmp) / f"{model_ref.name}.onnx")
            artifacts.publish(
                settings, exported, name=f"{model_ref.name}-onnx", kind="retrieval-onnx",
                architecture=model_ref.architecture,
                config={"source_version": model_ref.version_id, "source_sha256": model_ref.sha256},
                activate=True,
            )
    except Exception:  # an export torch or onnxruntime cannot make: describe with torch instead
        log.warning("no ONNX export of %s; describing with torch", model_ref.label(), exc_info=True)
        return None
    log.info("exported %s to ONNX (parity-checked) for describing", model_ref.label())
    return served_onnx(settings, model_ref)


class RetrievalEngine:
    """A loaded network and its opened tile index; thread-safe for concurrent queries."""

    def __init__(self, settings: Settings, model_ref: ModelRef) -> None:
        self.settings = settings
        self.model_ref = model_ref
        # The serving path: the parity-checked ONNX export of this very checkpoint when there is one.
        self.net, self.runtime = describing_model(settings, model_ref)
        index_dir = settings.resolved_index_dir
        if not (index_dir / "manifest.json").is_file():
            raise RetrievalUnavailable(
                f"no tile index in {index_dir}: build one with `astroloc index build` "
                "(the demo builds the demo world's index)"
            )
        try:
            self.index = ShardedIndex.open(index_dir, model_ref.index_key, verify=settings.index_verify_checksums)
        except ValueError as exc:  # another model's index, or a corrupt manifest
            raise RetrievalUnavailable(f"tile index in {index_dir} is unusable: {exc}") from exc
        self._lock = threading.Lock()

    def describe(self, images: list[np.ndarray]) -> np.ndarray:
        """Descriptors (N, D) of query photos at 0 degrees."""
        import model

        with self._lock:  # one forward pass at a time: torch already uses every core
            return model.describe(self.net, images, rotations=(0,), batch_size=self.settings.describe_batch_size)[:, 0]


_engines: dict[tuple, RetrievalEngine] = {}
_engines_lock = threading.Lock()


def get_engine(settings: Settings) -> RetrievalEngine:
    """The process-wide engine for the active model; reloaded when the active version changes."""
    ref = active_model(settings)
    key = (id(settings), ref.version_id, ref.sha256, str(settings.resolved_index_dir))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            for stale in [k for k in _engines if k[0] == id(settings)]:
                del _engines[stale]
            engine = _engines[key] = RetrievalEngine(settings, ref)
            log.info("retrieval engine: %s (%s) over %s", ref.label(), engine.runtime, settings.resolved_index_dir)
        return engine
