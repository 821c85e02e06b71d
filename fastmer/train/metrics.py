"""MEGC metrics: UF1 and UAR on predictions pooled over all folds.

MEGC (2019 onwards) defines, over the predictions of all leave-one-subject-out folds
pooled together, per class c: ``F1_c = 2TP_c / (2TP_c + FP_c + FN_c)`` and
``recall_c = TP_c / N_c``; then ``UF1 = mean_c F1_c`` and ``UAR = mean_c recall_c``.
Summing per-class TP/FP/FN over the folds is exactly computing them on the pooled
confusion matrix, which is what these functions do. Every class of the task counts: a
class with no samples and no predictions has F1 = recall = 0 and is reported, never
silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def scores(cm: np.ndarray, classes: Sequence[str]) -> dict:
    """UF1, UAR, accuracy and per-class F1/recall/support from a pooled confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp, fn = predicted - tp, support - tp
    f1_den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = cm.sum()
    return {
        "uf1": float(f1.mean()),
        "uar": float(recall.mean()),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "n": int(total),
        "per_class": {
            c: {"f1": float(f1[i]), "recall": float(recall[i]), "support": int(support[i])} for i, c in enumerate(classes)
        },
        "classes_without_samples": [c for i, c in enumerate(classes) if support[i] == 0],
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
