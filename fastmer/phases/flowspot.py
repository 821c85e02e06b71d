"""Training-free spotting of micro- and macro-expressions from per-frame regional flow.

The streaming spotter (:mod:`fastmer.spot`) computes, for every frame ``j`` of a long video
and each temporal scale (micro, macro), the flow of the face crop from frame ``j`` to
``j + k`` (*near*) and to ``j + 2k`` (*far*) and keeps only :func:`~fastmer.phases.regions.region_motion`
of them: ``(T, R, 4)`` numbers per scale, indexed by ``j`` (NaN where a frame has no face or
the pair would cross a cut). Two methods read them:

* ``mdmd`` — main directional maximal difference (Wang et al., Neurocomputing 2017; the MEGC
  2020-2022 long-video baseline of He et al.): with the head frame ``j``, the current frame
  ``i = j + k`` and the tail frame ``j + 2k``, each region's value is the main-directional
  magnitude of head -> current minus that of head -> tail: large when the face moved away
  and came back within ``2k`` frames, as an expression does (a slow drift does not: it keeps
  going). The frame's value is the mean of the largest third of the regions' values.
* ``peak`` — the motion-intensity baseline (Li et al., MEGC 2019 baseline with flow in
  place of LBP): the frame's distance from its neighbours ``k`` before and after, ``F_i =
  (|flow(i-k -> i)| + |flow(i -> i+k)|) / 2`` (mean of the two most moving regions), contrasted
  with :func:`~fastmer.phases.peaks.contrast`.

Both then threshold the curve adaptively per video and take its peaks as apexes
(:func:`~fastmer.phases.peaks.spot_peaks`), the interval ``apex - k .. apex + k`` widened to
the run of motion around the apex on the micro scale's flow (:func:`motion_extent`: a
macro-expression can last several seconds; a micro-expression stays within 0.5 s). A candidate
whose eyes move :attr:`SpotParams.blink_ratio` times more than any expression region is a
blink and dropped. One movement fires both scales: a macro candidate holding a micro
candidate about as strong (:attr:`SpotParams.micro_share`) is that micro-expression, else the
micro candidates inside it are its rise and fall and dropped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fastmer.choices import SPOT_METHODS
from fastmer.phases.intervals import Interval
from fastmer.phases.peaks import contrast, spot_peaks
from fastmer.phases.regions import EXPRESSION_REGIONS, EYE_REGIONS, MOTION_STATS, REGIONS

_EXPR = [REGIONS.index(r) for r in EXPRESSION_REGIONS]
_EYES = [REGIONS.index(r) for r in EYE_REGIONS]
_MEAN, _MAIN = MOTION_STATS.index("mean"), MOTION_STATS.index("main")
#: The longest micro-expression (CAS(ME)², SAMM-LV, MEGC: onset to offset within 0.5 s).
MICRO_MAX_SECONDS = 0.5


@dataclass(frozen=True)
class SpotParams:
    """What the training-free spotters look for; times in seconds, turned into frames with the fps.

    Attributes:
        method: one of :data:`fastmer.choices.SPOT_METHODS` (``mdmd``, ``peak``).
        micro_k, macro_k: the scales ``k``: about half an expression's length (micro: 0.5 s at
            most, so 0.17 s; macro: 0.6 s). Spotted intervals are ``apex +- k``.
        samples_per_k: each scale's curve is computed every ``k / samples_per_k`` frames
            (at least every frame): the flow is the cost, and a finer curve than that does
            not place an interval better. So the cost per second of video does not grow
            with the frame rate.
        p_micro, p_macro: adaptive-threshold positions (``mean + p (max - mean)``), in [0, 1].
        blink_ratio: eye motion over the most moving expression region above which a
            candidate is a blink.
        micro_share: a macro candidate holding a micro candidate whose score is at least
            this share of its own is that micro-expression (one movement fires both scales;
            only a fast one fires the micro scale about as strongly).
        min_probability: method ``softnet``: the smoothed probability from which a frame's
            window is in an expression.
        min_score: curve values at or below this (pixels) never make an interval: a video
            without expressions has a flat curve whose adaptive threshold is in the noise.
    """

    method: str = "mdmd"
    micro_k: float = 0.17
    macro_k: float = 0.6
    samples_per_k: int = 6
    p_micro: float = 0.3
    p_macro: float = 0.3
    blink_ratio: float = 1.5
    micro_share: float = 0.5
    min_probability: float = 0.7
    min_score: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in SPOT_METHODS:
            raise ValueError(f"spotting method must be one of {', '.join(SPOT_METHODS)}, got {self.method!r}")
        for name in ("micro_k", "macro_k"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 10):
                raise ValueError(f"{name} must be a number of seconds in (0, 10], got {value!r}")
        if isinstance(self.samples_per_k, bool) or not isinstance(self.samples_per_k, int) or self.samples_per_k < 1:
            raise ValueError(f"samples_per_k must be an integer >= 1, got {self.samples_per_k!r}")
        for name in ("p_micro", "p_macro"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not self.blink_ratio > 0 or not self.min_score >= 0:
            raise ValueError("blink_ratio must be > 0 and min_score >= 0")

    def scales(self, fps: float) -> dict[str, tuple[int, int]]:
        """``{"micro": (k, stride), "macro": (k, stride)}`` in frames at ``fps``: ``k >= 1`` a
        multiple of the stride, macro's at least twice micro's."""
        if not fps > 0:
            raise ValueError(f"spotting needs the video's frame rate, got fps={fps!r}")
        out = {}
        for kind, seconds, floor in (("micro", self.micro_k, 1), ("macro", self.macro_k, 2 * max(1, round(self.micro_k * fps)))):
            k = max(floor, round(seconds * fps))
            stride = max(1, k // self.samples_per_k)
            k -= k % stride  # down to a multiple of the stride ...
            if kind == "macro" and k < 2 * out["micro"][0]:
                k += stride  # ... unless that falls below twice micro's k (micro's own rounding kept it above)
            out[kind] = (k, stride)
        return out

    def to_json(self) -> dict:
        return asdict(self)


def method_curve(method: str, near: np.ndarray, far: np.ndarray | None, k: int, stride: int = 1) -> np.ndarray:
    """The per-frame curve of ``method`` on one scale's motion, frame ``i`` at index ``i // stride``.

    Args:
        near, far: ``(T', R, 4)`` :func:`~fastmer.phases.regions.region_motion` of the flows
            ``j -> j + k`` and ``j -> j + 2k``, ``j = index * stride`` (NaN where missing).
        k: the scale, frames (a multiple of ``stride``).

    Returns:
        ``(T',)`` float64, 0 where the motion is missing.
    """
    if k % stride:
        raise ValueError(f"k={k} must be a multiple of stride={stride}")
    shift = k // stride
    n = len(near)
    curve = np.zeros(n)
    if method == "mdmd":
        if far is None:
            raise ValueError("mdmd needs the far flows (j -> j + 2k)")
        diff = near[:, _EXPR, _MAIN] - far[:, _EXPR, _MAIN]  # head j: value of the current frame j + k
        top = max(1, math.ceil(len(_EXPR) / 3))
        values = -np.sort(-np.nan_to_num(diff, nan=-np.inf), axis=1)[:, :top].mean(axis=1)
        values = np.where(np.isfinite(values), np.maximum(values, 0.0), 0.0)
        curve[shift:] = values[: n - shift]
        return curve
    if method == "peak":
        moving = -np.sort(-np.nan_to_num(near[:, _EXPR, _MEAN], nan=-np.inf), axis=1)[:, :2].mean(axis=1)
        moving = np.where(np.isfinite(moving), moving, np.nan)
        before = np.full(n, np.nan)
        before[shift:] = moving[: n - shift]  # flow(i - k -> i)
        feature = np.nan_to_num((before + moving) / 2, nan=0.0)  # moving[i] = flow(i -> i + k)
        return contrast(feature, shift) if n > 2 * shift else curve
    raise ValueError(f"unknown spotting method {method!r}")


def eye_and_face_motion(near: np.ndarray, index: int, shift: int) -> tuple[float, float]:
    """(mean eye motion, largest expression-region motion) of the flow into frame ``index`` (from ``index - shift``)."""
    j = index - shift
    if j < 0 or j >= len(near) or not np.isfinite(near[j]).all():
        return 0.0, 0.0
    return float(near[j, _EYES, _MEAN].mean()), float(near[j, _EXPR, _MEAN].max())


def motion_extent(velocity: np.ndarray, apex: int, *, gap: int, reach: int, floor: float,
                  share: float = 0.25) -> tuple[int, int]:
    """The run of motion around ``apex`` on a velocity curve: ``(first, last)`` indices.

    ``velocity[i]`` is the motion between ``i`` and ``i + k`` (the micro scale's flow). A
    movement is active from its onset to its offset but for a dip at its apex (where it
    turns); so the run is walked outwards from ``apex`` across inactive stretches of at most
    ``gap`` indices, no further than ``reach``; active means at least ``max(3 floor, share x
    the largest velocity within reach)``.
    """
    n = len(velocity)
    lo, hi = max(0, apex - reach), min(n - 1, apex + reach)
    if lo > hi:
        return apex, apex
    window = velocity[lo: hi + 1]
    threshold = max(3.0 * floor, share * float(window.max(initial=0.0)))
    active = velocity >= threshold
    ends = []
    for step, bound in ((-1, lo), (1, hi)):
        i, idle = apex, 0
        while i != bound:
            idle = 0 if active[i + step] else idle + 1
            if idle > gap:
                break
            i += step
        ends.append(i - step * idle)
    return min(ends[0], apex), max(ends[1], apex)


def score_curve(scores: np.ndarray, k: int, stride: int = 1) -> np.ndarray:
    """A learned spotter's curve: its per-head probabilities (NaN: 0), averaged over ``k`` frames
    as SOFTNet smooths its scores, placed at the frame ``j + k // 2`` the window ``j..j+k`` centres on."""
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    width = max(1, k // stride)
    smooth = np.convolve(values, np.ones(width) / width, mode="same") if len(values) else values
    shift = (k // 2) // stride
    curve = np.zeros_like(smooth)
    curve[shift:] = smooth[: len(smooth) - shift]
    return curve


def probability_runs(scores: np.ndarray, k: int, stride: int, threshold: float, n_frames: int,
                     kind: str) -> list[Interval]:
    """A learned spotter's intervals: the runs of heads whose smoothed probability reaches
    ``threshold`` (gaps of up to ``k / 2`` frames bridged), each turned back into the frames it
    labels. A head ``j`` is labelled positive when ``j..j + k`` overlaps the expression
    (:func:`fastmer.train.spotting.pseudo_labels`), so a run of heads ``a..b`` is the expression
    ``a + k .. b``; the apex is the frame the most probable window centres on.
    """
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    width = max(1, k // stride) | 1  # odd: centred
    smooth = np.convolve(values, np.ones(width) / width, mode="same") if len(values) else values
    above = np.flatnonzero(smooth >= threshold)
    runs: list[list[int]] = []
    gap = max(1, (k // 2) // stride)
    for head in above:
        if runs and head - runs[-1][1] <= gap + 1:
            runs[-1][1] = head
        else:
            runs.append([head, head])
    # Hysteresis: a run reaches down to halfway between the threshold and the video's usual
    # level (the median; class-balanced training lifts every probability above 0).
    baseline = float(np.median(smooth)) if len(smooth) else 0.0
    low = max(threshold / 2, (threshold + min(baseline, threshold)) / 2)
    out = []
    for a, b in runs:
        while a > 0 and smooth[a - 1] >= low:
            a -= 1
        while b + 1 < len(smooth) and smooth[b + 1] >= low:
            b += 1
        if out and a * stride <= out[-1].offset:  # grown into the previous run: one expression
            continue
        first, last = a * stride, min(n_frames - 1, b * stride)
        onset, offset = min(first + k, last), last
        best = a + int(np.argmax(smooth[a: b + 1]))
        apex = min(max(best * stride + k // 2, onset), offset)
        out.append(Interval(int(onset), int(offset), kind, apex=int(apex), score=float(smooth[best])))
    return out


def spot_intervals(motion: dict[str, tuple[np.ndarray, np.ndarray | None]], params: SpotParams, fps: float,
                   n_frames: int, scores: dict[str, np.ndarray] | None = None
                   ) -> tuple[list[Interval], dict[str, np.ndarray]]:
    """Micro- and macro-expression intervals of one video, and the curves they came from.

    Args:
        motion: per scale (``micro``, ``macro``): ``(near, far)`` as :func:`method_curve` reads them.
        scores: method ``softnet``: per scale, the learned spotter's probability of each head;
            the intervals are its runs above :attr:`SpotParams.min_probability`
            (:func:`probability_runs`), blinks dropped.
        params: the method and its thresholds.
        fps: frames per second.
        n_frames: the video's frames (intervals are cut to them).

    Returns:
        ``(intervals in onset order with 0-based frame indices, {scale: curve per frame})``.
    """
    scales = params.scales(fps)
    k_micro, s_micro = scales["micro"]
    micro_near = motion["micro"][0]
    velocity = np.nan_to_num(np.nanmax(np.where(np.isnan(micro_near[:, _EXPR, _MEAN]), -np.inf,
                                                  micro_near[:, _EXPR, _MEAN]), axis=1), nan=0.0, neginf=0.0)
    floor = float(np.median(velocity)) if len(velocity) else 0.0
    longest_micro = int(MICRO_MAX_SECONDS * fps)
    found: dict[str, list[Interval]] = {}
    curves = {}
    for kind in ("micro", "macro"):
        k, stride = scales[kind]
        near, far = motion[kind]
        if params.method == "softnet":
            if scores is None:
                raise ValueError("the softnet method needs the learned spotter's scores")
            curve = score_curve(scores[kind], k, stride)
        else:
            curve = method_curve(params.method, near, far, k, stride)
        curves[kind] = np.repeat(curve, stride)[:n_frames] if stride > 1 else curve
        p = params.p_micro if kind == "micro" else params.p_macro
        half = max(1, k // stride)
        if params.method == "softnet":
            kept = []
            for run in probability_runs(scores[kind], k, stride, params.min_probability, n_frames, kind):
                eyes, face = eye_and_face_motion(near, run.apex // stride, k // stride)
                if eyes <= params.blink_ratio * face:
                    kept.append(run)
            found[kind] = kept
            continue
        peaks = spot_peaks(curve, p=p, half_width=half, kind=kind)
        kept = []
        for peak in peaks:
            if peak.score <= params.min_score:
                continue
            apex = peak.apex * stride
            eyes, face = eye_and_face_motion(near, peak.apex, k // stride)
            if eyes > params.blink_ratio * face:
                continue  # a blink
            # apex +- k, widened to the run of motion around the apex (a long macro-expression).
            first, last = motion_extent(velocity, apex // s_micro, gap=max(1, 2 * k_micro // s_micro),
                                        reach=max(1, 3 * scales["macro"][0] // s_micro), floor=floor)
            onset, offset = max(0, min(apex - k, first * s_micro)), min(n_frames - 1, max(apex + k, last * s_micro + k_micro))
            if kind == "micro" and offset - onset + 1 > longest_micro:
                onset, offset = max(0, apex - k), min(n_frames - 1, apex + k)
            kept.append(Interval(onset, offset, kind, apex=apex, score=peak.score))
        found[kind] = kept
    # One movement fires both scales. Short ones move fast, so the micro scale's difference
    # is about as large as the macro scale's; a slow one barely registers at the micro scale.
    micro, macro = [], []
    for m in found["macro"]:
        inside = [c for c in found["micro"] if m.onset <= c.apex <= m.offset]
        if inside and max(c.score for c in inside) >= params.micro_share * m.score:
            continue  # a micro-expression: its micro candidates stay
        macro.append(m)
    micro = [c for c in found["micro"] if not any(m.onset <= c.apex <= m.offset for m in macro)]
    return sorted(micro + macro, key=lambda i: (i.onset, i.offset)), curves
