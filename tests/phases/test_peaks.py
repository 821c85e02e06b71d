"""The MEGC baseline's contrast, adaptive threshold and peak intervals, on curves worked by hand."""

import numpy as np
import pytest

from fastmer.phases.intervals import Interval
from fastmer.phases.peaks import adaptive_threshold, contrast, spot_peaks, spot_peaks_reference


def test_contrast_against_its_definition():
    f = np.array([0.0, 1.0, 5.0, 2.0, 1.0, 4.0, 0.0])
    # k = 1: C_i = max(0, F_i - (F_{i-1} + F_{i+1}) / 2) for i = 1..5, 0 at both ends
    expected = [0.0, max(0, 1 - 2.5), 5 - 1.5, max(0, 2 - 3.0), max(0, 1 - 3.0), 4 - 0.5, 0.0]
    np.testing.assert_allclose(contrast(f, 1), expected)
    # k = 2: only frames 2..4 have both neighbours
    np.testing.assert_allclose(contrast(f, 2), [0, 0, max(0, 5 - 0.5), max(0, 2 - 2.5), max(0, 1 - 2.0), 0, 0])
    assert not contrast(f, 4).any()  # shorter than 2k + 1: nothing to contrast
    with pytest.raises(ValueError, match="k must be"):
        contrast(f, 0)


def test_adaptive_threshold_between_mean_and_max():
    c = np.array([0.0, 0.0, 4.0, 0.0])  # mean 1, max 4
    assert adaptive_threshold(c, 0.0) == 1.0 and adaptive_threshold(c, 1.0) == 4.0
    assert adaptive_threshold(c, 0.5) == 2.5
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        adaptive_threshold(c, 1.5)


def test_peaks_become_intervals_around_them():
    c = np.zeros(100)
    c[30], c[70], c[50] = 1.0, 0.5, 0.2  # mean 0.017: T(p=0.3) = 0.017 + 0.3 * 0.983 = 0.312
    got = spot_peaks(c, p=0.3, half_width=5, first_frame=1000)
    assert got == [Interval(1025, 1035, "micro", apex=1030, score=1.0),
                   Interval(1065, 1075, "micro", apex=1070, score=0.5)]
    # p = 0: every peak above the mean, macro intervals, cut at the curve's ends
    c[2] = 0.3
    got = spot_peaks(c, p=0.0, half_width=5, kind="macro")
    assert [(i.onset, i.apex, i.offset, i.kind) for i in got] == [
        (0, 2, 7, "macro"), (25, 30, 35, "macro"), (45, 50, 55, "macro"), (65, 70, 75, "macro")]


def test_close_peaks_keep_the_higher_and_flat_tops_count_once():
    c = np.zeros(60)
    c[20], c[24] = 0.6, 1.0  # 4 frames apart, min_distance 2h+1 = 7: only 24 stays
    c[40:43] = 0.8  # a flat top: one peak at its first frame
    got = spot_peaks(c, p=0.1, half_width=3)
    assert [i.apex for i in got] == [24, 40]
    assert [i.apex for i in spot_peaks(c, p=0.1, half_width=3, min_distance=4)] == [20, 24, 40]
    # a flat curve (no motion) has no peak, whatever p
    assert spot_peaks(np.full(30, 0.2), p=0.0, half_width=3) == []
    assert spot_peaks(np.zeros(0), p=0.5, half_width=3) == []


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"expected a \(T,\) curve"):
        spot_peaks(np.zeros((3, 3)), p=0.1, half_width=1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        spot_peaks(np.array([0.0, np.nan]), p=0.1, half_width=1)
    with pytest.raises(ValueError, match="half_width"):
        spot_peaks(np.zeros(5), p=0.1, half_width=-1)
    with pytest.raises(ValueError, match="min_distance"):
        spot_peaks(np.zeros(5), p=0.1, half_width=1, min_distance=0)


def _random_curve(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.choice([0, 1, 2, 3, 5, int(rng.integers(4, 60)), int(rng.integers(60, 400))]))
    shape = rng.integers(6)
    if shape == 0:  # quantised: ties and plateaus everywhere
        return rng.integers(0, int(rng.integers(1, 5)), n).astype(np.float64)
    if shape == 1:  # constant
        return np.full(n, float(rng.normal()))
    if shape == 2:  # runs of repeated values (wide plateaus), negative values too
        return np.repeat(rng.normal(size=n), rng.integers(1, 6, n))[:n]
    if shape == 3:  # the highest values at the ends (edge peaks)
        curve = rng.random(n)
        if n:
            curve[0], curve[-1] = 2.0, 2.0 if rng.random() < 0.5 else 3.0
        return curve
    if shape == 4:  # a contrast curve of a quantised difference curve: zeros and equal bumps
        return contrast(np.round(rng.random(n) * 4) / 4, int(rng.integers(1, 3)))
    return rng.random(n)


def test_find_peaks_gives_what_the_frame_loop_gave():
    """spot_peaks (find_peaks, then close peaks dropped through a sorted list) returns exactly
    the intervals of the frame-by-frame loop it replaced, on random curves: quantised
    (ties, plateaus), constant, 0-3 frames long, peaks at the ends, contrast curves."""
    rng = np.random.default_rng(0)
    for trial in range(4000):
        curve = _random_curve(rng)
        p = float(rng.choice([0.0, 1.0, rng.random()]))
        half_width = int(rng.integers(0, 8))
        min_distance = None if rng.random() < 0.5 else int(rng.integers(1, 20))
        first_frame = int(rng.integers(0, 1000))
        kind = "micro" if trial % 2 else "macro"
        args = dict(p=p, half_width=half_width, kind=kind, min_distance=min_distance, first_frame=first_frame)
        got, expected = spot_peaks(curve, **args), spot_peaks_reference(curve, **args)
        assert got == expected, (trial, curve.tolist(), args)
        assert all(type(i.apex) is int and type(i.onset) is int and type(i.offset) is int for i in got)


def test_edge_frames_and_short_curves():
    assert [i.apex for i in spot_peaks(np.array([1.0, 0.0, 0.0, 1.0]), p=0.0, half_width=0)] == [0, 3]
    assert [i.apex for i in spot_peaks(np.array([1.0, 1.0, 0.0, 0.0]), p=0.0, half_width=0)] == [0]  # flat top at an end
    assert spot_peaks(np.array([1.0]), p=0.0, half_width=0) == []  # its own mean
    assert [i.apex for i in spot_peaks(np.array([0.0, 1.0]), p=1.0, half_width=2)] == [1]
    # equal peaks too close: the earlier stays
    assert [i.apex for i in spot_peaks(np.array([0.0, 1.0, 0.0, 1.0, 0.0]), p=0.0, half_width=1)] == [1]
