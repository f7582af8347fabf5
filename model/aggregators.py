"""Aggregators: a backbone's local features in, one global vector out.

- :class:`SALAD` -- Izquierdo & Civera, "Optimal Transport Aggregation for Visual Place
  Recognition", CVPR 2024 (github.com/serizba/salad); used by AstroLoc (Berton et al., ICCV 2025).
- :class:`MixVPR` -- Ali-bey et al., "MixVPR: Feature Mixing for Visual Place Recognition",
  WACV 2023 (github.com/amaralibey/MixVPR); used by EarthLoc (Berton et al., CVPR 2024).
- :class:`GeM` -- generalised-mean pooling, Radenović, Tolias & Chum, "Fine-tuning CNN Image
  Retrieval with No Human Annotation", TPAMI 2019: the zero-shot baseline of an ImageNet trunk.
- :class:`TwoScaleGeM` -- GeM of the last grid and of a mid-level grid tapped earlier in the
  trunk, concatenated (ours: docs/training.md, "stage 5").

Parameter names and shapes are those of the reference code, so published weights load unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.backbones import Features


def log_optimal_transport(scores: torch.Tensor, dust_bin: torch.Tensor, iterations: int) -> torch.Tensor:
    """Log-space Sinkhorn assignment of n features to m clusters plus one dustbin row.

    scores: (B, m, n) -> log transport plan (B, m + 1, n) scaled so each feature's column sums to
    one. Clusters each receive mass 1 and the dustbin n - m, so n must exceed m. From SuperGlue
    (Sarlin et al., CVPR 2020), as adopted by SALAD.
    """
    batch, m, n = scores.shape
    couplings = torch.cat([scores, dust_bin.reshape(1, 1, 1).expand(batch, 1, n)], dim=1)
    norm = -math.log(m + n)
    log_mu = torch.tensor([norm] * m + [math.log(n - m) + norm], dtype=scores.dtype, device=scores.device)
    log_mu = log_mu.expand(batch, -1)
    log_nu = torch.full((batch, n), norm, dtype=scores.dtype, device=scores.device)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iterations):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm


class SALAD(nn.Module):
    """Sinkhorn Algorithm for Locally Aggregated Descriptors.

    Local features are projected to ``cluster_dim`` and softly assigned to ``num_clusters`` clusters
    by optimal transport (with a learned dustbin that absorbs uninformative patches); the class
    token becomes a ``token_dim`` global summary. Output: L2-normalised
    (B, num_clusters * cluster_dim + token_dim).
    """

    sinkhorn_iterations = 3

    def __init__(
        self,
        num_channels: int,
        num_clusters: int = 64,
        cluster_dim: int = 128,
        token_dim: int = 256,
        mlp_dim: int = 512,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.num_clusters, self.cluster_dim, self.token_dim = num_clusters, cluster_dim, token_dim
        self.output_dim = num_clusters * cluster_dim + token_dim
        # Index layout (Linear/ReLU/Linear, Conv/Dropout/ReLU/Conv) is the reference one: the
        # published state_dicts name these layers by position.
        self.token_features = nn.Sequential(
            nn.Linear(num_channels, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, token_dim)
        )
        self.cluster_features = nn.Sequential(
            nn.Conv2d(num_channels, mlp_dim, 1), nn.Dropout(dropout), nn.ReLU(),
            nn.Conv2d(mlp_dim, cluster_dim, 1),
        )
        self.score = nn.Sequential(
            nn.Conv2d(num_channels, mlp_dim, 1), nn.Dropout(dropout), nn.ReLU(),
            nn.Conv2d(mlp_dim, num_clusters, 1),
        )
        self.dust_bin = nn.Parameter(torch.tensor(1.0))

    def check_grid(self, grid_size: int) -> None:
        """Optimal transport gives the dustbin n - m mass: more patches than clusters are needed."""
        if grid_size * grid_size <= self.num_clusters:
            raise ValueError(
                f"a {grid_size}x{grid_size} feature grid has too few patches for SALAD's "
                f"{self.num_clusters} clusters: use a larger input size"
            )

    def forward(self, features: Features) -> torch.Tensor:
        if features.token is None:
            raise ValueError("SALAD needs a backbone with a global token (a ViT)")
        local = self.cluster_features(features.grid).flatten(2)  # (B, l, n)
        scores = self.score(features.grid).flatten(2)  # (B, m, n)
        token = self.token_features(features.token)  # (B, g)
        assignment = torch.exp(log_optimal_transport(scores, self.dust_bin, self.sinkhorn_iterations))
        assignment = assignment[:, :-1]  # drop the dustbin row
        # sum_n local[b, l, n] * assignment[b, m, n]; the reference materialises both as
        # (B, l, m, n) and sums -- same numbers, a matrix product avoids the copies.
        clusters = torch.bmm(local, assignment.transpose(1, 2))  # (B, l, m)
        descriptor = torch.cat(
            [F.normalize(token, p=2, dim=-1), F.normalize(clusters, p=2, dim=1).flatten(1)], dim=-1
        )
        return F.normalize(descriptor, p=2, dim=-1)


class FeatureMixerLayer(nn.Module):
    """One MixVPR mixer: a residual MLP across the flattened spatial positions of each channel."""

    def __init__(self, in_dim: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        hidden = int(in_dim * mlp_ratio)
        self.mix = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, in_dim)
        )
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x)


class MixVPR(nn.Module):
    """Feature-mixing aggregation: ``mix_depth`` mixers over the h*w positions, then a channel
    projection to ``out_channels`` and a row projection to ``out_rows``. Output: L2-normalised
    (B, out_channels * out_rows). The grid size is part of the weights (mixers are h*w x h*w).
    """

    def __init__(
        self,
        in_channels: int = 1024,
        in_h: int = 20,
        in_w: int = 20,
        out_channels: int = 512,
        mix_depth: int = 1,
        mlp_ratio: float = 1.0,
        out_rows: int = 4,
    ) -> None:
        super().__init__()
        self.in_h, self.in_w = in_h, in_w
        self.output_dim = out_channels * out_rows
        positions = in_h * in_w
        self.mix = nn.Sequential(*[FeatureMixerLayer(positions, mlp_ratio) for _ in range(mix_depth)])
        self.channel_proj = nn.Linear(in_channels, out_channels)
        self.row_proj = nn.Linear(positions, out_rows)

    def check_grid(self, grid_size: int) -> None:
        """The mixers are sized for one grid: other inputs sizes do not fit the weights."""
        if (grid_size, grid_size) != (self.in_h, self.in_w):
            raise ValueError(
                f"MixVPR weights are sized for a {self.in_h}x{self.in_w} feature grid, "
                f"got {grid_size}x{grid_size}: use the model's own input size"
            )

    def forward(self, features: Features) -> torch.Tensor:
        x = self.mix(features.grid.flatten(2))  # (B, C, h*w)
        x = self.channel_proj(x.permute(0, 2, 1))  # (B, h*w, out_channels)
        x = self.row_proj(x.permute(0, 2, 1))  # (B, out_channels, out_rows)
        return F.normalize(x.flatten(1), p=2, dim=1)


class GeM(nn.Module):
    """Generalised-mean pooling of each channel over the grid, (mean x^p)^(1/p), p = 3 (the
    paper's fine-tuned value; p = 1 is average pooling, p -> inf max pooling). Output:
    L2-normalised (B, C). Features are clamped at ``eps`` first (p-th powers of negatives)."""

    def __init__(self, num_channels: int, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.output_dim = num_channels
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def check_grid(self, grid_size: int) -> None:
        """Any grid pools to one vector."""
        if grid_size < 1:
            raise ValueError(f"empty feature grid ({grid_size}x{grid_size})")

    def forward(self, features: Features) -> torch.Tensor:
        pooled = features.grid.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
        return F.normalize(pooled, p=2, dim=1)


class TwoScaleGeM(nn.Module):
    """GeM of the trunk's last grid and of its mid-level grid (``Features.mid``), each
    L2-normalised, concatenated and normalised again: (B, C + C_mid).

    Why: the ImageNet trunk's stride-16 stage 5 (texture, colour) ranks a photo's tile among its
    visibility region's far better at R@10 than the last stage's object parts, and the two
    together better at R@1 than either (scripts/stage_probe.py). The linear head after it
    (learned whitening) weighs the two parts, so no weight between them is learned here.
    """

    def __init__(self, num_channels: int, mid_channels: int, p: float = 3.0) -> None:
        super().__init__()
        self.deep = GeM(num_channels, p)
        self.mid = GeM(mid_channels, p)
        self.output_dim = num_channels + mid_channels

    def check_grid(self, grid_size: int) -> None:
        self.deep.check_grid(grid_size)

    def forward(self, features: Features) -> torch.Tensor:
        if features.mid is None:
            raise ValueError("TwoScaleGeM needs a backbone that taps a mid-level grid (Features.mid)")
        pooled = torch.cat([self.deep(features), self.mid(Features(grid=features.mid, token=None))], dim=1)
        return F.normalize(pooled, p=2, dim=1)
