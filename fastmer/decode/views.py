"""Views of a recording: the whole frame, or the two halves of side-by-side frames.

4DME (and other multi-camera rigs) store two synchronised views of the face side by side
in every frame. ``--views split`` turns such a clip into a ``left`` and a ``right`` view,
each face-cropped on its own; both share the clip's labels and key frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmer.choices import VIEW_MODES

if TYPE_CHECKING:  # torch is not imported by fastmer.decode
    import numpy as np
    import torch


def view_rects(width: int, height: int, mode: str = "full") -> dict[str, tuple[int, int, int, int]]:
    """Where each view lies in ``width x height`` frames: ``{name: (x, y, w, h)}``.

    With an odd width the middle column belongs to neither half (it is the seam).

    Example:
        >>> view_rects(9, 4, "split")
        {'left': (0, 0, 4, 4), 'right': (5, 0, 4, 4)}
    """
    if mode not in VIEW_MODES:
        raise ValueError(f"views must be one of {', '.join(VIEW_MODES)}, got {mode!r}")
    if mode == "full":
        return {"full": (0, 0, width, height)}
    if width < 2:
        raise ValueError(f"cannot split frames {width} px wide into two views")
    half = width // 2
    return {"left": (0, 0, half, height), "right": (width - half, 0, half, height)}


def split_views(frames: np.ndarray | torch.Tensor, mode: str = "full") -> dict[str, np.ndarray | torch.Tensor]:
    """The views of ``(T, H, W[, C])`` frames (:func:`view_rects`): ``{"full": frames}`` or
    ``{"left": ..., "right": ...}``. The views are views of ``frames`` (no copy).

    Example:
        >>> import numpy as np
        >>> views = split_views(np.zeros((2, 4, 9), np.uint8), "split")
        >>> {name: v.shape for name, v in views.items()}
        {'left': (2, 4, 4), 'right': (2, 4, 4)}
    """
    if frames.ndim not in (3, 4):
        raise ValueError(f"expected frames of shape (T, H, W) or (T, H, W, C), got {tuple(frames.shape)}")
    rects = view_rects(frames.shape[2], frames.shape[1], mode)
    return {name: frames[:, y : y + h, x : x + w] for name, (x, y, w, h) in rects.items()}
