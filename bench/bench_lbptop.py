"""LBP-TOP histograms: the numba kernel vs the NumPy reference (:mod:`fastmer.motion.lbptop`).

Size: 64 grayscale clips of 50 frames of 128x128 (uint8), LBP-TOP_{4,4,4,1,1,4} on 5x5 blocks,
the CASME II / SMIC baseline. The numba kernel is compiled (or loaded from numba's cache) in a
warm-up call outside the timing.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmer.motion.lbptop import lbp_top_batch, lbp_top_reference

pytest.importorskip("numba")

CLIPS = 64


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (50, 128, 128), dtype=np.uint8) for _ in range(CLIPS)]


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_lbp_top(benchmark, clips, backend):
    import numba

    benchmark.group = f"lbp_top N={CLIPS} 50x128x128 uint8"
    benchmark.extra_info["clips"] = CLIPS
    benchmark.extra_info["threads"] = numba.get_num_threads()
    if backend == "numba":
        lbp_top_batch(clips[:1])  # compile / load the cached kernel

        def run():
            return lbp_top_batch(clips)
    else:

        def run():
            return np.stack([lbp_top_reference(clip) for clip in clips])

    out = benchmark.pedantic(run, rounds=3 if backend == "reference" else 10, warmup_rounds=1)
    assert out.shape == (CLIPS, 3, 25, 16)
