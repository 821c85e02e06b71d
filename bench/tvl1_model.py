"""Performance model, on paper, of the CUDA TV-L1 solver (csrc/ops/cuda/tvl1_kernel.cuh).

It walks the launch sequence of ``class Solver`` (``run`` -> ``build_pyramid``, then per
pyramid level coarse to fine ``solve_level`` and ``upsample``, then ``output_kernel``) and
counts, per level and per kernel, the launches and the DRAM bytes each launch reads and
writes. Nothing is run on a GPU: the figures are a roofline bound to compare measurements
(``bench/bench_flow.py::test_gpu_roofline``) with.

Traffic assumption ("each plane an instruction touches is moved once per launch"): every
array a launch touches is read from (or written to) DRAM exactly once per launch, however
many threads read each element. The stencil neighbours (the 4x4 cubic taps of the warp
and of the ipol pyramid, the 5x5 median window, the Gaussian taps, the i-1, i+1, i-W, i+W
neighbours that ``fused_iteration_at`` reads to recompute the primal step at 3 pixels, the
bilinear taps of the opencv pyramid) are assumed to hit L1/L2: the blocks that share a
row run at about the same time, and one pair's planes (64 KiB each at 128x128 float) are
far smaller than the 50 MB L2. Were no row ever shared between blocks through L2 (a 256-thread
block covers 2 rows of 128), the iteration would read rows y..y+1 of each block plus row y+2 of
u1, u2, the 4 warp terms, p11, p21 (x1.5) and rows y-1 and y+2 of p12, p22 (x2): 16 instead of
10 S planes, 22 S instead of 16 S per pixel-iteration, the worst case of this assumption.
Resampling kernels read their whole source plane (the taps of a 0.8 or 0.5 resampling
cover every source pixel). Writes are counted once (no write-allocate read). A D2D
``cudaMemcpyAsync`` reads and writes its bytes once; a
``cudaMemsetAsync`` writes its bytes once. The per-pair double error accumulators
(``errors_``, 3 x N doubles) are counted too (8 bytes per pair per access; an atomicAdd is
one read and one write). Nothing is assumed to stay in L2 from one launch to the next
(N = 1024 pairs of 128x128 are ~1 GB of iteration state, 20x the L2).

Scope: ``Solver::run`` only: the Python side (``prepare_images``: uint8 -> float32, the
``minmax`` normalisation of the ipol preset) and the allocation of the output and the
workspace are not counted.

The CUDA solver launches every iteration for every pair whatever the convergence: a pair
whose previous iteration's error is below epsilon^2 * area only copies its iterates into
the other buffer (``carry_over``; the median kernel copies u likewise). ``converged_fraction``
is the share of the (pair, iteration) slots where that happens (uniform over levels and
warps); launches never change. ``converged_skip=True`` models the proposed variant in
which converged pairs' blocks exit at once (per-pair buffer parity instead of copies).

Regenerate the table of bench/RESULTS.md with ``python bench/tvl1_model.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

try:
    from fastmer.ops.tvl1 import TVL1Params, pyramid_sizes
except ImportError:  # run from a checkout whose package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fastmer.ops.tvl1 import TVL1Params, pyramid_sizes

# ---------------------------------------------------------------------------------------
# Element sizes

FLOAT = 4  # sizeof(float): pyramid images I0s_/I1s_, I1x_, I1y_, tmp_, the flow output
DOUBLE = 8  # sizeof(double): the per-pair error ring errors_ (3 x N)

H100_SXM_BANDWIDTH = 3.35e12  # B/s, HBM3 of the H100 SXM5 80 GB (bench_flow.PEAK_BANDWIDTH)
H100_SXM_FP32_FLOPS = 66.9e12  # FLOP/s, non-tensor fp32 (132 SMs x 128 lanes x 2 x 1.98 GHz)
H100_L2_BYTES = 50 * 1000**2  # 50 MB L2 (H100 SXM5)
LAUNCH_SECONDS = 3e-6  # host cost of one enqueue (kernel, memset or memcpy), a typical figure

KERNELS = ("gaussian_x", "gaussian_y", "downscale", "gradient", "warp", "reset_errors", "median", "iteration",
           "upsample", "output")
COPIES = ("memset", "memcpy")


def state_size(half_state: bool) -> int:
    """S = sizeof(S) of ``Solver<S>``: 2 (``__half``) or 4 (float). S-typed are the iterates
    (``Iterates<S>``: u1, u2, u3, p11, p12, p21, p22, p31, p32, double-buffered a_/b_) and
    the warp terms wx_, wy_, grad_, rho_c_ (I1wx, I1wy, grad, rho_c)."""
    return 2 if half_state else 4


# ---------------------------------------------------------------------------------------
# Bytes per pixel (or per pair) of each kernel, from the source. A plane is one H x W array
# of one pair at the launch's level. "read"/"written": the arrays each kernel loads/stores.


@dataclass(frozen=True)
class Bytes:
    read: int
    written: int

    @property
    def total(self) -> int:
        return self.read + self.written


# Planes of fused_iteration_at (tvl1.h) for a pair still iterating: reads o1/o2 and, through
# primal_at at (y,x), (y,x+1), (y+1,x), u1, u2, the warp terms and p11..p22 (divergence_at
# at i, i-1, i-W of those pixels), then p11..p22 at i for the dual step; writes u and p.
ITERATION_READ = ("u1", "u2", "p11", "p12", "p21", "p22", "I1wx", "I1wy", "grad", "rho_c")
ITERATION_WRITTEN = ("u1", "u2", "p11", "p12", "p21", "p22")
GAMMA_PLANES = ("u3", "p31", "p32")  # read and written in addition when gamma != 0
# carry_over (tvl1_kernel.cuh) for a converged pair: the iterates only, no warp terms.
CARRY_OVER_PLANES = ("u1", "u2", "p11", "p12", "p21", "p22")
# warp_kernel: warp_at reads I0 at the pixel and I1, I1x, I1y at the 4x4 cubic taps
# (float), u1 and u2 at the pixel (S); stores the four warp terms (S).
WARP_READ_FLOAT = ("I0", "I1", "I1x", "I1y")
WARP_READ_STATE = ("u1", "u2")
WARP_WRITTEN_STATE = ("I1wx", "I1wy", "grad", "rho_c")


def gaussian_x_bytes() -> Bytes:
    """gaussian_x_kernel: src (float, taps along the row) -> tmp_ (float); per pixel."""
    return Bytes(read=FLOAT, written=FLOAT)


def gaussian_y_bytes() -> Bytes:
    """gaussian_y_kernel: tmp_ (float, taps along the column) -> out (float); per pixel."""
    return Bytes(read=FLOAT, written=FLOAT)


def downscale_bytes() -> Bytes:
    """downscale_kernel: read = per *source* pixel (the whole finer plane, float), written =
    per destination pixel (float)."""
    return Bytes(read=FLOAT, written=FLOAT)


def gradient_bytes() -> Bytes:
    """gradient_kernel: I1s_[s] (float, centred differences) -> I1x_, I1y_ (float); per pixel."""
    return Bytes(read=FLOAT, written=2 * FLOAT)


def warp_bytes(S: int) -> Bytes:
    """warp_kernel: reads I0, I1, I1x, I1y (float) and u1, u2 (S); writes wx, wy, grad, rho_c (S)."""
    return Bytes(read=len(WARP_READ_FLOAT) * FLOAT + len(WARP_READ_STATE) * S, written=len(WARP_WRITTEN_STATE) * S)


def median_bytes(S: int, gamma: bool) -> Bytes:
    """median_kernel, per pixel: cur u1, u2 (5x5 or 3x3 window) -> nxt u1, u2 (S); a converged
    pair copies u1, u2 instead (same bytes); with gamma, u3 is copied cur -> nxt too."""
    planes = 2 + (1 if gamma else 0)
    return Bytes(read=planes * S, written=planes * S)


def iteration_bytes(S: int, gamma: bool) -> Bytes:
    """iteration_kernel for a pair still iterating, per pixel: ITERATION_READ (10 S planes)
    -> ITERATION_WRITTEN (6 S planes), plus GAMMA_PLANES read and written when gamma != 0."""
    g = len(GAMMA_PLANES) if gamma else 0
    return Bytes(read=(len(ITERATION_READ) + g) * S, written=(len(ITERATION_WRITTEN) + g) * S)


def carry_over_bytes(S: int, gamma: bool) -> Bytes:
    """iteration_kernel for a converged pair (carry_over), per pixel: the 6 (9 with gamma)
    iterate planes read from cur and written to nxt."""
    planes = len(CARRY_OVER_PLANES) + (len(GAMMA_PLANES) if gamma else 0)
    return Bytes(read=planes * S, written=planes * S)


def upsample_bytes(S: int) -> Bytes:
    """upsample_kernel, one component: read = per *coarse* pixel (S), written = per fine pixel (S)."""
    return Bytes(read=S, written=S)


def output_bytes(S: int) -> Bytes:
    """output_kernel: u1, u2 (S) -> flow[n, 0], flow[n, 1] (float); per pixel of level 0."""
    return Bytes(read=2 * S, written=2 * FLOAT)


def memcpy_bytes() -> Bytes:
    """cudaMemcpyAsync D2D of one input image (float) into I0s_[0] / I1s_[0]; per pixel."""
    return Bytes(read=FLOAT, written=FLOAT)


def memset_bytes(S: int) -> Bytes:
    """cudaMemsetAsync of one S plane; per pixel."""
    return Bytes(read=0, written=S)


# Per pair and launch: the error ring (8-byte doubles).
RESET_ERRORS_PER_PAIR = Bytes(read=0, written=2 * DOUBLE)  # previous = +inf, current = 0
MEDIAN_PER_PAIR = Bytes(read=DOUBLE, written=0)  # previous_error[n]
# previous[n] read; following[n] = 0 written; atomicAdd into current[n] (read + write).
ITERATION_PER_PAIR = Bytes(read=2 * DOUBLE, written=2 * DOUBLE)
CARRY_OVER_PER_PAIR = Bytes(read=DOUBLE, written=DOUBLE)  # previous[n] read, following[n] written
SKIP_PER_PAIR = Bytes(read=DOUBLE, written=DOUBLE)  # proposed skip: the same flag read and zeroing


# ---------------------------------------------------------------------------------------
# The launch sequence


def _walk(params: TVL1Params, H: int, W: int, S: int, N: float, converged_fraction: float,
          converged_skip: bool) -> Iterator[tuple[int, str, float, float]]:
    """(level of the launch's grid, kernel, bytes read, bytes written) for every launch,
    memset and memcpy of ``Solver::run``, in enqueue order. The level is the one whose
    pixels the launch covers (a downscale: its destination; an upsample: the finer level;
    a blur: the level it blurs)."""
    sizes = pyramid_sizes(H, W, params)
    levels = len(sizes)
    px = [h * w for h, w in sizes]
    gamma = params.gamma != 0
    ipol = params.pyramid == "ipol"

    def blur(level: int) -> Iterator[tuple[int, str, float, float]]:  # Solver::blur: x pass into tmp_, y pass
        n = N * px[level]
        yield level, "gaussian_x", n * gaussian_x_bytes().read, n * gaussian_x_bytes().written
        yield level, "gaussian_y", n * gaussian_y_bytes().read, n * gaussian_y_bytes().written

    # build_pyramid
    for _ in ("I0", "I1"):
        yield 0, "memcpy", N * px[0] * memcpy_bytes().read, N * px[0] * memcpy_bytes().written
    if params.presmooth_sigma > 0:
        for _ in ("I0", "I1"):  # in place through tmp_
            yield from blur(0)
    for s in range(1, levels):
        for _ in ("I0", "I1"):
            if ipol:  # anti-aliasing of level s - 1 into I1x_, then cubic decimation from it
                yield from blur(s - 1)
            d = downscale_bytes()
            yield s, "downscale", N * px[s - 1] * d.read, N * px[s] * d.written
    # run: u1, u2, u3 of the coarsest level zeroed (u3 too, whatever gamma)
    for _ in ("u1", "u2", "u3"):
        yield levels - 1, "memset", 0.0, N * px[-1] * memset_bytes(S).written
    active, converged = N * (1.0 - converged_fraction), N * converged_fraction
    for s in range(levels - 1, -1, -1):
        n = N * px[s]
        # solve_level
        yield s, "gradient", n * gradient_bytes().read, n * gradient_bytes().written
        for _ in ("p11", "p12", "p21", "p22", "p31", "p32"):  # all six, whatever gamma
            yield s, "memset", 0.0, n * memset_bytes(S).written
        for _ in range(params.warps):
            yield s, "warp", n * warp_bytes(S).read, n * warp_bytes(S).written
            yield s, "reset_errors", N * RESET_ERRORS_PER_PAIR.read, N * RESET_ERRORS_PER_PAIR.written
            for _ in range(params.outer_iterations):
                if params.median_size > 1:
                    m = median_bytes(S, gamma)
                    pairs = active if converged_skip else N  # skip: converged pairs move nothing
                    yield (s, "median", pairs * px[s] * m.read + N * MEDIAN_PER_PAIR.read,
                           pairs * px[s] * m.written + N * MEDIAN_PER_PAIR.written)
                it, co = iteration_bytes(S, gamma), carry_over_bytes(S, gamma)
                if converged_skip:
                    co_px, co_pair = Bytes(0, 0), SKIP_PER_PAIR
                else:
                    co_px, co_pair = co, CARRY_OVER_PER_PAIR
                read = active * (px[s] * it.read + ITERATION_PER_PAIR.read) + converged * (
                    px[s] * co_px.read + co_pair.read)
                written = active * (px[s] * it.written + ITERATION_PER_PAIR.written) + converged * (
                    px[s] * co_px.written + co_pair.written)
                for _ in range(params.inner_iterations):
                    yield s, "iteration", read, written
        if s > 0:  # upsample: u1, u2 (scaled by 1/step), u3 when gamma != 0
            u = upsample_bytes(S)
            for _ in range(3 if gamma else 2):
                yield s - 1, "upsample", N * px[s] * u.read, N * px[s - 1] * u.written
    o = output_bytes(S)
    yield 0, "output", N * px[0] * o.read, N * px[0] * o.written


def launches(params: TVL1Params, H: int, W: int) -> dict[str, int]:
    """Launches per batch by kernel name, plus "memset" and "memcpy" (stream operations
    that are not kernels). Independent of N and of convergence."""
    counts = dict.fromkeys(KERNELS + COPIES, 0)
    for _, name, _, _ in _walk(params, H, W, 4, 1, 0.0, False):
        counts[name] += 1
    return counts


def kernel_launches(counts: Mapping[str, int]) -> int:
    """Kernel launches alone (no memset/memcpy)."""
    return sum(v for k, v in counts.items() if k not in COPIES)


# ---------------------------------------------------------------------------------------
# Traffic


@dataclass(frozen=True)
class Row:
    """One kernel at one level: launches and DRAM bytes for the whole batch."""

    level: int
    kernel: str
    launches: int
    bytes_read: float
    bytes_written: float

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written


@dataclass(frozen=True)
class Model:
    params: TVL1Params
    H: int
    W: int
    N: int
    half_state: bool
    converged_fraction: float
    converged_skip: bool
    sizes: tuple[tuple[int, int], ...]
    rows: tuple[Row, ...]  # per (level, kernel), finest level first
    launches: dict[str, int] = field(default_factory=dict)

    @property
    def state_size(self) -> int:
        return state_size(self.half_state)

    @property
    def bytes_read(self) -> float:
        return sum(r.bytes_read for r in self.rows)

    @property
    def bytes_written(self) -> float:
        return sum(r.bytes_written for r in self.rows)

    @property
    def total_bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def bytes_per_pair(self) -> float:
        return self.total_bytes / self.N

    @property
    def total_launches(self) -> int:
        """Kernels, memsets and memcpys: the stream operations enqueued per batch."""
        return sum(self.launches.values())

    @property
    def kernel_launches(self) -> int:
        return kernel_launches(self.launches)

    def level(self, s: int) -> dict[str, Row]:
        return {r.kernel: r for r in self.rows if r.level == s}

    def _sum_by(self, key: str) -> dict:
        out: dict = {}
        for r in self.rows:
            read, written = out.get(getattr(r, key), (0.0, 0.0))
            out[getattr(r, key)] = (read + r.bytes_read, written + r.bytes_written)
        return out

    def by_kernel(self) -> dict[str, tuple[float, float]]:
        """kernel -> (bytes read, bytes written) summed over levels."""
        return self._sum_by("kernel")

    def by_level(self) -> dict[int, tuple[float, float]]:
        """level -> (bytes read, bytes written) summed over kernels."""
        return self._sum_by("level")

    def kernel_bytes(self, kernel: str) -> float:
        read, written = self.by_kernel().get(kernel, (0.0, 0.0))
        return read + written

    def share(self, kernel: str) -> float:
        return self.kernel_bytes(kernel) / self.total_bytes


def traffic(params: TVL1Params, H: int, W: int, N: int, half_state: bool = False, converged_fraction: float = 0.0,
            *, converged_skip: bool = False) -> Model:
    """DRAM bytes of one batch of N pairs of H x W, per level and kernel (see the module
    docstring for the reuse assumption: every plane a launch touches moves once).

    Args:
        half_state: S = 2 bytes (``Solver<__half>``) instead of 4.
        converged_fraction: share of the (pair, iteration) slots of the iteration and median
            kernels in which the pair has already converged (0: every pair iterates to the
            budget, as in ``test_gpu_roofline`` with epsilon ~ 0).
        converged_skip: model the proposed variant where a converged pair moves no plane
            (per-pair buffer parity instead of carry_over); False = the current source.
    """
    if not 0.0 <= converged_fraction <= 1.0:
        raise ValueError(f"converged_fraction must be in [0, 1], got {converged_fraction}")
    S = state_size(half_state)
    acc: dict[tuple[int, str], list[float]] = {}
    for level, name, read, written in _walk(params, H, W, S, N, converged_fraction, converged_skip):
        row = acc.setdefault((level, name), [0, 0.0, 0.0])
        row[0] += 1
        row[1] += read
        row[2] += written
    order = {k: i for i, k in enumerate(KERNELS + COPIES)}
    rows = tuple(Row(level, name, int(v[0]), v[1], v[2])
                 for (level, name), v in sorted(acc.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])))
    return Model(params=params, H=H, W=W, N=N, half_state=half_state, converged_fraction=converged_fraction,
                 converged_skip=converged_skip, sizes=tuple(pyramid_sizes(H, W, params)), rows=rows,
                 launches=launches(params, H, W))


# ---------------------------------------------------------------------------------------
# Time


def memory_seconds(model: Model, bandwidth_bytes_per_s: float, efficiency: float = 1.0) -> float:
    """Batch time if DRAM traffic at efficiency x bandwidth is the only bound."""
    return model.total_bytes / (bandwidth_bytes_per_s * efficiency)


def predicted_pairs_per_second(model: Model, bandwidth_bytes_per_s: float, efficiency: float = 1.0) -> float:
    """N / (total bytes / (bandwidth x efficiency)): the memory-bound rate."""
    return model.N / memory_seconds(model, bandwidth_bytes_per_s, efficiency)


def launch_overhead_seconds(launches: Mapping[str, int] | Model | int, per_launch_s: float = LAUNCH_SECONDS) -> float:
    """Time the enqueues alone take (kernels, memsets and memcpys alike), at per_launch_s each."""
    if isinstance(launches, Model):
        launches = launches.launches
    count = launches if isinstance(launches, int) else sum(launches.values())
    return count * per_launch_s


def batch_seconds(model: Model, bandwidth_bytes_per_s: float, efficiency: float = 1.0,
                  per_launch_s: float = LAUNCH_SECONDS) -> float:
    """Lower bound on the batch time: the larger of the memory time and the launch time
    (the host enqueues asynchronously, so the two overlap)."""
    return max(memory_seconds(model, bandwidth_bytes_per_s, efficiency), launch_overhead_seconds(model, per_launch_s))


def launch_bound_below(params: TVL1Params, H: int, W: int, bandwidth_bytes_per_s: float, efficiency: float = 1.0,
                       half_state: bool = False, per_launch_s: float = LAUNCH_SECONDS) -> float:
    """The batch size N below which launch overhead, not bandwidth, bounds the batch time
    (every byte count is proportional to N; the launch count is not)."""
    one = traffic(params, H, W, 1, half_state)
    return launch_overhead_seconds(one, per_launch_s) / memory_seconds(one, bandwidth_bytes_per_s, efficiency)


# ---------------------------------------------------------------------------------------
# Arithmetic intensity and the proposed fusions


def iteration_flops_per_pixel(gamma: bool = False) -> int:
    """FLOPs of one fused_iteration_at at an interior pixel plus its share of block_add.
    An FMA counts 2, a division or square root 1, compares/selects/negations 0. Per
    component c (u1, u2, and u3 with gamma):

    * primal_at (run at 3 pixels: (y,x), (y,x+1), (y+1,x)):
      divergence_at 3 per c (p1 + p2, - p1[i-1], - p2[i-W]);
      primal_update: rho = rho_c + (I1wx u1 + I1wy u2) + (gamma u3 or 0.f): mul + fma + 2 adds
      = 5 (+1 mul with gamma); lg = l_t grad: 1; fi = -rho / grad: 1; v_c = u_c + coef a_c:
      fma 2 per c; u_c = v_c + theta div_c: fma 2 per c;
    * forward differences r_c - c_c and d_c - c_c: 2 per c;
    * dual_update per c: ux^2 + uy^2 (mul + fma) 3, sqrt 1, 1 + taut |.| (fma) 2, two
      (p + taut g) / ng (fma + div) 6: 12;
    * error: (c_c - o_c)^2 summed: sub + mul (first) or sub + fma: 3 per c, minus 1;
    * block_add: 5 shuffle-adds per thread.
    """
    comps = 3 if gamma else 2
    primal_update = 5 + (1 if gamma else 0) + 1 + 1 + 4 * comps
    primal_at = 3 * comps + primal_update
    return 3 * primal_at + 2 * comps + 12 * comps + (3 * comps - 1) + 5


def temporal_blocking_bytes_per_pixel_iteration(S: int, tile: int, k: int, gamma: bool = False) -> float:
    """Iteration bytes per pixel-iteration if k iterations run per launch on tile x tile
    outputs whose (tile + 2k)^2 input region (halo k: one pixel per iteration, the
    dependency cone of fused_iteration_at) is loaded once into shared memory: the read
    planes (iterates and warp terms) are read with the halo, the written planes once,
    every k iterations."""
    it = iteration_bytes(S, gamma)
    halo = ((tile + 2 * k) / tile) ** 2
    return (it.read * halo + it.written) / k


def l2_working_set_per_pair(H: int, W: int, half_state: bool, gamma: bool = False) -> int:
    """Bytes one pair's iterations touch at level 0: the distinct planes of iteration_bytes
    (cur iterates + the 4 warp terms read, nxt iterates written)."""
    it = iteration_bytes(state_size(half_state), gamma)
    return (it.read + it.written) * H * W


def max_active_fraction(target_pairs_per_s: float, params: TVL1Params, H: int, W: int, half_state: bool = False,
                        bandwidth_bytes_per_s: float = H100_SXM_BANDWIDTH, efficiency: float = 1.0) -> float:
    """Largest share of (pair, iteration) slots that may still iterate (1 - converged_fraction)
    for the skip variant (converged_skip=True) to reach target_pairs_per_s when memory-bound.
    The skip variant's bytes are affine in the active share, so two points solve it."""
    all_done = traffic(params, H, W, 1, half_state, 1.0, converged_skip=True).total_bytes
    none_done = traffic(params, H, W, 1, half_state, 0.0, converged_skip=True).total_bytes
    budget = bandwidth_bytes_per_s * efficiency / target_pairs_per_s  # bytes per pair
    return max(0.0, min(1.0, (budget - all_done) / (none_done - all_done)))


# ---------------------------------------------------------------------------------------
# The table of bench/RESULTS.md


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def summary_table(H: int = 128, W: int = 128, N: int = 1024, bandwidth: float = H100_SXM_BANDWIDTH,
                  per_launch_s: float = LAUNCH_SECONDS) -> str:
    lines = [
        f"Model of `Solver::run`, {H}x{W}, N={N:,}, every pair iterates to the budget (no early stop), "
        f"{bandwidth / 1e12:.2f} TB/s, {per_launch_s * 1e6:.0f} us per launch.",
        "",
        "| preset | state | levels (pixels/pair) | launches (kernels + memset/memcpy) | GB read / written / total "
        "per batch | iteration share | pairs/s at 100% | pairs/s at 40% | launch time | launch-bound below N |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("opencv", "ipol"):
        params = TVL1Params.preset(name)
        for half in (False, True):
            m = traffic(params, H, W, N, half)
            lines.append(
                f"| {name} | {'half' if half else 'float'} | {len(m.sizes)} ({_fmt(sum(h * w for h, w in m.sizes))}) "
                f"| {_fmt(m.total_launches)} ({_fmt(m.kernel_launches)} + {_fmt(m.total_launches - m.kernel_launches)}) "
                f"| {m.bytes_read / 1e9:,.1f} / {m.bytes_written / 1e9:,.1f} / {m.total_bytes / 1e9:,.1f} "
                f"| {m.share('iteration'):.1%} "
                f"| {predicted_pairs_per_second(m, bandwidth):,.0f} | {predicted_pairs_per_second(m, bandwidth, 0.4):,.0f} "
                f"| {launch_overhead_seconds(m, per_launch_s) * 1e3:.1f} ms "
                f"| {launch_bound_below(params, H, W, bandwidth, 1.0, half, per_launch_s):.0f} |")
    return "\n".join(lines)


def kernel_table(params: TVL1Params, H: int = 128, W: int = 128, N: int = 1024) -> str:
    """Launches and GB per kernel (summed over levels), float and half state."""
    f, h = traffic(params, H, W, N, False), traffic(params, H, W, N, True)
    lines = ["| kernel | launches | GB read / written (float) | GB read / written (half) |", "|---|---|---|---|"]
    bf, bh = f.by_kernel(), h.by_kernel()
    for name in KERNELS + COPIES:
        if f.launches[name]:
            lines.append(f"| {name} | {_fmt(f.launches[name])} | {bf[name][0] / 1e9:,.3f} / {bf[name][1] / 1e9:,.3f} "
                         f"| {bh[name][0] / 1e9:,.3f} / {bh[name][1] / 1e9:,.3f} |")
    lines.append(f"| total | {_fmt(f.total_launches)} | {f.bytes_read / 1e9:,.3f} / {f.bytes_written / 1e9:,.3f} "
                 f"| {h.bytes_read / 1e9:,.3f} / {h.bytes_written / 1e9:,.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side, pixels (default 128)")
    parser.add_argument("--n", type=int, default=1024, help="pairs per batch (default 1024)")
    parser.add_argument("--bandwidth", type=float, default=H100_SXM_BANDWIDTH, help="B/s (default H100 SXM 3.35e12)")
    parser.add_argument("--kernels", action="store_true", help="also print the per-kernel table of each preset")
    args = parser.parse_args(argv)
    print(summary_table(args.size, args.size, args.n, args.bandwidth))
    if args.kernels:
        for name in ("opencv", "ipol"):
            print(f"\n{name} preset, {args.size}x{args.size}, N={args.n:,}:\n")
            print(kernel_table(TVL1Params.preset(name), args.size, args.size, args.n))


if __name__ == "__main__":
    main()
