"""The project's CUDA device code, run on the CPU through HIP-CPU (for the emulated tests).

``csrc/emulation/emulated_ops.cpp`` includes the unmodified ``csrc/ops/cuda/*_kernel.cuh``
and is compiled by the host C++ compiler against HIP-CPU (``../shared/third_party/hip-cpu``)
into a small shared library with a C interface, loaded here with ctypes. The ``csrc/``
compiled is the one beside the ``tests/`` being run (``FASTMER_EMULATED_CSRC`` points
elsewhere, e.g. at a mutated copy), so a changed kernel is retested without reinstalling.
Builds are cached by a hash of every input (sources, HIP-CPU, compiler, flags) under
``build/cuda_emulated/`` (``FASTMER_EMULATION_CACHE`` moves it).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from fastmer.ops.tvl1 import PYRAMIDS, WARP_BORDERS, TVL1Params

REPO = Path(__file__).resolve().parents[2]
HIP_CPU = REPO.parent / "shared" / "third_party" / "hip-cpu"

# Serial C++17 parallel algorithms (GCC's without TBB): deterministic, nothing to install.
# -ffp-contract=off: no FMA contraction, like the CPU extension's default x86-64 build.
# -Wstack-usage: HIP-CPU's fibers have ~7 KB stacks and overflow silently; a frame that
# could not fit is a build error instead.
FLAGS = ["-std=c++17", "-O2", "-fPIC", "-shared", "-pthread", "-DNDEBUG", "-D_GLIBCXX_USE_TBB_PAR_BACKEND=0",
         "-ffp-contract=off", "-Wall", "-Wno-unknown-pragmas", "-Werror=stack-usage=4096"]


class EmulationUnavailable(RuntimeError):
    """What the emulated build needs is missing on this machine (a reason to skip, not a failure)."""


class EmulatedCudaError(RuntimeError):
    """A launcher returned a CUDA error inside the emulator."""


def csrc_dir() -> Path:
    return Path(os.environ.get("FASTMER_EMULATED_CSRC", REPO / "csrc")).resolve()


def compiler() -> str:
    for candidate in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise EmulationUnavailable("no C++ compiler found (set CXX); the emulated CUDA tests need a C++17 compiler")


def _probe(cxx: str) -> str:
    """The compiler's version line, once it has shown it compiles HIP-CPU's requirements."""
    probe = "#include <execution>\n#if !defined(__cpp_lib_parallel_algorithm)\n#error no parallel algorithms\n#endif\n"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.cpp"
        source.write_text(probe + "int main() { return 0; }\n")
        result = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", str(source)], capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulationUnavailable(f"{cxx} cannot compile C++17 parallel algorithms, which HIP-CPU needs:\n"
                                   f"{result.stderr[-2000:]}")
    return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def _inputs_hash(csrc: Path, cxx_version: str) -> str:
    digest = hashlib.sha256()
    digest.update(cxx_version.encode())
    digest.update(" ".join(FLAGS).encode())
    trees = [csrc / "emulation", csrc / "ops" / "cuda", csrc / "ops" / "common", HIP_CPU / "include", HIP_CPU / "src" / "include",
             HIP_CPU / "external"]
    for tree in trees:
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(tree.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


@cache
def build() -> Path:
    """Compile (or find in the cache) the emulated CUDA library; returns its path.

    Raises:
        EmulationUnavailable: HIP-CPU or a suitable compiler is missing.
        RuntimeError: the device code does not compile (a real failure).
    """
    if not (HIP_CPU / "include" / "hip" / "hip_runtime.h").is_file():
        raise EmulationUnavailable(f"HIP-CPU not found at {HIP_CPU} (it ships in ../shared beside the repo, in CI)")
    csrc = csrc_dir()
    cxx = compiler()
    key = _inputs_hash(csrc, _probe(cxx))
    cache_root = Path(os.environ.get("FASTMER_EMULATION_CACHE", REPO / "build" / "cuda_emulated"))
    library = cache_root / key / "libfastmer_cuda_emulated.so"
    if library.is_file():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, *FLAGS, f"-I{csrc / 'emulation'}", f"-I{csrc}", f"-I{HIP_CPU / 'include'}",
           str(csrc / "emulation" / "emulated_ops.cpp"), "-o", str(partial)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"the CUDA device code does not compile for the emulator:\n{' '.join(cmd)}\n"
                           f"{result.stderr[-8000:]}")
    os.replace(partial, library)  # atomic: a concurrent or interrupted build never leaves half a library
    return library


class _Params(ctypes.Structure):
    """Mirror of ``common::tvl1::Params`` (csrc/ops/common/tvl1.h), checked by size at load."""

    _fields_ = [(name, ctypes.c_float) for name in
                ("tau", "lambda_", "theta", "gamma", "epsilon", "scale_step", "presmooth_sigma", "cubic_a")] + \
               [(name, ctypes.c_int) for name in
                ("nscales", "warps", "inner_iterations", "outer_iterations", "median_size", "min_size", "pyramid",
                 "warp_border")]

    @classmethod
    def of(cls, p: TVL1Params) -> _Params:
        return cls(p.tau, p.lambda_, p.theta, p.gamma, p.epsilon, p.scale_step, p.presmooth_sigma, p.cubic_a,
                   p.nscales, p.warps, p.inner_iterations, p.outer_iterations, p.median_size, p.min_size,
                   PYRAMIDS[p.pyramid], WARP_BORDERS[p.warp_border])


def _ptr(array: np.ndarray) -> ctypes.c_void_p:
    assert array.flags.c_contiguous
    return ctypes.c_void_p(array.ctypes.data)


@dataclass
class EmulatedCuda:
    """The CUDA launchers of csrc/ops/cuda on the CPU. Outputs are pre-filled with NaN, so an
    element a kernel forgets to write cannot pass for a computed one."""

    lib: ctypes.CDLL

    @classmethod
    @cache
    def load(cls) -> EmulatedCuda:
        lib = ctypes.CDLL(str(build()))
        i64, vp, c_int, size_t = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        lib.fastmer_emu_params_size.restype = size_t
        lib.fastmer_emu_message.restype = ctypes.c_char_p
        lib.fastmer_emu_set_grid_caps.argtypes = [i64, i64]
        lib.fastmer_emu_set_warp_rotation.argtypes = [c_int]
        lib.fastmer_emu_take_counts.argtypes = [ctypes.c_char_p, size_t]
        lib.fastmer_emu_take_counts.restype = size_t
        lib.fastmer_emu_tvl1_workspace_bytes.argtypes = [ctypes.POINTER(_Params), i64, c_int, c_int, c_int]
        lib.fastmer_emu_tvl1_workspace_bytes.restype = size_t
        lib.fastmer_emu_tvl1.argtypes = [ctypes.POINTER(_Params), vp, vp, vp, i64, c_int, c_int, vp, c_int]
        for name in ("flow_magnitude", "optical_strain"):
            getattr(lib, f"fastmer_emu_{name}").argtypes = [vp, vp, i64, i64, i64, c_int]
        for name in ("rank_pool", "rank_pool_backward"):
            getattr(lib, f"fastmer_emu_{name}").argtypes = [vp, vp, i64, i64, i64, c_int]
        size = lib.fastmer_emu_params_size()
        if size != ctypes.sizeof(_Params):
            raise RuntimeError(f"common::tvl1::Params is {size} bytes but the ctypes mirror is {ctypes.sizeof(_Params)}: "
                               "update _Params in tests/ops/cuda_emulation.py")
        return cls(lib)

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise EmulatedCudaError(f"{what}: CUDA error {status}: {self.lib.fastmer_emu_message().decode()}")

    def set_grid_caps(self, max_x: int = 0, max_y: int = 0) -> None:
        """Most blocks on the x and y grid axes (0: CUDA's own caps)."""
        self.lib.fastmer_emu_set_grid_caps(max_x, max_y)

    def set_warp_rotation(self, warps: int = 0) -> None:
        """Which warp runs first after a barrier (HIP-CPU: warp 0); 1 makes warp 0 run last."""
        self.lib.fastmer_emu_set_warp_rotation(warps)

    def take_counts(self) -> dict[str, int]:
        """Kernel launches (by kernel name), memsets and copies since the last call."""
        size = self.lib.fastmer_emu_take_counts(None, 0)
        buffer = ctypes.create_string_buffer(size + 1)
        self.lib.fastmer_emu_take_counts(buffer, size + 1)
        items = [item.split("=") for item in buffer.value.decode().split(";") if item]
        return {name: int(count) for name, count in items}

    def tvl1_workspace_bytes(self, params: TVL1Params, n: int, height: int, width: int) -> int:
        return self.lib.fastmer_emu_tvl1_workspace_bytes(ctypes.byref(_Params.of(params)), n, height, width,
                                                         int(params.half_state))

    def tvl1(self, I0: torch.Tensor, I1: torch.Tensor, params: TVL1Params, workspace_fill: int | None = 0xFF,
             workspace_seed: int | None = None) -> torch.Tensor:
        """Flow [N, 2, H, W] of prepared float images [N, H, W] (see fastmer.ops.tvl1.prepare_images).

        The workspace starts as bytes ``workspace_fill`` (0xFF: every float, half and double in
        it is NaN) or, with ``workspace_seed``, random bytes: results must not depend on it.
        """
        a, b = (np.ascontiguousarray(x.numpy(), dtype=np.float32) for x in (I0, I1))
        n, height, width = a.shape
        size = self.tvl1_workspace_bytes(params, n, height, width)
        if workspace_seed is not None:
            workspace = np.random.default_rng(workspace_seed).integers(0, 256, size + 256, dtype=np.uint8)
        else:
            workspace = np.full(size + 256, workspace_fill, dtype=np.uint8)
        # 256-byte alignment, as torch's caching allocator gives the CUDA op.
        offset = (-workspace.ctypes.data) % 256
        base = ctypes.c_void_p(workspace.ctypes.data + offset)
        flow = np.full((n, 2, height, width), np.nan, dtype=np.float32)
        status = self.lib.fastmer_emu_tvl1(ctypes.byref(_Params.of(params)), _ptr(a), _ptr(b), _ptr(flow), n, height,
                                           width, base, int(params.half_state))
        self._check(status, "tvl1")
        return torch.from_numpy(flow)

    def _map(self, name: str, flow: torch.Tensor) -> torch.Tensor:
        f = np.ascontiguousarray(flow.numpy())
        n, _, height, width = f.shape
        out = np.full((n, 1, height, width), np.nan, dtype=f.dtype)
        self._check(getattr(self.lib, f"fastmer_emu_{name}")(_ptr(f), _ptr(out), n, height, width,
                                                             int(f.dtype == np.float64)), name)
        return torch.from_numpy(out)

    def flow_magnitude(self, flow: torch.Tensor) -> torch.Tensor:
        return self._map("flow_magnitude", flow)

    def optical_strain(self, flow: torch.Tensor) -> torch.Tensor:
        return self._map("optical_strain", flow)

    def rank_pool(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [N, T, C, H, W] -> [N, C, H, W]."""
        f = np.ascontiguousarray(frames.numpy())
        n, t = f.shape[:2]
        out = np.full((n, *f.shape[2:]), np.nan, dtype=f.dtype)
        pixels = int(np.prod(f.shape[2:]))
        self._check(self.lib.fastmer_emu_rank_pool(_ptr(f), _ptr(out), n, t, pixels, int(f.dtype == np.float64)),
                    "rank_pool")
        return torch.from_numpy(out)

    def rank_pool_backward(self, grad: torch.Tensor, num_frames: int) -> torch.Tensor:
        """grad [N, C, H, W] -> [N, T, C, H, W]."""
        g = np.ascontiguousarray(grad.numpy())
        n = g.shape[0]
        out = np.full((n, num_frames, *g.shape[1:]), np.nan, dtype=g.dtype)
        pixels = int(np.prod(g.shape[1:]))
        self._check(self.lib.fastmer_emu_rank_pool_backward(_ptr(g), _ptr(out), n, num_frames, pixels,
                                                            int(g.dtype == np.float64)), "rank_pool_backward")
        return torch.from_numpy(out)
