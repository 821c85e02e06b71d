"""A run's figures (:mod:`fastmer.figures`): the pooled confusion matrix and the per-fold
training (and validation) loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastmer.figures import confusion_figure, curves_figure, save_figure


def write_run_figures(out: Path, cm: np.ndarray, classes: Sequence[str], histories: Sequence[Mapping[str, Any]],
                      title: str = "", format: str = "png") -> list[Path]:  # noqa: A002 (the option's name)
    """Write ``out/confusion.<format>`` (:func:`fastmer.figures.confusion_figure`) and
    ``out/curves.<format>`` (:func:`fastmer.figures.curves_figure`, one history per fold:
    ``train_loss``, ``val_loss``, ``best_epoch``, ``fold``).

    Returns:
        The two paths.

    Example:
        >>> write_run_figures(Path("run"), cm, ["negative", "positive"], report["folds"])  # doctest: +SKIP
        [PosixPath('run/confusion.png'), PosixPath('run/curves.png')]
    """
    out = Path(out)
    return [save_figure(confusion_figure(cm, classes, title), out / "confusion", format),
            save_figure(curves_figure(histories), out / "curves", format)]
