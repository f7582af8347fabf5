"""The retrieval network: backbone -> aggregator -> projection -> L2 normalisation.

Every registered architecture is a :class:`RetrievalNet`; they differ only in their parts and in
their :class:`ModelConfig` (input size and normalisation, which belong to the weights, not to the
caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig
from model.descriptors import describe
from model.preprocessing import ImageInput, preprocess


class RetrievalNet(nn.Module):
    """Image batch (B, 3, S, S), preprocessed per ``config`` -> L2-normalised descriptors (B, D).

    Parts: ``backbone`` (local features), ``aggregator`` (one global vector), ``projection``
    (linear layer to the descriptor size; None when the aggregator's output is the descriptor, as
    in EarthLoc2). The state_dict keys are ``backbone.*``, ``aggregator.*`` and ``projection.*``.
    """

    def __init__(
        self, config: ModelConfig, backbone: nn.Module, aggregator: nn.Module, projection: nn.Linear | None
    ) -> None:
        super().__init__()
        given = (aggregator.output_dim, aggregator.output_dim) if projection is None else (
            projection.in_features, projection.out_features)
        if given != (aggregator.output_dim, config.descriptor_dim):
            raise ValueError(
                f"projection {given[0]}->{given[1]} does not join "
                f"aggregator output {aggregator.output_dim} to descriptor size {config.descriptor_dim}"
            )
        self.config = config
        self.backbone = backbone
        self.aggregator = aggregator
        self.projection = nn.Identity() if projection is None else projection
        self.check_input_size(config.input_size)

    def check_input_size(self, input_size: int) -> None:
        """Raise ValueError when a square input of this size does not fit the architecture."""
        self.aggregator.check_grid(self.backbone.grid_size(input_size))

    def with_input_size(self, input_size: int) -> RetrievalNet:
        """Use another input size (ViT models: any multiple of the patch size). Same weights."""
        self.check_input_size(input_size)
        self.config = replace(self.config, input_size=input_size)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def head(self, features) -> torch.Tensor:  # noqa: ANN001
        """Aggregator -> projection -> L2 normalisation of a backbone's :class:`Features`."""
        return F.normalize(self.projection(self.aggregator(features)), p=2, dim=-1)

    def forward_from(self, prefix_features: torch.Tensor, stages: int) -> torch.Tensor:
        """Descriptors from the output of the backbone's first ``stages`` stages (a backbone
        with ``prefix``/``suffix``): ``forward(x) == forward_from(backbone.prefix(x, k), k)``."""
        return self.head(self.backbone.suffix(prefix_features, stages))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """Descriptors (B, D) float32 of a preprocessed CPU batch, computed on the model's device.

        The one method :func:`model.descriptors.describe` needs; the ONNX model has the same.
        Runs in the module's current mode: describe() switches to eval (SALAD has dropout).
        """
        with torch.inference_mode():
            return self(batch.to(self.device)).float().cpu().numpy()

    def preprocess(self, images: ImageInput) -> torch.Tensor:
        """PIL images / uint8 arrays -> float32 batch (N, 3, S, S) as this network expects."""
        return preprocess(images, self.config)

    def describe(
        self, images: ImageInput, rotations: Sequence[int] = (0, 90, 180, 270), batch_size: int = 32
    ) -> np.ndarray:
        """Descriptors (N, R, D) float32: see :func:`model.descriptors.describe`."""
        return describe(self, images, rotations=rotations, batch_size=batch_size)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (the figure papers report), trainable or not."""
    return sum(p.numel() for p in model.parameters())
