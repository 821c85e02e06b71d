"""Micro-expression corpora as uniform lists of :class:`~fastmer.datasets.clip.Clip`.

``load(name, root)`` reads a corpus in its documented layout; the synthetic corpus
generator (:mod:`fastmer.datasets.synth`) writes the CASME II layout.
"""

from __future__ import annotations

from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.labels import LABEL_PROTOCOLS, LabelProtocol, get_protocol

# name -> module with load(root, **options)
DATASETS = {"casme2": "fastmer.datasets.casme2"}


def load(name: str, root: str | Path, **options: object) -> list[Clip]:
    """Clips of corpus ``name`` stored under ``root`` (ValueError for an unknown name)."""
    import importlib  # noqa: PLC0415

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return importlib.import_module(DATASETS[name]).load(root, **options)


__all__ = ["DATASETS", "LABEL_PROTOCOLS", "Clip", "LabelProtocol", "get_protocol", "load"]
