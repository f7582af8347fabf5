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
    from world.build import build_world

    root = tmp_path_factory.mktemp("train-world")
    build_world(root, zooms=[3, 4], n_queries=16, seed=1)
    return root


def test_training_photos_can_come_from_a_larger_world_of_the_same_seed_never_from_held_out_ground(
        tiny_world, tmp_path, sqlite_settings):
    import csv
    import shutil

    from model.training import training_photos
    from service.train_request import TrainRequestInvalid, parse_train_request
    from world.build import build_world
    from world.catalogue import read_photos

    larger = tmp_path / "larger"
    build_world(larger, zooms=[3, 4], n_queries=40, seed=1)  # the same seed, more photos
    own = [p.photo_id for p in training_photos(tiny_world)]
    more = [p.photo_id for p in training_photos(tiny_world, larger)]
    assert set(own) < set(more), (own, more)  # the first photos are the same, and there are more

    # A "training" world whose photos lie on the validation ground is refused, not used.
    leaking = tmp_path / "leaking"
    leaking.mkdir()
    shutil.copy(tiny_world / "world.json", leaking / "world.json")
    with (tiny_world / "queries.csv").open(newline="") as source, (leaking / "queries.csv").open("w", newline="") as out:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows({**row, "SPLIT": "train" if row["SPLIT"] == "val" else row["SPLIT"]} for row in reader)
    assert len(read_photos(leaking, split="train")) > len(own)
    with pytest.raises(ValueError, match="overlap validation or test footprints"):
        training_photos(tiny_world, leaking)

    # POST /train refuses it before anything is queued, naming the field, never the server's paths.
    data_dir = sqlite_settings.data_dir
    shutil.copytree(tiny_world, data_dir / "world")
    shutil.copytree(leaking, data_dir / "leaking")
    body = {"world_dir": "world", "train_world_dir": "leaking", "iterations": 1}
    with pytest.raises(TrainRequestInvalid) as refused:
        parse_train_request(sqlite_settings, body)
    [problem] = refused.value.problems
    assert problem["loc"] == ["body", "train_world_dir"] and "overlap validation or test" in problem["msg"], problem
    assert str(data_dir.resolve()) not in problem["msg"]
    shutil.copytree(larger, data_dir / "larger")
    assert parse_train_request(sqlite_settings, body | {"train_world_dir": "larger"}).train_world_dir == \
        str((data_dir / "larger").resolve())


def test_training_job_publishes_a_model_version(sqlite_settings, tiny_world):
    from service import artifacts, crud
    from service.db import session_scope
    from service.jobs import enqueue

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


# --- fine-tuning the ImageNet trunk (astroloc-lite) --------------------------------------------------


def test_a_fine_tuning_step_of_the_pretrained_lite_model_lowers_the_loss_and_keeps_what_is_frozen():
    import model
    from model.training import freeze_stages, train_mode

    torch.manual_seed(0)
    net = model.create_model("astroloc-lite", pretrained=True)
    frozen = freeze_stages(net.backbone, 3)
    stem_before = net.backbone.conv_stem.weight.clone()
    bn_before = net.backbone.blocks[4][0].bn1.running_mean.clone()
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    queries = torch.rand(6, 3, 128, 128, generator=generator) * 2 - 1
    tiles = (queries + 0.2 * torch.rand(6, 3, 128, 128, generator=generator)).clamp(-1, 1)
    losses = []
    for _ in range(4):
        train_mode(net, frozen, freeze_bn=True)  # as the training loop does
        loss = pair_loss(net(queries), net(tiles))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert len(frozen) == 5 and torch.equal(net.backbone.conv_stem.weight, stem_before)
    assert torch.equal(net.backbone.blocks[4][0].bn1.running_mean, bn_before)
    assert not torch.equal(net.backbone.blocks[4][0].conv_pw.weight, model.create_model(
        "astroloc-lite", pretrained=True).backbone.blocks[4][0].conv_pw.weight)  # the rest learnt


