import numpy as np
import pytest

from fastmer.errors import ClipError
from fastmer.phases import resolve


def clip_with_peak(peak: int, length: int = 12, amplitude: float = 3.0) -> np.ndarray:
    """Frames of a textured patch shifted right by a bump that peaks at frame ``peak``."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 32)).astype(np.float32)
    frames = []
    for t in range(length):
        shift = amplitude * np.exp(-0.5 * ((t - peak) / 1.5) ** 2)
        frames.append(np.roll(base, int(round(shift)), axis=1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_auto_keeps_a_valid_annotated_apex():
    phases = resolve(10, 14, 21, [clip_with_peak(3)])
    assert (phases.onset, phases.apex, phases.offset, phases.apex_source) == (10, 14, 21, "annotation")
    assert phases.curve is None


@pytest.mark.parametrize("estimator", ["pca", "regions", "diff"])
def test_missing_apex_is_spotted_at_peak_motion(estimator):
    phases = resolve(100, None, 111, [clip_with_peak(6)], estimator=estimator)
    assert phases.apex_source == f"spotted:{estimator}"
    assert abs(phases.apex - 106) <= 1
    assert phases.curve.shape == (12,)


def test_spot_ignores_the_annotation():
    phases = resolve(100, 102, 111, [clip_with_peak(7)], mode="spot")
    assert phases.apex_source == "spotted:pca" and abs(phases.apex - 107) <= 1


def test_annotation_mode_rejects_a_clip_without_apex():
    with pytest.raises(ClipError, match="sub01/EP01: no valid apex") as err:
        resolve(0, None, 11, [clip_with_peak(5)], mode="annotation", where="casme2/sub01/EP01")
    assert err.value.stage == "annotation"


def brightening(peak: int, amount: float, length: int = 12) -> np.ndarray:
    """A patch of a flat frame brightens and fades back, most at frame ``peak``."""
    frames = np.full((length, 32, 32), 100.0)
    for t in range(length):
        frames[t, 8:20, 8:20] += amount * np.exp(-0.5 * ((t - peak) / 1.5) ** 2)
    return frames.round().astype(np.uint8)


def test_two_views_share_one_apex_from_summed_curves():
    # The left view's change peaks at 4 weakly, the right view's at 8 strongly: the sum peaks at 8.
    left, right = brightening(4, 10.0), brightening(8, 40.0)
    phases = resolve(0, None, 11, [left, right], estimator="regions")
    alone = resolve(0, None, 11, [left], estimator="regions")
    assert abs(phases.apex - 8) <= 1 and abs(alone.apex - 4) <= 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="apex mode must be one of"):
        resolve(0, None, 11, [clip_with_peak(5)], mode="guess")
    with pytest.raises(ValueError, match="apex estimator must be one of"):
        resolve(0, None, 11, [clip_with_peak(5)], estimator="magic")
    with pytest.raises(ValueError, match="12 crops for frames 0..5"):
        resolve(0, None, 5, [clip_with_peak(5)])
