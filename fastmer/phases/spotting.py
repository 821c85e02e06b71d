"""Apex spotting: a motion-intensity curve over a clip's face crops, apex = its peak.

Estimators (all batched over the frames of a clip, on the crops' device):

``pca`` (default)
    The principal motion component. A micro-expression is one spatial pattern of change
    (brows, mouth corners) whose strength rises from the onset to the apex and falls to
    the offset. Take the signed differences of the (lightly blurred) frames, remove from
    every pixel the straight line between the first frame after the onset and the offset
    (slow head drift and illumination change; the offset is back near neutral), and the
    first principal component of what remains is that pattern: its per-frame coefficient
    ``|u_1(t)| s_1`` is the curve. Every pixel of every frame votes, so it stays reliable
    at sub-pixel motion where single-frame differences drown in sensor noise.
``diff``
    Mean absolute difference of each (lightly blurred) frame from the onset frame over the
    whole crop: the intensity-difference criterion of SPEC §2.1, the cheapest.
``regions``
    The same difference per block of a ``grid x grid`` partition of the face, and the curve
    is the mean of the ``top_k`` most-changed blocks at each frame. Micro-expressions move
    one or two facial regions (brows, mouth corners) by a pixel or two, so averaging over the
    whole face dilutes them in noise and head motion; the most-moving blocks keep them.
``flow``
    Mean TV-L1 flow magnitude from the onset to every frame (one batched call), after
    subtracting each pair's median flow so a global head translation does not count.
    The most accurate and the most expensive (``T - 1`` flow pairs per clip).

The ``diff``, ``regions`` and ``flow`` curves are then *detrended* between the first frame
after the onset and the offset (:func:`detrend`).
A clip ends near neutral at its offset, so whatever is left at the offset (slow head drift,
illumination change) is not the expression, and removing its linear ramp stops the peak
from being pulled towards the offset. With two views the curves are summed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fastmer.choices import APEX_ESTIMATORS


def _gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(T, H, W)`` float frames, replicated border."""
    if sigma <= 0:
        return frames
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(frames[:, None], (radius, radius, radius, radius), mode="replicate")[:, 0]
    # Shifted weighted sums, not conv2d: for one channel and a 7-tap kernel they are ~10x
    # faster on a CPU core (the extraction's workers run one core each) and the same on a GPU.
    height, width = frames.shape[1:]
    rows = sum(kernel[k] * padded[:, :, k:k + width] for k in range(2 * radius + 1))
    return sum(kernel[k] * rows[:, k:k + height] for k in range(2 * radius + 1))


