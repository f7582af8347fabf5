"""Backbones: an image batch in, a grid of local features (and a global token) out.

Each backbone keeps the parameter names of the network it reproduces, directly under
``backbone.`` in the model's state_dict, so published weights map onto it by prefix only:

- :class:`DinoV2Backbone` -- a DINOv2 ViT (Oquab et al., "DINOv2: Learning Robust Visual Features
  without Supervision", 2023) built from timm's ``vit_*_patch14_dinov2`` parts; names
  ``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.N.*``, ``norm`` (timm and torch-hub
  DINOv2 agree on these).
- :class:`ResNetTrunk` -- torchvision's ResNet-50 cropped after ``layer3`` (stride 16, 1024
  channels), as in MixVPR (Ali-bey et al., WACV 2023) and EarthLoc (Berton et al., CVPR 2024).
- :class:`EfficientNetLiteTrunk` -- EfficientNet-Lite (Tan & Le, ICML 2019; the Lite variants of
  the TensorFlow TPU repository: no squeeze-excitation, ReLU6) built from timm's
  ``tf_efficientnet_lite*`` parts (TF "same" padding, batch-norm eps 1e-3, as the ImageNet
  checkpoints were trained), cropped after a chosen stage; names ``conv_stem``, ``bn1``,
  ``blocks.<stage>.<block>.*``, ``conv_head``, ``bn2`` (timm's).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import timm
from timm.layers import resample_abs_pos_embed
import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class Features(NamedTuple):
    """What a backbone hands to an aggregator."""

    grid: torch.Tensor  # (B, C, h, w) local features
    token: torch.Tensor | None  # (B, C) global token (ViT class token), None for CNNs
    mid: torch.Tensor | None = None  # (B, C', h', w') an earlier stage's grid, when the trunk taps one


class DinoV2Backbone(nn.Module):
    """DINOv2 ViT: patch tokens + class token after the final LayerNorm.

    Built from the parts of a randomly initialised timm model (``pretrained=False``: nothing is
    downloaded). The forward pass is the torch-hub DINOv2 one used by SALAD/MegaLoc/AstroLoc
    (``prepare_tokens_with_masks`` -> blocks -> ``norm``), including its positional-embedding
    interpolation, so published checkpoints give the published descriptors. A timm DINOv2 with
    registers (``vit_*_reg4_dinov2``, EarthLoc2) is run as timm's ``forward_features`` runs it:
    the positional embedding on the patches only (timm's resampling at other grids), then the
    class and register tokens before them; the registers are dropped from the grid.

    Args:
        timm_name: a timm DINOv2 architecture, e.g. ``vit_base_patch14_dinov2``.
        **timm_overrides: timm constructor arguments (``embed_dim``, ``depth``, ``img_size``...) for
            the small CPU configurations.
    """

    def __init__(self, timm_name: str, **timm_overrides: object) -> None:
        super().__init__()
        vit = timm.create_model(
            timm_name, pretrained=False, num_classes=0, dynamic_img_size=True, **timm_overrides
        )
        self.patch_size = vit.patch_embed.patch_size[0]
        self.num_channels = vit.embed_dim
        self.cls_token = vit.cls_token
        self.num_registers = int(getattr(vit, "num_reg_tokens", 0) or 0)
        if self.num_registers:  # only then: the layouts without registers have no such key
            self.reg_token = vit.reg_token
        # timm's no_embed_class: the embedding covers the patches alone (the register models).
        self.pos_embed_has_class = not getattr(vit, "no_embed_class", False)
        self.pos_embed = vit.pos_embed  # (1, [1 +] M*M, C) for the pretraining grid of M x M patches
        self.patch_embed = vit.patch_embed
        self.blocks = vit.blocks
        self.norm = vit.norm

    def grid_size(self, input_size: int) -> int:
        """Patches per side for a square input; the input must be a multiple of the patch size."""
        if input_size <= 0 or input_size % self.patch_size:
            raise ValueError(
                f"input size {input_size} must be a positive multiple of {self.patch_size} "
                "(the ViT patch size)"
            )
        return input_size // self.patch_size

    def interpolated_pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Positional embedding resampled to a grid_h x grid_w patch grid.

        Reproduces torch-hub DINOv2 ``interpolate_pos_encoding``: bicubic with a *scale factor* of
        (n + 0.1) / M, not a target size. The two differ numerically, and the published weights
        were trained and evaluated with this one.
        """
        if not self.pos_embed_has_class:
            stored_side = math.isqrt(self.pos_embed.shape[1])
            if grid_h == grid_w == stored_side:
                return self.pos_embed
            return resample_abs_pos_embed(self.pos_embed, (grid_h, grid_w), (stored_side, stored_side),
                                          num_prefix_tokens=0)
        num_stored = self.pos_embed.shape[1] - 1
        stored_side = math.isqrt(num_stored)
        if grid_h == grid_w == stored_side:
            return self.pos_embed
        class_pos = self.pos_embed[:, :1]
        patch_pos = self.pos_embed[:, 1:].reshape(1, stored_side, stored_side, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(
            patch_pos.float(),
            scale_factor=((grid_h + 0.1) / stored_side, (grid_w + 0.1) / stored_side),
            mode="bicubic",
            antialias=False,
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([class_pos, patch_pos.to(self.pos_embed.dtype)], dim=1)

    def forward(self, images: torch.Tensor) -> Features:
        batch, _, height, width = images.shape
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of the patch size {self.patch_size}"
            )
        patches = self.patch_embed(images).reshape(batch, grid_h * grid_w, self.num_channels)
        prefix = [self.cls_token.expand(batch, -1, -1)]
        if self.num_registers:
            prefix.append(self.reg_token.expand(batch, -1, -1))
        if self.pos_embed_has_class:
            tokens = torch.cat([*prefix, patches], dim=1) + self.interpolated_pos_embed(grid_h, grid_w)
        else:
            tokens = torch.cat([*prefix, patches + self.interpolated_pos_embed(grid_h, grid_w)], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        first_patch = 1 + self.num_registers
        grid = tokens[:, first_patch:].reshape(batch, grid_h, grid_w, self.num_channels).permute(0, 3, 1, 2)
        return Features(grid=grid, token=tokens[:, 0])


class ResNetTrunk(nn.Module):
    """torchvision ResNet up to ``layer3``: (B, 3, H, W) -> (B, 1024, ceil(H/16), ceil(W/16)).

    ``layer4``, the pooling and the classifier are not built (MixVPR/EarthLoc crop them), so they
    cost neither parameters nor state_dict keys.
    """

    stride = 16
    cropped_prefixes = ("layer4.", "fc.")  # in upstream ResNet checkpoints, not built here

    def __init__(self, torchvision_name: str = "resnet50") -> None:
        super().__init__()
        resnet = getattr(torchvision.models, torchvision_name)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        last = resnet.layer3[-1]  # Bottleneck (resnet50: conv3) or BasicBlock (resnet18: conv2)
        self.num_channels = (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels

    def grid_size(self, input_size: int) -> int:
        """Feature cells per side for a square input."""
        if input_size <= 0:
            raise ValueError(f"input size must be positive, got {input_size}")
        return math.ceil(input_size / self.stride)

    def forward(self, images: torch.Tensor) -> Features:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return Features(grid=self.layer3(self.layer2(self.layer1(x))), token=None)


class EfficientNetLiteTrunk(nn.Module):
    """timm EfficientNet-Lite up to block stage ``stages - 1`` (and its 1x1 head when all 7 stages
    are kept): (B, 3, H, W) -> (B, C, ceil(H/stride), ceil(W/stride)), with a global-average
    token (the grid's mean) for aggregators that want one (SALAD).

    Stages of Lite0 (output channels / stride): 16/2, 24/4, 40/8, 80/16, 112/16, 192/32, 320/32,
    then the head 1280/32. The stages and head not kept are not built, so they cost neither
    parameters nor state_dict keys (:attr:`cropped_prefixes` lists them for weight loading).

    Args:
        timm_name: ``tf_efficientnet_lite0`` (or ``_lite1``, ``_lite2``: same stages, wider/deeper).
        stages: block stages kept, 1-7.
        head: keep ``conv_head``/``bn2`` (1x1 conv to 1280 channels); only with all 7 stages.
        tap: also hand over the grid after this many stages as ``Features.mid`` (mid-level
            texture and colour beside the last stage's ImageNet parts; docs/training.md).
    """

    def __init__(self, timm_name: str = "tf_efficientnet_lite0", stages: int = 7, head: bool = False,
                 tap: int | None = None) -> None:
        super().__init__()
        net = timm.create_model(timm_name, pretrained=False, num_classes=0)
        if not 1 <= stages <= len(net.blocks):
            raise ValueError(f"stages must lie in 1..{len(net.blocks)}, got {stages}")
        if head and stages != len(net.blocks):
            raise ValueError("the 1x1 head follows the last stage: keep all stages to keep it")
        self.timm_name = timm_name
        self.stage_depths = [len(stage) for stage in net.blocks]  # of the whole network
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        self.blocks = nn.Sequential(*list(net.blocks)[:stages])
        cropped = [f"blocks.{i}." for i in range(stages, len(net.blocks))]
        if head:
            self.conv_head, self.bn2 = net.conv_head, net.bn2
            self.num_channels = net.conv_head.out_channels
        else:
            cropped += ["conv_head.", "bn2."]
            self.num_channels = self._out_channels(self.blocks[-1])
        if tap is not None and not 1 <= tap < stages:
            raise ValueError(f"tap must lie in 1..{stages - 1} (before the last kept stage), got {tap}")
        self.tap = tap
        self.mid_channels = None if tap is None else self._out_channels(self.blocks[tap - 1])
        self.head = head
        self.cropped_prefixes = tuple(cropped) + ("classifier.",)
        self.stride = self._stride(net, stages)

    @staticmethod
    def _out_channels(stage: nn.Module) -> int:
        last = stage[-1]
        return (last.conv_pwl if hasattr(last, "conv_pwl") else last.conv_pw).out_channels

    @staticmethod
    def _stride(net: nn.Module, stages: int) -> int:
        """Reduction after ``stages`` stages: each stage's first block has stride 1 or 2."""
        stride = 2  # the stem
        for stage in list(net.blocks)[:stages]:
            conv = stage[0].conv_dw
            stride *= conv.stride[0]
        return stride

    def grid_size(self, input_size: int) -> int:
        """Feature cells per side for a square input."""
        if input_size <= 0:
            raise ValueError(f"input size must be positive, got {input_size}")
        return math.ceil(input_size / self.stride)

    def prefix(self, images: torch.Tensor, stages: int) -> torch.Tensor:
        """The stem and the first ``stages`` block stages: what a run that freezes them (and
        their batch norms) can compute once per image (model/feature_cache.py)."""
        return self.blocks[:stages](self.bn1(self.conv_stem(images)))

    def suffix(self, x: torch.Tensor, stages: int) -> Features:
        """The rest of the trunk after :meth:`prefix` (``forward = suffix(prefix(...))``)."""
        if self.tap is not None and stages > self.tap:
            raise ValueError(f"the grid tapped after stage {self.tap} lies inside a prefix of {stages} stages")
        mid = x if self.tap == stages else None
        for index in range(stages, len(self.blocks)):
            x = self.blocks[index](x)
            if index + 1 == self.tap:
                mid = x
        if self.head:
            x = self.bn2(self.conv_head(x))
        return Features(grid=x, token=x.mean(dim=(2, 3)), mid=mid)

    def forward(self, images: torch.Tensor) -> Features:
        return self.suffix(self.prefix(images, 0), 0)