def test_learning_rates_warm_the_head_first_and_the_trunk_lower():
    from model.training import TrainConfig, lr_factors

    config = TrainConfig(iterations=100, lr_warmup=10, head_warmup=20, trunk_lr_scale=0.1, schedule="cosine")
    assert lr_factors(0, config) == (pytest.approx(0.1), 0.0)  # head warming up, trunk frozen
    assert lr_factors(19, config)[1] == 0.0
    assert lr_factors(20, config)[1] == pytest.approx(0.1 * 0.1)  # then warms up, at a tenth
    head, trunk = lr_factors(30, config)
    assert 0.8 < head < 1.0 and trunk == pytest.approx(0.1 * head)  # then follows the head's cosine
    assert lr_factors(99, config)[0] == pytest.approx(0.1, abs=0.01)  # cosine down to lr / 10
    constant = TrainConfig(iterations=100, schedule="constant")
    assert lr_factors(50, constant) == (1.0, 1.0)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig.from_dict({"schedule": "step"})


def test_photo_augmentation_keeps_size_and_none_changes_nothing():
    from model.augment import Augmentation, augment

    rng = np.random.default_rng(0)
    images = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(4)]
    torch.manual_seed(0)
    out = augment(images, Augmentation(probability=1.0), rng)
    assert all(o.shape == (64, 64, 3) and o.dtype == np.uint8 for o in out)
    assert all(not np.array_equal(o, i) for o, i in zip(out, images))
    assert all(np.array_equal(o, i) for o, i in zip(augment(images, Augmentation.none(), rng), images))


def test_cloud_augmentation_covers_what_it_draws_and_whitens_the_image():
    from dataclasses import replace

    from model.augment import Augmentation, augment, cloud_opacity

    rng = np.random.default_rng(0)
    for cover in (0.1, 0.3, 0.5):
        opacity = cloud_opacity(128, cover, rng)
        assert opacity.shape == (128, 128) and 0.0 <= opacity.min() and opacity.max() <= 1.0
        assert abs(float((opacity > 0.5).mean()) - cover) < 0.02
    assert not cloud_opacity(64, 0.0, rng).any()
    # Dark ground under clouds of up to 50% cover: some images get bright cloud, none any other change.
    dark = [np.full((64, 64, 3), 40, np.uint8)] * 20
    cloudy = augment(dark, replace(Augmentation.none(), clouds=0.5, probability=1.0), rng)
    bright = [float((c > 150).mean()) for c in cloudy]
    assert 5 <= sum(b > 0.01 for b in bright) <= 19 and max(bright) < 0.6
    assert all(np.array_equal(c[c.max(axis=2) <= 40], d[c.max(axis=2) <= 40]) for c, d in zip(cloudy, dark))


def test_fine_tuning_run_selects_on_validation_and_reports_in_region_recall(tiny_world, tmp_path):
    import json

    import model
    from model.training import TrainConfig, train

    config = TrainConfig.from_dict({
        "world_dir": str(tiny_world), "arch": "astroloc-lite", "pretrained": True, "iterations": 2,
        "batch_pairs": 2, "batch_quads": 2, "clusters": 4, "mining_every": 2, "checkpoint_every": 1,
        "validate_every": 1, "frozen_stages": 2, "freeze_bn": True, "head_warmup": 1, "trunk_lr_scale": 0.1,
        "schedule": "cosine", "augment": "photo", "name": "lite",
    })
    metrics = train(config, tmp_path)
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in logged if "validation" in e] == [0, 1, 2]  # the init competes
    assert logged[1]["lr_trunk"] == 0.0 and logged[1]["lr_head"] > 0  # the head warms up alone
    assert metrics["selected_iteration"] in (0, 1, 2)
    for split in ("validation", "test"):
        assert {"region_recall@1", "region_recall@10", "recall@100"} <= set(metrics[split])
        assert metrics[split]["region_tiles_mean"] < len(list(range(64 + 256)))  # a region, not the world
    assert metrics["peak_memory_mb"] > 0 and metrics["train_seconds"] > 0
    selected = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(v, torch.load(tmp_path / "best.pt", weights_only=True)[k]) for k, v in selected.items())
    model.create_model("astroloc-lite", weights=tmp_path / "model.pt")  # loads strictly


