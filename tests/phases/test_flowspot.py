"""The training-free spotters on regional motion worked by hand: SpotParams' checks and
scales, the MDMD and peak curves, and whole-video spotting on motion synthesised from known
region trajectories (a micro-expression, a blink, a slow macro-expression, nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastmer.phases.flowspot import SpotParams, method_curve, spot_intervals
from fastmer.phases.intervals import Interval, iou
from fastmer.phases.regions import MOTION_STATS, REGIONS

R, S = len(REGIONS), len(MOTION_STATS)
LB, RB, LM, RM = (REGIONS.index(n) for n in ("left_brow", "right_brow", "left_mouth", "right_mouth"))
LE, RE = REGIONS.index("left_eye"), REGIONS.index("right_eye")
MEAN, MAIN = MOTION_STATS.index("mean"), MOTION_STATS.index("main")

# ------------------------------------------------------------------------------- helpers


def raised_cosine(t: np.ndarray, onset: int, apex: int, offset: int) -> np.ndarray:
    """0 before onset and after offset, rising to exactly 1 at apex."""
    t = np.asarray(t, float)
    rise = 0.5 * (1 - np.cos(np.pi * (t - onset) / (apex - onset)))
    fall = 0.5 * (1 + np.cos(np.pi * (t - apex) / (offset - apex)))
    return np.where((t <= onset) | (t >= offset), 0.0, np.where(t <= apex, rise, fall))


def uniform_stats(w: np.ndarray) -> np.ndarray:
    """region_motion's stats of a region moving by one vector ``w`` everywhere: (u, v, |w|, |w|)."""
    m = np.hypot(w[..., 0], w[..., 1])
    return np.stack([w[..., 0], w[..., 1], m, m], axis=-1)


