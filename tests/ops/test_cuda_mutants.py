"""The emulated CUDA tests bite: bugs planted in a copy of the CUDA code make them fail.

Each mutant below is one plausible CUDA bug (a missing barrier, a reduction over half the
warps, a doubled grid or pair stride, a wrong plane stride, an off-by-one in rank pooling,
a converged pair that loses state...). It is applied to a scratch copy of ``csrc/``, and
``tests/ops/test_cuda_emulated.py`` is run against that copy in a subprocess
(``FASTMER_EMULATED_CSRC``); the mutant must make it fail. A mutant that survives means the
emulated tests miss a case: add one. A mutant whose text no longer matches the source fails
too, so the list is kept in step with the kernels.

Run one mutant by hand: ``python -m pytest tests/ops/test_cuda_mutants.py -k half-the-warps``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cuda_emulation import EmulationUnavailable, build, csrc_dir

pytestmark = [pytest.mark.cuda_emulated, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent / "test_cuda_emulated.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under csrc/ops/cuda
    old: str
    new: str
    occurrences: int = 1  # how often `old` appears (all are replaced)


MUTANTS = [
    Mutant("no-barrier-before-warp-0-reads-partials", "tvl1_kernel.cuh",
           "  if (lane == 0) partial[warp_id] = value;\n  __syncthreads();",
           "  if (lane == 0) partial[warp_id] = value;"),
    Mutant("half-the-warps-reduced", "tvl1_kernel.cuh",
           "lane < static_cast<int>(blockDim.x / 32)", "lane < static_cast<int>(blockDim.x / 64)"),
    Mutant("shuffle-tree-starts-at-8", "tvl1_kernel.cuh",
           "  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);\n"
           "  const int lane",
           "  for (int offset = 8; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);\n"
           "  const int lane"),
    Mutant("doubled-grid-stride-pair-pixel-loop", "tvl1_kernel.cuh",
           "i += int64_t{blockDim.x} * gridDim.x)", "i += 2 * int64_t{blockDim.x} * gridDim.x)"),
    Mutant("doubled-grid-stride-iteration-kernel", "tvl1_kernel.cuh",
           "const int64_t stride = int64_t{blockDim.x} * gridDim.x;",
           "const int64_t stride = 2 * int64_t{blockDim.x} * gridDim.x;"),
    Mutant("doubled-grid-stride-1d-loop", "launch.cuh",
           "i += int64_t{blockDim.x} * gridDim.x)", "i += 2 * int64_t{blockDim.x} * gridDim.x)"),
    Mutant("doubled-pair-stride", "tvl1_kernel.cuh",
           "n < (N); n += gridDim.y)", "n < (N); n += 2 * gridDim.y)"),
    Mutant("doubled-pair-stride-iteration-kernel", "tvl1_kernel.cuh",
           "n < N; n += gridDim.y) {", "n < N; n += 2 * gridDim.y) {"),
    Mutant("downscale-reads-with-the-destination-stride", "tvl1_kernel.cuh",
           "downscale_at(src + n * hws,", "downscale_at(src + n * hwd,"),
    Mutant("iteration-writes-one-past-the-plane", "tvl1_kernel.cuh",
           "      if (i < hw) {\n        if (converged)", "      if (i <= hw) {\n        if (converged)"),
    Mutant("converged-pair-drops-a-dual-plane", "tvl1_kernel.cuh",
           "  nxt.p22[j] = cur.p22[j];\n", ""),
    Mutant("median-reads-the-wrong-error-slot", "tvl1_kernel.cuh",
           "current(), next(), error(k_ + 2),", "current(), next(), error(k_ + 1),"),
    Mutant("illumination-not-upsampled", "tvl1_kernel.cuh",
           "cur_u_->u3, nxt_u_->u3, N_,", "cur_u_->u3, cur_u_->u3, N_,"),
    Mutant("rank-pool-skips-the-last-frame", "rank_pool_kernel.cuh",
           "for (int64_t t = 0; t < T_; ++t) acc +=", "for (int64_t t = 0; t < T_ - 1; ++t) acc +="),
    # Another warp runs into the next trip of the loop and overwrites `partial` while warp 0
    # still reads it: caught only because the tiny-grid cases schedule warp 0 last.
    Mutant("no-barrier-after-block-reduction", "tvl1_kernel.cuh",
           "    if (lane == 0) atomicAdd(target, static_cast<double>(value));\n  }\n  __syncthreads();",
           "    if (lane == 0) atomicAdd(target, static_cast<double>(value));\n  }"),
    Mutant("rank-pool-backward-clip-offset-off-by-one-frame", "rank_pool_kernel.cuh",
           "T* dst = out + n * T_ * P + p;", "T* dst = out + n * (T_ - 1) * P + p;"),
]


def _run_mutant(mutant: Mutant, scratch: Path, cache: Path) -> tuple[str, int, str]:
    """Apply `mutant` to a copy of csrc/ and run the emulated tests on it: (error, exit code, output)."""
    csrc = scratch / mutant.name / "csrc"
    shutil.copytree(csrc_dir(), csrc)
    target = csrc / "ops" / "cuda" / mutant.file
    text = target.read_text()
    found = text.count(mutant.old)
    if found != mutant.occurrences:
        return f"expected {mutant.occurrences} occurrence(s) of the mutated text in {mutant.file}, found {found}", 0, ""
    target.write_text(text.replace(mutant.old, mutant.new))
    env = {**os.environ, "FASTMER_EMULATED_CSRC": str(csrc), "FASTMER_EMULATION_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "pytest", str(TESTS), "-x", "-q", "-p", "no:cacheprovider", "--no-header"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return "", result.returncode, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[str, int, str]]:
    """Every mutant's outcome, two at a time (each is a compile and a test run)."""
    try:
        build()  # the unmutated code must build (and the emulator be available) first
    except EmulationUnavailable as exc:
        pytest.skip(f"emulated CUDA unavailable: {exc}")
    scratch = tmp_path_factory.mktemp("mutants")
    cache = tmp_path_factory.mktemp("mutant_builds")
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        futures = {m.name: pool.submit(_run_mutant, m, scratch, cache) for m in MUTANTS}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_planted_bug_fails_the_emulated_tests(outcomes, mutant):
    error, code, output = outcomes[mutant.name]
    assert not error, f"mutant {mutant.name} no longer applies: {error} (update MUTANTS to the kernel's new text)"
    assert code == 1, (f"mutant {mutant.name} survived (pytest exit {code}): the emulated CUDA tests miss this bug; "
                       f"add a case that catches it.\n{output}")
    assert "FAILED" in output or "Error" in output
