"""The CUDA kernels executed on the CPU (HIP-CPU) and compared with the CPU ops.

Every CUDA launcher of ``csrc/ops/cuda`` runs here through ``tests/ops/cuda_emulation.py``:
each block's 256 threads are fibers with real ``__syncthreads()``, ``__shared__`` memory,
32-lane warp shuffles and atomics, so index arithmetic, synchronisation, the block
reduction behind early stopping, multi-pass grid-stride and pair-stride loops and the
launch sequence are all executed — not GPU numerics (no FMA contraction, no
``__CUDA_ARCH__`` intrinsics) nor every race (compute-sanitizer on a GPU, ``make
gpu-check``, covers those).

Agreement is **exact** (``torch.equal``), not a tolerance: the emulated CUDA code and the
CPU ops evaluate the same ``csrc/ops/common`` per-pixel functions in the same order, with
the same compiler and no FMA contraction, and the TV-L1 CPU op runs the CUDA's Jacobi
scheme (``scheme="stencil"``). The one computation that differs is the order in which
the convergence error is summed (per block + double atomics on CUDA, per row then in
row order on the CPU); it only decides when a pair stops iterating, and a sum that
crossed the threshold at a different iteration would change the flow by far more than
1e-5 px, so exactness is also the right test of the block reduction.

Every output buffer starts as NaN and the TV-L1 workspace as NaN bytes (or random bytes),
so an element a kernel forgets to write, or a read of memory no kernel wrote, shows.
Tiny grid caps (2 x 2 blocks) make every grid-stride and pair-stride loop run several
passes, and there warp 0 is scheduled last after every barrier (HIP-CPU runs it first),
so a missing barrier between loop trips lets another warp overtake it. Skips, with the
reason, where ../shared (HIP-CPU) or a C++17 compiler is absent.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cuda_emulation import EmulatedCuda, EmulationUnavailable

from fastmer.ops.tvl1 import TVL1Params, prepare_images, tvl1

pytestmark = pytest.mark.cuda_emulated

# (x, y) grid caps and warp rotation: CUDA's caps in HIP-CPU's schedule, and 2 x 2 blocks
# (the loops stride, see each case's size) with warp 0 scheduled last.
CAPS = {"cuda-caps": (0, 0, 0), "tiny-grid-warp0-last": (2, 2, 1)}


@pytest.fixture(scope="module")
def emu() -> EmulatedCuda:
    try:
        emulated = EmulatedCuda.load()
    except EmulationUnavailable as exc:
        pytest.skip(f"emulated CUDA unavailable: {exc}")
    yield emulated
    emulated.set_grid_caps()


@pytest.fixture(params=list(CAPS), ids=list(CAPS))
def caps(request, emu):
    max_x, max_y, rotation = CAPS[request.param]
    emu.set_grid_caps(max_x, max_y)
    emu.set_warp_rotation(rotation)
    yield request.param
    emu.set_grid_caps()
    emu.set_warp_rotation()


def moving_texture(n: int, height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs of a smooth random texture and its warp by a smooth sub-pixel flow (float32 in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    first, second = [], []
    for k in range(n):
        phase = torch.rand(6, generator=g, dtype=torch.float64) * 2 * math.pi
        freq = 0.1 + torch.rand(6, generator=g, dtype=torch.float64) * 0.4

        def texture(xx, yy, phase=phase, freq=freq):
            return sum(torch.sin(freq[i] * xx + phase[i]) * torch.cos(freq[(i + 1) % 6] * yy + phase[(i + 2) % 6])
                       for i in range(6))

        u = (1.0 + 0.5 * k) * torch.sin(y / height * 3.1 + k)
        v = 0.8 * torch.cos(x / width * 2.7 - k)
        first.append(texture(x, y))
        second.append(texture(x - u, y - v))
    I0, I1 = torch.stack(first), torch.stack(second)
    lo, hi = torch.minimum(I0.min(), I1.min()), torch.maximum(I0.max(), I1.max())
    return ((I0 - lo) / (hi - lo)).float(), ((I1 - lo) / (hi - lo)).float()


def cpu_stencil(I0: torch.Tensor, I1: torch.Tensor, params: TVL1Params) -> torch.Tensor:
    """The CPU op running the CUDA's Jacobi scheme: the reference of the emulated kernel."""
    return tvl1(I0, I1, replace(params, scheme="stencil"), backend="native")


