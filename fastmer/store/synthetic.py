"""Synthetic feature stores: learnable class structure without decoding a video.

For the training tests and ``bench/bench_train.py``: a store in the real format (written by
:class:`fastmer.store.writer.StoreWriter`) whose tensors are built so that a model can
learn the labels but not trivially. Every representation's tensor of a clip is::

    Σ_{label l of the clip} A · P_l  +  B · Q_subject  +  noise · N(0, 1)

with ``P_l`` a smooth random pattern per label word, ``Q_s`` one per subject (what LOSO
must generalise across) and the noise drawn per clip; all seeded. The LBP-TOP column is
made of valid histograms (non-negative, each block summing to 1). These stores test that
training code learns and runs fast; they say nothing about real micro-expressions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastmer.motion.representations import REPRESENTATIONS, representation_shape
from fastmer.store.writer import RepresentationSpec, StoreWriter

__all__ = ["synthetic_feature_store"]


def _rng(*key: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _pattern(shape: tuple[int, ...], *key: object) -> np.ndarray:
    """A smooth random pattern in [-1, 1]: coarse noise upsampled (maps), plain noise (histograms)."""
    rng = _rng(*key)
    if len(shape) == 3 and shape[1] == shape[2] and shape[1] >= 8:
        coarse = rng.standard_normal((shape[0], 4, 4))
        ramp = np.linspace(0, 3, shape[1])
        lo = np.floor(ramp).astype(int).clip(0, 2)
        t = ramp - lo
        rows = coarse[:, lo] * (1 - t)[None, :, None] + coarse[:, lo + 1] * t[None, :, None]
        smooth = rows[:, :, lo] * (1 - t)[None, None, :] + rows[:, :, lo + 1] * t[None, None, :]
        return np.tanh(smooth)
    return np.tanh(rng.standard_normal(shape))


def synthetic_feature_store(
    path: str | Path,
    clips: Sequence[dict[str, Any]],
    *,
    representations: Sequence[str] = ("flow_onset_apex",),
    size: int = 28,
    signal: float = 1.0,
    subject_effect: float = 0.5,
    noise: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a store of ``clips`` (dicts with ``uid``, ``subject``, ``dataset``, ``labels`` and
    optionally ``view``: ``"left"``/``"right"`` for split views, the uid then ending in ``@view``).

    Args:
        representations: store columns to write (names of :data:`REPRESENTATIONS`).
        size: side of the maps.
        signal, subject_effect, noise: the amplitudes ``A``, ``B`` and the noise's standard
            deviation (module docstring).
        seed: draws the patterns and the noise.

    Returns:
        ``path``.
    """
    specs = {name: RepresentationSpec(representation_shape(name, size), "float32", REPRESENTATIONS[name])
             for name in representations}
    params = {"synthetic": True, "size": size, "signal": signal, "subject_effect": subject_effect, "noise": noise,
              "seed": seed, "representations": list(representations)}
    with StoreWriter(path, specs, params, overwrite=overwrite) as writer:
        for i, clip in enumerate(clips):
            tensors = {}
            for name, spec in specs.items():
                value = sum((signal * _pattern(spec.shape, seed, name, "label", label) for label in clip["labels"]),
                            np.zeros(spec.shape))
                value = value + subject_effect * _pattern(spec.shape, seed, name, "subject", clip["subject"])
                value = value + noise * _rng(seed, name, "noise", clip["uid"]).standard_normal(spec.shape)
                if name == "lbptop":  # histograms: positive, each block summing to 1
                    value = np.exp(value)
                    value = value / value.sum(axis=-1, keepdims=True)
                tensors[name] = value.astype(np.float32)
            clip_id = clip["uid"].rsplit("/", 1)[-1].partition("@")[0]
            writer.add({"uid": clip["uid"], "corpus_index": i, "dataset": clip["dataset"], "subject": clip["subject"],
                        "clip_id": clip_id, "view": clip.get("view", "full"), "onset": 0, "apex": 5, "offset": 10,
                        "apex_source": "synthetic", "labels": list(clip["labels"]), "action_units": "",
                        "face_box": [0, 0, size, size], "face_angle": 0.0, "decoder": "synthetic",
                        "source": "synthetic", "motion_curve": []}, tensors)
    return Path(path)
