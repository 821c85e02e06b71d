"""Onset / apex / offset of a clip: from the annotation, or the apex spotted from the frames."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Phases:
    """Frame numbers of the three key frames and where the apex came from.

    ``apex_source`` is ``"annotation"`` or ``"spotted:intensity"``.
    """

    onset: int
    apex: int
    offset: int
    apex_source: str


def motion_intensity(crops: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Mean absolute difference of each frame from the first, after a light blur.

    Args:
        crops: ``(T, H, W)`` face crops, first frame = onset.
        sigma: Gaussian blur applied first, so sensor noise does not dominate.

    Returns:
        ``(T,)`` float64 intensity (0 at the onset).
    """
    blurred = np.stack([cv2.GaussianBlur(c.astype(np.float32), (0, 0), sigma) for c in crops])
    return np.abs(blurred - blurred[0]).mean(axis=(1, 2)).astype(np.float64)


def resolve(onset: int, apex: int | None, offset: int, crops: np.ndarray) -> Phases:
    """Key frames of a clip whose ``crops`` cover frames ``onset..offset``.

    An annotated apex is kept. A missing one is spotted as the frame of peak motion
    intensity relative to the onset (:func:`motion_intensity`; the intensity-difference
    criterion of SPEC §2.1, a documented baseline that later versions refine).
    """
    if len(crops) != offset - onset + 1:
        raise ValueError(f"{len(crops)} crops for frames {onset}..{offset}")
    if apex is not None:
        return Phases(onset, apex, offset, "annotation")
    intensity = motion_intensity(crops)
    return Phases(onset, onset + 1 + int(np.argmax(intensity[1:])), offset, "spotted:intensity")
