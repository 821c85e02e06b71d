"""Optical strain: magnitude of the strain tensor of a flow field."""

from __future__ import annotations

import torch
from torch import nn

from fastmer.ops import _native
from fastmer.ops._checks import as_compute_dtype, check_shape


def _gradient(x: torch.Tensor, dim: int) -> torch.Tensor:
    """numpy.gradient(edge_order=1) along ``dim``; zero along an axis of length 1."""
    if x.shape[dim] < 2:
        return torch.zeros_like(x)
    return torch.gradient(x, dim=dim, edge_order=1)[0]


def optical_strain_reference(flow: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`optical_strain` (the test oracle and fallback)."""
    u, v = flow[:, 0:1], flow[:, 1:2]
    du_dy, du_dx = _gradient(u, 2), _gradient(u, 3)
    dv_dy, dv_dx = _gradient(v, 2), _gradient(v, 3)
    e_xy = 0.5 * (du_dy + dv_dx)
    return torch.sqrt(du_dx**2 + dv_dy**2 + 2.0 * e_xy**2)


def optical_strain(flow: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Optical strain magnitude of a batch of flow fields (Shreve et al.; Bi-WOOF, STSTNet).

    With the infinitesimal strain tensor of the flow ``(u, v)``::

        e_xx = ∂u/∂x,  e_yy = ∂v/∂y,  e_xy = e_yx = (∂u/∂y + ∂v/∂x) / 2
        |e| = sqrt(e_xx² + e_yy² + e_xy² + e_yx²)

    Derivatives are central differences inside the image and one-sided differences on
    its border (``numpy.gradient``'s convention), and zero along an axis of length 1.

    Args:
        flow: ``(N, 2, H, W)`` flow in pixels; float32/float64 keep their dtype.
        backend: ``"auto"``, ``"native"`` or ``"reference"`` (see :func:`flow_magnitude`).

    Returns:
        ``(N, 1, H, W)`` strain magnitude (dimensionless).

    Example:
        >>> ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
        >>> flow = torch.stack([0.1 * xs, torch.zeros_like(xs)]).unsqueeze(0)  # u = 0.1 x
        >>> optical_strain(flow)[0, 0, 1, 1].item()  # |e| = |∂u/∂x|
        0.10000000149011612
    """
    check_shape(flow, ("N", 2, "H", "W"), "flow", "optical_strain")
    flow = as_compute_dtype(flow, "flow", "optical_strain")
    return _native.dispatch("optical_strain", flow, backend, optical_strain_reference)


class OpticalStrain(nn.Module):
    """Module form of :func:`optical_strain`: ``(N, 2, H, W) -> (N, 1, H, W)``."""

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return optical_strain(flow)
