"""Fake (meta) kernels and autograd for the native ops; imported once the extension loads.

Fake kernels let ``torch.compile``/``torch.export`` trace the ops; autograd is registered
only for the differentiable op (rank pooling, which is linear in its input).
"""

from __future__ import annotations

import torch


@torch.library.register_fake("fastmer::flow_magnitude")
def _flow_magnitude_fake(flow: torch.Tensor) -> torch.Tensor:
    torch._check(flow.dim() == 4 and flow.shape[1] == 2, lambda: "expected flow of shape [N, 2, H, W]")
    return flow.new_empty((flow.shape[0], 1, flow.shape[2], flow.shape[3]))


@torch.library.register_fake("fastmer::optical_strain")
def _optical_strain_fake(flow: torch.Tensor) -> torch.Tensor:
    torch._check(flow.dim() == 4 and flow.shape[1] == 2, lambda: "expected flow of shape [N, 2, H, W]")
    return flow.new_empty((flow.shape[0], 1, flow.shape[2], flow.shape[3]))


@torch.library.register_fake("fastmer::rank_pool")
def _rank_pool_fake(frames: torch.Tensor) -> torch.Tensor:
    torch._check(frames.dim() == 5, lambda: "expected frames of shape [N, T, C, H, W]")
    n, _, c, h, w = frames.shape
    return frames.new_empty((n, c, h, w))


@torch.library.register_fake("fastmer::rank_pool_backward")
def _rank_pool_backward_fake(grad: torch.Tensor, num_frames: int) -> torch.Tensor:
    torch._check(grad.dim() == 4, lambda: "expected grad of shape [N, C, H, W]")
    n, c, h, w = grad.shape
    return grad.new_empty((n, num_frames, c, h, w))


@torch.library.register_fake("fastmer::tvl1")
def _tvl1_fake(I0: torch.Tensor, I1: torch.Tensor, *args: object) -> torch.Tensor:
    torch._check(I0.dim() == 3 and I1.shape == I0.shape, lambda: "expected I0, I1 of shape [N, H, W]")
    n, h, w = I0.shape
    return I0.new_empty((n, 2, h, w))


def _rank_pool_setup(ctx, inputs, output) -> None:
    (frames,) = inputs
    ctx.num_frames = frames.shape[1]


def _rank_pool_backward(ctx, grad: torch.Tensor):
    return torch.ops.fastmer.rank_pool_backward(grad, ctx.num_frames)


def _rank_pool_backward_setup(ctx, inputs, output) -> None:
    pass


def _rank_pool_backward_backward(ctx, grad_frames: torch.Tensor):
    # rank_pool_backward is the adjoint of rank_pool, so its own adjoint is rank_pool.
    return torch.ops.fastmer.rank_pool(grad_frames), None


torch.library.register_autograd("fastmer::rank_pool", _rank_pool_backward, setup_context=_rank_pool_setup)
torch.library.register_autograd(
    "fastmer::rank_pool_backward", _rank_pool_backward_backward, setup_context=_rank_pool_backward_setup
)
