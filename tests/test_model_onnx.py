"""ONNX serving path: export, onnxruntime parity with torch (<= 1e-4), the benchmark table.

Every registered architecture is exported and compared. The published sizes (astroloc-tiny,
earthloc, astroloc: 10-20 s each on 2 shared cores) are marked slow, so ``-m "not slow"`` skips
them in a quick run; astroloc-nano runs the same code path always.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import model
from model import onnx_export
from service.bench import model as bench
from model.onnx_export import PARITY_TOLERANCE, onnx_parity


@pytest.fixture(scope="module")
def nano_export(tmp_path_factory):
    torch.manual_seed(0)
    net = model.create_model("astroloc-nano")
    path = model.export_onnx(net, tmp_path_factory.mktemp("onnx") / "nano.onnx")
    return net, path


def test_nano_onnx_matches_torch_on_random_inputs(nano_export):
    net, path = nano_export
    assert onnx_parity(net, path, batch_size=3, seed=1) <= PARITY_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["astroloc-tiny", "earthloc", "astroloc"])
def test_published_architectures_onnx_matches_torch_on_random_inputs(arch, tmp_path):
    net = model.create_model(arch)
    path = model.export_onnx(net, tmp_path / f"{arch}.onnx", check_tolerance=None)
    assert onnx_parity(net, path, batch_size=3, seed=1) <= PARITY_TOLERANCE


def test_describe_through_onnxruntime_matches_torch(nano_export):
    net, path = nano_export
    served = model.load_onnx(path)
    assert served.config == net.config  # preprocessing travels inside the file
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 256, (64 + 20 * i, 128, 3), dtype=np.uint8) for i in range(5)]
    expected = model.describe(net, photos, batch_size=6)
    actual = served.describe(photos, batch_size=6)
    assert actual.shape == (5, 4, 256) and actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= PARITY_TOLERANCE


def test_batch_dimension_is_dynamic(nano_export):
    net, path = nano_export
    served = model.load_onnx(path)
    for batch_size in (1, 7):
        batch = torch.randn(batch_size, 3, 112, 112)
        assert np.abs(served.embed(batch) - net.embed(batch)).max() <= PARITY_TOLERANCE


def test_files_that_are_not_astroloc_exports_are_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), foreign)
    with pytest.raises(ValueError, match="not an astroloc export"):
        model.load_onnx(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="cannot open ONNX file"):
        model.load_onnx(garbage)
    with pytest.raises(ValueError, match="does not exist"):
        model.load_onnx(tmp_path / "absent.onnx")


def test_export_failing_its_parity_check_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "onnx_parity", lambda net, path: 0.5)
    target = tmp_path / "nano.onnx"
    with pytest.raises(RuntimeError, match="differs from torch by 5.00e-01"):
        model.export_onnx(model.create_model("astroloc-nano"), target)
    assert list(tmp_path.iterdir()) == []


def test_benchmark_reports_both_runtimes():
    table = bench.run(archs=["astroloc-nano"], batch=2, seconds=0.2)
    row = next(line for line in table.splitlines() if line.startswith("| astroloc-nano"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["3.3M", "112", "256"]
    assert float(cells[4]) > 0 and float(cells[5]) > 0 and float(cells[6]) <= PARITY_TOLERANCE
    with pytest.raises(ValueError, match="unknown architectures or runtimes: nope"):
        bench.run(archs=["nope"])


def test_pretrained_lite_onnx_matches_torch_and_carries_its_normalisation(tmp_path):
    net = model.create_model("astroloc-lite", pretrained=True)
    path = model.export_onnx(net, tmp_path / "lite.onnx", check_tolerance=None)
    assert onnx_parity(net, path, batch_size=3, seed=1) <= PARITY_TOLERANCE
    served = model.load_onnx(path)
    assert served.config == net.config and served.config.mean == (0.5, 0.5, 0.5)
