"""Unsupervised mining of MUM batches (AstroLoc Sec. 4.3) and the baselines' samplers.

Every M iterations the database descriptors are k-means clustered (FAISS) into K clusters; the
training queries are assigned to the clusters, and each MUM batch is drawn from one cluster chosen
with Pr(k) = b_k / sum_i b_i, b_k the number of queries in cluster k: the database regions that look
like astronaut photos are sampled most. EarthLoc's baseline picks clusters uniformly; the naive
baseline draws quadruplets at random, with no clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

SAMPLINGS = ("mum", "uniform", "random")


@dataclass
class ClusterSampler:
    """Which database items each cluster holds, and how likely each cluster is to be drawn."""

    members: list[np.ndarray]  # cluster -> indices of database items
    probabilities: np.ndarray  # (K,) sums to 1
    query_counts: np.ndarray  # b_k

    def sample_cluster(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self.probabilities), p=self.probabilities))

    def sample_items(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` distinct database items of one cluster drawn per the cluster law (with
        replacement only when the cluster is smaller than ``count``)."""
        members = self.members[self.sample_cluster(rng)]
        return rng.choice(members, size=count, replace=len(members) < count)


def cluster_database(
    database: np.ndarray,
    queries: np.ndarray | None,
    k: int = 50,
    sampling: str = "mum",
    seed: int = 0,
    iterations: int = 20,
) -> ClusterSampler:
    """k-means the database descriptors into ``k`` clusters and weight them (MUM: by the
    training queries assigned to each, b_k / sum b; uniform: 1/K over non-empty clusters)."""
    if sampling not in ("mum", "uniform"):
        raise ValueError(f"cluster sampling must be 'mum' or 'uniform', got {sampling!r}")
    database = np.ascontiguousarray(database, dtype=np.float32)
    k = max(1, min(k, len(database)))
    kmeans = faiss.Kmeans(database.shape[1], k, niter=iterations, seed=seed, spherical=True, verbose=False)
    kmeans.train(database)
    _, db_assign = kmeans.index.search(database, 1)
    members = [np.flatnonzero(db_assign[:, 0] == c) for c in range(k)]
    counts = np.zeros(k)
    if queries is not None and len(queries):
        _, q_assign = kmeans.index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
        counts = np.bincount(q_assign[:, 0], minlength=k).astype(float)
    nonempty = np.array([len(m) > 0 for m in members], dtype=float)
    if sampling == "mum" and (counts * nonempty).sum() > 0:
        weights = counts * nonempty
    else:
        weights = nonempty
    return ClusterSampler(members, weights / weights.sum(), counts)


def random_items(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """The naive baseline: ``count`` distinct database items anywhere."""
    return rng.choice(size, size=count, replace=size < count)
