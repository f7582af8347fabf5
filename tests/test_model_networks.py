"""Architectures: parameter counts of the published models, parts, input sizes."""

from __future__ import annotations

import io

import pytest
import timm
import torch

import model
from model.aggregators import SALAD, MixVPR, log_optimal_transport
from model.backbones import Features
from model.network import count_parameters

# AstroLoc paper (Berton et al., ICCV 2025) Tab. 4, +-2%.
PUBLISHED_PARAMETERS = {"astroloc": 105e6, "astroloc-tiny": 27.2e6, "earthloc": 27.6e6}


@pytest.mark.parametrize("arch", sorted(PUBLISHED_PARAMETERS))
def test_published_parameter_counts(arch):
    net = model.create_model(arch)
    assert abs(count_parameters(net) / PUBLISHED_PARAMETERS[arch] - 1) <= 0.02


@pytest.mark.parametrize(
    ("arch", "input_size", "dim"),
    [
        ("astroloc", 224, 2048),
        ("astroloc-tiny", 224, 512),
        ("earthloc", 320, 4096),
        ("astroloc-nano", 112, 256),
    ],
)
def test_config_and_unit_norm_output(arch, input_size, dim):
    net = model.create_model(arch)
    assert (net.config.arch, net.config.input_size, net.config.descriptor_dim) == (arch, input_size, dim)
    with torch.no_grad():
        out = net(torch.randn(2, 3, input_size, input_size))
    assert out.shape == (2, dim)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    assert not net.training  # create_model returns an inference-ready model


def test_every_registered_architecture_is_listed_and_unknown_is_refused():
    assert {"astroloc", "astroloc-tiny", "earthloc", "astroloc-nano"} <= set(model.list_models())
    with pytest.raises(ValueError, match="unknown architecture 'astroloc-huge'.*astroloc-nano"):
        model.create_model("astroloc-huge")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        model.register_model("astroloc")(lambda: None)


def test_nano_checkpoint_fits_the_repository_budget():
    buffer = io.BytesIO()
    torch.save(model.create_model("astroloc-nano").state_dict(), buffer)
    assert buffer.tell() <= 25 * 1024 * 1024


def test_vit_models_take_any_multiple_of_14():
    net = model.create_model("astroloc-tiny", input_size=322)
    assert net.config.input_size == 322
    with torch.no_grad():
        out = net(torch.randn(1, 3, 322, 322))
    assert out.shape == (1, 512)
    with pytest.raises(ValueError, match="multiple of 14"):
        model.create_model("astroloc-tiny", input_size=230)
    # 8x8 = 64 patches for 64 clusters: optimal transport would give the dustbin no mass.
    with pytest.raises(ValueError, match="too few patches"):
        model.create_model("astroloc-tiny", input_size=112)


def test_earthloc_input_size_is_fixed_by_its_mixer_weights():
    with pytest.raises(ValueError, match="20x20 feature grid"):
        model.create_model("earthloc", input_size=224)


def test_dinov2_backbone_matches_timm_forward_at_the_pretraining_grid():
    """Our re-assembled forward (hub DINOv2 order of operations) equals timm's own."""
    net = model.create_model("astroloc-nano")
    reference = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, num_classes=0, dynamic_img_size=True,
        img_size=112, embed_dim=192, depth=6, num_heads=3,
    ).eval()
    reference.load_state_dict(net.backbone.state_dict())
    images = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        tokens = reference.forward_features(images)
        features = net.backbone(images)
    torch.testing.assert_close(features.token, tokens[:, 0])
    torch.testing.assert_close(features.grid.flatten(2).transpose(1, 2), tokens[:, 1:])


