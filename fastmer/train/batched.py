"""Several folds trained at once as one stacked model (``torch.func``): the GPU path of LOSO.

A LOSO fold of a micro-expression network is a few thousand parameters and a few hundred
clips: alone it leaves a GPU idle, launching tiny kernels. Here ``F`` folds are stacked
(:func:`torch.func.stack_module_state`) and every step runs all of them in one
``vmap``-ed forward and backward, then one masked Adam/AdamW update of the stacked
parameters. Each fold keeps its own training clips, shuffling generator (seeded as in
:func:`fastmer.train.trainer.fit`), loss class weights, optimiser state and early
stopping; with dropout off, a fold trained here gets the weights :func:`fit` gives it
alone, up to float rounding (tested on the CPU). What differs is randomness inside the
network and augmentation: dropout masks (``vmap(randomness="different")``) and the
augmentation draws come from other streams.

Folds differ in size, hence in steps per epoch: a fold whose epoch is over sits out the
remaining steps of it (its parameters, optimiser state and batch-norm statistics are kept
by a mask), as does a fold stopped early.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from fastmer.models import TrainRecipe
from fastmer.train.losses import class_weights
from fastmer.train.trainer import History, autocast, epoch_batches, predict, validation_score

__all__ = ["fit_folds"]


def _fold_losses(logits: torch.Tensor, y: torch.Tensor, recipe: TrainRecipe, weights: torch.Tensor | None) -> torch.Tensor:
    """``(F,)`` per-fold mean losses of ``(F, B, K)`` logits, as ``nn.CrossEntropyLoss(weight)`` /
    :func:`fastmer.train.losses.focal_loss` (alpha = weights) compute them for one fold."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    log_pt = log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (F, B)
    if recipe.loss == "focal":
        loss = -(1 - log_pt.exp()).pow(recipe.focal_gamma) * log_pt
        if weights is not None:
            loss = loss * weights.gather(1, y)
        return loss.mean(1)
    if weights is None:
        return -log_pt.mean(1)
    w = weights.gather(1, y)
    return -(w * log_pt).sum(1) / w.sum(1)