def test_a_cached_prefix_run_gives_the_full_networks_descriptors_and_resumes(tiny_world, tmp_path):
    """frozen_stages + freeze_bn + cache_prefix: the prefix runs once (onnxruntime), the rest
    trains on its features, and the model it saves describes images as the cache said."""
    import model
    from model.evaluation import RetrievalSet
    from model.training import CachedPrefix, TrainConfig, load_world, train

    settings = {
        "world_dir": str(tiny_world), "arch": "astroloc-lite", "pretrained": True, "batch_pairs": 2,
        "batch_quads": 2, "clusters": 4, "mining_every": 2, "checkpoint_every": 1, "validate_every": 2,
        "frozen_stages": 4, "freeze_bn": True, "cache_prefix": True, "augment": "photo", "lr": 1e-3,
        "evaluation_rotate": "query", "name": "cached",
    }
    train(TrainConfig.from_dict(settings | {"iterations": 2}), tmp_path)
    assert (tmp_path / "prefix_cache.npz").is_file()
    metrics = train(TrainConfig.from_dict(settings | {"iterations": 3}), tmp_path)  # resumes, cache reused
    assert metrics["iterations"] == 3 and metrics["test"]["rotate"] == "query"
    net = model.create_model("astroloc-lite", weights=tmp_path / "model.pt")
    assert torch.equal(net.backbone.conv_stem.weight, model.create_model("astroloc-lite", pretrained=True).backbone.conv_stem.weight)
    config = TrainConfig.from_dict(settings | {"iterations": 3})
    data = load_world(tiny_world, 128, 0.2)
    cache = CachedPrefix(net, data, config, None, tmp_path, None)
    expected = model.describe(net, list(data.tile_images[:3]))
    np.testing.assert_allclose(cache.database(net)[:3], expected, atol=2e-3)  # float16 features
    with pytest.raises(ValueError, match="cache_prefix needs"):
        TrainConfig.from_dict(settings | {"freeze_bn": False})
    assert isinstance(data.held_out(tiny_world, "val"), RetrievalSet)


# --- learned whitening: a head that starts from the pooled descriptor, not a random projection -----


