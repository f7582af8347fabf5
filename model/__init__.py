"""Retrieval networks: an image -> a global descriptor; nearest satellite descriptors locate it.

    import model
    net = model.create_model("astroloc", weights="astroloc.pth")   # or "astroloc-nano", ...
    descriptors = model.describe(net, images)                       # (N, 4 rotations, D) float32
    model.export_onnx(net, "astroloc.onnx")
    served = model.load_onnx("astroloc.onnx")                       # same describe() interface

Files: architectures (registry + the published configurations), backbones, aggregators, network
(backbone -> aggregator -> projection), config + preprocessing (input size and normalisation
belong to the model), descriptors (rotations, batching), weights (published checkpoint layouts,
strict loading), onnx_export / onnx_runtime (serving path), bench (images/s), store (artifacts).

Names below are imported on first use, so ``import model.store`` (API start-up) stays free of
torch and timm.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_model": "model.architectures",
    "list_models": "model.architectures",
    "register_model": "model.architectures",
    "ModelConfig": "model.config",
    "RetrievalNet": "model.network",
    "count_parameters": "model.network",
    "preprocess": "model.preprocessing",
    "describe": "model.descriptors",
    "load_weights": "model.weights",
    "load_backbone_weights": "model.weights",
    "export_onnx": "model.onnx_export",
    "load_onnx": "model.onnx_runtime",
    "OnnxRetrievalModel": "model.onnx_runtime",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
