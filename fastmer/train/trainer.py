"""Fitting one network for a fixed number of epochs, and predicting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from fastmer.models import TrainRecipe
from fastmer.train.losses import class_weights, focal_loss
from fastmer.train.metrics import confusion_matrix, scores


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


@dataclass
class History:
    """What one :func:`fit` did, epoch by epoch (the report's curves).

    ``best_epoch`` (1-based) is the epoch whose weights were kept: the last one without
    validation data, else the one with the best validation UF1 (ties: lower validation loss).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_uf1: list[float] = field(default_factory=list)
    best_epoch: int = 0

    def to_json(self) -> dict:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_uf1": self.val_uf1,
                "best_epoch": self.best_epoch, "epochs_run": len(self.train_loss)}


def make_loss(recipe: TrainRecipe, y: torch.Tensor, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The recipe's loss, its class weights (if any) computed from the training labels ``y`` only."""
    weights = None
    if recipe.class_weighting != "none":
        weights = class_weights(y, num_classes, mode=recipe.class_weighting)
    if recipe.loss == "focal":
        return lambda logits, target: focal_loss(logits, target, gamma=recipe.focal_gamma, alpha=weights)
    return nn.CrossEntropyLoss(weight=weights)


def fit(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    seed: int,
    *,
    num_classes: int | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> History:
    """Train ``net`` on prepared inputs ``x`` (N, C, H, W) and labels ``y`` (N,).

    The recipe's optimiser and loss, mini-batches reshuffled every epoch by a seeded
    generator. Without ``val``: exactly ``recipe.epochs`` epochs. With ``val`` (inputs and
    labels of held-out *training* subjects, see :func:`fastmer.train.protocols.inner_split`)
    and ``recipe.patience``: early stopping on the validation UF1, and the best epoch's
    weights are restored. Test data never enters this function.

    Returns:
        The :class:`History` (losses per epoch, validation curves, the kept epoch).
    """
    num_classes = num_classes or int(y.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = make_loss(recipe, y, num_classes)
    history = History()
    best: tuple[float, float] | None = None  # (uf1, -loss) of the kept epoch
    best_state: dict[str, torch.Tensor] | None = None
    n = len(x)
    for epoch in range(1, recipe.epochs + 1):
        net.train()
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
        history.train_loss.append(total / n)
        if val is None or recipe.patience is None:
            history.best_epoch = epoch
            continue
        logits = predict(net, val[0])
        val_loss = float(loss_fn(logits, val[1]))
        cm = confusion_matrix(val[1].tolist(), logits.argmax(1).tolist(), num_classes)
        val_uf1 = scores(cm, [str(c) for c in range(num_classes)])["uf1"]
        history.val_loss.append(val_loss)
        history.val_uf1.append(val_uf1)
        if best is None or (val_uf1, -val_loss) > best:
            best, history.best_epoch = (val_uf1, -val_loss), epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - history.best_epoch >= recipe.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``net`` in eval mode."""
    net.eval()
    return torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else torch.empty(0)
