"""Fitting one network (single- or multi-label, optionally augmented, mixed precision), and predicting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fastmer.models import TrainRecipe
from fastmer.train.losses import class_weights, focal_loss, sigmoid_focal_loss
from fastmer.train.metrics import apply_thresholds, confusion_matrix, multilabel_scores, scores, tune_thresholds

# bfloat16 has float32's exponent range: no loss scaling, and CPU autocast supports it too.
AMP_DTYPE = torch.bfloat16


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


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when ``enabled`` (mixed precision), else nothing."""
    return torch.autocast(device.type, dtype=AMP_DTYPE) if enabled else nullcontext()


@dataclass
class History:
    """What one :func:`fit` did, epoch by epoch (the report's curves).

    ``best_epoch`` (1-based) is the epoch whose weights were kept: the last one without
    validation data, else the one with the best validation UF1 (macro-UF1 for multi-label;
    ties: lower validation loss).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_uf1: list[float] = field(default_factory=list)
    best_epoch: int = 0

    def to_json(self) -> dict:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_uf1": self.val_uf1,
                "best_epoch": self.best_epoch, "epochs_run": len(self.train_loss)}


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's mini-batches of ``n`` clips: a fresh permutation cut into ``ceil(n / b)``
    batches of exactly ``b = min(batch_size, n)`` clips, the last one completed with the first
    clips of the same permutation (so every batch-norm batch is full, and folds of different
    sizes can be stacked, :mod:`fastmer.train.batched`)."""
    b = min(batch_size, n)
    order = torch.randperm(n, generator=generator)
    steps = -(-n // b)
    if steps * b > n:
        order = torch.cat([order, order[: steps * b - n]])
    return list(order.view(steps, b))


def make_loss(recipe: TrainRecipe, y: torch.Tensor, num_classes: int, *, multilabel: bool = False) -> Loss:
    """The recipe's loss, its class weights (if any) computed from the training labels ``y`` only.

    Single-label (``y`` class indices): cross-entropy with ``weight`` or softmax focal loss
    with ``α_c`` = the class weights. Multi-label (``y`` an ``(N, C)`` 0/1 matrix): binary
    cross-entropy (``class_weighting="inverse"``: ``pos_weight_c = n_neg / n_pos``) or the
    sigmoid focal loss summed over classes (SPEC §1.5; α = 0.25, or with ``"inverse"`` the
    share of negatives of each class, so rare labels weigh more).
    """
    if multilabel:
        if recipe.class_weighting not in ("none", "inverse"):
            raise ValueError(f"multi-label training supports class_weighting none or inverse, got {recipe.class_weighting!r}")
        positives = y.float().sum(0)
        negatives = len(y) - positives
        if recipe.loss == "focal":
            alpha: torch.Tensor | float = 0.25
            if recipe.class_weighting == "inverse":
                alpha = (negatives / len(y)).to(y.device)
            return lambda logits, target: sigmoid_focal_loss(logits, target.float(), gamma=recipe.focal_gamma,
                                                             alpha=alpha, reduction="none").sum(1).mean()
        pos_weight = None
        if recipe.class_weighting == "inverse":
            pos_weight = (negatives / positives.clamp(min=1)).to(y.device)
        bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        return lambda logits, target: bce(logits, target.float())
    weights = None
    if recipe.class_weighting != "none":
        weights = class_weights(y, num_classes, mode=recipe.class_weighting).to(y.device)
    if recipe.loss == "focal":
        return lambda logits, target: focal_loss(logits, target, gamma=recipe.focal_gamma, alpha=weights)
    return nn.CrossEntropyLoss(weight=weights)


def validation_score(logits: torch.Tensor, y: torch.Tensor, num_classes: int, *, multilabel: bool = False) -> float:
    """UF1 of ``logits`` against ``y``; multi-label: macro-UF1 at thresholds tuned on these same
    (validation) clips, the thresholds the model would then be deployed with."""
    names = [str(c) for c in range(num_classes)]
    if multilabel:
        probs, truth = torch.sigmoid(logits.float()).cpu().numpy(), y.cpu().numpy().astype(np.int64)
        tuned = tune_thresholds(truth, probs, names)
        return multilabel_scores(truth, apply_thresholds(probs, tuned), names)["macro_uf1"]
    cm = confusion_matrix(y.cpu().tolist(), logits.argmax(1).cpu().tolist(), num_classes)
    return scores(cm, names)["uf1"]


def fit(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    seed: int,
    *,
    num_classes: int | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    multilabel: bool = False,
    amp: bool = False,
) -> History:
    """Train ``net`` on prepared inputs ``x`` (N, C, H, W) and labels ``y``.

    The recipe's optimiser and loss, mini-batches reshuffled every epoch by a seeded
    generator (:func:`epoch_batches`: full batches). Without ``val``: exactly ``recipe.epochs`` epochs. With ``val`` (inputs and
    labels of held-out *training* subjects, see :func:`fastmer.train.protocols.inner_split`)
    and ``recipe.patience``: early stopping on the validation UF1, and the best epoch's
    weights are restored. Test data never enters this function.

    Args:
        net: the network, on the device of ``x``.
        x: training inputs, on the device to train on (CPU or CUDA).
        y: ``(N,)`` class indices, or ``(N, C)`` 0/1 labels with ``multilabel``.
        val: validation inputs and labels (ready for the network, not augmented).
        augment: applied to every training batch (e.g. :class:`fastmer.train.augment.Augment`);
            then ``x`` holds what it expects (raw values) and it returns network inputs.
        multilabel: one sigmoid output per class (:func:`make_loss`).
        amp: mixed precision (bfloat16 autocast; weights and optimiser stay float32).

    Returns:
        The :class:`History` (losses per epoch, validation curves, the kept epoch).
    """
    if multilabel:
        num_classes = num_classes or y.shape[1]
    else:
        num_classes = num_classes or int(y.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = make_loss(recipe, y, num_classes, multilabel=multilabel)
    history = History()
    best: tuple[float, float] | None = None  # (uf1, -loss) of the kept epoch
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(1, recipe.epochs + 1):
        net.train()
        batches = epoch_batches(len(x), recipe.batch_size, generator)
        total = 0.0
        for idx in batches:
            idx = idx.to(x.device)
            batch = x[idx] if augment is None else augment(x[idx])
            optimizer.zero_grad(set_to_none=True)
            with autocast(x.device, amp):
                logits = net(batch)
            loss = loss_fn(logits.float(), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.train_loss.append(total / len(batches))  # mean loss of the epoch's steps
        if val is None or recipe.patience is None:
            history.best_epoch = epoch
            continue
        logits = predict(net, val[0], amp=amp)
        val_loss = float(loss_fn(logits, val[1]))
        val_uf1 = validation_score(logits, val[1], num_classes, multilabel=multilabel)
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
def predict(net: nn.Module, x: torch.Tensor, batch_size: int = 1024, *, amp: bool = False) -> torch.Tensor:
    """float32 logits of ``net`` in eval mode, on the device of ``x``."""
    net.eval()
    if not len(x):
        return torch.empty(0, device=x.device)
    with autocast(x.device, amp):
        return torch.cat([net(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])