def test_pos_embed_interpolation_is_the_torch_hub_one():
    """Bicubic with scale factor (n + 0.1) / M, as DINOv2's interpolate_pos_encoding: a plain
    resize to n x n gives different numbers, so published weights would drift."""
    backbone = model.create_model("astroloc-tiny").backbone
    resampled = backbone.interpolated_pos_embed(16, 16)
    assert resampled.shape == (1, 1 + 16 * 16, 384)
    torch.testing.assert_close(resampled[:, 0], backbone.pos_embed[:, 0])
    stored = backbone.pos_embed[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    plain = torch.nn.functional.interpolate(stored, size=(16, 16), mode="bicubic")
    assert (resampled[:, 1:] - plain.flatten(2).transpose(1, 2)).abs().max() > 1e-3
    assert backbone.interpolated_pos_embed(37, 37) is backbone.pos_embed


def _reference_salad_aggregation(salad: SALAD, features: Features) -> torch.Tensor:
    """SALAD's forward as written in serizba/salad (materialised repeats, then a sum)."""
    local = salad.cluster_features(features.grid).flatten(2)
    scores = salad.score(features.grid).flatten(2)
    token = salad.token_features(features.token)
    p = torch.exp(log_optimal_transport(scores, salad.dust_bin, 3))[:, :-1, :]
    p = p.unsqueeze(1).repeat(1, salad.cluster_dim, 1, 1)
    local = local.unsqueeze(2).repeat(1, 1, salad.num_clusters, 1)
    out = torch.cat(
        [
            torch.nn.functional.normalize(token, p=2, dim=-1),
            torch.nn.functional.normalize((local * p).sum(dim=-1), p=2, dim=1).flatten(1),
        ],
        dim=-1,
    )
    return torch.nn.functional.normalize(out, p=2, dim=-1)


def test_salad_matches_the_reference_formulation():
    salad = SALAD(num_channels=48, num_clusters=8, cluster_dim=16, token_dim=32, mlp_dim=64).eval()
    features = Features(grid=torch.randn(3, 48, 5, 6), token=torch.randn(3, 48))
    with torch.no_grad():
        out = salad(features)
        expected = _reference_salad_aggregation(salad, features)
    assert out.shape == (3, 8 * 16 + 32)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_sinkhorn_assignment_gives_each_patch_unit_mass():
    scores = torch.randn(2, 4, 10)
    plan = torch.exp(log_optimal_transport(scores, torch.tensor(1.0), iterations=50))
    # Columns: each of the n features is fully assigned (clusters + dustbin).
    torch.testing.assert_close(plan.sum(dim=1), torch.ones(2, 10), atol=1e-4, rtol=0)
    # Rows: each cluster receives mass 1, the dustbin n - m (after scaling by m + n).
    torch.testing.assert_close(plan.sum(dim=2), torch.tensor([[1.0] * 4 + [6.0]] * 2), atol=1e-4, rtol=0)


def test_mixvpr_output_size_and_salad_refuses_tokenless_features():
    mixvpr = MixVPR(in_channels=32, in_h=4, in_w=4, out_channels=16, mix_depth=2, out_rows=3)
    out = mixvpr(Features(grid=torch.randn(2, 32, 4, 4), token=None))
    assert out.shape == (2, 48)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="global token"):
        SALAD(num_channels=32, num_clusters=4)(Features(grid=torch.randn(1, 32, 4, 4), token=None))


@pytest.mark.parametrize(("arch", "dim"), [("astroloc-lite", 512), ("astroloc-lite-salad", 512), ("astroloc-lite-gem", 512),
                                          ("astroloc-lite-gem2s", 512), ("lite0-gem", 1280)])
def test_lite_architectures_output_unit_descriptors_and_fit_the_checkpoint_budget(arch, dim):
    net = model.create_model(arch)
    assert (net.config.input_size, net.config.descriptor_dim) == (128, dim)
    assert net.config.mean == net.config.std == (0.5, 0.5, 0.5)  # TF EfficientNet-Lite inputs in [-1, 1]
    with torch.no_grad():
        out = net(torch.randn(2, 3, 128, 128))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    assert buffer.tell() <= 25 * 1024 * 1024


def test_lite_trunk_crops_after_stage_5_at_stride_16():
    from model.backbones import EfficientNetLiteTrunk

    trunk = EfficientNetLiteTrunk("tf_efficientnet_lite0", stages=5)
    features = trunk(torch.randn(1, 3, 128, 128))
    assert features.grid.shape == (1, 112, 8, 8) and features.token.shape == (1, 112)
    assert trunk.grid_size(128) == 8 and "blocks.5." in trunk.cropped_prefixes
    assert not any(k.startswith(("blocks.5", "conv_head")) for k in trunk.state_dict())
    with pytest.raises(ValueError, match="keep all stages"):
        EfficientNetLiteTrunk("tf_efficientnet_lite0", stages=5, head=True)


def test_two_scale_gem_pools_the_tapped_stage_beside_the_head_whatever_prefix_was_cached():
    from model.aggregators import GeM, TwoScaleGeM

    net = model.create_model("astroloc-lite-gem2s", pretrained=True)
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        features = net.backbone(images)
        # The tap is stage 5's own output: 112 channels on the stride-16 grid.
        assert features.mid.shape == (2, 112, 8, 8) and features.grid.shape == (2, 1280, 4, 4)
        stage5 = net.backbone.prefix(images, 5)
        torch.testing.assert_close(features.mid, stage5)
        pooled = net.aggregator(features)
        expected = torch.cat([GeM(1280)(features), GeM(112)(Features(grid=stage5, token=None))], dim=1)
        torch.testing.assert_close(pooled, torch.nn.functional.normalize(expected, dim=1))
        # A run that freezes and caches the first stages sees the same descriptor (training.py).
        for cached in (0, 3, 5):
            torch.testing.assert_close(net.forward_from(net.backbone.prefix(images, cached), cached), net(images))
    with pytest.raises(ValueError, match="inside a prefix"):
        net.backbone.suffix(net.backbone.prefix(images, 6), 6)
    with pytest.raises(ValueError, match="mid-level grid"):
        TwoScaleGeM(32, 16)(Features(grid=torch.randn(1, 32, 4, 4), token=None))
