"""Closed-form linear heads: the starting point of a head that must not begin below the
descriptor it projects. Two of them:

- :func:`pca_whitening` needs no labels: PCA of the database's own descriptors (every tile at
  its 4 rotations, the places the service searches), the kept directions scaled by their
  variance to the power ``-power`` (Jegou & Chum, ECCV 2012: 0.5 whitens fully; a smaller power
  only tempers the dominant directions, which on few dimensions' worth of places overfits less);
- :func:`learned_whitening` (below) is fitted on matching photo-tile pairs.

Both compute ``head(f) = P (f - m)``. The projection P says which directions tell places apart;
the centre m is where the imagery's descriptors sit, and it moves with the imagery: Blue Marble
mosaics and Sentinel-2 scenes of the same places have different means. :func:`centre_head`
re-estimates m alone on the tiles of the database being indexed (no labels, no photo), keeping P
(docs/training.md, "Real Sentinel-2 imagery").

Radenović, Tolias, Chum, "Fine-tuning CNN Image Retrieval with No Human Annotation" (TPAMI 2018),
Sec. 3.3 ("learned discriminative whitening"): with f the (L2-normalised) pooled descriptors,

    m   = mean of the descriptors of every image in the pairs
    C_S = mean over matching pairs (i, j) of (f_i - f_j)(f_i - f_j)^T      (within-place covariance)
    P_W = C_S^(-1/2)                                                       (whiten what differs
                                                                            between two views of a place)
    C_D = covariance of P_W (f - m) over all images                        (between-place spread)
    P_R = the top ``dim`` eigenvectors of C_D                              (keep where places differ)
    head(f) = P_R^T P_W (f - m)

It is a linear layer: weight P_R^T P_W, bias -P_R^T P_W m (times one constant, see below). The pairs here are a photo and its
positive tile (turned as the photo), the way the pair loss sees them. C_S is shrunk towards its
mean eigenvalue (``shrinkage``): 1280 dimensions from a few thousand pairs would otherwise give
a noisy inverse square root.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from model.config import ModelConfig
from model.network import RetrievalNet


def learned_whitening(queries: np.ndarray, positives: np.ndarray, dim: int,
                      shrinkage: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(weight (dim, D), bias (dim,)) of the whitening head from matching rows of ``queries`` and
    ``positives`` (N, D) each (see the module docstring)."""
    queries, positives = np.asarray(queries, np.float64), np.asarray(positives, np.float64)
    if queries.shape != positives.shape or queries.ndim != 2:
        raise ValueError(f"queries {queries.shape} and positives {positives.shape} must be matching (N, D) arrays")
    count, features = queries.shape
    if not 0 < dim <= features:
        raise ValueError(f"dim must lie in 1..{features}, got {dim}")
    if count < 2:
        raise ValueError("need at least 2 matching pairs")
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1), got {shrinkage}")
    every = np.concatenate([queries, positives])
    mean = every.mean(axis=0)
    differences = queries - positives
    within = differences.T @ differences / count
    within = (1.0 - shrinkage) * within + shrinkage * np.trace(within) / features * np.eye(features)
    values, vectors = np.linalg.eigh(within)
    whiten = vectors @ np.diag(1.0 / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T  # C_S^(-1/2)
    centred = (every - mean) @ whiten.T
    between_values, between_vectors = np.linalg.eigh(centred.T @ centred / len(every))
    kept = between_vectors[:, np.argsort(between_values)[::-1][:dim]]  # (D, dim)
    return _head(kept.T @ whiten, mean)


def pca_whitening(descriptors: np.ndarray, dim: int, power: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(weight (dim, D), bias (dim,)) of the PCA-whitening head of ``descriptors`` (N, D):
    head(f) = diag(lambda_k^-power) V_k^T (f - m) over the top ``dim`` principal directions V_k
    (variances lambda_k) of the descriptors; unsupervised (see the module docstring)."""
    descriptors = np.asarray(descriptors, np.float64)
    if descriptors.ndim != 2:
        raise ValueError(f"descriptors must be an (N, D) array, got shape {descriptors.shape}")
    count, features = descriptors.shape
    if not 0 < dim <= min(features, count):
        raise ValueError(f"dim must lie in 1..{min(features, count)}, got {dim}")
    if not 0.0 <= power <= 0.5:
        raise ValueError(f"power must lie in [0, 0.5] (0.5 whitens fully), got {power}")
    mean = descriptors.mean(axis=0)
    centred = descriptors - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / count)
    order = np.argsort(values)[::-1][:dim]
    # Directions of (numerically) zero variance would be blown up by the inverse power.
    scale = np.maximum(values[order], 1e-6 * values[order[0]]) ** -power
    return _head((vectors[:, order] * scale).T, mean)


def _head(weight: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of the linear layer computing ``weight @ (f - mean)``, at an optimiser's scale.

    The descriptor is L2-normalised after the head, so a common scale changes nothing here; but
    an optimiser's steps are sized for weights of a default-initialised layer (entries ~1/sqrt(D)):
    Adam moves each weight by about lr per step, which on raw whitening entries (~1/sqrt of the
    within-place variances: tens) would leave the head where it started."""
    weight = weight / (math.sqrt(weight.shape[1]) * weight.std())
    return weight.astype(np.float32), (-weight @ mean).astype(np.float32)


@dataclass
class HeadInputs:
    """A network with its head left out, for :func:`model.describe`: the aggregator's
    L2-normalised output, what the linear head projects (``config.descriptor_dim`` is its width)."""

    net: RetrievalNet
    config: ModelConfig

    @classmethod
    def of(cls, net: RetrievalNet) -> HeadInputs:
        return cls(net, replace(net.config, descriptor_dim=linear_head(net).in_features))

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            return self.net.aggregator(self.net.backbone(batch.to(self.net.device))).float().cpu().numpy()


def linear_head(net: RetrievalNet) -> nn.Linear:
    """The network's linear head; ValueError for a network without one (an identity projection)."""
    if not isinstance(net.projection, nn.Linear) or net.projection.bias is None:
        raise ValueError(f"{net.config.arch} has no linear head with a bias to centre")
    return net.projection


def centre_on_tiles(net: RetrievalNet, batches: Iterable[list[np.ndarray]], rotations: Sequence[int],
                    batch_size: int = 32) -> int:
    """Centre ``net``'s head (:func:`centre_head`) on the mean of its inputs over the tiles of
    ``batches`` (lists of RGB arrays), each at ``rotations``; returns the inputs averaged (0: no
    tile came, the head is left as it was)."""
    from model.descriptors import describe

    inputs = HeadInputs.of(net)
    total, count = np.zeros(inputs.config.descriptor_dim), 0
    for images in batches:
        if images:
            found = describe(inputs, images, rotations=rotations, batch_size=batch_size)
            total += found.reshape(-1, found.shape[-1]).sum(axis=0, dtype=np.float64)
            count += found.shape[0] * found.shape[1]
    if count:
        centre_head(net, total / count)
    return count


def centre_head(net: RetrievalNet, mean: np.ndarray) -> None:
    """Re-centre the linear head on ``mean``, the average of its inputs over a database's tiles
    (:class:`HeadInputs`, every rotation indexed): bias = -W mean, so head(f) = W (f - mean); the
    projection W is kept."""
    head = linear_head(net)
    mean = np.asarray(mean, np.float64)
    if mean.shape != (head.in_features,) or not np.isfinite(mean).all():
        raise ValueError(f"the centre must be {head.in_features} finite numbers, got shape {mean.shape}")
    weight = head.weight.detach().cpu().double().numpy()
    with torch.no_grad():
        head.bias.copy_(torch.from_numpy(-weight @ mean).to(head.bias))


def set_linear(layer: nn.Linear, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy a fitted head into ``layer`` (shapes must match)."""
    if tuple(layer.weight.shape) != weight.shape or layer.bias is None or tuple(layer.bias.shape) != bias.shape:
        raise ValueError(f"head {tuple(layer.weight.shape)} does not take weight {weight.shape} and bias {bias.shape}")
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
