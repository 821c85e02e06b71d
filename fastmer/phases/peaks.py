"""Training-free spotting on a per-frame curve: the MEGC baseline's contrast, adaptive
threshold and peak intervals (Li et al., MEGC 2019 spotting baseline; Davison et al. 2018).

A long video gives a per-frame feature difference ``F`` (how far frame ``i`` is from the
frames ``k`` before and after it: LBP chi-squared distances, flow magnitudes, ...). The
baseline contrasts it with its surroundings, ``C_i = max(0, F_i - (F_{i-k} + F_{i+k}) / 2)``
(0 within ``k`` frames of either end), thresholds it adaptively, ``T = mean(C) + p (max(C) -
mean(C))`` with ``p`` in [0, 1], and turns every peak of ``C`` above ``T`` into the interval
``peak - h .. peak + h``: ``h`` about half the expected expression length (a micro-expression
at 30 fps: ``h = 7``). Peaks closer than ``min_distance`` frames keep the higher one.

Example:
    >>> curve = np.zeros(40); curve[20] = 1.0
    >>> [(i.onset, i.apex, i.offset) for i in spot_peaks(curve, p=0.5, half_width=3)]
    [(17, 20, 23)]
"""

from __future__ import annotations

import bisect

import numpy as np

from fastmer.phases.intervals import Interval


def contrast(curve: np.ndarray, k: int) -> np.ndarray:
    """``C_i = max(0, F_i - (F_{i-k} + F_{i+k}) / 2)``; 0 within ``k`` frames of either end.

    Shape:
        ``(T,) -> (T,)`` float64
    """
    values = _as_curve(curve)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    out = np.zeros_like(values)
    if len(values) > 2 * k:
        out[k:-k] = np.maximum(0.0, values[k:-k] - 0.5 * (values[: -2 * k] + values[2 * k :]))
    return out


def adaptive_threshold(curve: np.ndarray, p: float) -> float:
    """``mean(C) + p (max(C) - mean(C))``: ``p = 0`` keeps every peak above the mean, ``p = 1`` only the highest."""
    values = _as_curve(curve)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if len(values) == 0:
        return 0.0
    mean = float(values.mean())
    return mean + p * (float(values.max()) - mean)


def spot_peaks(curve: np.ndarray, *, p: float, half_width: int, kind: str = "micro",
               min_distance: int | None = None, first_frame: int = 0) -> list[Interval]:
    """Intervals around the peaks of ``curve`` above :func:`adaptive_threshold`.

    Args:
        curve: ``(T,)`` per-frame values (a :func:`contrast`, usually), frame ``first_frame`` first.
        p: threshold position between the mean and the maximum, in [0, 1].
        half_width: ``h``: each interval is ``peak - h .. peak + h``, cut at the curve's ends.
        kind: the intervals' kind (``micro``/``macro``).
        min_distance: peaks closer than this keep only the higher (ties: the earlier);
            default ``2 h + 1``, so that intervals do not overlap.
        first_frame: the frame number of ``curve[0]``.

    Returns:
        Intervals in frame order, ``apex`` at the peak and ``score`` its value. A peak is a
        frame at or above the threshold, strictly above the curve's mean (a flat curve has
        none) and higher than the frames on either side of it; a flat top counts once, at
        its first frame.
    """
    values = _as_curve(curve)
    if isinstance(half_width, bool) or not isinstance(half_width, (int, np.integer)) or half_width < 0:
        raise ValueError(f"half_width must be an integer >= 0, got {half_width!r}")
    distance = 2 * half_width + 1 if min_distance is None else min_distance
    if distance < 1:
        raise ValueError(f"min_distance must be >= 1, got {min_distance}")
    if len(values) == 0:
        return []
    from scipy.signal import find_peaks  # noqa: PLC0415  (scipy.signal: over a second to import; only here)

    threshold = adaptive_threshold(values, p)
    mean = float(values.mean())
    # Every local maximum, a flat top at its first frame: find_peaks on the curve between two
    # -inf frames (so that its first and last frames can be peaks), plateaus' left edges.
    padded = np.concatenate(([-np.inf], values, [-np.inf]))
    tops = find_peaks(padded, plateau_size=1)[1]["left_edges"] - 1
    tops = tops[(values[tops] >= threshold) & (values[tops] > mean)]
    kept: list[int] = []  # sorted by frame
    # Highest first (ties: the earlier), kept unless within ``distance`` of a peak kept
    # already: only its kept neighbours on either side can be that close.
    for i in tops[np.lexsort((tops, -values[tops]))].tolist():
        at = bisect.bisect_left(kept, i)
        if (at == 0 or i - kept[at - 1] >= distance) and (at == len(kept) or kept[at] - i >= distance):
            kept.insert(at, i)
    last = len(values) - 1
    return [Interval(first_frame + max(0, i - half_width), first_frame + min(last, i + half_width), kind,
                     apex=first_frame + i, score=float(values[i])) for i in kept]


def _as_curve(curve: np.ndarray) -> np.ndarray:
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected a (T,) curve, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("the curve holds NaN or infinite values")
    return values


def spot_peaks_reference(curve: np.ndarray, *, p: float, half_width: int, kind: str = "micro",
                         min_distance: int | None = None, first_frame: int = 0) -> list[Interval]:
    """:func:`spot_peaks` frame by frame (the implementation find_peaks replaced): the
    reference the tests compare it with; quadratic in the number of peaks, no input checks."""
    values = np.asarray(curve, dtype=np.float64)
    distance = 2 * half_width + 1 if min_distance is None else min_distance
    if len(values) == 0:
        return []
    threshold = adaptive_threshold(values, p)
    mean = float(values.mean())
    candidates, i, n = [], 0, len(values)
    while i < n:
        j = i
        while j + 1 < n and values[j + 1] == values[i]:
            j += 1  # a flat top i..j counts once, at i
        left = values[i - 1] if i > 0 else -np.inf
        right = values[j + 1] if j + 1 < n else -np.inf
        if values[i] > left and values[i] > right and values[i] >= threshold and values[i] > mean:
            candidates.append(i)
        i = j + 1
    kept: list[int] = []
    for i in sorted(candidates, key=lambda c: (-values[c], c)):  # highest first
        if all(abs(i - j) >= distance for j in kept):
            kept.append(i)
    last = len(values) - 1
    return [Interval(first_frame + max(0, i - half_width), first_frame + min(last, i + half_width), kind,
                     apex=first_frame + i, score=float(values[i])) for i in sorted(kept)]
