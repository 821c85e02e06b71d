"""Onset / apex / offset of a clip: from the annotation, or the apex spotted from the face crops.

``resolve`` applies the ``--apex`` policy (:data:`APEX_MODES`):

``auto``
    keep a valid annotated apex (onset < apex <= offset); spot the others.
``spot``
    ignore annotated apexes, spot every clip.
``annotation``
    use annotated apexes only; a clip without a valid one is an error.

Every :class:`Phases` records where its apex came from: ``"annotation"`` or
``"spotted:<estimator>"`` (see :mod:`fastmer.phases.spotting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fastmer.choices import APEX_ESTIMATORS, APEX_MODES
from fastmer.errors import ClipError
from fastmer.phases.spotting import motion_curve, spot_apex


@dataclass(frozen=True)
class Phases:
    """Frame numbers of the three key frames and where the apex came from.

    Attributes:
        onset, apex, offset: frame numbers (the clip's own numbering).
        apex_source: ``"annotation"`` or ``"spotted:<estimator>"``.
        curve: the motion-intensity curve over ``onset..offset`` that located a spotted
            apex (summed over views), else None.
    """

    onset: int
    apex: int
    offset: int
    apex_source: str
    curve: np.ndarray | None = None


def resolve(
    onset: int,
    apex: int | None,
    offset: int,
    views: Sequence[np.ndarray | torch.Tensor],
    *,
    mode: str = "auto",
    estimator: str = "pca",
    where: str = "clip",
    curves: Sequence[np.ndarray] | None = None,
) -> Phases:
    """Key frames of a clip whose crops cover frames ``onset..offset``.

    Args:
        onset, offset: validated frame numbers (onset < offset).
        apex: the annotated apex when valid, else None.
        views: ``(T, H, W)`` crops of each view, ``T = offset - onset + 1``.
        mode: one of :data:`APEX_MODES`.
        estimator: spotting estimator, one of :data:`~fastmer.phases.spotting.APEX_ESTIMATORS`.
        where: names the clip in error messages.
        curves: each view's motion curve by ``estimator``, when already computed.

    Raises:
        ClipError: stage ``annotation`` when ``mode="annotation"`` and there is no valid apex.
        ValueError: bad arguments.

    Example:
        >>> crops = np.zeros((5, 32, 32), np.uint8); crops[3, 8:16, 8:16] = 40
        >>> resolve(10, None, 14, [crops]).apex
        13
    """
    if mode not in APEX_MODES:
        raise ValueError(f"apex mode must be one of {', '.join(APEX_MODES)}, got {mode!r}")
    if estimator not in APEX_ESTIMATORS:
        raise ValueError(f"apex estimator must be one of {', '.join(APEX_ESTIMATORS)}, got {estimator!r}")
    for view in views:
        if len(view) != offset - onset + 1:
            raise ValueError(f"{len(view)} crops for frames {onset}..{offset} of {where}")
    if mode == "annotation" or (mode == "auto" and apex is not None):
        if apex is None:
            raise ClipError("annotation", f"{where}: no valid apex annotated (--apex annotation spots none)")
        return Phases(onset, apex, offset, "annotation")
    index, curve = spot_apex(views, estimator, curves=curves)
    return Phases(onset, onset + index, offset, f"spotted:{estimator}", curve)


__all__ = ["APEX_ESTIMATORS", "APEX_MODES", "Phases", "motion_curve", "resolve", "spot_apex"]
