"""Registered architectures, created by name like ``timm.create_model``.

    >>> net = create_model("astroloc-nano")                 # random init
    >>> net = create_model("astroloc", weights="astroloc.pth")  # published checkpoint

Published architectures (their weights exist outside this machine; names and shapes match):

    name            parts                                                 input  dim   params
    astroloc        DINOv2 ViT-B/14 + SALAD 64x128+256 + linear 8448->2048  224  2048  105.3M
    astroloc-tiny   DINOv2 ViT-S/14 + SALAD 64x128+256 + linear 8448->512   224   512   27.2M
    earthloc        ResNet-50 to layer3 + MixVPR 4x1024 + linear 4096->4096 320  4096   27.7M

Small CPU configuration (same classes, smaller sizes): ``astroloc-nano``, 3.3M parameters,
112 px input, 256-d output (see :func:`astroloc_nano`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from model.aggregators import SALAD, MixVPR
from model.backbones import DinoV2Backbone, ResNetTrunk
from model.config import ModelConfig
from model.network import RetrievalNet

ArchitectureBuilder = Callable[[], RetrievalNet]
_REGISTRY: dict[str, ArchitectureBuilder] = {}


def register_model(name: str) -> Callable[[ArchitectureBuilder], ArchitectureBuilder]:
    """Decorator: make a zero-argument builder available to :func:`create_model` under ``name``."""

    def register(builder: ArchitectureBuilder) -> ArchitectureBuilder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return register


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def create_model(
    name: str,
    weights: str | Path | Mapping[str, torch.Tensor] | None = None,
    *,
    input_size: int | None = None,
) -> RetrievalNet:
    """Build a registered architecture in eval mode on the CPU.

    Args:
        name: one of :func:`list_models`.
        weights: None (random initialisation, nothing downloaded), a state_dict, or a file
            holding one; published layouts are accepted, see :func:`model.weights.load_weights`.
        input_size: square input side other than the architecture's default (ViT models: any
            multiple of 14 with more patches than SALAD clusters).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; registered: {', '.join(list_models())}")
    network = _REGISTRY[name]()
    if weights is not None:
        from model.weights import load_weights

        load_weights(network, weights)
    if input_size is not None:
        network.with_input_size(input_size)
    return network.eval()


def dinov2_salad(
    arch: str,
    timm_name: str,
    descriptor_dim: int,
    input_size: int = 224,
    timm_overrides: Mapping[str, object] | None = None,
    **salad_sizes: int,
) -> RetrievalNet:
    """DINOv2 + SALAD + linear projection: the AstroLoc family (same layout as MegaLoc)."""
    backbone = DinoV2Backbone(timm_name, **(timm_overrides or {}))
    aggregator = SALAD(num_channels=backbone.num_channels, **salad_sizes)
    config = ModelConfig(arch=arch, input_size=input_size, descriptor_dim=descriptor_dim)
    return RetrievalNet(config, backbone, aggregator, nn.Linear(aggregator.output_dim, descriptor_dim))


@register_model("astroloc")
def astroloc() -> RetrievalNet:
    """AstroLoc (Berton, Stoken, Masone, "AstroLoc: Robust Space to Ground Image Localizer",
    ICCV 2025): DINOv2 ViT-B/14, SALAD (64 clusters x 128 + 256 = 8448), linear 8448 -> 2048.
    105.3M parameters (paper Tab. 4: 105M)."""
    return dinov2_salad("astroloc", "vit_base_patch14_dinov2", descriptor_dim=2048)


@register_model("astroloc-tiny")
def astroloc_tiny() -> RetrievalNet:
    """AstroLoc with DINOv2 ViT-S/14 and a 512-d output (AstroLoc Tab. 4: 27.2M parameters)."""
    return dinov2_salad("astroloc-tiny", "vit_small_patch14_dinov2", descriptor_dim=512)


@register_model("earthloc")
def earthloc() -> RetrievalNet:
    """EarthLoc (Berton, Stoken, Caputo, Masone, "EarthLoc: Astronaut Photography Localization by
    Indexing Earth from Space", CVPR 2024): ResNet-50 cropped after layer3, MixVPR (4 mixers over
    the 20x20 grid, 1024 channels x 4 rows), linear 4096 -> 4096; 320 x 320 input. 27.7M
    parameters (AstroLoc Tab. 4: 27.6M)."""
    input_size = 320
    backbone = ResNetTrunk("resnet50")
    grid = backbone.grid_size(input_size)
    aggregator = MixVPR(
        in_channels=backbone.num_channels, in_h=grid, in_w=grid,
        out_channels=1024, mix_depth=4, mlp_ratio=1, out_rows=4,
    )
    config = ModelConfig(arch="earthloc", input_size=input_size, descriptor_dim=4096)
    return RetrievalNet(config, backbone, aggregator, nn.Linear(aggregator.output_dim, 4096))


@register_model("astroloc-nano")
def astroloc_nano() -> RetrievalNet:
    """AstroLoc's code path at CPU scale, for the demo and the tests: 3.3M parameters.

    Why these sizes: a 6-block, 192-wide ViT/14 (3 heads of 64) on 112 x 112 inputs, the middle
    of the 64-128 px tiles we train on, giving 8 x 8 patches; SALAD with 32 clusters x 32 + a
    64-d token (optimal transport needs fewer clusters than patches: 32 of 64 leaves the dustbin
    a third of the mass), linear 1088 -> 256. About 0.36 GFLOP per image: training runs at
    40-100 images/s on 2 shared CPU cores, so a few thousand tiles x 10 epochs take 5-15
    minutes; inference ~300 images/s. The float32 checkpoint is 13 MB (budget: 25 MB).
    """
    return dinov2_salad(
        "astroloc-nano",
        "vit_small_patch14_dinov2",
        descriptor_dim=256,
        input_size=112,
        timm_overrides={"img_size": 112, "embed_dim": 192, "depth": 6, "num_heads": 3},
        num_clusters=32, cluster_dim=32, token_dim=64, mlp_dim=256,
    )


@register_model("earthloc-nano")
def earthloc_nano() -> RetrievalNet:
    """EarthLoc's code path (ResNet trunk + MixVPR) at CPU scale: our demo model.

    Why: trained from scratch on the small demo world (no pretrained weights offline), a
    convolutional trunk with batch norm learns in minutes where a ViT needs far more data.
    ResNet-18 cropped after layer3 (256 channels, stride 16) on 128 x 128 inputs gives an 8 x 8
    grid; MixVPR with 2 mixers, 128 channels x 2 rows; linear 256 -> 256. About 2.9M parameters.
    """
    input_size = 128
    backbone = ResNetTrunk("resnet18")
    grid = backbone.grid_size(input_size)
    aggregator = MixVPR(
        in_channels=backbone.num_channels, in_h=grid, in_w=grid,
        out_channels=128, mix_depth=2, mlp_ratio=1, out_rows=2,
    )
    config = ModelConfig(arch="earthloc-nano", input_size=input_size, descriptor_dim=256)
    return RetrievalNet(config, backbone, aggregator, nn.Linear(aggregator.output_dim, 256))
