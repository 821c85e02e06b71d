"""Sequence-wise face crops: one box per clip, so facial motion is not confounded by box jitter."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """Axis-aligned box in pixels: top-left ``(x, y)``, width ``w`` and height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def square_box(box: FaceBox, scale: float, width: int, height: int) -> FaceBox:
    """Square box of side ``scale * max(w, h)`` on the same centre, moved (not cut) to fit the image.

    Detector boxes hug the eyes-to-mouth region; ``scale > 1`` keeps brows, forehead and
    chin, where much micro-expression motion happens. If the square is larger than the
    image it is shrunk to the image's short side.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    side = min(int(round(scale * max(box.w, box.h))), width, height)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    x = int(round(min(max(cx - side / 2, 0), width - side)))
    y = int(round(min(max(cy - side / 2, 0), height - side)))
    return FaceBox(x, y, side, side)


def crop_sequence(frames: np.ndarray, box: FaceBox, size: int) -> np.ndarray:
    """Crop every frame with ``box`` and resize to ``size x size`` (area interpolation).

    Args:
        frames: ``(T, H, W)`` uint8 frames.
        box: crop box inside the frames.
        size: output side in pixels.

    Returns:
        ``(T, size, size)`` uint8 crops.
    """
    t, h, w = frames.shape
    if box.x < 0 or box.y < 0 or box.x + box.w > w or box.y + box.h > h:
        raise ValueError(f"box {box} does not fit in {w}x{h} frames")
    out = np.empty((t, size, size), dtype=np.uint8)
    interpolation = cv2.INTER_AREA if box.w >= size else cv2.INTER_CUBIC
    for i in range(t):
        patch = frames[i, box.y : box.y + box.h, box.x : box.x + box.w]
        out[i] = cv2.resize(patch, (size, size), interpolation=interpolation)
    return out
