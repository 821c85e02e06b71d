"""MEGC metrics: UF1 and UAR on predictions pooled over all folds.

MEGC (2019 onwards) defines, over the predictions of all leave-one-subject-out folds
pooled together, per class c: ``F1_c = 2TP_c / (2TP_c + FP_c + FN_c)`` and
``recall_c = TP_c / N_c``; then ``UF1 = mean_c F1_c`` and ``UAR = mean_c recall_c``.
Summing per-class TP/FP/FN over the folds is exactly computing them on the pooled
confusion matrix, which is what these functions do. Every class of the task counts: a
class with no samples and no predictions has F1 = recall = 0 and is reported, never
silently dropped.

Also here, each labelled as what it is: :func:`fold_averaged` (the mean of per-fold
scores, a secondary figure with its absent-class convention stated in its output),
:func:`per_group_scores` (pooled scores per corpus inside a composite;
:func:`per_group_multilabel_scores` for multi-label tasks), and for multi-label tasks
(4DME emotions, action units) :func:`multilabel_scores` (macro-UF1 = mean over classes of
each class's binary F1) with per-class thresholds from :func:`tune_thresholds`, which must be
given training (inner-validation) data only, applied by :func:`apply_thresholds`.
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


def _f1_recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (F1, recall, support, predicted count) of a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    f1_den = support + predicted  # = 2TP + FP + FN
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    return f1, recall, support, predicted


FOLD_AVERAGE_CONVENTION = (
    "mean over folds of each fold's own scores (secondary; the pooled scores are MEGC's). In a fold, "
    "UF1 averages F1 over the classes present in that fold's test set or predictions (scikit-learn's macro F1 "
    "without labels=), a class predicted but absent counting F1 = 0; UAR averages recall over the classes "
    "present in that fold's test set (recall is undefined for the others). Classes outside these averages are "
    "listed per fold."
)


def fold_averaged(per_fold_cms: Sequence[np.ndarray], classes: Sequence[str], names: Sequence[str] | None = None) -> dict:
    """Fold-averaged UF1/UAR/accuracy: each fold scored alone, then the plain mean over folds.

    A secondary figure, labelled as such (``uf1_fold_mean``, ``uar_fold_mean``,
    ``accuracy_fold_mean``); MEGC's UF1/UAR are :func:`scores` of the pooled matrix. In
    LOSO most test subjects show only some classes, so averaging over every class would
    score absent classes as 0 in nearly every fold; instead (stated in ``convention``):

    * a fold's UF1 is the mean F1 over the classes present in its test set *or* its
      predictions (a class predicted but absent has F1 = 0), which equals
      ``sklearn.metrics.f1_score(average="macro")`` without ``labels=``;
    * a fold's UAR is the mean recall over the classes present in its test set.

    Nothing is dropped silently: each fold's row lists ``classes_absent`` (no test sample),
    and the classes each average covered (``uf1_classes``, ``uar_classes``).

    Args:
        per_fold_cms: each fold's confusion matrix (rows true, columns predicted).
        classes: the task's classes (the matrices' order).
        names: the folds' names (default ``"0"``, ``"1"``...).

    Raises:
        ValueError: no folds, a matrix of the wrong shape, or a fold without test clips.
    """
    cms = [np.asarray(cm, dtype=np.int64) for cm in per_fold_cms]
    c = len(classes)
    if not cms:
        raise ValueError("per_fold_cms: no folds")
    names = [str(i) for i in range(len(cms))] if names is None else [str(n) for n in names]
    if len(names) != len(cms):
        raise ValueError(f"names has {len(names)} entries but per_fold_cms {len(cms)}")
    rows = []
    for name, cm in zip(names, cms, strict=True):
        if cm.shape != (c, c):
            raise ValueError(f"fold {name}: confusion matrix of shape {cm.shape}, expected {(c, c)}")
        if cm.sum() == 0:
            raise ValueError(f"fold {name}: no test clips")
        f1, recall, support, predicted = _f1_recall(cm)
        in_uf1, in_uar = (support + predicted) > 0, support > 0
        rows.append({
            "fold": name,
            "n": int(cm.sum()),
            "uf1": float(f1[in_uf1].mean()),
            "uar": float(recall[in_uar].mean()),
            "accuracy": float(np.trace(cm) / cm.sum()),
            "uf1_classes": [classes[i] for i in np.flatnonzero(in_uf1)],
            "uar_classes": [classes[i] for i in np.flatnonzero(in_uar)],
            "classes_absent": [classes[i] for i in np.flatnonzero(~in_uar)],
        })
    return {
        "uf1_fold_mean": float(np.mean([r["uf1"] for r in rows])),
        "uar_fold_mean": float(np.mean([r["uar"] for r in rows])),
        "accuracy_fold_mean": float(np.mean([r["accuracy"] for r in rows])),
        "n_folds": len(rows),
        "convention": FOLD_AVERAGE_CONVENTION,
        "per_fold": rows,
    }


def per_group_scores(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str], classes: Sequence[str]) -> dict:
    """:func:`scores` of the pooled predictions of each group (e.g. each corpus of the MEGC
    2019 composite), ``{group: scores}`` in sorted group order.

    Every class of the task counts in every group, as in :func:`scores` (a class absent from
    a group scores 0 there and is listed in its ``classes_without_samples``).
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    if not (y_true.shape == y_pred.shape == groups.shape):
        raise ValueError(f"y_true, y_pred and groups have {y_true.size}, {y_pred.size} and {groups.size} entries")
    return {
        g: scores(confusion_matrix(y_true[groups == g], y_pred[groups == g], len(classes)), classes)
        for g in sorted(set(groups.tolist()))
    }


