"""Scoring throughput of the engines on the same inputs: PyTorch eager, ``torch.compile``,
ONNX Runtime and, where TensorRT 11 and a GPU are present, TensorRT plans (FP32, and FP16
when ModelOpt is installed; skipped with the reason otherwise).

Model: FMANet (compact encoders, 187 k parameters) on ``flow_phases`` at 128×128, the
default crop size, with its input adapter, as ``fastmer export`` ships it. Inputs: seeded
random stored tensors (throughput does not depend on the values). Clips/s per engine and
batch size, 1 to 1,024.

    python -m pytest bench/bench_infer.py -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import untrained_run

from fastmer.motion.representations import REPRESENTATIONS

SIZE = 128
CHANNELS = len(REPRESENTATIONS["flow_phases"])  # stored: u, v, M, strain of each phase
BATCHES = (1, 32, 256, 1024)
ENGINES = ("torch-eager", "torch-compile", "onnxruntime", "tensorrt-fp32", "tensorrt-fp16")


def _tensorrt_missing(fp16: bool) -> str | None:
    """Why a TensorRT engine cannot be measured here (None when it can)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'fastmer[tensorrt]')"
    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU"
    if fp16 and importlib.util.find_spec("modelopt") is None:
        return "FP16 plans need NVIDIA ModelOpt (pip install 'fastmer[tensorrt]')"
    return None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory holding an (untrained) FMANet, as `fastmer train` writes it."""
    return untrained_run(tmp_path_factory.mktemp("infer") / "run", "fmanet", "flow_phases", SIZE)


@pytest.fixture(scope="module")
def engines(run, tmp_path_factory):
    from fastmer.engine.onnx import export_onnx
    from fastmer.engine.score import open_engine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    onnx = tmp_path_factory.mktemp("onnx") / "fmanet.onnx"
    export_onnx(run, onnx)
    built = {"torch-eager": open_engine(run, device=device), "torch-compile": open_engine(run, device=device, compile=True),
             "onnxruntime": open_engine(onnx)}
    for fp16 in (False, True):
        if _tensorrt_missing(fp16) is None:
            from fastmer.engine.tensorrt import build_engine

            plan = onnx.with_name(f"fmanet-{'fp16' if fp16 else 'fp32'}.plan")
            build_engine(onnx, plan, min_batch=1, opt_batch=256, max_batch=max(BATCHES), fp16=fp16)
            built[f"tensorrt-{'fp16' if fp16 else 'fp32'}"] = open_engine(plan)
    return built


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("engine_name", ENGINES)
def test_engine_throughput(benchmark, engines, engine_name, batch):
    benchmark.group = f"FMANet on flow_phases {CHANNELS}x{SIZE}x{SIZE}, batch {batch:>4}"
    if engine_name.startswith("tensorrt"):
        missing = _tensorrt_missing(engine_name.endswith("fp16"))
        if missing:
            pytest.skip(missing)
    engine = engines[engine_name]
    features = np.random.default_rng(batch).standard_normal((batch, CHANNELS, SIZE, SIZE)).astype(np.float32)
    engine.run(features)  # warm-up: compilation, allocator, ONNX Runtime's first run
    # Results are copied back to the host inside run(), which synchronises the GPU.
    benchmark.pedantic(engine.run, args=(features,), rounds=5 if batch <= 32 else 3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(clips=batch, engine=engine_name, providers=list(engine.providers),
                                side="baseline" if engine_name == "torch-eager" else "engine")
