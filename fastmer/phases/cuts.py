"""Discontinuities inside a clip: scene cuts, missing stretches of video, flashes.

A micro-expression moves a face by a pixel or two; a scene cut changes the whole frame.
The apex spotter, which looks for the largest change, would put the apex on the cut, and
the flow between the two shots is meaningless. So a clip whose frames jump is refused
before the apex is spotted.

The measure is the mean absolute grey-level change between consecutive frames, on
thumbnails 64 px wide (area-averaged: noise and facial motion average out, a cut does
not). A jump is a change above both :data:`MIN_CHANGE` grey levels and
:data:`MEDIAN_FACTOR` times the median of the clip's other changes (so fast but continuous
footage is not flagged). Measured on the real face videos of ../shared: consecutive frames change
by at most 8.3 levels (median 1.2) in a hand-held 640x360 film clip, 2.8 in a static
one; a cut between the two changes 97; two frames of the same shot 13 s apart, 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

THUMBNAIL_WIDTH = 64
MIN_CHANGE = 12.0  # grey levels (0..255) on thumbnails
MEDIAN_FACTOR = 8.0
CHUNK = 32  # frames thumbnailed at a time


@dataclass(frozen=True)
class Jump:
    """The largest discontinuity of a clip: between frames ``index`` and ``index + 1`` (0-based
    in the frames given), with its mean change and the threshold it crossed."""

    index: int
    change: float
    threshold: float


class ChangeMeter:
    """:func:`frame_changes` of a clip fed in consecutive chunks (a long clip is streamed):
    only the previous chunk's last thumbnail is kept between chunks.

    Example:
        >>> meter = ChangeMeter()
        >>> for chunk in np.split(np.zeros((6, 8, 8), np.uint8), 3):
        ...     meter.add(chunk)
        >>> meter.changes().shape
        torch.Size([5])
    """

    def __init__(self) -> None:
        self._last: torch.Tensor | None = None
        self._changes: list[torch.Tensor] = []

    def add(self, frames: np.ndarray | torch.Tensor) -> None:
        """The next ``(t, H, W)`` or ``(t, H, W, 3)`` uint8 frames of the clip (numpy or torch)."""
        video = torch.as_tensor(frames) if isinstance(frames, np.ndarray) else frames
        if video.dim() not in (3, 4) or (video.dim() == 4 and video.shape[3] != 3):
            raise ValueError(f"frame_changes: expected (T, H, W) or (T, H, W, 3) frames, got {tuple(video.shape)}")
        height, width = video.shape[1:3]
        size = (max(1, round(height * THUMBNAIL_WIDTH / width)), THUMBNAIL_WIDTH) if width > THUMBNAIL_WIDTH else (height, width)
        # In chunks: a float copy of a whole long clip would cost more memory than its frames.
        for start in range(0, len(video), CHUNK):
            chunk = video[start : start + CHUNK].float()
            if chunk.dim() == 4:  # colour: the mean of the channels is enough to see a cut
                chunk = chunk.mean(dim=3)
            small = F.interpolate(chunk[:, None], size=size, mode="area")[:, 0]
            if self._last is not None:
                if self._last.shape != small.shape[1:]:
                    raise ValueError(f"frame_changes: frames of another size ({height}x{width}) in the same clip")
                small = torch.cat([self._last[None], small])
            self._changes.append((small[1:] - small[:-1]).abs().mean(dim=(1, 2)).double().cpu())
            self._last = small[-1]

    def changes(self) -> torch.Tensor:
        """``(T - 1,)`` float64: the change between each frame and the next so far."""
        return torch.cat(self._changes) if self._changes else torch.zeros(0, dtype=torch.float64)

    def jump(self) -> Jump | None:
        """The clip's discontinuity if it has one (see the module's docstring), else None."""
        changes = self.changes()
        if len(changes) == 0:
            return None
        index = int(changes.argmax())
        change = float(changes[index])
        others = torch.cat([changes[:index], changes[index + 1:]])  # the jump itself must not set the bar
        typical = float(others.median()) if len(others) else 0.0
        threshold = max(MIN_CHANGE, MEDIAN_FACTOR * typical)
        return Jump(index, change, threshold) if change > threshold else None


def frame_changes(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Mean absolute change between consecutive thumbnails, ``(T - 1,)`` float64.

    Args:
        frames: ``(T, H, W)`` or ``(T, H, W, 3)`` uint8, numpy or torch (any device).
    """
    meter = ChangeMeter()
    meter.add(frames)
    return meter.changes()


def find_jump(frames: np.ndarray | torch.Tensor) -> Jump | None:
    """The clip's discontinuity if it has one (see the module's docstring), else None."""
    meter = ChangeMeter()
    meter.add(frames)
    return meter.jump()
