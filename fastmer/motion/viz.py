"""The Middlebury colour coding of optical flow (Baker et al., IJCV 2011).

Hue encodes direction on a 55-colour wheel (red, yellow, green, cyan, blue, magenta
segments of 15, 6, 4, 11, 13 and 6 colours), saturation the magnitude relative to the
largest valid magnitude (or ``max_flow``); unknown flow (components >= 1e9) is black.
Zero flow is white; rightward flow is red, leftward cyan.
"""

from __future__ import annotations

import numpy as np

from fastmer.motion.flo import UNKNOWN_FLOW_THRESH

_SEGMENTS = ((15, (1, 0, 0), (0, 1, 0)),   # red -> yellow: G rises
             (6, (1, 1, 0), (-1, 0, 0)),    # yellow -> green: R falls
             (4, (0, 1, 0), (0, 0, 1)),     # green -> cyan: B rises
             (11, (0, 1, 1), (0, -1, 0)),   # cyan -> blue: G falls
             (13, (0, 0, 1), (1, 0, 0)),    # blue -> magenta: R rises
             (6, (1, 0, 1), (0, 0, -1)))    # magenta -> red: B falls


def color_wheel() -> np.ndarray:
    """``(55, 3)`` RGB wheel with values 0..255 (float)."""
    rows = []
    for length, start, slope in _SEGMENTS:
        ramp = np.floor(255 * np.arange(length) / length)
        base = 255 * np.array(start, dtype=np.float64)
        rows.append(base + np.outer(ramp, slope))
    return np.concatenate(rows)


def flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """RGB image of a flow field.

    Args:
        flow: ``(H, W, 2)`` flow (u, v) in pixels; components >= 1e9 mark unknown flow.
        max_flow: magnitude shown at full saturation (default: the largest valid one).

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Example:
        >>> flow_to_color(np.zeros((1, 1, 2)))[0, 0].tolist()
        [255, 255, 255]
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow_to_color: expected flow of shape (H, W, 2), got {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    unknown = (np.abs(u) >= UNKNOWN_FLOW_THRESH) | (np.abs(v) >= UNKNOWN_FLOW_THRESH) | ~np.isfinite(u) | ~np.isfinite(v)
    u, v = np.where(unknown, 0, u), np.where(unknown, 0, v)
    radius = np.hypot(u, v)
    scale = max_flow if max_flow is not None else (radius.max() if radius.size else 0.0)
    if scale > 0:
        u, v, radius = u / scale, v / scale, radius / scale
    wheel = color_wheel() / 255
    ncols = len(wheel)
    angle = np.arctan2(-v, -u) / np.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(int)
    k1 = (k0 + 1) % ncols
    f = (fk - k0)[..., None]
    color = (1 - f) * wheel[k0] + f * wheel[k1]
    inside = (radius <= 1)[..., None]
    color = np.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    image = np.floor(255 * color).astype(np.uint8)
    image[unknown] = 0
    return image
