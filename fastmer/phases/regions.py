"""Facial regions of a face crop, and the per-region motion that spotting reads from a flow.

Spotting in long videos watches a few facial regions rather than the whole crop: the brows
and the mouth corners, where expressions move, the eyes, where blinks do, and the nose, which
moves with the head only and so measures head motion (subtracted from the rest). The regions
are placed from the face detector's five landmarks (YuNet: eyes, nose tip, mouth corners)
when it gives them, else at the canonical places of those landmarks in a frontal face box
(:data:`CANONICAL_LANDMARKS`, measured on Haar boxes of the synthetic faces), and sized by
the distance between the eyes.

Example:
    >>> regions = face_regions(FaceBox(0, 0, 100, 100), crop=FaceBox(0, 0, 100, 100), size=64)
    >>> sorted(regions)[:3]
    ['left_brow', 'left_eye', 'left_mouth']
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastmer.face.crop import FaceBox

#: Regions where expressions move (the spotters' features), the eyes (blinks), the nose (head).
EXPRESSION_REGIONS = ("left_brow", "right_brow", "left_mouth", "right_mouth")
EYE_REGIONS = ("left_eye", "right_eye")
REFERENCE_REGION = "nose"
REGIONS = (*EXPRESSION_REGIONS, *EYE_REGIONS, REFERENCE_REGION)
#: Image-left eye, image-right eye, nose tip, image-left and image-right mouth corner, as
#: fractions of a frontal face box (Haar's on the synthetic faces: 0.29/0.37, 0.73/0.39,
#: 0.52/0.59, 0.30/0.77, 0.70/0.78; YuNet's landmarks on real faces fall within 0.05).
CANONICAL_LANDMARKS = np.array([[0.30, 0.38], [0.70, 0.38], [0.50, 0.60], [0.33, 0.78], [0.67, 0.78]])
#: Per region: (centre offset from its landmark, size), in inter-ocular distances.
_LAYOUT = {
    "left_brow": (0, (0.0, -0.38), (0.65, 0.35)),
    "right_brow": (1, (0.0, -0.38), (0.65, 0.35)),
    "left_eye": (0, (0.0, 0.0), (0.5, 0.28)),
    "right_eye": (1, (0.0, 0.0), (0.5, 0.28)),
    "nose": (2, (0.0, -0.12), (0.35, 0.35)),
    "left_mouth": (3, (0.0, 0.0), (0.45, 0.4)),
    "right_mouth": (4, (0.0, 0.0), (0.45, 0.4)),
}


def landmarks_in_crop(box: FaceBox, crop: FaceBox, size: int, landmarks: np.ndarray | None = None) -> np.ndarray:
    """The five landmarks in the pixels of a ``size`` x ``size`` crop of ``crop``: the detector's
    ``(5, 2)`` image-pixel ``landmarks`` (YuNet's order: subject's right eye = image-left first) if
    given, else :data:`CANONICAL_LANDMARKS` placed in the detector's ``box``."""
    if landmarks is None:
        points = np.array([[box.x, box.y]]) + CANONICAL_LANDMARKS * np.array([[box.w, box.h]])
    else:
        points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    return (points - np.array([[crop.x, crop.y]])) * (size / crop.w)


def face_regions(box: FaceBox, crop: FaceBox, size: int, landmarks: np.ndarray | None = None
                 ) -> dict[str, tuple[slice, slice]]:
    """``{region: (rows, cols)}`` slices of a ``size`` x ``size`` crop (each at least 2 x 2 pixels).

    Args:
        box: the detector's face box (image pixels).
        crop: the square the crop was cut from (image pixels).
        size: the crop's side after resizing.
        landmarks: the detector's ``(5, 2)`` landmarks in image pixels, or None.
    """
    points = landmarks_in_crop(box, crop, size, landmarks)
    eyes = math.dist(points[0], points[1])
    if not eyes > 0:
        raise ValueError("face_regions: the two eye landmarks coincide")
    out = {}
    for name, (index, (dx, dy), (w, h)) in _LAYOUT.items():
        cx, cy = points[index][0] + dx * eyes, points[index][1] + dy * eyes
        half_w, half_h = max(1.0, w * eyes / 2), max(1.0, h * eyes / 2)
        x0 = int(min(max(round(cx - half_w), 0), size - 2))
        y0 = int(min(max(round(cy - half_h), 0), size - 2))
        x1 = int(min(max(round(cx + half_w), x0 + 2), size))
        y1 = int(min(max(round(cy + half_h), y0 + 2), size))
        out[name] = (slice(y0, y1), slice(x0, x1))
    return out


