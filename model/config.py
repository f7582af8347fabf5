"""What a network expects of its input, carried with the network (and into its ONNX file)."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Images are resized to input_size x input_size, scaled to [0, 1] and normalised with
    mean/std per RGB channel; the network returns descriptor_dim-d L2-normalised vectors.
    Preprocessing belongs to the weights, so callers never choose it."""

    arch: str
    input_size: int
    descriptor_dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
