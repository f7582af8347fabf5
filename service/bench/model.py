"""Model throughput on this machine: images/s per architecture, torch vs onnxruntime.

    >>> print(run(archs=["astroloc-nano"], seconds=2))   # markdown table

Random weights (speed does not depend on them); one image = one network input at the
architecture's input size, so ``describe`` with 4 rotations costs 4 images per photo.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import onnxruntime as ort
import torch

from model.architectures import create_model, list_models
from model.network import count_parameters
from model.onnx_export import export_onnx, onnx_parity
from model.onnx_runtime import load_onnx

RUNTIMES = ("torch", "onnxruntime")


def images_per_second(embed: Callable[[torch.Tensor], object], batch: torch.Tensor, seconds: float) -> float:
    """Throughput of ``embed`` on ``batch``: one warm-up call, then calls for ``seconds`` (at least 2)."""
    embed(batch)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        embed(batch)
        calls += 1
    return calls * len(batch) / (time.perf_counter() - start)


def run(
    archs: Sequence[str] | None = None,
    batch: int = 8,
    seconds: float = 5.0,
    runtimes: Sequence[str] = RUNTIMES,
    threads: int | None = None,
) -> str:
    """Measure every architecture (default: all registered) and return a markdown table.

    Args:
        batch: images per forward pass.
        seconds: measuring time per architecture and runtime (after one warm-up pass).
        runtimes: any of ``"torch"``, ``"onnxruntime"`` (exported to a temporary file first).
        threads: intra-op threads for both runtimes; None keeps the libraries' defaults.
    """
    archs = list(archs) if archs else list_models()
    unknown = [a for a in archs if a not in list_models()] + [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown architectures or runtimes: {', '.join(unknown)}")
    if batch < 1 or seconds <= 0:
        raise ValueError(f"batch must be >= 1 and seconds > 0, got batch={batch}, seconds={seconds}")

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows = []
    try:
        for arch in archs:
            net = create_model(arch)
            size = net.config.input_size
            images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            speeds = {"torch": None, "onnxruntime": None}
            difference = None
            if "torch" in runtimes:
                speeds["torch"] = images_per_second(net.embed, images, seconds)
            if "onnxruntime" in runtimes:
                with tempfile.TemporaryDirectory() as workdir:
                    path = export_onnx(net, Path(workdir) / f"{arch}.onnx", check_tolerance=None)
                    difference = onnx_parity(net, path)
                    served = load_onnx(path, providers=["CPUExecutionProvider"], threads=threads)
                    speeds["onnxruntime"] = images_per_second(served.embed, images, seconds)
            rows.append(
                f"| {arch} | {count_parameters(net) / 1e6:.1f}M | {size} | {net.config.descriptor_dim} | "
                f"{_fmt(speeds['torch'])} | {_fmt(speeds['onnxruntime'])} | "
                f"{'-' if difference is None else f'{difference:.1e}'} |"
            )
    finally:
        torch.set_num_threads(previous_threads)

    header = (
        f"Model throughput on {_cpu_name()} ({os.cpu_count()} logical cores), "
        f"{threads or previous_threads} intra-op threads, batch {batch}, "
        f"{seconds:g} s per measurement, "
        f"random weights; torch {torch.__version__}, onnxruntime {ort.__version__}.\n"
        "One image = one network input (describe() with 4 rotations = 4 images per photo).\n\n"
        "| architecture | params | input | dim | torch img/s | onnxruntime img/s "
        "| max abs diff onnx-torch |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    return header + "\n".join(rows) + "\n"


def _fmt(speed: float | None) -> str:
    return "-" if speed is None else f"{speed:.1f}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
