"""AstroLoc's losses against the printed equations, the MUM sampler, and the training job."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.losses import mum_loss, pair_loss, total_loss
from model.mining import cluster_database


def _unit(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def _pair_loss_printed(q, d, alpha, beta):
    """Eq. 1-5 term by term, with Python loops."""
    batch = len(q)
    s = lambda a, b: float(a @ b)  # noqa: E731
    l_pos = sum(math.log(1 + math.exp(-alpha * s(q[i], d[i]))) for i in range(batch)) / (alpha * batch)

    def phi(x, y, zs):
        return math.log(1 + sum(math.exp(x * s(y, z)) for z in zs))

    l_neg = 0.0
    for i in range(batch):
        others_q = [q[j] for j in range(batch) if j != i]
        others_d = [d[j] for j in range(batch) if j != i]
        l_neg += phi(beta, q[i], others_q) + phi(beta, q[i], others_d) + phi(beta, d[i], others_q) + phi(beta, d[i], others_d)
    return l_pos + l_neg / (beta * batch)


def _ms_printed(h, labels, alpha, beta):
    """Eq. 9 per anchor: 1/alpha log(1 + sum_pos e^{-alpha S}) + 1/beta log(1 + sum_neg e^{beta S})."""
    total = 0.0
    for i in range(len(h)):
        pos = [float(h[i] @ h[j]) for j in range(len(h)) if j != i and labels[j] == labels[i]]
        neg = [float(h[i] @ h[j]) for j in range(len(h)) if labels[j] != labels[i]]
        total += math.log(1 + sum(math.exp(-alpha * p) for p in pos)) / alpha
        total += math.log(1 + sum(math.exp(beta * n) for n in neg)) / beta
    return total / len(h)


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 50.0), (2.0, 10.0)])
def test_pair_loss_matches_the_printed_equations(alpha, beta):
    q, d = _unit(6, 16, seed=1), _unit(6, 16, seed=2)
    assert float(pair_loss(q, d, alpha, beta)) == pytest.approx(_pair_loss_printed(q, d, alpha, beta), rel=1e-9)


def test_mum_loss_is_the_multi_similarity_loss_of_eq_9():
    h = _unit(12, 8, seed=3)
    labels = torch.arange(3).repeat_interleave(4)
    assert float(mum_loss(h, labels, 1.0, 50.0)) == pytest.approx(_ms_printed(h, labels, 1.0, 50.0), abs=1e-6)


def test_loss_inputs_are_checked():
    with pytest.raises(ValueError):
        pair_loss(_unit(4, 8), _unit(5, 8))
    with pytest.raises(ValueError):
        total_loss(None, None)


def test_mum_sampler_draws_clusters_in_proportion_to_their_queries():
    rng = np.random.default_rng(0)
    centres = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(0)), dim=1).numpy()
    database = np.concatenate([c + 0.01 * rng.standard_normal((50, 16)) for c in centres]).astype(np.float32)
    counts = [5, 10, 25, 60]  # training queries near each centre
    queries = np.concatenate([c + 0.01 * rng.standard_normal((n, 16)) for c, n in zip(centres, counts)]).astype(np.float32)
    sampler = cluster_database(database, queries, k=4, sampling="mum")
    assert sorted(sampler.query_counts.tolist()) == counts
    draws = np.bincount([sampler.sample_cluster(rng) for _ in range(20000)], minlength=4) / 20000
    assert np.allclose(draws, sampler.query_counts / sampler.query_counts.sum(), atol=0.015)
    uniform = cluster_database(database, queries, k=4, sampling="uniform")
    assert np.allclose(uniform.probabilities, 0.25)


def test_a_training_step_lowers_the_loss_on_a_fixed_batch():
    import model

    torch.manual_seed(0)
    net = model.create_model("earthloc-nano")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    queries = torch.rand(6, 3, 128, 128, generator=generator)
    tiles = (queries + 0.1 * torch.rand(6, 3, 128, 128, generator=generator)).clamp(0, 1)
    losses = []
    for _ in range(4):
        loss = pair_loss(net(queries), net(tiles))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    from index.world import build_world

    root = tmp_path_factory.mktemp("train-world")
    build_world(root, zooms=[3, 4], n_queries=16, seed=1)
    return root


def test_training_job_publishes_a_model_version(sqlite_settings, tiny_world):
    from service import artifacts, crud
    from service.db import session_scope
    from worker.queue import enqueue

    config = {"world_dir": str(tiny_world), "iterations": 3, "batch_pairs": 2, "batch_quads": 2,
              "clusters": 4, "mining_every": 2, "checkpoint_every": 2, "name": "tiny", "activate": True}
    job_id = enqueue(sqlite_settings, "train", config, queue="train")
    deadline = time.monotonic() + 240
    while True:
        with session_scope(sqlite_settings.resolved_database_url) as session:
            job = crud.get_job(session, job_id)
            if job.status in ("finished", "failed") or time.monotonic() > deadline:
                break
        time.sleep(0.5)
    assert job.status == "finished", job.error
    assert job.result["metrics"]["iterations"] == 3 and "recall@1" in job.result["metrics"]["validation"]
    version, path = artifacts.active_artifact(sqlite_settings, "retrieval")
    assert version.name == "tiny" and version.architecture == "earthloc-nano" and path.is_file()
    assert (sqlite_settings.data_dir / "train" / job_id / "checkpoint.pt").is_file()


def test_a_killed_run_resumes_from_its_checkpoint(tiny_world, tmp_path, caplog):
    """A run stopped after its checkpoint at iteration 2 (as a killed worker would be) goes on
    from there: no iteration is trained twice, and the run ends where an unbroken one would."""
    import json
    import logging

    from model.training import TrainConfig, train

    settings = {"world_dir": str(tiny_world), "batch_pairs": 2, "batch_quads": 2, "clusters": 4,
                "mining_every": 2, "checkpoint_every": 2, "name": "resume"}
    train(TrainConfig.from_dict(settings | {"iterations": 2}), tmp_path)
    with caplog.at_level(logging.INFO, logger="model.training"):
        metrics = train(TrainConfig.from_dict(settings | {"iterations": 4}), tmp_path)
    assert "resumed at iteration 2" in caplog.text
    logged = [json.loads(line)["iteration"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4] and metrics["iterations"] == 4
    assert (tmp_path / "model.pt").is_file()


def test_post_train_checks_the_config(api_client):
    answer = api_client.post("/train", json={"losses": "triplet"})
    assert answer.status_code == 422 and "losses" in answer.text
    answer = api_client.post("/train", json={"learning_rate": 1})
    assert answer.status_code == 422 and "unknown training option" in answer.text
