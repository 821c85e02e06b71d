"""Approximate rank pooling: the dynamic image of a frame sequence."""

from __future__ import annotations

import torch
from torch import nn

from fastmer.ops import _native
from fastmer.ops._checks import as_compute_dtype, check_shape


def rank_pool_coefficients(num_frames: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Weights ``α_1..α_T`` of approximate rank pooling (Bilen et al., CVPR 2016).

    Computed from the defining sum ``α_t = Σ_{j=t..T} (2j − T − 1) / j``, which equals the
    closed form ``2(T − t + 1) − (T + 1)(H_T − H_{t−1})`` used by the native kernels; the
    two are computed independently so that each checks the other.

    Args:
        num_frames: ``T >= 1``.

    Returns:
        ``(T,)`` weights; they sum to zero.

    Example:
        >>> rank_pool_coefficients(2).tolist()
        [-0.5, 0.5]
    """
    if num_frames < 1:
        raise ValueError(f"fastmer.rank_pool_coefficients: num_frames must be >= 1, got {num_frames}")
    j = torch.arange(1, num_frames + 1, dtype=torch.float64)
    terms = (2 * j - num_frames - 1) / j
    # suffix sums: α_t = Σ_{j >= t} terms_j
    return terms.flip(0).cumsum(0).flip(0).to(dtype)


def rank_pool_reference(frames: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`rank_pool` (the test oracle and fallback)."""
    alpha = rank_pool_coefficients(frames.shape[1], dtype=frames.dtype).to(frames.device)
    return torch.einsum("t,ntchw->nchw", alpha, frames)


def rank_pool(frames: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Dynamic image of each clip by approximate rank pooling (differentiable).

    ``DI = Σ_t α_t I_t`` with ``α_t = 2(T − t + 1) − (T + 1)(H_T − H_{t−1})``, ``H_t`` the t-th
    harmonic number and ``H_0 = 0`` (Bilen et al., "Dynamic Image Networks for Action
    Recognition", CVPR 2016). The weights sum to zero: a static clip gives a zero image,
    ``T = 2`` gives ``(I_2 − I_1) / 2`` and ``T = 1`` gives zeros (the authors' MATLAB code
    special-cases ``α_1 = 1`` instead). No rescaling is applied; callers that feed an
    ImageNet-style CNN min–max rescale the result.

    Args:
        frames: ``(N, T, C, H, W)`` clips in temporal order, ``T >= 1``. float32/float64
            keep their dtype; integer frames (e.g. uint8) and other floats use float32.
        backend: ``"auto"``, ``"native"`` or ``"reference"`` (see :func:`flow_magnitude`).

    Returns:
        ``(N, C, H, W)`` dynamic images.

    Example:
        >>> frames = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)]).unsqueeze(0)
        >>> rank_pool(frames).flatten().tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    check_shape(frames, ("N", "T", "C", "H", "W"), "frames", "rank_pool")
    if frames.shape[1] < 1:
        raise ValueError(f"fastmer.rank_pool: need at least one frame (T >= 1), got frames of shape {list(frames.shape)}")
    frames = as_compute_dtype(frames, "frames", "rank_pool", allow_integer=True)
    return _native.dispatch("rank_pool", frames, backend, rank_pool_reference)


class RankPool(nn.Module):
    """Module form of :func:`rank_pool`: ``(N, T, C, H, W) -> (N, C, H, W)``."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return rank_pool(frames)