def _binary_matrix(y: np.ndarray | Sequence, name: str, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"{name} must be a (samples, classes) matrix, got shape {y.shape}")
    if num_classes is not None and y.shape[1] != num_classes:
        raise ValueError(f"{name} has {y.shape[1]} columns but there are {num_classes} classes")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return y.astype(bool)


def multilabel_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Multi-label scores (e.g. 4DME): macro-UF1 = mean over classes of each class's binary F1.

    Per class c, over all samples: ``F1_c = 2TP_c / (2TP_c + FP_c + FN_c)`` (0 when the
    class is neither present nor predicted; such classes are listed in
    ``classes_without_positives`` and still count in the mean), precision, recall and
    support (positive samples). ``exact_match`` is the fraction of samples whose whole
    label set is predicted exactly.

    Args:
        y_true, y_pred: ``(samples, classes)`` 0/1 matrices (predictions already thresholded,
            e.g. by :func:`apply_thresholds`).
        classes: the class names, one per column.
    """
    t = _binary_matrix(y_true, "y_true", len(classes))
    p = _binary_matrix(y_pred, "y_pred", len(classes))
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred {p.shape}")
    tp = (t & p).sum(axis=0).astype(np.float64)
    support, predicted = t.sum(axis=0).astype(np.float64), p.sum(axis=0).astype(np.float64)
    den = support + predicted
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    n = t.shape[0]
    return {
        "macro_uf1": float(f1.mean()) if len(classes) else 0.0,
        "exact_match": float((t == p).all(axis=1).mean()) if n else 0.0,
        "n": int(n),
        "per_class": {
            c: {"f1": float(f1[i]), "precision": float(precision[i]), "recall": float(recall[i]),
                "support": int(support[i]), "predicted": int(predicted[i])}
            for i, c in enumerate(classes)
        },
        "classes_without_positives": [c for i, c in enumerate(classes) if support[i] == 0],
    }


def per_group_multilabel_scores(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str],
                                classes: Sequence[str]) -> dict:
    """:func:`multilabel_scores` of each group's samples (e.g. each dataset of a cross-dataset
    run), ``{group: scores}`` in sorted group order; every class counts in every group.

    Example:
        >>> per_group_multilabel_scores([[1, 0], [0, 1]], [[1, 0], [1, 1]], ["a", "b"], ["AU1", "AU2"])["b"]["macro_uf1"]
        0.5
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    groups = np.asarray([str(g) for g in groups], dtype=object)
    if not (len(t) == len(p) == groups.size):
        raise ValueError(f"y_true, y_pred and groups have {len(t)}, {len(p)} and {groups.size} entries")
    return {g: multilabel_scores(t[groups == g], p[groups == g], classes) for g in sorted(set(groups.tolist()))}


DEFAULT_THRESHOLD_GRID = tuple(round(0.01 * i, 2) for i in range(1, 100))  # 0.01, 0.02, ..., 0.99


def tune_thresholds(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], grid: Sequence[float] = DEFAULT_THRESHOLD_GRID
) -> dict:
    """Per-class decision thresholds maximising each class's F1 on the data given.

    Give it *training* (inner-validation) data only, never the test fold: the thresholds
    are then applied unchanged to the test predictions (:func:`apply_thresholds`). A sample
    is predicted positive for class c when ``probs[:, c] >= threshold_c``.

    For each class, the grid value with the highest F1 wins; among ties the one closest to
    0.5, then the lower. A class with no positive sample gets 0.5 and is listed in
    ``classes_without_positives``.

    Returns:
        ``{"thresholds": [t_c...], "per_class": {c: {"threshold", "f1", "positives"}},
        "classes_without_positives": [...], "grid": [...]}`` (JSON-serialisable).
    """
    t = _binary_matrix(y_true, "y_true", len(classes))
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != t.shape:
        raise ValueError(f"probs has shape {probs.shape} but y_true {t.shape}")
    grid_arr = np.asarray(sorted(set(float(g) for g in grid)), dtype=np.float64)
    if grid_arr.size == 0:
        raise ValueError("grid: no thresholds to try")
    thresholds, per_class, without = [], {}, []
    for i, c in enumerate(classes):
        positives = int(t[:, i].sum())
        if positives == 0:
            threshold = 0.5
            without.append(c)
        else:
            pred = probs[None, :, i] >= grid_arr[:, None]  # (thresholds, samples)
            tp = (pred & t[None, :, i]).sum(axis=1)
            f1 = 2 * tp / (positives + pred.sum(axis=1))  # > 0 denominators: positives > 0
            best = np.flatnonzero(np.isclose(f1, f1.max(), rtol=0, atol=1e-12))
            threshold = float(min(grid_arr[best], key=lambda g: (abs(g - 0.5), g)))
        pred = probs[:, i] >= threshold
        den = positives + pred.sum()
        f1_c = float(2 * (pred & t[:, i]).sum() / den) if den else 0.0
        thresholds.append(threshold)
        per_class[c] = {"threshold": threshold, "f1": f1_c, "positives": positives}
    return {"thresholds": thresholds, "per_class": per_class, "classes_without_positives": without,
            "grid": grid_arr.tolist()}


def apply_thresholds(probs: np.ndarray, thresholds: Sequence[float] | dict) -> np.ndarray:
    """``(samples, classes)`` 0/1 predictions: ``probs[:, c] >= thresholds[c]``.

    ``thresholds`` is a sequence or the dict :func:`tune_thresholds` returns.
    """
    if isinstance(thresholds, dict):
        thresholds = thresholds["thresholds"]
    probs = np.asarray(probs, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64)
    if probs.ndim != 2 or thr.shape != (probs.shape[1],):
        raise ValueError(f"probs of shape {probs.shape} needs one threshold per column, got {thr.size}")
    return (probs >= thr[None, :]).astype(np.int64)
