"""Fitting one network for a fixed number of epochs, and predicting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fastmer.models import TrainRecipe


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (None: leave torch's setting)."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: TrainRecipe, seed: int) -> list[float]:
    """Train ``net`` on prepared inputs ``x`` (N, C, H, W) and labels ``y`` (N,).

    Adam with cross-entropy, mini-batches reshuffled every epoch by a seeded generator,
    for exactly ``recipe.epochs`` epochs: no early stopping, hence no model selection.

    Returns:
        Mean training loss per epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    net.train()
    n = len(x)
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            if len(idx) < 2 and n >= 2:
                continue  # batch norm needs two samples; the clip returns next epoch
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / n)
    net.eval()
    return losses


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``net`` in eval mode."""
    net.eval()
    return torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else torch.empty(0)