# Iteration budgets are cut where a case only needs the path, not convergence, to keep the
# emulator (about 50x slower than the native kernel) fast. Sizes: 40 x 56 = 2,240 px is 5
# passes of the tiny grid; N = 3 and N = 5 are 2 and 3 pair-stride passes.
SHORT = {"warps": 2, "inner_iterations": 6, "outer_iterations": 2}
TVL1_CASES = {
    "opencv-N3-40x56-early-stop": (TVL1Params(), 3, 40, 56),
    "opencv-N1-33x47-no-early-stop": (TVL1Params(epsilon=1e-12, **SHORT), 1, 33, 47),
    "ipol-N2-48x40": (TVL1Params.ipol(), 2, 48, 40),
    "ipol-N1-no-early-stop": (TVL1Params.ipol(epsilon=1e-12, **SHORT), 1, 40, 36),
    "opencv-half-state-N2": (TVL1Params(half_state=True), 2, 32, 40),
    "opencv-gamma-N2": (TVL1Params(gamma=0.3), 2, 36, 36),
    "ipol-half-gamma-N1": (TVL1Params.ipol(half_state=True, gamma=0.2, **SHORT), 1, 36, 44),
    "median3-presmooth-N5-odd": (TVL1Params(median_size=3, presmooth_sigma=0.8, **SHORT), 5, 24, 40),
}


@pytest.mark.parametrize("case", list(TVL1_CASES))
def test_tvl1_equals_cpu_op(emu, caps, case):
    params, n, height, width = TVL1_CASES[case]
    I0, I1 = moving_texture(n, height, width, seed=len(case))
    expected = cpu_stencil(I0, I1, params)
    got = emu.tvl1(*prepare_images(I0, I1, params), params)
    assert not got.isnan().any(), "the CUDA TV-L1 left flow values unwritten (NaN)"
    assert torch.equal(got, expected), f"max |emulated CUDA - CPU| = {(got - expected).abs().max().item():.3g} px"


@pytest.mark.parametrize("case", ["opencv-N3-40x56-early-stop", "opencv-half-state-N2", "opencv-gamma-N2"])
def test_tvl1_cases_stop_early(case):
    """The early-stop cases really stop early (else they would not test the block reduction)."""
    params, n, height, width = TVL1_CASES[case]
    I0, I1 = moving_texture(n, height, width, seed=len(case))
    stopped = cpu_stencil(I0, I1, params)
    full = cpu_stencil(I0, I1, replace(params, epsilon=1e-12))
    per_pair = (stopped - full).abs().amax(dim=(1, 2, 3))
    assert (per_pair > 1e-3).all(), f"some pair never converged early: {per_pair.tolist()}"


def test_tvl1_many_pairs_every_loop_strides(emu):
    """300 pairs: with 1 x 7 blocks the error-reset loop (256 threads per pass over N) runs
    twice and every pair loop 43 times; the smallest images keep it fast."""
    params = TVL1Params(nscales=1, warps=2, inner_iterations=3, outer_iterations=2, median_size=3)
    I0, I1 = moving_texture(300, 16, 20, seed=3)
    expected = cpu_stencil(I0, I1, params)
    emu.set_grid_caps(1, 7)
    try:
        got = emu.tvl1(*prepare_images(I0, I1, params), params)
    finally:
        emu.set_grid_caps()
    assert torch.equal(got, expected)


def test_tvl1_does_not_depend_on_workspace_contents_or_repetition(emu):
    case = "opencv-N3-40x56-early-stop"
    params, n, height, width = TVL1_CASES[case]
    a, b = prepare_images(*moving_texture(n, height, width, seed=len(case)), params)
    first = emu.tvl1(a, b, params)
    again = emu.tvl1(a, b, params)
    zeroed = emu.tvl1(a, b, params, workspace_fill=0)
    noise = emu.tvl1(a, b, params, workspace_seed=5)
    for other in (again, zeroed, noise):
        assert torch.equal(first, other)


