"""Loading of the compiled extension ``fastmer._C`` and which kernels it provides.

The native ops live in ``torch.ops.fastmer``. When the extension is missing, was built
for another torch, or lacks a backend (e.g. CUDA), the Python wrappers fall back to the
pure-PyTorch references in this package. That is never silent: the first fallback per
(op, device) emits a :class:`NativeFallbackWarning`, and ``fastmer info`` lists which
path runs for every op and device.

Set ``FASTMER_DISABLE_NATIVE=1`` to force the reference implementations.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import cache
from typing import Any

import torch

# Every op with a native kernel; fastmer info reports them in this order.
NATIVE_OPS = ("flow_magnitude", "optical_strain", "rank_pool", "rank_pool_backward", "tvl1")
DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}


class NativeFallbackWarning(RuntimeWarning):
    """A fastmer op ran its pure-PyTorch reference because no native kernel was available."""


@cache
def _load() -> tuple[Any, str | None]:
    """Import the extension once; returns (module or None, reason it is unavailable)."""
    if os.environ.get("FASTMER_DISABLE_NATIVE", "") not in ("", "0"):
        return None, "disabled by FASTMER_DISABLE_NATIVE"
    try:
        from fastmer import _C  # noqa: PLC0415  (registers torch.ops.fastmer.*)
    except ImportError as exc:
        return None, f"the compiled extension fastmer._C could not be imported ({exc})"
    built_for = _C.build_info()["torch_version"]
    if built_for != torch.__version__:
        return None, f"fastmer._C was built for torch {built_for} but torch {torch.__version__} is installed; rebuild it"
    return _C, None


def extension() -> Any | None:
    """The loaded ``fastmer._C`` module, or None."""
    return _load()[0]


def unavailable_reason() -> str | None:
    """Why the extension is unavailable, or None when it loaded."""
    return _load()[1]


def build_info() -> dict[str, Any] | None:
    """``fastmer._C.build_info()`` (torch version, CUDA, archs, compiler, OpenMP), or None."""
    ext = extension()
    return dict(ext.build_info()) if ext is not None else None


def cpu_capability() -> str | None:
    """The CPU build that CPU TV-L1 runs: ``"avx2"`` (AVX2/FMA/F16C, chosen at run time when
    the CPU has them) or ``"base"`` (any x86-64, or forced by ``FASTMER_CPU_CAPABILITY=base``);
    None without the extension."""
    ext = extension()
    return str(ext.cpu_capability()) if ext is not None and hasattr(ext, "cpu_capability") else None


def has_kernel(op: str, device_type: str) -> bool:
    """Whether ``torch.ops.fastmer.<op>`` has a native kernel for ``device_type`` ('cpu'/'cuda')."""
    if extension() is None or device_type not in DISPATCH_KEYS:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"fastmer::{op}", DISPATCH_KEYS[device_type])


def fallback_reason(op: str, device_type: str) -> str | None:
    """Why ``op`` would run its reference on ``device_type``, or None if it runs natively."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if not has_kernel(op, device_type):
        if device_type == "cuda":
            return f"fastmer._C was built without CUDA kernels ({build_info()['cuda_reason']})"
        return f"no native {device_type} kernel for {op}"
    return None


_warned: set[tuple[str, str]] = set()


def use_native(op: str, device: torch.device, backend: str) -> bool:
    """Decide between the native kernel and the reference for one call.

    Args:
        op: op name in ``torch.ops.fastmer``.
        device: device of the inputs.
        backend: ``"auto"`` (native when available, else reference with a one-time
            warning), ``"native"`` (error when unavailable) or ``"reference"``.
    """
    if backend == "reference":
        return False
    if backend not in ("auto", "native"):
        raise ValueError(f"backend must be 'auto', 'native' or 'reference', got {backend!r}")
    reason = fallback_reason(op, device.type)
    if reason is None:
        return True
    if backend == "native":
        raise RuntimeError(f"fastmer.{op}: no native kernel for {device.type} tensors: {reason}")
    if (op, device.type) not in _warned:
        _warned.add((op, device.type))
        warnings.warn(
            f"fastmer.{op} on {device.type} runs the pure-PyTorch reference: {reason}",
            NativeFallbackWarning,
            stacklevel=3,
        )
    return False


def dispatch(op: str, tensor: torch.Tensor, backend: str, reference: Callable[..., torch.Tensor], *args: object):
    """Run ``torch.ops.fastmer.<op>`` or its ``reference`` on ``tensor`` (see :func:`use_native`)."""
    if use_native(op, tensor.device, backend):
        return getattr(torch.ops.fastmer, op)(tensor, *args)
    return reference(tensor, *args)
