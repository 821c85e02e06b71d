import numpy as np

from fastmer.phases import motion_intensity, resolve


def clip_with_peak(peak: int, length: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 32)).astype(np.float32)
    frames = []
    for t in range(length):
        shift = 3.0 * np.exp(-0.5 * ((t - peak) / 1.5) ** 2)  # motion rises then decays
        frames.append(np.roll(base, int(round(shift)), axis=1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_annotated_apex_is_kept():
    phases = resolve(10, 14, 21, clip_with_peak(3))
    assert (phases.onset, phases.apex, phases.offset, phases.apex_source) == (10, 14, 21, "annotation")


def test_missing_apex_is_spotted_at_peak_motion():
    crops = clip_with_peak(6)
    assert motion_intensity(crops)[0] == 0
    phases = resolve(100, None, 111, crops)
    assert phases.apex_source == "spotted:intensity"
    assert abs(phases.apex - 106) <= 1
