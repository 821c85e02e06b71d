"""`spot_peaks` on an hour-long curve: scipy.signal.find_peaks and a sorted list of kept peaks
vs the frame-by-frame loop it replaced (which compared each peak with every peak kept).

Workload: 108,000 frames (an hour at 30 fps): the MEGC baseline's contrast (k = 6) of a
uniform random difference curve, intervals of half-width 7 (min_distance 15), at p = 0.3 and
0.1, and p = 0 on the random curve itself (every local maximum above the mean a candidate).
Both sides return the same intervals (checked here, and on random curves in
tests/phases/test_peaks.py).

Command: python -m pytest bench/bench_peaks.py -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmer.phases.peaks import contrast, spot_peaks, spot_peaks_reference

FRAMES = 108_000
CASES = {"contrast-p0.3": 0.3, "contrast-p0.1": 0.1, "random-p0": 0.0}


def curve(case: str) -> np.ndarray:
    noise = np.random.default_rng(0).random(FRAMES)
    return noise if case.startswith("random") else contrast(noise, 6)


@pytest.mark.parametrize("impl", ["find_peaks", "loop"])
@pytest.mark.parametrize("case", list(CASES))
def test_spot_peaks_hour_long(benchmark, case, impl):
    values, p = curve(case), CASES[case]
    fn = spot_peaks if impl == "find_peaks" else spot_peaks_reference
    benchmark.group = f"spot_peaks {FRAMES} frames {case}"
    rounds = 10 if impl == "find_peaks" else 1
    got = benchmark.pedantic(lambda: fn(values, p=p, half_width=7), rounds=rounds, warmup_rounds=1 if rounds > 1 else 0)
    benchmark.extra_info["peaks"] = len(got)
    if impl == "find_peaks":
        assert got == spot_peaks_reference(values, p=p, half_width=7)