def fit_folds(
    nets: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    train: Sequence[torch.Tensor],
    recipe: TrainRecipe,
    seeds: Sequence[int],
    *,
    num_classes: int,
    val: Sequence[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    amp: bool = False,
) -> list[History]:
    """Train ``nets`` (same architecture, one per fold) together; each ends in eval mode with its weights.

    Args:
        nets: ``F`` freshly initialised networks, on the device of ``x``.
        x: inputs of every clip (the folds index into it).
        y: ``(N,)`` class indices of every clip (single-label).
        train: per fold, the indices of its training clips.
        recipe: shared by the folds.
        seeds: per fold, the seed of its shuffling generator.
        val: per fold, validation inputs and labels (early stopping with ``recipe.patience``), or None.
        augment: applied to the stacked batch of all folds (e.g. :class:`fastmer.train.augment.Augment`).
        amp: bfloat16 autocast.

    Returns:
        One :class:`History` per fold, as :func:`fastmer.train.trainer.fit` reports it.
    """
    from torch.func import functional_call, stack_module_state, vmap  # noqa: PLC0415

    f_count = len(nets)
    if not (len(train) == len(seeds) == f_count) or f_count == 0:
        raise ValueError(f"fit_folds: {f_count} nets, {len(train)} training sets and {len(seeds)} seeds")
    val = list(val) if val is not None else [None] * f_count
    device = x.device
    for net in nets:
        net.train()
    params, buffers = stack_module_state(list(nets))
    params = {k: v.detach().clone() for k, v in params.items()}
    template = copy.deepcopy(nets[0]).to("meta")

    def forward(p, b, inputs):
        return functional_call(template, (p, b), (inputs,))

    batched_forward = vmap(forward, randomness="different")
    weights = None
    if recipe.class_weighting != "none":
        weights = torch.stack([class_weights(y[t], num_classes, mode=recipe.class_weighting) for t in train]).to(device)
    # Adam/AdamW state, per fold: exactly torch.optim's update rule, masked.
    exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
    exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
    steps = torch.zeros(f_count, dtype=torch.float64, device=device)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    histories = [History() for _ in range(f_count)]
    best: list[tuple[float, float] | None] = [None] * f_count
    best_state: list[dict[str, torch.Tensor] | None] = [None] * f_count
    stopped = torch.zeros(f_count, dtype=torch.bool, device=device)
    early = recipe.patience is not None
    size = min(recipe.batch_size, min(len(t) for t in train))  # one batch size for the stack

    def shape(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return mask.view(-1, *([1] * (like.dim() - 1)))

    for epoch in range(1, recipe.epochs + 1):
        batches = [epoch_batches(len(t), size, g) for t, g in zip(train, generators, strict=True)]
        totals = torch.zeros(f_count, dtype=torch.float64)
        for step in range(max(len(b) for b in batches)):
            active = torch.tensor([step < len(b) for b in batches], device=device) & ~stopped
            if not bool(active.any()):
                continue
            # Folds whose epoch is over (or that stopped) still compute on some batch; masked out below.
            index = torch.stack([t[(b[step] if step < len(b) else b[0]).to(t.device)]
                                 for t, b in zip(train, batches, strict=True)])  # (F, B)
            inputs = x[index]
            if augment is not None:
                inputs = augment(inputs.flatten(0, 1)).unflatten(0, (f_count, -1))
            for p in params.values():
                p.requires_grad_(True)
            old_buffers = {k: v.clone() for k, v in buffers.items()}
            with autocast(device, amp):
                logits = batched_forward(params, buffers, inputs)
            losses = _fold_losses(logits, y[index], recipe, weights)
            grads = torch.autograd.grad(losses.sum(), list(params.values()))
            with torch.no_grad():
                steps += active.double()
                bias1 = (1 - beta1 ** steps).clamp(min=1e-12)
                bias2 = (1 - beta2 ** steps).clamp(min=1e-12)
                for (k, p), g in zip(params.items(), grads, strict=True):
                    m = shape(active, p)
                    if recipe.weight_decay and recipe.optimizer == "adam":
                        g = g + recipe.weight_decay * p
                    new_p = p * (1 - recipe.lr * recipe.weight_decay) if recipe.optimizer == "adamw" else p
                    new_m = beta1 * exp_avg[k] + (1 - beta1) * g
                    new_v = beta2 * exp_avg_sq[k] + (1 - beta2) * g * g
                    denom = new_v.sqrt() / shape(bias2.sqrt().to(p.dtype), p) + eps
                    new_p = new_p - shape((recipe.lr / bias1).to(p.dtype), p) * new_m / denom
                    params[k] = torch.where(m, new_p, p).detach()
                    exp_avg[k] = torch.where(m, new_m, exp_avg[k])
                    exp_avg_sq[k] = torch.where(m, new_v, exp_avg_sq[k])
                for k, v in buffers.items():
                    buffers[k] = torch.where(shape(active, v), v, old_buffers[k])
            totals += losses.detach().double().cpu() * active.cpu()
        for f in range(f_count):
            if bool(stopped[f]):
                continue
            histories[f].train_loss.append(float(totals[f]) / len(batches[f]))
            if not early or val[f] is None:
                histories[f].best_epoch = epoch
                continue
            net = _fold_module(nets[f], params, buffers, f)
            logits = predict(net, val[f][0], amp=amp)
            loss_fn = nn.CrossEntropyLoss() if weights is None else nn.CrossEntropyLoss(weight=weights[f])
            val_loss = float(loss_fn(logits, val[f][1])) if recipe.loss == "ce" else float(
                _fold_losses(logits[None], val[f][1][None], recipe, None if weights is None else weights[f][None])[0])
            val_uf1 = validation_score(logits, val[f][1], num_classes)
            histories[f].val_loss.append(val_loss)
            histories[f].val_uf1.append(val_uf1)
            if best[f] is None or (val_uf1, -val_loss) > best[f]:
                best[f], histories[f].best_epoch = (val_uf1, -val_loss), epoch
                best_state[f] = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - histories[f].best_epoch >= recipe.patience:
                stopped[f] = True
        if bool(stopped.all()):
            break
    for f, net in enumerate(nets):
        state = best_state[f] if best_state[f] is not None else _fold_module(net, params, buffers, f).state_dict()
        net.load_state_dict(state)
        net.eval()
    return histories


def _fold_module(net: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], f: int) -> nn.Module:
    """``net`` holding fold ``f``'s slice of the stacked parameters and buffers."""
    saved = net.state_dict().keys()  # non-persistent buffers (fixed kernels) are not part of the state
    with torch.no_grad():
        net.load_state_dict({k: v[f] for k, v in {**params, **buffers}.items() if k in saved})
    return net