def _as_float_frames(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    frames = torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    if frames.dim() != 3:
        raise ValueError(f"expected crops of shape (T, H, W), got {tuple(frames.shape)}")
    if frames.shape[0] < 2:
        raise ValueError(f"a motion curve needs at least 2 frames, got {frames.shape[0]}")
    return frames.float()


def difference_curve(crops: np.ndarray | torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Mean ``|blur(I_t) - blur(I_onset)|`` over the crop.

    Args:
        crops: ``(T, H, W)`` face crops, onset first.
        sigma: Gaussian blur (px) so that sensor noise does not dominate.

    Returns:
        ``(T,)`` float32 curve, 0 at the onset.
    """
    frames = _as_float_frames(crops)
    onset = _gaussian_blur(frames[:1], sigma)
    # In chunks of frames (each frame's value is computed alone): no blurred copy of a long clip.
    return torch.cat([(_gaussian_blur(frames[start : start + 256], sigma) - onset).abs().mean(dim=(1, 2))
                      for start in range(0, len(frames), 256)])


def region_curve(crops: np.ndarray | torch.Tensor, grid: int = 8, top_k: int = 4, sigma: float = 1.0) -> torch.Tensor:
    """Mean of the ``top_k`` largest per-block differences from the onset frame.

    Args:
        crops: ``(T, H, W)`` face crops, onset first.
        grid: the crop is split into ``grid x grid`` blocks.
        top_k: blocks averaged at each frame.
        sigma: Gaussian blur (px) applied first.

    Returns:
        ``(T,)`` float32 curve.

    Example:
        >>> region_curve(torch.zeros(5, 48, 48)).shape
        torch.Size([5])
    """
    blurred = _gaussian_blur(_as_float_frames(crops), sigma)
    diff = (blurred - blurred[:1]).abs()
    blocks = F.adaptive_avg_pool2d(diff[:, None], grid)[:, 0].flatten(1)  # (T, grid * grid)
    return blocks.topk(min(top_k, blocks.shape[1]), dim=1).values.mean(dim=1)


def principal_curve(crops: np.ndarray | torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Coefficient magnitude of the first principal component of the drift-removed differences.

    With ``f_t`` the blurred frames (``t = 0..T-1``, onset first) and
    ``tau_t = (t - 1) / (T - 2)``, the residuals ``R_t = f_t - f_1 - tau_t (f_{T-1} - f_1)``
    (``t = 1..T-1``) are the frames' change with the per-pixel linear trend removed. With
    ``R = U S V^T``, the curve is ``c_t = s_1 |u_1(t)|`` (``c_0`` is set to the minimum): the
    strength of the dominant pattern of change at each frame. Computed from the ``(T-1) x
    (T-1)`` Gram matrix ``R R^T`` in float64, so the cost is one pass over the pixels.

    Args:
        crops: ``(T, H, W)`` face crops, onset first, offset last.
        sigma: Gaussian blur (px) applied first.

    Returns:
        ``(T,)`` float32 curve; for ``T < 4`` (no room for a trend and a peak) the
        :func:`difference_curve`.

    Example:
        >>> principal_curve(torch.zeros(6, 32, 32)).shape
        torch.Size([6])
    """
    frames = torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    if frames.dim() != 3:
        raise ValueError(f"expected crops of shape (T, H, W), got {tuple(frames.shape)}")
    if len(frames) < 4:
        return difference_curve(frames, sigma)
    n = len(frames) - 1
    tau = torch.linspace(0, 1, n, dtype=torch.float32, device=frames.device)[:, None]
    gram = torch.zeros(n, n, dtype=torch.float64, device=frames.device)
    # Band by band of rows: memory is the crops plus O(T x band x W), not a float copy of the clip.
    for band in _blurred_bands(frames, sigma):
        blurred = band.flatten(1)
        residual = (blurred[1:] - blurred[1:2] - tau * (blurred[-1:] - blurred[1:2])).double()
        gram.addmm_(residual, residual.T)
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    coefficient = eigenvectors[:, -1].abs() * eigenvalues[-1].clamp(min=0).sqrt()
    curve = torch.cat([coefficient.min().reshape(1), coefficient])
    return curve.float()


#: Float bytes of one band of :func:`_blurred_bands` (at least 8 rows): a short clip's crops
#: are blurred in one band (a 51-frame 128^2 clip: 2.2x faster than in 8-row bands, whose
#: many small tensor operations cost more than their arithmetic), a long clip's in bands.
BAND_BYTES = 4 << 20


def _blurred_bands(frames: torch.Tensor, sigma: float, rows: int | None = None):
    """:func:`_gaussian_blur` of ``(T, H, W)`` frames (any dtype), ``rows`` output rows at a
    time (default: as many as :data:`BAND_BYTES` holds, at least 8): ``(T, rows, W)`` float32
    bands, top to bottom, equal element for element to the whole-frame blur (the same taps
    in the same order over the same replicated border)."""
    if rows is None:
        rows = max(8, BAND_BYTES // (4 * frames.shape[0] * (frames.shape[2] + 2 * max(1, int(3 * sigma + 0.5)))))
    if sigma <= 0:
        for top in range(0, frames.shape[1], rows):
            yield frames[:, top : top + rows].float()
        return
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=frames.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    height, width = frames.shape[1:]
    index_x = torch.arange(-radius, width + radius, device=frames.device).clamp_(0, width - 1)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        # the band's rows and its border, replicated at the frame's edges
        index_y = torch.arange(top - radius, bottom + radius, device=frames.device).clamp_(0, height - 1)
        strip = frames[:, index_y].float()[:, :, index_x]
        horizontal = sum(kernel[k] * strip[:, :, k:k + width] for k in range(2 * radius + 1))
        yield sum(kernel[k] * horizontal[:, k:k + bottom - top] for k in range(2 * radius + 1))


def flow_curve(crops: np.ndarray | torch.Tensor, size: int = 64, preset: str = "opencv") -> torch.Tensor:
    """Mean magnitude of the TV-L1 flow from the onset frame, minus each pair's median flow.

    Args:
        crops: ``(T, H, W)`` face crops, onset first.
        size: crops are resized to ``size x size`` first (the curve needs the shape of the
            motion over time, not its detail).
        preset: TV-L1 parameter preset.

    Returns:
        ``(T,)`` float32 curve (in pixels of the resized crop).
    """
    from fastmer.ops.resample import resize  # noqa: PLC0415
    from fastmer.ops.tvl1 import TVL1Params, tvl1  # noqa: PLC0415

    frames = _as_float_frames(crops)
    frames = resize(frames, size, size) if frames.shape[-1] != size or frames.shape[-2] != size else frames
    frames = frames / 255.0  # tvl1 takes float images in [0, 1]
    flow = tvl1(frames[:1].expand(len(frames) - 1, -1, -1).contiguous(), frames[1:].contiguous(),
                TVL1Params.preset(preset))
    local = flow - flow.flatten(2).median(dim=2).values[:, :, None, None]
    magnitude = local.square().sum(dim=1).sqrt().mean(dim=(1, 2))
    return torch.cat([magnitude.new_zeros(1), magnitude.float()])


def detrend(curve: torch.Tensor) -> torch.Tensor:
    """Subtract the straight line through ``curve[1]`` and ``curve[-1]``; ``curve[0]`` becomes the minimum.

    The onset frame is compared with itself, so ``curve[0]`` is exactly 0 while every other
    frame carries the noise floor (sensor noise, compression); anchoring the line at the
    onset would tilt it by that floor. The onset itself is never the apex, so its value
    is set to the curve's minimum.
    """
    if len(curve) < 3:
        return curve - curve.min()
    t = torch.linspace(0, 1, len(curve) - 1, dtype=curve.dtype, device=curve.device)
    out = curve.clone()
    out[1:] = curve[1:] - curve[1] - t * (curve[-1] - curve[1])
    out[0] = out[1:].min()
    return out


def motion_curve(crops: np.ndarray | torch.Tensor, estimator: str = "pca", *, detrended: bool = True) -> torch.Tensor:
    """Motion-intensity curve of one view's crops (onset first, offset last) by ``estimator``."""
    if estimator == "pca":
        return principal_curve(crops)  # its drift removal is built in
    if estimator == "regions":
        curve = region_curve(crops)
    elif estimator == "diff":
        curve = difference_curve(crops)
    elif estimator == "flow":
        curve = flow_curve(crops)
    else:
        raise ValueError(f"apex estimator must be one of {', '.join(APEX_ESTIMATORS)}, got {estimator!r}")
    return detrend(curve) if detrended else curve


def spot_apex(views: Sequence[np.ndarray | torch.Tensor], estimator: str = "pca", *,
              curves: Sequence[np.ndarray] | None = None) -> tuple[int, np.ndarray]:
    """Index of the apex within the clip (1..T-1) and the summed motion curve.

    Args:
        views: the clip's ``(T, H, W)`` crops, onset to offset, for each view (one, or two
            for side-by-side recordings); the views' curves are summed.
        estimator: one of :data:`APEX_ESTIMATORS`.
        curves: the views' :func:`motion_curve` by ``estimator`` when already computed
            (the extraction stores them), so they are not computed twice.

    Returns:
        ``(index, curve)``: the apex is frame ``onset + index``; ``curve`` is ``(T,)`` float64.
    """
    if not views:
        raise ValueError("spot_apex needs at least one view")
    lengths = {len(v) for v in views}
    if len(lengths) != 1:
        raise ValueError(f"views have different numbers of frames: {sorted(lengths)}")
    if curves is None:
        curves = [motion_curve(v, estimator).double().cpu().numpy() for v in views]
    elif len(curves) != len(views) or any(len(c) != len(v) for c, v in zip(curves, views, strict=True)):
        raise ValueError(f"{len(curves)} curves of lengths {[len(c) for c in curves]} for {len(views)} views "
                         f"of {lengths.pop()} frames")
    curve = np.sum([np.asarray(c, dtype=np.float64) for c in curves], axis=0)
    return 1 + int(np.argmax(curve[1:])), curve
