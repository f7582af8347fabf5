"""onnxruntime-backed descriptor extraction: the serving path when an ONNX export exists.

Same interface as a torch :class:`~model.network.RetrievalNet` for everything the API and the
workers use: ``config``, ``preprocess(images)``, ``embed(batch)`` and ``describe(images, ...)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model.config import ModelConfig
from model.descriptors import describe
from model.preprocessing import ImageInput, preprocess

CONFIG_METADATA_KEY = "astroloc.config"  # JSON of the ModelConfig, written by export_onnx
INPUT_NAME, OUTPUT_NAME = "images", "descriptors"
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRetrievalModel:
    """An exported RetrievalNet run by onnxruntime. Build with :func:`load_onnx`."""

    def __init__(self, session: ort.InferenceSession, config: ModelConfig) -> None:
        self.session = session
        self.config = config

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """Preprocessed float32 batch (B, 3, S, S) -> descriptors (B, D) float32."""
        inputs = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return self.session.run(None, {INPUT_NAME: inputs})[0]

    def preprocess(self, images: ImageInput) -> torch.Tensor:
        return preprocess(images, self.config)

    def describe(
        self, images: ImageInput, rotations: Sequence[int] = (0, 90, 180, 270), batch_size: int = 32
    ) -> np.ndarray:
        """Descriptors (N, R, D) float32: see :func:`model.descriptors.describe`."""
        return describe(self, images, rotations=rotations, batch_size=batch_size)


def load_onnx(
    path: str | Path,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
) -> OnnxRetrievalModel:
    """Open a file written by :func:`model.onnx_export.export_onnx`.

    Args:
        providers: onnxruntime execution providers; default CUDA when available, else CPU.
        threads: intra-op threads; None lets onnxruntime choose (all cores).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"ONNX file {path} does not exist")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in _PREFERRED_PROVIDERS if p in available]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as error:  # onnxruntime raises its own types for unreadable graphs
        raise ValueError(f"cannot open ONNX file {path}: {error}") from error
    metadata = session.get_modelmeta().custom_metadata_map
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path} is not an astroloc export: no {CONFIG_METADATA_KEY!r} metadata")
    fields = json.loads(metadata[CONFIG_METADATA_KEY])
    config = ModelConfig(**{**fields, "mean": tuple(fields["mean"]), "std": tuple(fields["std"])})
    return OnnxRetrievalModel(session, config)
