"""GPU benchmarks: what `make gpu-check` times (skipped on a machine without CUDA).

* TV-L1 (opencv preset) on 128x128 pairs, N = 256 and 1,024: fastmer's CUDA kernel, the
  pure-PyTorch reference on the same GPU, and fastmer's CPU kernel on the same inputs.
* The CUDA TV-L1's achieved memory bandwidth: every iteration run (epsilon ~ 0), bytes from
  the paper model (bench/tvl1_model.py), as a fraction of the card's nominal bandwidth and
  of a device-to-device copy measured in the same run.
* Rank pooling (dynamic images), forward and backward, native CUDA against the reference.
* Batch scoring of FMANet (flow_phases 8x128x128): PyTorch eager against torch.compile.

Pairs are a smooth random texture and its warp by a smooth sub-pixel flow (generated here:
the GPU machine has no video decoder and no network). Every timed function synchronises.

    python -m pytest bench/bench_gpu.py -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tvl1_model

from fastmer.ops import TVL1Params, rank_pool
from fastmer.ops.tvl1 import tvl1

CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not CUDA, reason="GPU benchmarks need a CUDA device")

SIZE = 128
BATCHES = (256, 1024)

# Nominal DRAM bandwidth (B/s) by a substring of torch.cuda.get_device_name().
NOMINAL_BANDWIDTH = {"H100 80GB HBM3": 3.35e12, "H100 NVL": 3.9e12, "H100 PCIe": 2.0e12, "H200": 4.8e12,
                     "A100-SXM4-80GB": 2.039e12, "A100-SXM4-40GB": 1.555e12, "A100 80GB PCIe": 1.935e12,
                     "L40S": 0.864e12, "L4": 0.3e12}


def nominal_bandwidth(name: str) -> float | None:
    return next((v for k, v in NOMINAL_BANDWIDTH.items() if k in name), None)


def moving_pairs(n: int, size: int = SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 pairs [n, size, size]: a texture of 6 random plane waves and its warp by a smooth flow of ~1-2 px."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    phase = torch.rand(n, 6, 1, 1, generator=g) * 2 * math.pi
    freq = 0.05 + torch.rand(n, 6, 2, 1, 1, generator=g) * 0.3
    shift = torch.rand(n, 2, 1, 1, generator=g) * 4

    def texture(xx, yy):
        return torch.sin(freq[:, :, 0] * xx + phase).mul(torch.cos(freq[:, :, 1] * yy + phase)).sum(1)

    u = shift[:, :1] * torch.sin(y / size * 3.1)
    v = shift[:, 1:] * torch.cos(x / size * 2.7)
    I0, I1 = texture(x, y), texture(x - u, y - v)
    lo, hi = I0.amin(dim=(1, 2), keepdim=True), I0.amax(dim=(1, 2), keepdim=True)
    return tuple(((img - lo) / (hi - lo) * 255).clamp(0, 255).to(torch.uint8).contiguous() for img in (I0, I1))


@pytest.fixture(scope="module")
def pairs() -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    I0, I1 = moving_pairs(max(BATCHES))
    return {n: (I0[:n].contiguous(), I1[:n].contiguous()) for n in BATCHES}


# (device, backend, rounds): the reference and the CPU kernel take seconds per batch, so one
# untimed warm-up (CUDA's lazy module loading, the allocator) is spent on fastmer-cuda only.
TVL1_SIDES = {"fastmer-cuda": ("cuda", "native", 3), "torch-cuda": ("cuda", "reference", 1),
              "fastmer-cpu": ("cpu", "native", 1)}


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("side", list(TVL1_SIDES))
def test_tvl1(benchmark, pairs, side, n):
    device, backend, rounds = TVL1_SIDES[side]
    benchmark.group = f"tvl1 opencv preset {SIZE}x{SIZE} N={n}"
    I0, I1 = (x.to(device) for x in pairs[n])

    def timed():
        flow = tvl1(I0, I1, TVL1Params(), backend=backend)
        if device == "cuda":
            torch.cuda.synchronize()
        return flow

    flow = benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1 if side == "fastmer-cuda" else 0)
    benchmark.extra_info.update(pairs=n, side=side, baseline=side == "torch-cuda", device_name=_device_name(device),
                                mean_abs_flow=float(flow.abs().mean()))


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


@pytest.fixture(scope="module")
def copy_bandwidth() -> float:
    """A device-to-device copy of 1 GiB (read + write), B/s: the practical roofline."""
    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = math.inf
    for _ in range(5):
        start.record()
        dst.copy_(src)
        stop.record()
        stop.synchronize()
        best = min(best, start.elapsed_time(stop) / 1e3)
    return 2 * src.numel() * src.element_size() / best


@pytest.mark.parametrize("half_state", [False, True], ids=["fp32-state", "fp16-state"])
def test_tvl1_roofline(benchmark, pairs, copy_bandwidth, half_state):
    n = 256
    params = TVL1Params(epsilon=1e-12, half_state=half_state)  # every iteration runs: traffic is exact
    I0, I1 = (x.cuda() for x in pairs[n])
    benchmark.group = f"tvl1 roofline (no early stop) {SIZE}x{SIZE} N={n}"

    def timed():
        flow = tvl1(I0, I1, params, backend="native")
        torch.cuda.synchronize()
        return flow

    benchmark.pedantic(timed, rounds=2, iterations=1, warmup_rounds=1)
    model = tvl1_model.traffic(params, SIZE, SIZE, n, half_state=half_state)
    seconds = benchmark.stats.stats.median
    achieved = model.total_bytes / seconds
    name = torch.cuda.get_device_name()
    nominal = nominal_bandwidth(name)
    benchmark.extra_info.update(
        pairs=n, device_name=name, modelled_bytes=model.total_bytes, achieved_bytes_per_s=achieved,
        copy_bytes_per_s=copy_bandwidth, fraction_of_copy=achieved / copy_bandwidth,
        nominal_bytes_per_s=nominal, roofline_fraction=achieved / nominal if nominal else None,
        predicted_pairs_per_s_at_nominal=tvl1_model.predicted_pairs_per_second(model, nominal) if nominal else None)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("direction", ["forward", "forward+backward"])
def test_rank_pool(benchmark, backend, direction):
    benchmark.group = f"rank_pool cuda 32 clips x 30 frames x 1x{SIZE}x{SIZE} {direction}"
    frames = torch.rand(32, 30, 1, SIZE, SIZE, device="cuda") * 255
    if direction != "forward":
        frames.requires_grad_(True)

    def timed():
        out = rank_pool(frames, backend=backend)
        if direction != "forward":
            out.sum().backward()
        torch.cuda.synchronize()
        return out

    benchmark.pedantic(timed, rounds=10, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update(clips=32, side="baseline" if backend == "reference" else "native")


@pytest.fixture(scope="module")
def fmanet_run(tmp_path_factory):
    from fastmer.motion.representations import REPRESENTATIONS

    path = untrained_run(tmp_path_factory.mktemp("gpu_infer") / "run", "fmanet", "flow_phases", SIZE)
    return path, len(REPRESENTATIONS["flow_phases"])


@pytest.mark.parametrize("engine_name", ["torch-eager", "torch-compile"])
def test_scoring(benchmark, fmanet_run, engine_name):
    from fastmer.engine.score import open_engine

    run, channels = fmanet_run
    batch = 256
    benchmark.group = f"FMANet scoring on cuda, batch {batch}"
    engine = open_engine(run, device="cuda", compile=engine_name == "torch-compile")
    features = np.random.default_rng(batch).standard_normal((batch, channels, SIZE, SIZE)).astype(np.float32)
    engine.run(features)  # warm-up: compilation, allocator
    # run() copies the results back to the host, which synchronises the GPU.
    benchmark.pedantic(engine.run, args=(features,), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(clips=batch, engine=engine_name,
                                side="baseline" if engine_name == "torch-eager" else "engine")
