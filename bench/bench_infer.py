"""Scoring throughput of the engines on the same inputs: PyTorch eager, ``torch.compile`` and
ONNX Runtime (TensorRT where installed: not yet, see bench/RESULTS.md).

Model: FMANet (compact encoders, 187 k parameters) on ``flow_phases`` at 128×128, the
default crop size, with its input adapter, as ``fastmer export`` ships it. Inputs: seeded
random stored tensors (throughput does not depend on the values). Clips/s per engine and
batch size; on a CPU the batches stop at 256 (1,024 on a GPU).

    python -m pytest bench/bench_infer.py -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastmer.datasets.labels import get_protocol
from fastmer.models.model import MERModel
from fastmer.motion.representations import REPRESENTATIONS

SIZE = 128
CHANNELS = len(REPRESENTATIONS["flow_phases"])  # stored: u, v, M, strain of each phase
BATCHES = (1, 32, 256) + ((1024,) if torch.cuda.is_available() else ())
ENGINES = ("torch-eager", "torch-compile", "onnxruntime")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory holding an (untrained) FMANet, as `fastmer train` writes it."""
    torch.manual_seed(0)
    channels = REPRESENTATIONS["flow_phases"]
    model = MERModel.create("fmanet", get_protocol("megc2019-3class").classes, channels, (len(channels), SIZE, SIZE))
    path = tmp_path_factory.mktemp("infer") / "run"
    path.mkdir()
    model.eval().save(path / "model.safetensors", path / "model.json")
    return path


@pytest.fixture(scope="module")
def engines(run, tmp_path_factory):
    from fastmer.engine.onnx import export_onnx
    from fastmer.engine.score import open_engine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    onnx = tmp_path_factory.mktemp("onnx") / "fmanet.onnx"
    export_onnx(run, onnx)
    return {"torch-eager": open_engine(run, device=device), "torch-compile": open_engine(run, device=device, compile=True),
            "onnxruntime": open_engine(onnx)}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("engine_name", ENGINES)
def test_engine_throughput(benchmark, engines, engine_name, batch):
    benchmark.group = f"FMANet on flow_phases {CHANNELS}x{SIZE}x{SIZE}, batch {batch:>4}"
    engine = engines[engine_name]
    features = np.random.default_rng(batch).standard_normal((batch, CHANNELS, SIZE, SIZE)).astype(np.float32)
    engine.run(features)  # warm-up: compilation, allocator, ONNX Runtime's first run
    # Results are copied back to the host inside run(), which synchronises the GPU.
    benchmark.pedantic(engine.run, args=(features,), rounds=5 if batch <= 32 else 3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(clips=batch, engine=engine_name, providers=list(engine.providers),
                                side="baseline" if engine_name == "torch-eager" else "engine")
