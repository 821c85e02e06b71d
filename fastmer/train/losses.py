"""Losses for imbalanced micro-expression classes: focal losses and class weights.

Definitions (SPEC §1.5; general knowledge, not from the MER papers):

* multi-class (softmax) focal loss ``FL = −Σ_c α_c (1 − p_c)^γ y_c log p_c``
  (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017);
* multi-label (sigmoid) focal loss
  ``FL = −Σ_c [α y_c (1 − p_c)^γ log p_c + (1 − α)(1 − y_c) p_c^γ log(1 − p_c)]``;
* class weights by inverse frequency or by the "effective number of samples"
  ``(1 − β^n) / (1 − β)`` (Cui et al., "Class-Balanced Loss Based on Effective Number of
  Samples", CVPR 2019), usable as cross-entropy weights or as per-class focal ``α_c``.

Every log-probability comes from ``log_softmax`` / ``logsigmoid`` of the logits, never from
``log`` of a probability, so large logits neither overflow nor give ``log 0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CLASS_WEIGHT_MODES",
    "REDUCTIONS",
    "FocalLoss",
    "SigmoidFocalLoss",
    "class_weights",
    "focal_loss",
    "sigmoid_focal_loss",
]

REDUCTIONS = ("mean", "sum", "none")
"""``reduction`` choices of the losses."""
CLASS_WEIGHT_MODES = ("inverse", "effective")
"""``mode`` choices of :func:`class_weights`."""

Alpha = float | Sequence[float] | torch.Tensor | None


def _check_common(gamma: float, reduction: str, op: str) -> None:
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"fastmer.{op}: gamma must be a number >= 0, got {gamma!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"fastmer.{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _alpha_tensor(alpha: Alpha, num_classes: int, like: torch.Tensor, op: str) -> torch.Tensor | None:
    """``alpha`` as a ``(C,)`` tensor of ``like``'s dtype and device (None stays None)."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        a = torch.full((num_classes,), float(alpha), dtype=like.dtype, device=like.device)
    else:
        a = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
        if a.dim() == 0:
            a = a.expand(num_classes)
    if a.shape != (num_classes,):
        raise ValueError(f"fastmer.{op}: alpha must be a number or hold one value per class ({num_classes}), "
                         f"got shape {list(a.shape)}")
    if not bool(torch.isfinite(a).all()) or bool((a < 0).any()):
        raise ValueError(f"fastmer.{op}: alpha must be finite and >= 0, got {a.tolist()}")
    return a


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: Alpha = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-class softmax focal loss ``FL = −Σ_c α_c (1 − p_c)^γ y_c log p_c``.

    ``p = softmax(logits)``; ``log p`` is ``log_softmax(logits)`` and ``1 − p_c`` is computed
    as ``−expm1(log p_c)``, which stays accurate when ``p_c`` is close to 1.

    * ``target`` of class indices (one-hot ``y``): ``FL_i = −α_t (1 − p_t)^γ log p_t``.
    * ``target`` of per-class probabilities (``(N, C)`` floats, e.g. smoothed labels): the
      full sum over ``c``.

    With ``γ = 0`` and ``alpha=None`` this is the cross-entropy (``F.cross_entropy``). Note
    that ``reduction="mean"`` is the plain mean over samples even with per-class ``alpha``,
    whereas ``F.cross_entropy(weight=w)`` divides by ``Σ_i w_{y_i}``; the two agree for
    ``reduction="sum"`` and ``"none"``.

    Args:
        logits: ``(N, C)`` unnormalised scores.
        target: ``(N,)`` integer class indices in ``[0, C)``, or ``(N, C)`` floating
            target distributions.
        gamma: focusing parameter ``γ >= 0`` (0: no focusing).
        alpha: class weights ``α_c``: None (all 1), one number (the same for every class,
            i.e. an overall factor) or a sequence/tensor of ``C`` values ``>= 0`` (e.g.
            :func:`class_weights`).
        reduction: ``"mean"`` over samples, ``"sum"`` or ``"none"`` (``(N,)`` per sample).

    Returns:
        The loss: a scalar, or ``(N,)`` for ``reduction="none"``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> torch.allclose(focal_loss(logits, torch.tensor([0]), gamma=0.0), F.cross_entropy(logits, torch.tensor([0])))
        True
    """
    op = "focal_loss"
    _check_common(gamma, reduction, op)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"fastmer.{op}: logits must be a floating tensor of shape [N, C], got {got}")
    n, c = logits.shape
    log_p = F.log_softmax(logits, dim=1)
    a = _alpha_tensor(alpha, c, log_p, op)
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(f"fastmer.{op}: a floating target must have the shape of logits {[n, c]}, "
                             f"got {list(target.shape)}")
        weight = (-torch.expm1(log_p)).clamp_min(0).pow(gamma) * target.to(log_p.dtype)
        if a is not None:
            weight = weight * a
        loss = -(weight * log_p).sum(dim=1)
    else:
        if target.shape != (n,):
            raise ValueError(f"fastmer.{op}: class-index target must have shape [{n}], got {list(target.shape)}")
        if n and (int(target.min()) < 0 or int(target.max()) >= c):
            raise ValueError(f"fastmer.{op}: target classes must lie in [0, {c}), got {sorted(set(target.tolist()))}")
        log_pt = log_p.gather(1, target.long().unsqueeze(1)).squeeze(1)
        loss = -(-torch.expm1(log_pt)).clamp_min(0).pow(gamma) * log_pt
        if a is not None:
            loss = loss * a[target.long()]
    return _reduce(loss, reduction)


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: Alpha = 0.25,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-label (sigmoid) focal loss, element-wise (SPEC §1.5):

    ``FL_ic = −[α y (1 − p)^γ log p + (1 − α)(1 − y) p^γ log(1 − p)]``, ``p = σ(logit)``.

    ``log p = logsigmoid(x)`` and ``log(1 − p) = logsigmoid(−x)``. For 0/1 targets this is
    ``torchvision.ops.sigmoid_focal_loss`` exactly, including its conventions: ``alpha=None``
    turns the α weighting off (both terms weighted 1), and ``reduction="mean"`` averages
    over all ``N × C`` elements. SPEC's per-sample sum over classes is
    ``sigmoid_focal_loss(..., reduction="none").sum(1)``. Soft targets in ``[0, 1]`` enter
    the formula linearly (torchvision instead mixes them inside ``(1 − p_t)^γ``).

    Args:
        logits: ``(N, C)`` (or any shape) unnormalised scores.
        targets: same shape, floats in ``[0, 1]`` (1: the label is present).
        gamma: focusing parameter ``γ >= 0``.
        alpha: weight of the positive term, in ``[0, 1]``: one number (default 0.25), one
            per class (a sequence/tensor of ``C`` values, broadcast over the last dimension),
            or None (no weighting).
        reduction: ``"mean"`` over all elements, ``"sum"`` or ``"none"`` (element-wise).

    Returns:
        The loss: a scalar, or the shape of ``logits`` for ``reduction="none"``.
    """
    op = "sigmoid_focal_loss"
    _check_common(gamma, reduction, op)
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1 or not logits.is_floating_point():
        raise ValueError(f"fastmer.{op}: logits must be a floating tensor")
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape:
        got = list(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"fastmer.{op}: targets must have the shape of logits {list(logits.shape)}, got {got}")
    y = targets.to(logits.dtype)
    log_p = F.logsigmoid(logits)
    log_q = F.logsigmoid(-logits)  # log(1 − p)
    p, q = log_p.exp(), log_q.exp()
    positive = y * q.pow(gamma) * log_p
    negative = (1 - y) * p.pow(gamma) * log_q
    a = _alpha_tensor(alpha, logits.shape[-1], logits, op) if alpha is not None else None
    if a is not None:
        if bool((a > 1).any()):
            raise ValueError(f"fastmer.{op}: alpha must lie in [0, 1], got {a.tolist()}")
        loss = -(a * positive + (1 - a) * negative)
    else:
        loss = -(positive + negative)
    return _reduce(loss, reduction)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`; a per-class ``alpha`` is a (non-persistent) buffer,
    so it follows ``.to(device)``."""

    def __init__(self, gamma: float = 2.0, alpha: Alpha = None, reduction: str = "mean") -> None:
        super().__init__()
        _check_common(gamma, reduction, "FocalLoss")
        self.gamma = gamma
        self.reduction = reduction
        self.scalar_alpha = float(alpha) if isinstance(alpha, (int, float)) else None
        tensor = None if alpha is None or self.scalar_alpha is not None else torch.as_tensor(alpha, dtype=torch.float32)
        self.register_buffer("alpha", tensor, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        alpha = self.scalar_alpha if self.scalar_alpha is not None else self.alpha
        return focal_loss(logits, target, gamma=self.gamma, alpha=alpha, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal_loss`."""

    def __init__(self, gamma: float = 2.0, alpha: Alpha = 0.25, reduction: str = "mean") -> None:
        super().__init__()
        _check_common(gamma, reduction, "SigmoidFocalLoss")
        self.gamma = gamma
        self.reduction = reduction
        self.scalar_alpha = float(alpha) if isinstance(alpha, (int, float)) else None
        tensor = None if alpha is None or self.scalar_alpha is not None else torch.as_tensor(alpha, dtype=torch.float32)
        self.register_buffer("alpha", tensor, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        alpha = self.scalar_alpha if self.scalar_alpha is not None else self.alpha
        return sigmoid_focal_loss(logits, targets, gamma=self.gamma, alpha=alpha, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.scalar_alpha}, reduction={self.reduction!r}"


def class_weights(
    labels: Sequence[int] | torch.Tensor,
    num_classes: int,
    mode: str = "inverse",
    beta: float = 0.999,
) -> torch.Tensor:
    """Per-class weights from training labels, for cross-entropy ``weight`` or focal ``α_c``.

    With ``n_c`` the number of training samples of class ``c``:

    * ``"inverse"``: ``w_c ∝ 1 / n_c``;
    * ``"effective"``: ``w_c ∝ (1 − β) / (1 − β^{n_c})``, the inverse effective number of
      samples (Cui et al. 2019); ``β = 0`` gives equal weights, ``β → 1`` inverse frequency.

    The weights are normalised to mean 1 over the classes that occur, so a balanced set gets
    all ones. A class with no sample gets weight 0 (no sample's loss uses it; there is no
    division by zero) and a ``UserWarning`` names it. Compute them on the training indices
    of a fold only (never on its test subjects).

    Args:
        labels: class indices of the training samples.
        num_classes: ``C``.
        mode: one of :data:`CLASS_WEIGHT_MODES`.
        beta: ``β`` in ``[0, 1)`` of ``"effective"``.

    Returns:
        ``(C,)`` float32 weights.

    Example:
        >>> class_weights([0, 0, 0, 1], 2).tolist()   # 1/3 and 1, mean 1
        [0.5, 1.5]
    """
    if mode not in CLASS_WEIGHT_MODES:
        raise ValueError(f"fastmer.class_weights: mode must be one of {CLASS_WEIGHT_MODES}, got {mode!r}")
    if not (isinstance(beta, (int, float)) and 0 <= beta < 1):
        raise ValueError(f"fastmer.class_weights: beta must lie in [0, 1), got {beta!r}")
    if num_classes < 1:
        raise ValueError(f"fastmer.class_weights: num_classes must be >= 1, got {num_classes}")
    y = torch.as_tensor(labels).flatten()
    if y.numel() == 0:
        raise ValueError("fastmer.class_weights: no labels")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"fastmer.class_weights: labels must be integers, got {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"fastmer.class_weights: labels must lie in [0, {num_classes}), got {sorted(set(y.tolist()))}")
    counts = torch.bincount(y.long().cpu(), minlength=num_classes).to(torch.float64)
    present = counts > 0
    safe = torch.where(present, counts, torch.ones_like(counts))
    if mode == "inverse":
        raw = 1.0 / safe
    elif beta == 0:
        raw = torch.ones_like(counts)
    else:  # 1 − β^n computed as −expm1(n log β): accurate for β close to 1
        raw = (1.0 - beta) / -torch.expm1(safe * math.log(beta))
    raw = torch.where(present, raw, torch.zeros_like(raw))
    if not bool(present.all()):
        missing = torch.nonzero(~present).flatten().tolist()
        warnings.warn(f"fastmer.class_weights: class(es) {missing} have no sample; their weight is 0", stacklevel=2)
    weights = raw * (int(present.sum()) / raw.sum())
    return weights.to(torch.float32)
