"""AstroLoc's training losses (Berton et al., ICCV 2025, Sec. 4): small functions, one per equation.

Descriptors are L2-normalised, so the similarity S is the cosine, a dot product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _phi(x: float, similarities: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """phi(x, y, Z) = log(1 + sum_j exp(x S(y, z_j))) (Eq. 4), one value per row of
    ``similarities`` (row i: S(y_i, z_j) for every j), leaving out the entries where ``exclude``."""
    logits = (x * similarities).masked_fill(exclude, float("-inf"))
    # log(1 + sum exp(.)) = logsumexp over the logits plus a zero logit, computed stably.
    zero = torch.zeros(len(logits), 1, dtype=logits.dtype, device=logits.device)
    return torch.logsumexp(torch.cat([zero, logits], dim=1), dim=1)


def pair_loss(q: torch.Tensor, d: torch.Tensor, alpha: float = 1.0, beta: float = 50.0) -> torch.Tensor:
    """Query-database pairwise loss, AstroLoc Eq. 1-5, for B matching pairs (q_i, d_i).

    L_pos = 1/(alpha B) sum_i log(1 + exp(-alpha S(q_i, d_i)))                       (Eq. 1-2)
    L_neg = 1/(beta B) sum_i [phi(beta, q_i, P_Q \\ q_i) + phi(beta, q_i, P_D \\ d_i)
                              + phi(beta, d_i, P_Q \\ q_i) + phi(beta, d_i, P_D \\ d_i)]   (Eq. 3-4)
    with phi(x, y, Z) = log(1 + sum_j exp(x S(y, z_j))); returns L_pos + L_neg        (Eq. 5).

    Every other pair of the batch is a negative: batches are drawn with no geographic overlap
    between pairs (model/training.py). ``q``, ``d``: (B, D) L2-normalised descriptors.
    """
    if q.shape != d.shape or q.ndim != 2:
        raise ValueError(f"q and d must both be (B, D), got {tuple(q.shape)} and {tuple(d.shape)}")
    batch = len(q)
    positive = (q * d).sum(dim=1)
    l_pos = F.softplus(-alpha * positive).sum() / (alpha * batch)
    itself = torch.eye(batch, dtype=torch.bool, device=q.device)
    qq, qd, dq, dd = q @ q.T, q @ d.T, d @ q.T, d @ d.T
    l_neg = (
        _phi(beta, qq, itself) + _phi(beta, qd, itself) + _phi(beta, dq, itself) + _phi(beta, dd, itself)
    ).sum() / (beta * batch)
    return l_pos + l_neg


def mum_loss(h: torch.Tensor, labels: torch.Tensor, alpha: float = 1.0, beta: float = 50.0) -> torch.Tensor:
    """Multi-similarity loss over H quadruplets, AstroLoc Eq. 9 (MUM batches).

    For each of the 4H anchors: positives are the 3 other views of its quadruplet, negatives every
    other image of the batch; 1/alpha log(1 + sum_pos exp(-alpha S)) + 1/beta log(1 + sum_neg
    exp(beta S)), averaged over anchors. This is pytorch-metric-learning's
    MultiSimilarityLoss(alpha, beta, base=0) with all pairs (no miner), which computes it.
    """
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    if h.ndim != 2 or len(h) != len(labels):
        raise ValueError(f"h must be (4H, D) with one label per row, got {tuple(h.shape)}, {len(labels)} labels")
    return MultiSimilarityLoss(alpha=alpha, beta=beta, base=0.0)(h, labels)


def total_loss(
    pair: torch.Tensor | None, mum: torch.Tensor | None, lambda_1: float = 1.0, lambda_2: float = 1.0
) -> torch.Tensor:
    """lambda_1 L_pairs + lambda_2 L_MUM (Eq. 10/12); either term may be absent (ablations)."""
    terms = [w * t for w, t in ((lambda_1, pair), (lambda_2, mum)) if t is not None]
    if not terms:
        raise ValueError("at least one of the pair and MUM losses is needed")
    return sum(terms)
