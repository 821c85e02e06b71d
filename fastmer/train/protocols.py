"""Evaluation protocols: how clips are split into training and test sets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PROTOCOLS = ("loso",)


@dataclass(frozen=True)
class Fold:
    """One train/test split; indices into the clip list."""

    name: str
    train: np.ndarray
    test: np.ndarray


def loso(subjects: Sequence[str]) -> list[Fold]:
    """Leave-one-subject-out: one fold per subject (in sorted order), tested on that subject only."""
    subjects = np.asarray(subjects)
    folds = []
    for subject in sorted(set(subjects.tolist())):
        test = np.flatnonzero(subjects == subject)
        train = np.flatnonzero(subjects != subject)
        folds.append(Fold(str(subject), train, test))
    return folds


def make_folds(protocol: str, subjects: Sequence[str]) -> list[Fold]:
    if protocol == "loso":
        if len(set(subjects)) < 2:
            raise ValueError("leave-one-subject-out needs clips of at least two subjects")
        return loso(subjects)
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