def scale_motion(disp: np.ndarray, k: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(near, far) of one scale from per-frame region displacements ``disp`` (T, R, 2) relative
    to the head: row ``j // stride`` holds flow j -> j + k and j -> j + 2k, NaN past the end
    (as the streaming spotter fills them)."""
    n = len(disp)
    rows = math.ceil(n / stride)
    near = np.full((rows, R, S), np.nan)
    far = np.full((rows, R, S), np.nan)
    for row in range(rows):
        j = row * stride
        if j + k < n:
            near[row] = uniform_stats(disp[j + k] - disp[j])
        if j + 2 * k < n:
            far[row] = uniform_stats(disp[j + 2 * k] - disp[j])
    return near, far


def motion_of(disp: np.ndarray, params: SpotParams, fps: float) -> dict:
    return {kind: scale_motion(disp, k, stride) for kind, (k, stride) in params.scales(fps).items()}


def trajectory(n: int, moves: list[tuple[tuple[int, ...], tuple[float, float], tuple[int, int, int]]],
               noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """(n, R, 2) displacements: each move pushes ``regions`` by ``vector * raised_cosine(onset, apex, offset)``."""
    rng = np.random.default_rng(seed)
    disp = rng.normal(0.0, noise, (n, R, 2)) if noise else np.zeros((n, R, 2))
    t = np.arange(n)
    for regions, vector, (onset, apex, offset) in moves:
        a = raised_cosine(t, onset, apex, offset)
        for r in regions:
            disp[:, r] += a[:, None] * np.asarray(vector)[None, :]
    return disp


# ------------------------------------------------------------------------------- SpotParams


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "lbp"}, "spotting method must be one of mdmd, peak"),
    ({"micro_k": 0}, r"micro_k must be a number of seconds in \(0, 10\]"),
    ({"macro_k": 11.0}, r"macro_k must be a number of seconds in \(0, 10\]"),
    ({"macro_k": "0.6"}, "macro_k must be a number"),
    ({"samples_per_k": 0}, "samples_per_k must be an integer >= 1"),
    ({"samples_per_k": 2.0}, "samples_per_k must be an integer >= 1"),
    ({"samples_per_k": True}, "samples_per_k must be an integer >= 1"),
    ({"p_micro": -0.1}, r"p_micro must be in \[0, 1\]"),
    ({"p_macro": 1.01}, r"p_macro must be in \[0, 1\]"),
    ({"blink_ratio": 0.0}, "blink_ratio must be > 0"),
    ({"min_score": -0.5}, "min_score >= 0"),
])
def test_spot_params_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpotParams(**kwargs)


def test_spot_params_accept_the_bounds():
    SpotParams(method="peak", p_micro=0.0, p_macro=1.0, min_score=0.0, micro_k=10, samples_per_k=1)


def test_scales_by_hand():
    p = SpotParams()  # micro 0.17 s, macro 0.6 s, 6 samples per k
    # 30 fps: micro k = round(5.1) = 5, stride 5 // 6 -> 1; macro k = round(18) = 18, stride 3
    assert p.scales(30) == {"micro": (5, 1), "macro": (18, 3)}
    # 200 fps: micro round(34) = 34, stride 5, down to 30; macro round(120) = 120, stride 20
    assert p.scales(200) == {"micro": (30, 5), "macro": (120, 20)}
    # a macro scale shorter than twice micro's is raised to it: 30 fps, micro 5, macro 0.2 s -> 10, stride 1
    assert SpotParams(macro_k=0.2).scales(30) == {"micro": (5, 1), "macro": (10, 1)}
    # 100 fps, micro 0.16 s -> 16 (stride 2), macro 0.3 s -> floor 32, stride 5: 30 would be < 2 x 16, so 35
    assert SpotParams(micro_k=0.16, macro_k=0.3).scales(100) == {"micro": (16, 2), "macro": (35, 5)}
    with pytest.raises(ValueError, match="frame rate"):
        p.scales(0)


@pytest.mark.parametrize("samples", [1, 3, 6, 10])
@pytest.mark.parametrize(("micro_k", "macro_k"), [(0.05, 0.1), (0.16, 0.3), (0.17, 0.6), (0.3, 1.0)])
def test_scales_keep_their_invariants(samples, micro_k, macro_k):
    p = SpotParams(micro_k=micro_k, macro_k=macro_k, samples_per_k=samples)
    for fps in range(5, 501):
        (k, stride), (big_k, big_stride) = p.scales(fps)["micro"], p.scales(fps)["macro"]
        assert k >= 1 and k % stride == 0 and big_k % big_stride == 0, fps
        assert big_k >= 2 * k, (fps, k, big_k)
        assert abs(k - micro_k * fps) <= stride + 0.5, fps  # near the asked time


# ------------------------------------------------------------------------------- method_curve


def test_mdmd_curve_by_hand():
    near, far = np.zeros((12, R, S)), np.zeros((12, R, S))
    # head j = 4: main-directional magnitudes near - far: brows 2 - 0.5 and 1 - 0, mouth 0.5 - 1.5
    near[4, [LB, RB, LM], MAIN] = [2.0, 1.0, 0.5]
    far[4, [LB, LM], MAIN] = [0.5, 1.5]
    near[4, LE, MAIN] = 9.0  # eyes are not expression regions
    near[4, [LB, RB, LM, RM], MEAN] = 50.0  # mdmd reads only the main stat
    # head j = 6: every expression region came further than it went: negative -> 0
    near[6, [LB, RB, LM, RM], MAIN] = 1.0
    far[6, [LB, RB, LM, RM], MAIN] = 2.0
    # head j = 1: a lone region ahead; the top ceil(4 / 3) = 2 regions are 3 and 0
    near[1, RM, MAIN] = 3.0
    near[8:] = np.nan  # no face from j = 8
    far[8:] = np.nan
    curve = method_curve("mdmd", near, far, k=3)
    expected = np.zeros(12)
    expected[4 + 3] = (1.5 + 1.0) / 2
    expected[1 + 3] = (3.0 + 0.0) / 2
    np.testing.assert_allclose(curve, expected)
    assert curve.dtype == np.float64
    # stride 2, k = 4: head row 4 (frame 8) shows at row 4 + 2
    curve = method_curve("mdmd", near, far, k=4, stride=2)
    expected = np.zeros(12)
    expected[4 + 2] = 1.25
    expected[1 + 2] = 1.5
    np.testing.assert_allclose(curve, expected)


def test_peak_curve_by_hand():
    near = np.zeros((12, R, S))
    near[5, [LB, RB, LM, RM], MEAN] = [3.0, 1.0, 0.5, 0.0]  # two most moving: (3 + 1) / 2 = 2
    near[6, [LB, RB, LM, RM], MEAN] = 1.0
    near[5, LE, MEAN] = 20.0  # not an expression region
    near[:, :, MAIN] = 7.0  # peak reads only the mean
    # moving (flow i -> i + 2) = 2 at 5, 1 at 6; F_i = (moving[i - 2] + moving[i]) / 2, 0 where i < 2
    # F = [0, 0, 0, 0, 0, 1, .5, 1, .5, 0, 0, 0]; C_i = max(0, F_i - (F_{i-2} + F_{i+2}) / 2) for i in 2..9
    expected = [0, 0, 0, 0, 0, 1 - 0.5, 0.5 - 0.25, 1 - 0.5, 0.5 - 0.25, 0, 0, 0]
    np.testing.assert_allclose(method_curve("peak", near, None, k=2), expected)
    # a frame without a face (row 6 NaN) counts as no motion: F = [.., 1 at 5, 0 at 6, 1 at 7, 0 at 8]
    near[6] = np.nan
    expected = [0, 0, 0, 0, 0, 1 - 0.5, 0, 1 - 0.5, 0, 0, 0, 0]
    np.testing.assert_allclose(method_curve("peak", near, None, k=2), expected)
    # too short to contrast: zeros
    assert not method_curve("peak", near[:4], None, k=2).any()


def test_method_curve_rejects_bad_calls():
    near = np.zeros((10, R, S))
    with pytest.raises(ValueError, match="multiple of stride"):
        method_curve("mdmd", near, near, k=5, stride=2)
    with pytest.raises(ValueError, match="far flows"):
        method_curve("mdmd", near, None, k=2)
    with pytest.raises(ValueError, match="unknown spotting method"):
        method_curve("lbp", near, near, k=2)


# ------------------------------------------------------------------------------- spot_intervals

FPS = 30.0  # scales: micro (5, 1), macro (18, 3)
N = 300


def test_a_fast_bump_is_one_micro_interval():
    params = SpotParams()
    # both brows 2 px down, onset 100, apex 104, offset 110 (0.37 s)
    disp = trajectory(N, [((LB, RB), (0.0, 2.0), (100, 104, 110))], noise=0.005)
    intervals, curves = spot_intervals(motion_of(disp, params, FPS), params, FPS, N)
    assert len(intervals) == 1, intervals
    (got,) = intervals
    assert got.kind == "micro" and abs(got.apex - 104) <= 1
    # at least apex +- k (5 frames), at most 0.5 s, and a hit by MEGC's rule against the truth 100..110
    assert got.onset <= got.apex - 5 and got.offset >= got.apex + 5 and got.length <= 0.5 * FPS
    assert iou(got, Interval(100, 110)) >= 0.5
    assert set(curves) == {"micro", "macro"} and len(curves["micro"]) == N and len(curves["macro"]) == N
    # the macro scale fired too, as strongly: that candidate was this micro-expression
    assert curves["macro"].max() > 0.5 * curves["micro"].max() > params.min_score


def test_a_blink_is_dropped():
    # eyelids 3 px down and back within 0.2 s; the brows follow by 0.3 px
    disp = trajectory(N, [((LE, RE), (0.0, 3.0), (150, 153, 156)), ((LB, RB), (0.0, 0.3), (150, 153, 156))],
                      noise=0.005)
    params = SpotParams()
    intervals, curves = spot_intervals(motion_of(disp, params, FPS), params, FPS, N)
    assert intervals == []
    assert curves["micro"].max() > params.min_score  # a candidate it had to drop
    # ... and it is the eyes that dropped it: with a lax blink ratio it is spotted
    lax = SpotParams(blink_ratio=100.0)
    intervals, _ = spot_intervals(motion_of(disp, lax, FPS), lax, FPS, N)
    assert [i.kind for i in intervals] == ["micro"] and abs(intervals[0].apex - 153) <= 1


def test_a_slow_movement_is_one_macro_interval():
    params = SpotParams()
    # mouth corners 3 px outward and up over 2 s: onset 100, apex 130, offset 160
    disp = trajectory(N, [((LM,), (-2.4, -1.8), (100, 130, 160)), ((RM,), (2.4, -1.8), (100, 130, 160))],
                      noise=0.005)
    intervals, curves = spot_intervals(motion_of(disp, params, FPS), params, FPS, N)
    assert len(intervals) == 1, intervals
    (got,) = intervals
    assert got.kind == "macro" and abs(got.apex - 130) <= 3  # macro stride 3
    # at least apex +- k (18 frames), and a hit by MEGC's rule against the truth 100..160
    assert got.onset <= got.apex - 18 and got.offset >= got.apex + 18
    assert iou(got, Interval(100, 160, "macro")) >= 0.5
    # the micro scale saw the turn at the apex (its candidates were inside the macro interval)
    micro = curves["micro"]
    assert micro.max() > params.min_score and got.onset <= int(np.argmax(micro)) <= got.offset
    assert micro.max() < params.micro_share * curves["macro"].max()


def test_a_micro_and_a_macro_apart_are_both_spotted():
    params = SpotParams()
    disp = trajectory(N, [((LB, RB), (0.0, 2.0), (60, 64, 70)),
                          ((LM, RM), (0.0, -3.0), (160, 190, 220))], noise=0.005)
    intervals, _ = spot_intervals(motion_of(disp, params, FPS), params, FPS, N)
    assert [i.kind for i in intervals] == ["micro", "macro"], intervals
    assert abs(intervals[0].apex - 64) <= 1 and abs(intervals[1].apex - 190) <= 3
    assert iou(intervals[0], Interval(60, 70)) >= 0.5 and iou(intervals[1], Interval(160, 220, "macro")) >= 0.5


def test_a_still_face_spots_nothing():
    params = SpotParams()
    disp = trajectory(N, [], noise=0.005)  # sensor-level jitter only
    intervals, curves = spot_intervals(motion_of(disp, params, FPS), params, FPS, N)
    assert intervals == []
    assert 0 < curves["micro"].max() <= params.min_score  # peaks there were, all in the noise
    # with min_score 0 the noise's peaks would become intervals
    loose = SpotParams(min_score=0.0)
    assert spot_intervals(motion_of(disp, loose, FPS), loose, FPS, N)[0]
