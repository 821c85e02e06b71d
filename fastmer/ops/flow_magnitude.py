"""Magnitude of optical-flow fields."""

from __future__ import annotations

import torch
from torch import nn

from fastmer.ops import _native
from fastmer.ops._checks import as_compute_dtype, check_shape


def flow_magnitude_reference(flow: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`flow_magnitude` (the test oracle and fallback)."""
    return torch.hypot(flow[:, 0:1], flow[:, 1:2])


def flow_magnitude(flow: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Per-pixel magnitude ``M = sqrt(u² + v²)`` of a batch of flow fields.

    Args:
        flow: ``(N, 2, H, W)`` horizontal (u) and vertical (v) displacement in pixels.
            float32/float64 keep their dtype; other floating dtypes are computed in float32.
        backend: ``"auto"`` (native kernel, else reference with a warning), ``"native"``
            or ``"reference"``.

    Returns:
        ``(N, 1, H, W)`` magnitude.

    Example:
        >>> flow = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
        >>> flow_magnitude(flow).flatten().tolist()
        [5.0]
    """
    check_shape(flow, ("N", 2, "H", "W"), "flow", "flow_magnitude")
    flow = as_compute_dtype(flow, "flow", "flow_magnitude")
    return _native.dispatch("flow_magnitude", flow, backend, flow_magnitude_reference)


class FlowMagnitude(nn.Module):
    """Module form of :func:`flow_magnitude`: ``(N, 2, H, W) -> (N, 1, H, W)``."""

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return flow_magnitude(flow)
