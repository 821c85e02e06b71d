"""A run's figures, drawn with OpenCV (no plotting library): the pooled confusion matrix and
the per-fold training (and validation) curves."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fastmer.viz import write_png

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK = (30, 30, 30)
_WHITE = (255, 255, 255)


def _text(canvas: np.ndarray, text: str, x: int, y: int, *, scale: float = 0.45, color=_INK, center: bool = False) -> None:
    if center:
        (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
        x, y = x - w // 2, y + h // 2
    cv2.putText(canvas, text, (int(x), int(y)), _FONT, scale, color, 1, cv2.LINE_AA)


def confusion_image(cm: np.ndarray, classes: Sequence[str], title: str = "") -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB picture of a confusion matrix (rows: true, columns: predicted).

    Each cell shows its count; its shade is the count over its row's total (recall for the
    diagonal), so classes of different sizes compare.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = len(classes)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {n} classes")
    cell, left, top = 64, 110, 70
    canvas = np.full((top + n * cell + 40, left + n * cell + 20, 3), 255, np.uint8)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            level = int(255 - 200 * share[i, j])
            cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), (level, level, 255), -1)
            cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), (200, 200, 200), 1)
            _text(canvas, str(cm[i, j]), x + cell // 2, y + cell // 2, color=_WHITE if share[i, j] > 0.6 else _INK,
                  center=True)
        _text(canvas, classes[i][:12], 8, top + i * cell + cell // 2 + 4)
        _text(canvas, classes[i][:8], left + i * cell + cell // 2, top - 12, center=True)
    _text(canvas, "predicted", left + n * cell // 2, top - 34, center=True)
    _text(canvas, title or "true (rows) x predicted (columns)", 8, 18)
    _text(canvas, "shade: share of the true class", 8, top + n * cell + 26, scale=0.4)
    return canvas


def curves_image(histories: Sequence[dict], *, width: int = 640, height: int = 360) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB plot of every fold's training loss (solid) and validation loss
    (thin), with each fold's kept epoch marked by a dot."""
    losses = [h["train_loss"] + h.get("val_loss", []) for h in histories]
    values = [v for series in losses for v in series if np.isfinite(v)]
    canvas = np.full((height, width, 3), 255, np.uint8)
    x0, x1, y0, y1 = 60, width - 20, 30, height - 40
    cv2.line(canvas, (x0, y1), (x1, y1), _INK, 1)
    cv2.line(canvas, (x0, y0), (x0, y1), _INK, 1)
    _text(canvas, f"loss per epoch, {len(histories)} fold(s): training (thick), validation (thin)", 8, 18)
    if not values:
        return canvas
    top = max(values) or 1.0
    epochs = max(len(h["train_loss"]) for h in histories)

    def point(epoch: int, value: float) -> tuple[int, int]:
        x = x0 + (x1 - x0) * (epoch - 1) / max(epochs - 1, 1)
        return int(round(x)), int(round(y1 - (y1 - y0) * min(value, top) / top))

    colors = cv2.applyColorMap(np.linspace(0, 255, max(len(histories), 2)).astype(np.uint8)[:, None],
                               cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]
    for k, history in enumerate(histories):
        color = tuple(int(c) for c in colors[k])
        for series, thickness in ((history["train_loss"], 2), (history.get("val_loss", []), 1)):
            points = [point(e + 1, v) for e, v in enumerate(series)]
            for a, b in itertools.pairwise(points):
                cv2.line(canvas, a, b, color, thickness, cv2.LINE_AA)
        best = history.get("best_epoch", 0)
        if best and history.get("val_loss"):
            cv2.circle(canvas, point(best, history["val_loss"][best - 1]), 4, color, -1, cv2.LINE_AA)
    _text(canvas, f"{top:.3g}", 8, y0 + 5)
    _text(canvas, "0", 40, y1 + 5)
    _text(canvas, "1", x0 - 4, y1 + 20)
    _text(canvas, str(epochs), x1 - 12, y1 + 20)
    _text(canvas, "epoch", (x0 + x1) // 2, y1 + 30, center=True)
    return canvas


def write_run_figures(out: Path, cm: np.ndarray, classes: Sequence[str], histories: Sequence[dict],
                      title: str = "") -> list[Path]:
    """``out/confusion.png`` and ``out/curves.png``."""
    return [write_png(out / "confusion.png", confusion_image(cm, classes, title)),
            write_png(out / "curves.png", curves_image(histories))]