def test_tvl1_pairs_are_independent_of_the_batch(emu):
    params = TVL1Params(**SHORT)
    a, b = prepare_images(*moving_texture(3, 24, 28, seed=2), params)
    batch = emu.tvl1(a, b, params)
    for k in range(3):
        assert torch.equal(batch[k:k + 1], emu.tvl1(a[k:k + 1].contiguous(), b[k:k + 1].contiguous(), params))


def test_tvl1_empty_batch_launches_nothing(emu):
    emu.take_counts()
    params = TVL1Params()
    empty = torch.zeros(0, 20, 20)
    assert emu.tvl1(empty, empty, params).shape == (0, 2, 20, 20)
    assert emu.take_counts() == {}


# --- flow maps -----------------------------------------------------------------------------

# (N, 2, H, W): single pixels, single rows and columns (strain's one-sided and zero
# stencils), odd sizes, and 2 x 23 x 37 = 1,702 px (4 passes of the tiny grid).
FLOW_SHAPES = [(1, 2, 1, 1), (2, 2, 1, 9), (2, 2, 8, 1), (3, 2, 17, 23), (2, 2, 23, 37)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float", "double"])
@pytest.mark.parametrize("shape", FLOW_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", ["flow_magnitude", "optical_strain"])
def test_flow_maps_equal_cpu_op(emu, caps, op, shape, dtype):
    flow = (torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(shape))) * 3).to(dtype)
    got = getattr(emu, op)(flow)
    expected = getattr(torch.ops.fastmer, op)(flow)
    assert got.dtype == dtype and not got.isnan().any()
    assert torch.equal(got, expected), f"max diff {(got - expected).abs().max().item():.3g}"


# --- rank pooling --------------------------------------------------------------------------

# (N, T, C, H, W): T = 1 (all-zero weights), 2, 5, 11; the last is 2 x 2,400 px (5 passes).
FRAME_SHAPES = [(1, 1, 1, 4, 4), (3, 2, 1, 5, 7), (2, 5, 3, 9, 11), (1, 11, 1, 16, 16), (2, 7, 2, 20, 30)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float", "double"])
@pytest.mark.parametrize("shape", FRAME_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_rank_pool_equals_cpu_op(emu, caps, shape, dtype):
    frames = (torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(shape))) * 255).to(dtype)
    got = emu.rank_pool(frames)
    assert not got.isnan().any()
    assert torch.equal(got, torch.ops.fastmer.rank_pool(frames))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float", "double"])
@pytest.mark.parametrize("shape", FRAME_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_rank_pool_backward_equals_cpu_op(emu, caps, shape, dtype):
    n, t = shape[:2]
    grad = torch.randn((n, *shape[2:]), dtype=torch.float64, generator=torch.Generator().manual_seed(t)).to(dtype)
    got = emu.rank_pool_backward(grad, t)
    assert got.shape == shape and not got.isnan().any(), "a frame's gradient was left unwritten"
    assert torch.equal(got, torch.ops.fastmer.rank_pool_backward(grad, t))



# --- the launch sequence against the paper model (bench/tvl1_model.py) --------------------


@pytest.mark.parametrize("case", ["opencv-N3-40x56-early-stop", "ipol-N2-48x40", "ipol-half-gamma-N1",
                                  "median3-presmooth-N5-odd"])
def test_tvl1_launches_match_the_performance_model(emu, case):
    """bench/RESULTS.md's performance model counts launches by walking Solver's sequence on
    paper; the emulator counts what the CUDA launcher really enqueues."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import tvl1_model

    params, n, height, width = TVL1_CASES[case]
    emu.take_counts()
    emu.tvl1(*prepare_images(*moving_texture(n, height, width, seed=1), params), params)
    counted = {name.removesuffix("_kernel"): count for name, count in emu.take_counts().items()}
    modelled = {name: count for name, count in tvl1_model.launches(params, height, width).items() if count}
    assert counted == modelled
