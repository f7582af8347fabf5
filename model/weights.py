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
