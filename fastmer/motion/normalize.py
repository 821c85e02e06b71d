"""Per-map min–max normalisation shared by the flow and dynamic-image representations."""

from __future__ import annotations

import torch

__all__ = ["MINMAX_EPS", "minmax_normalize"]

MINMAX_EPS = 1e-8
"""ε added to the min–max denominator (SPEC §1.3), so a constant map becomes zeros."""


def minmax_normalize(x: torch.Tensor, *, eps: float = MINMAX_EPS) -> torch.Tensor:
    """Min–max scale every ``H x W`` map of a batch to ``[0, 1]``.

    ``x_n = (x − min x) / (max x − min x + ε)`` with min and max over the pixels of that one
    map, i.e. per sample and per channel (SPEC §1.3: "min/max taken over the pixels of that
    one map"). A constant map becomes all zeros; otherwise the maximum is ``1 − O(ε)``.
    SPEC's ``[0, 255]`` images for ImageNet CNNs are this times 255.

    Args:
        x: ``(..., H, W)`` floating tensor.
        eps: ε ≥ 0 added to the denominator.

    Returns:
        Tensor of the shape and dtype of ``x``, values in ``[0, 1]``.

    Example:
        >>> minmax_normalize(torch.tensor([[[[1.0, 3.0], [2.0, 5.0]]]])).flatten().tolist()
        [0.0, 0.5, 0.25, 1.0]
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"fastmer.minmax_normalize: expected x of shape [..., H, W], got {got}")
    if not x.is_floating_point():
        raise ValueError(f"fastmer.minmax_normalize: x must be a floating-point tensor, got {x.dtype}")
    if eps < 0:
        raise ValueError(f"fastmer.minmax_normalize: eps must be >= 0, got {eps}")
    if x.numel() == 0:
        return x.clone()
    flat = x.flatten(-2)
    lo = flat.amin(-1, keepdim=True).unsqueeze(-1)
    hi = flat.amax(-1, keepdim=True).unsqueeze(-1)
    span = hi - lo
    if eps == 0:
        # exact [0, 1]; constant maps (span 0) become zeros instead of NaN
        return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))
    return (x - lo) / (span + eps)
