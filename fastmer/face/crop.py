"""Sequence-wise face crops: one box (and one rotation) per clip, so facial motion is not
confounded by box jitter; crops of whole clips are computed in one batched operation on
the device where the frames are."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fastmer.ops.resample import resize


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

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def contains(self, other: FaceBox, tolerance: int = 0) -> bool:
        """Whether ``other`` lies inside this box (give or take ``tolerance`` pixels)."""
        return (other.x >= self.x - tolerance and other.y >= self.y - tolerance
                and other.x + other.w <= self.x + self.w + tolerance and other.y + other.h <= self.y + self.h + tolerance)


def union_box(boxes: list[FaceBox]) -> FaceBox:
    """The smallest box containing all ``boxes``."""
    if not boxes:
        raise ValueError("union_box needs at least one box")
    x0, y0 = min(b.x for b in boxes), min(b.y for b in boxes)
    x1, y1 = max(b.x + b.w for b in boxes), max(b.y + b.h for b in boxes)
    return FaceBox(x0, y0, x1 - x0, y1 - y0)


def square_box(box: FaceBox, scale: float, width: int, height: int) -> FaceBox:
    """Square box of side ``scale * max(w, h)`` on the same centre, moved (not cut) to fit the image.

    Detector boxes hug the eyes-to-mouth region; ``scale > 1`` keeps brows, forehead and
    chin, where much micro-expression motion happens. If the square is larger than the
    image it is shrunk to the image's short side.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    side = min(int(round(scale * max(box.w, box.h))), width, height)
    cx, cy = box.center
    x = int(round(min(max(cx - side / 2, 0), width - side)))
    y = int(round(min(max(cy - side / 2, 0), height - side)))
    return FaceBox(x, y, side, side)


def crop_clip(frames: np.ndarray | torch.Tensor, box: FaceBox, size: int, *, angle: float = 0.0) -> np.ndarray | torch.Tensor:
    """Crop every frame of a clip with one box, optionally rotated, and resize to ``size``.

    The box's content is resampled to ``size x size`` by area averaging when shrinking
    (OpenCV's INTER_AREA) or bilinearly when enlarging. With ``angle != 0`` (degrees), the
    crop is taken along axes rotated by ``angle`` about the box centre (bilinear sampling,
    replicated border), e.g. the angle of the line between the eyes, so the eyes come out
    level. One batched operation for the whole clip, on the frames' device.

    Args:
        frames: ``(T, H, W)`` uint8 (numpy array or tensor).
        box: the clip's box, inside the frames.
        size: output side in pixels.
        angle: rotation in degrees (image coordinates: positive turns x towards y).

    Returns:
        ``(T, size, size)`` uint8, of the same kind (numpy or tensor, same device) as ``frames``.

    Example:
        >>> crop_clip(np.zeros((3, 50, 60), np.uint8), FaceBox(10, 5, 40, 40), 16).shape
        (3, 16, 16)
    """
    is_numpy = isinstance(frames, np.ndarray)
    video = torch.from_numpy(frames) if is_numpy else frames
    if video.dim() != 3:
        raise ValueError(f"crop_clip: expected frames of shape (T, H, W), got {tuple(video.shape)}")
    _, height, width = video.shape
    if box.x < 0 or box.y < 0 or box.x + box.w > width or box.y + box.h > height:
        raise ValueError(f"box {box} does not fit in {width}x{height} frames")
    if angle == 0.0:
        region = video[:, box.y : box.y + box.h, box.x : box.x + box.w].float()
    else:
        region = _rotated_region(video.float(), box, angle)
    out = resize(region, size, size).round_().clamp_(0, 255).to(torch.uint8)
    return out.numpy() if is_numpy else out


def _rotated_region(video: torch.Tensor, box: FaceBox, angle: float) -> torch.Tensor:
    """The box's content sampled along axes rotated by ``angle`` about its centre, at the
    box's own resolution: ``(T, h, w)`` float."""
    t, height, width = video.shape
    cx, cy = box.center
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    ys, xs = torch.meshgrid(torch.arange(box.h, dtype=torch.float32, device=video.device) + 0.5 - box.h / 2,
                            torch.arange(box.w, dtype=torch.float32, device=video.device) + 0.5 - box.w / 2,
                            indexing="ij")
    src_x = cx + cos * xs - sin * ys
    src_y = cy + sin * xs + cos * ys
    # grid_sample's normalised coordinates (align_corners=False: -1 and 1 are the outer edges)
    grid = torch.stack([2 * src_x / width - 1, 2 * src_y / height - 1], dim=-1)
    sampled = F.grid_sample(video[:, None], grid.expand(t, -1, -1, -1), mode="bilinear", padding_mode="border",
                            align_corners=False)
    return sampled[:, 0]
