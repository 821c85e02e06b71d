"""Shape and dtype checks at the Python boundary, with messages that name the argument."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_shape(tensor: object, dims: Sequence[str | int], name: str, op: str) -> None:
    """Raise ``ValueError`` unless ``tensor`` is a tensor of shape ``dims``.

    ``dims`` holds symbolic names (any size) or ints (exact size), e.g. ``("N", 2, "H", "W")``.
    """
    expected = "[" + ", ".join(str(d) for d in dims) + "]"
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"fastmer.{op}: {name} must be a torch.Tensor of shape {expected}, got {type(tensor).__name__}")
    if tensor.dim() != len(dims) or any(
        isinstance(d, int) and tensor.shape[i] != d for i, d in enumerate(dims)
    ):
        raise ValueError(f"fastmer.{op}: expected {name} of shape {expected}, got {list(tensor.shape)}")


def as_compute_dtype(tensor: torch.Tensor, name: str, op: str, *, allow_integer: bool = False) -> torch.Tensor:
    """float32/float64 pass through; other floats (and integers if allowed) become float32."""
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    if tensor.is_floating_point() or (allow_integer and not tensor.is_complex() and tensor.dtype != torch.bool):
        return tensor.to(torch.float32)
    kinds = "a floating-point or integer" if allow_integer else "a floating-point"
    raise TypeError(f"fastmer.{op}: {name} must be {kinds} tensor, got {tensor.dtype}")
