"""Images in the forms the service receives -> the float batch a network expects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.config import ModelConfig

# One image: a PIL image, or a uint8 array (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA.
# Several: a sequence of those, or one uint8 array (N, H, W, 3).
ImageInput = Union[Image.Image, np.ndarray, Sequence[Union[Image.Image, np.ndarray]]]


def as_image_list(images: ImageInput) -> list[Image.Image | np.ndarray]:
    """Split any accepted input into a list of single images (not yet checked)."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(
            f"images must be PIL images or uint8 arrays (or a sequence of them), got {type(images).__name__}"
        )
    return list(images)


def image_to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """One image -> float32 (3, H, W) in [0, 1]."""
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 (0-255), got {image.dtype}")
        if image.ndim == 2:
            array = np.repeat(image[:, :, None], 3, axis=2)
        elif image.ndim == 3 and image.shape[2] in (3, 4):
            array = image[:, :, :3]
        else:
            raise ValueError(
                f"image arrays must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}"
            )
    else:
        raise ValueError(f"expected a PIL image or a uint8 array, got {type(image).__name__}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"empty image of shape {array.shape}")
    # Copies: PIL arrays are read-only, and views (np.rot90, flips) may have negative strides.
    return torch.tensor(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


def preprocess(images: ImageInput, config: ModelConfig) -> torch.Tensor:
    """Images -> float32 CPU batch (N, 3, S, S) for a network with this config.

    Each image is resized to S x S (S = config.input_size; bilinear with antialiasing, aspect
    ratio not kept: the satellite tiles the models were trained on are square), scaled to [0, 1]
    and normalised with the config's mean and std (ImageNet for every published model).
    """
    tensors = [image_to_tensor(image) for image in as_image_list(images)]
    if not tensors:
        raise ValueError("no images given")
    size = config.input_size
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    batch = torch.empty(len(tensors), 3, size, size)
    for row, tensor in enumerate(tensors):
        if tensor.shape[1:] != (size, size):
            tensor = F.interpolate(
                tensor[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )[0]
        batch[row] = (tensor - mean) / std
    return batch