def nearest_is_right(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows of ``a`` whose nearest row of ``b`` (cosine) is the same row."""
    a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(a))))


def test_learned_whitening_brings_matching_pairs_together_and_keeps_places_apart():
    from model.whitening import learned_whitening

    rng = np.random.default_rng(0)
    places = rng.normal(size=(300, 32))
    # Two views of each place differ mostly along 8 "nuisance" directions (colour, haze, ...).
    nuisance = np.zeros((300, 32))
    nuisance[:, :8] = rng.normal(scale=5.0, size=(300, 8))
    queries, positives = places + nuisance, places + 0.1 * rng.normal(size=(300, 32))
    weight, bias = learned_whitening(queries, positives, dim=16)
    assert weight.shape == (16, 32) and bias.shape == (16,)

    raw = nearest_is_right(queries, positives)
    whitened = nearest_is_right(queries @ weight.T + bias, positives @ weight.T + bias)
    assert raw < 0.5 and whitened > 0.95, (raw, whitened)
    with pytest.raises(ValueError, match="dim must lie"):
        learned_whitening(queries, positives, dim=33)


def test_pca_whitening_needs_no_labels_to_temper_bursty_directions():
    """Fitted on database descriptors alone: directions where every image varies a lot (bursty
    nuisance shared by no place) are tempered, so nearest neighbours follow the places."""
    from model.whitening import pca_whitening

    rng = np.random.default_rng(0)
    places = rng.normal(scale=0.3, size=(400, 32))

    def view() -> np.ndarray:  # a place seen once: its signature + a large nuisance on 4 directions
        nuisance = np.zeros((400, 36))
        nuisance[:, 32:] = rng.normal(scale=3.0, size=(400, 4))
        return np.pad(places, ((0, 0), (0, 4))) + nuisance + 0.05 * rng.normal(size=(400, 36))

    database, queries = view(), view()

    raw = nearest_is_right(queries, database)
    accuracy = {}
    for power in (0.25, 0.5):
        weight, bias = pca_whitening(database, dim=36, power=power)  # the database only: no pairs
        assert weight.shape == (36, 36) and bias.shape == (36,)
        accuracy[power] = nearest_is_right(queries @ weight.T + bias, database @ weight.T + bias)
    assert raw < 0.5 and accuracy[0.25] > raw + 0.2 and accuracy[0.5] > 0.9, (raw, accuracy)
    with pytest.raises(ValueError, match="power must lie"):
        pca_whitening(database, dim=8, power=0.7)
    with pytest.raises(ValueError, match="dim must lie"):
        pca_whitening(database[:10], dim=16)


@pytest.mark.parametrize("head_init", ["whitening", "pca-whitening"])
def test_a_whitening_initialised_run_starts_at_the_zero_shot_recall(tiny_world, tmp_path, head_init):
    """astroloc-lite-gem with a closed-form head: iteration 0 (the initialisation, before any
    gradient) is already a fitted 512-d head on the ImageNet trunk's GeM descriptor."""
    import json

    import model
    from model.training import TrainConfig, train

    config = TrainConfig.from_dict({
        "world_dir": str(tiny_world), "arch": "astroloc-lite-gem", "pretrained": True, "iterations": 1,
        "batch_pairs": 2, "batch_quads": 2, "clusters": 4, "mining_every": 2, "checkpoint_every": 1,
        "validate_every": 1, "frozen_stages": 5, "freeze_bn": True, "cache_prefix": True,
        "head_init": head_init, "lr": 1e-4, "evaluation_rotate": "query", "name": "whitened",
        "t_iou": 0.01,  # the tiny world's coarse tiles: enough photo-tile pairs to fit on
    })
    train(config, tmp_path)
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged[0]["iteration"] == 0 and "validation" in logged[0]
    net = model.create_model("astroloc-lite-gem", weights=tmp_path / "model.pt")
    fresh = model.create_model("astroloc-lite-gem")
    assert not torch.allclose(net.projection.weight, fresh.projection.weight)  # fitted, not random
    assert net.config.descriptor_dim == 512
    with pytest.raises(ValueError, match="head_init"):
        TrainConfig.from_dict({"head_init": "pca"})


def test_learned_whitening_can_add_every_tile_against_a_cloudy_copy(tiny_world, tmp_path):
    """``whitening_tile_pairs``: the head is fitted on the training pairs and on each database
    tile against an augmented (cloudy) copy, and differs from the head fitted without them."""
    import model
    from model.training import TrainConfig, train

    heads = {}
    for extra in (False, True):
        config = TrainConfig.from_dict({
            "world_dir": str(tiny_world), "arch": "astroloc-lite-gem", "pretrained": True, "iterations": 0,
            "frozen_stages": 5, "freeze_bn": True, "cache_prefix": True, "head_init": "whitening",
            "augment": "photo-clouds", "whitening_tile_pairs": extra, "evaluation_rotate": "query",
            "name": f"tile-pairs-{extra}", "t_iou": 0.01,
        })
        train(config, tmp_path / str(extra))
        heads[extra] = model.create_model("astroloc-lite-gem", weights=tmp_path / str(extra) / "model.pt").projection.weight
    assert not torch.allclose(heads[False], heads[True])


def test_the_ablation_report_names_every_head_initialisation():
    from model.training import HEAD_INIT_WORDS, HEAD_INITS

    # The report once called a PCA-whitening head "initialised at random": one wording per choice.
    assert set(HEAD_INIT_WORDS) == set(HEAD_INITS)
    assert len(set(HEAD_INIT_WORDS.values())) == len(HEAD_INITS)


def test_tile_pairs_join_the_pair_loss_on_ground_no_other_pair_covers(tiny_world, tmp_path):
    """``tile_pairs``: each batch also pairs augmented copies of database tiles with the clean
    tiles, on ground that overlaps neither each other nor the photo pairs; cached or not, the
    run trains on them (the head ends elsewhere than without them) and the option is checked."""
    import model
    from model.training import TrainConfig, load_world, pair_batch, tile_pair_batch, train

    data = load_world(tiny_world, 128, 0.2)
    rng = np.random.default_rng(0)
    q_idx, t_idx = pair_batch(data, rng, 2)
    tiles = tile_pair_batch(data, rng, 4, q_idx, t_idx)
    assert len(tiles) >= 1 and len(set(tiles.tolist())) == len(tiles)
    photo_ground = [data.train_polygons[q].union(data.tile_polygons[t]) for q, t in zip(q_idx, t_idx)]
    for n, t in enumerate(tiles):
        assert not any(data.tile_polygons[t].intersects(area) for area in photo_ground)
        assert not any(data.tile_polygons[t].intersects(data.tile_polygons[u]) for u in tiles[n + 1:])

    base = {"world_dir": str(tiny_world), "arch": "astroloc-lite-gem", "pretrained": True, "iterations": 2,
            "losses": "pair", "batch_pairs": 2, "frozen_stages": 5, "freeze_bn": True, "augment": "photo-clouds",
            "lr": 1e-3, "evaluation_rotate": "query", "t_iou": 0.01, "test": False, "name": "tile-pairs"}
    heads = {}
    for cached in (False, True):
        for pairs in (0, 3):
            run = tmp_path / f"cached-{cached}-pairs-{pairs}"
            train(TrainConfig.from_dict(base | {"cache_prefix": cached, "tile_pairs": pairs}), run)
            heads[cached, pairs] = model.create_model("astroloc-lite-gem", weights=run / "model.pt").projection.weight
        assert not torch.allclose(heads[cached, 0], heads[cached, 3]), cached
    with pytest.raises(ValueError, match="tile_pairs"):
        TrainConfig.from_dict(base | {"losses": "ms", "tile_pairs": 2})


def test_regional_pair_batches_draw_neighbours_of_one_anchor_first(tiny_world):
    """``pair_region_km``: every training photo is tried once, those near a random anchor first,
    so a batch's pairs (still never overlapping) come from one region while it has enough."""
    from model.training import TrainConfig, load_world, pair_batch, photo_centres_deg, regional_order

    rng = np.random.default_rng(3)
    spread = rng.uniform(-3, 3, (2, 20, 2))  # two clusters of 20 photos, 90 deg of longitude apart
    centres = np.concatenate([spread[0] + (10.0, 0.0), spread[1] + (10.0, 90.0)])
    for _ in range(5):
        order = regional_order(centres, rng, radius_km=1500.0)
        assert sorted(order.tolist()) == list(range(40))
        first, rest = order[:20], order[20:]
        assert len({int(q) // 20 for q in first}) == 1 and len({int(q) // 20 for q in rest}) == 1
        assert (first // 20 != rest // 20).all()

    data = load_world(tiny_world, 128, 0.2)
    order = regional_order(photo_centres_deg(data), rng, 2250.0)
    q_idx, t_idx = pair_batch(data, rng, 2, order)
    assert q_idx[0] == order[0] and len(q_idx) == len(t_idx) >= 1
    with pytest.raises(ValueError, match="pair_region_km"):
        TrainConfig.from_dict({"world_dir": str(tiny_world), "pair_region_km": -1})
