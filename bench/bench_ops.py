"""Native kernels vs their pure-PyTorch references, at feature-extraction sizes.

Sizes: a batch of 256 onset->apex flows of 128x128 face crops (magnitude, strain), and
32 clips of 30 grayscale 128x128 frames (one dynamic image each; forward and backward).
"""

from __future__ import annotations

import pytest
import torch
from conftest import sync

from fastmer.ops import flow_magnitude, optical_strain, rank_pool

BACKENDS = ["native", "reference"]


def run(benchmark, device, fn, *args):
    def timed():
        out = fn(*args)
        sync(device)
        return out

    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.pedantic(timed, rounds=20, warmup_rounds=2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flow_magnitude(benchmark, device, backend):
    benchmark.group = f"flow_magnitude N=256 128x128 {device}"
    flow = torch.randn(256, 2, 128, 128, device=device)
    run(benchmark, device, lambda f: flow_magnitude(f, backend=backend), flow)


@pytest.mark.parametrize("backend", BACKENDS)
def test_optical_strain(benchmark, device, backend):
    benchmark.group = f"optical_strain N=256 128x128 {device}"
    flow = torch.randn(256, 2, 128, 128, device=device)
    run(benchmark, device, lambda f: optical_strain(f, backend=backend), flow)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rank_pool_forward(benchmark, device, backend):
    benchmark.group = f"rank_pool N=32 T=30 1x128x128 {device}"
    frames = torch.rand(32, 30, 1, 128, 128, device=device)
    run(benchmark, device, lambda f: rank_pool(f, backend=backend), frames)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rank_pool_backward(benchmark, device, backend):
    benchmark.group = f"rank_pool fwd+bwd N=32 T=30 1x128x128 {device}"
    frames = torch.rand(32, 30, 1, 128, 128, device=device, requires_grad=True)

    def step(f):
        rank_pool(f, backend=backend).sum().backward()
        return f.grad

    run(benchmark, device, step, frames)
