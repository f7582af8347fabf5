"""Global descriptors of images at several 90-degree rotations, for torch and ONNX models alike.

The satellite database is indexed at four rotations (AstroLoc, Berton et al., ICCV 2025, Sec. 5.1)
because astronaut photos come at any orientation; a query is then matched against all four.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch

from model.config import ModelConfig
from model.preprocessing import ImageInput, as_image_list, preprocess


class DescriptorModel(Protocol):
    """Anything :func:`describe` can run: a torch RetrievalNet or an OnnxRetrievalModel."""

    config: ModelConfig

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """Preprocessed float32 CPU batch (B, 3, S, S) -> descriptors (B, D) float32."""
        ...


def rotation_steps(rotations: Sequence[int]) -> list[int]:
    """Degrees (multiples of 90, counter-clockwise) -> numbers of quarter turns."""
    if isinstance(rotations, (int, str)) or len(rotations) == 0:
        raise ValueError(f"rotations must be a non-empty sequence of degrees, got {rotations!r}")
    steps = []
    for degrees in rotations:
        if isinstance(degrees, bool) or not isinstance(degrees, (int, np.integer)) or degrees % 90:
            raise ValueError(f"rotations must be multiples of 90 degrees, got {degrees!r}")
        steps.append(int(degrees) // 90 % 4)
    return steps


def is_preprocessed(images: object) -> bool:
    """A float (N, 3, S, S) tensor or array is taken as an already preprocessed batch."""
    return isinstance(images, (torch.Tensor, np.ndarray)) and images.dtype in (
        torch.float32, torch.float64, np.float32, np.float64,
    )


def describe(
    model: DescriptorModel,
    images: ImageInput | torch.Tensor,
    rotations: Sequence[int] = (0, 90, 180, 270),
    batch_size: int = 32,
) -> np.ndarray:
    """Descriptors of every image at every rotation: float32 array (N, R, D).

    Args:
        model: a :class:`~model.network.RetrievalNet` (runs on the device its parameters are on,
            CPU or CUDA, in eval mode and without gradients) or an ONNX model from
            :func:`model.onnx_runtime.load_onnx`.
        images: PIL images or uint8 arrays in any size (resized and normalised per the model's
            config, see :func:`model.preprocessing.preprocess`), or a float batch (N, 3, S, S) that is
            already preprocessed.
        rotations: degrees, multiples of 90; ``[:, r]`` is the descriptor of the image rotated
            counter-clockwise by ``rotations[r]`` (as ``numpy.rot90``).
        batch_size: network inputs per forward pass (each image counts once per rotation).
    """
    steps = rotation_steps(rotations)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    size = model.config.input_size
    if is_preprocessed(images):
        batch = torch.as_tensor(images, dtype=torch.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(
                f"a preprocessed batch must have shape (N, 3, {size}, {size}), got {tuple(batch.shape)}"
            )
        sources: list = list(batch)
    else:
        sources = as_image_list(images)
    if not sources:
        raise ValueError("no images given")

    descriptors = np.empty((len(sources), len(steps), model.config.descriptor_dim), np.float32)
    images_per_chunk = max(1, batch_size // len(steps))
    with eval_mode(model):
        for start in range(0, len(sources), images_per_chunk):
            chunk = sources[start : start + images_per_chunk]
            upright = torch.stack(chunk) if is_preprocessed(images) else preprocess(chunk, model.config)
            rotated = torch.stack([torch.rot90(upright, k, dims=(2, 3)) for k in steps], dim=1)
            flat = rotated.reshape(-1, 3, size, size)
            out = np.concatenate([model.embed(piece) for piece in flat.split(batch_size)])
            descriptors[start : start + len(chunk)] = out.reshape(len(chunk), len(steps), -1)
    return descriptors


@contextmanager
def eval_mode(model: object) -> Iterator[None]:
    """Run a torch module in eval mode (dropout off) and restore its previous mode afterwards."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
