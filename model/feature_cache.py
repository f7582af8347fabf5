"""Features of a network's frozen prefix, computed once per image for a whole training run.

When a run freezes the stem and the first k stages of an EfficientNet-Lite trunk together with
their batch-norm statistics (``frozen_stages``, ``freeze_bn``), that prefix is a fixed function
of the image: every training iteration, every mining step and every validation would recompute
the same numbers. We compute them once (``RetrievalNet.backbone.prefix``, exported to ONNX and
run by onnxruntime, which on this shared 2-core machine is ~10x faster than torch's CPU
kernels), keep them in float16, and train only the rest (``RetrievalNet.forward_from``). The
tiles are described at their 4 rotations exactly as the service indexes them, so validation
on the cache gives the same descriptors as the full network (up to float16 rounding).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.descriptors import eval_mode
from model.preprocessing import preprocess


class _Prefix(nn.Module):
    def __init__(self, backbone: nn.Module, stages: int) -> None:
        super().__init__()
        self.backbone, self.stages = backbone, stages

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.prefix(images, self.stages)


class PrefixRunner:
    """The frozen prefix of ``net`` (stem + ``stages`` stages) as an onnxruntime session."""

    def __init__(self, net, stages: int, threads: int = 2, workdir: str | Path | None = None) -> None:  # noqa: ANN001
        import onnxruntime as ort

        self.config, self.stages = net.config, stages
        size = net.config.input_size
        prefix = _Prefix(net.backbone, stages)
        with tempfile.TemporaryDirectory(dir=workdir) as tmp, eval_mode(net), torch.no_grad():
            path = Path(tmp) / "prefix.onnx"
            torch.onnx.export(prefix, (torch.rand(2, 3, size, size),), str(path), dynamo=True,
                              input_names=["images"], output_names=["features"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: Sequence[np.ndarray] | np.ndarray, rotations: Sequence[int] = (0,),
                 batch_size: int = 64, desc: str | None = None) -> np.ndarray:
        """float16 features (N, R, C, h, w) of uint8 (S, S, 3) images turned by ``rotations``
        quarter turns counter-clockwise (as numpy.rot90 and model.describe)."""
        chunks = []
        count = len(images)
        for start in tqdm(range(0, count, batch_size), desc=desc, disable=desc is None, mininterval=5.0):
            upright = preprocess([np.ascontiguousarray(i) for i in images[start: start + batch_size]], self.config)
            turned = torch.stack([torch.rot90(upright, k, dims=(2, 3)) for k in rotations], dim=1)
            flat = turned.reshape(-1, *upright.shape[1:]).numpy()
            out = self.session.run(None, {"images": flat})[0]
            chunks.append(out.reshape(len(upright), len(rotations), *out.shape[1:]).astype(np.float16))
        return np.concatenate(chunks)


def suffix_descriptors(net, features: np.ndarray, stages: int, batch_size: int = 256) -> np.ndarray:  # noqa: ANN001
    """Descriptors (N, R, D) float32 of cached prefix features (N, R, C, h, w), in eval mode."""
    flat = features.reshape(-1, *features.shape[2:])
    out = []
    with eval_mode(net), torch.inference_mode():
        for start in range(0, len(flat), batch_size):
            batch = torch.from_numpy(flat[start: start + batch_size].astype(np.float32))
            out.append(net.forward_from(batch, stages).numpy())
    return np.concatenate(out).reshape(*features.shape[:2], -1)