#: Per-region motion statistics :func:`region_motion` returns, in this order.
MOTION_STATS = ("u", "v", "mean", "main")
_DIRECTION_BINS = 8


def region_motion(flow: torch.Tensor, regions: dict[str, tuple[slice, slice]]) -> torch.Tensor:
    """Per pair and region, the motion relative to the head: ``(N, len(REGIONS), 4)`` float32.

    The head's motion is the median flow of the nose region; it is subtracted from every
    region's flow first. Then per region: mean ``u`` and ``v``, mean magnitude, and MDMD's
    main-directional magnitude (Wang et al. 2017): the flow's angles are binned in eight
    45-degree sectors, the sector holding most vectors is the main direction, and the value
    is the mean of the largest third of the magnitudes in it.

    Args:
        flow: ``(N, 2, S, S)`` flows of face crops.
        regions: :func:`face_regions` of those crops (every name of :data:`REGIONS`).

    Shape:
        ``(N, 2, S, S) -> (N, R, 4)``, regions in :data:`REGIONS` order, stats in :data:`MOTION_STATS`,
        on the flow's device.
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"region_motion: expected (N, 2, S, S) flow, got {tuple(flow.shape)}")
    rows, cols = regions[REFERENCE_REGION]
    head = flow[:, :, rows, cols].flatten(2).median(dim=2).values  # (N, 2)
    residual = flow - head[:, :, None, None]
    out = torch.empty(flow.shape[0], len(REGIONS), len(MOTION_STATS), dtype=torch.float32, device=flow.device)
    for r, name in enumerate(REGIONS):
        rows, cols = regions[name]
        vectors = residual[:, :, rows, cols].flatten(2).float()  # (N, 2, P)
        magnitude = vectors.norm(dim=1)  # (N, P)
        out[:, r, 0:2] = vectors.mean(dim=2)
        out[:, r, 2] = magnitude.mean(dim=1)
        sector = ((torch.atan2(vectors[:, 1], vectors[:, 0]) + math.pi) * (_DIRECTION_BINS / (2 * math.pi))).long()
        sector = sector.clamp_(0, _DIRECTION_BINS - 1)
        counts = torch.zeros(flow.shape[0], _DIRECTION_BINS, dtype=torch.long, device=flow.device).scatter_add_(
            1, sector, torch.ones_like(sector))
        main = counts.argmax(dim=1, keepdim=True)  # ties: the lowest sector
        in_main = torch.where(sector == main, magnitude, torch.full_like(magnitude, -1.0))
        values, _ = in_main.sort(dim=1, descending=True)  # the main sector's magnitudes first
        third = torch.clamp((counts.gather(1, main) + 2) // 3, min=1)  # (N, 1): a third, rounded up
        keep = torch.arange(values.shape[1], device=flow.device)[None, :] < third
        out[:, r, 3] = (values * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    return out


#: Side of :func:`flow_map`'s maps: SOFTNet's 42 px flow images pooled further, so that an
#: hour at 30 fps is 170 MB of float16 maps (a training corpus fits in memory).
MAP_SIZE = 16


def flow_map(flow: torch.Tensor, regions: dict[str, tuple[slice, slice]], size: int = MAP_SIZE) -> torch.Tensor:
    """SOFTNet's input (Liong et al., 2021), pooled: ``(N, 3, size, size)`` float32 maps of the
    flow relative to the head (``u``, ``v``; the nose region's median flow subtracted) and its
    optical strain, with the eye regions zeroed (blinks), area-averaged to ``size`` x ``size``.

    Shape:
        ``(N, 2, S, S) -> (N, 3, size, size)``
    """
    from fastmer.ops.optical_strain import optical_strain_reference  # noqa: PLC0415

    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow_map: expected (N, 2, S, S) flow, got {tuple(flow.shape)}")
    rows, cols = regions[REFERENCE_REGION]
    head = flow[:, :, rows, cols].flatten(2).median(dim=2).values
    residual = (flow - head[:, :, None, None]).float()
    maps = torch.cat([residual, optical_strain_reference(residual)], dim=1)
    for name in EYE_REGIONS:
        rows, cols = regions[name]
        maps[:, :, rows, cols] = 0.0
    return torch.nn.functional.adaptive_avg_pool2d(maps, size)
