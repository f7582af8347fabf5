"""Export a RetrievalNet to a self-contained ONNX file for the onnxruntime serving path."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from model.descriptors import eval_mode
from model.network import RetrievalNet
from model.onnx_runtime import CONFIG_METADATA_KEY, INPUT_NAME, OUTPUT_NAME, load_onnx

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4


def export_onnx(
    model: RetrievalNet,
    path: str | Path,
    *,
    opset: int | None = None,
    check_tolerance: float | None = PARITY_TOLERANCE,
) -> Path:
    """Write ``model`` as one ONNX file: input ``images`` (batch, 3, S, S) float32 preprocessed
    per ``model.config`` (dynamic batch, S fixed to the config's input size), output
    ``descriptors`` (batch, D). The config travels in the file's metadata, so
    :func:`model.onnx_runtime.load_onnx` needs nothing else.

    Uses the torch.export-based exporter (onnxscript). The file is written beside ``path`` and
    renamed, so a failed export leaves nothing. With ``check_tolerance`` set, the file is run
    once with onnxruntime and refused (RuntimeError) if its output differs from torch's by more.
    """
    path = Path(path)
    size = model.config.input_size
    # Batch 2, not 1: torch.export would specialise a size-1 dimension to a constant.
    example = torch.rand(2, 3, size, size, device=model.device)
    with eval_mode(model), torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    program.model.metadata_props[CONFIG_METADATA_KEY] = json.dumps(dataclasses.asdict(model.config))
    partial = path.with_name(path.name + ".partial")
    try:
        program.save(partial, external_data=False)
        if check_tolerance is not None:
            difference = onnx_parity(model, partial)
            if difference > check_tolerance:
                raise RuntimeError(
                    f"ONNX export of {model.config.arch!r} differs from torch by {difference:.2e} "
                    f"(tolerance {check_tolerance:.0e})"
                )
            log.info("exported %s to %s (max |onnx - torch| = %.1e)", model.config.arch, path, difference)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def onnx_parity(model: RetrievalNet, onnx_path: str | Path, batch_size: int = 2, seed: int = 0) -> float:
    """Max absolute difference between torch and onnxruntime descriptors on random inputs."""
    size = model.config.input_size
    batch = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with eval_mode(model):
        expected = model.embed(batch)
    actual = load_onnx(onnx_path, providers=["CPUExecutionProvider"]).embed(batch)
    return float(np.abs(actual - expected).max())
