"""`fastmer spot` throughput (issue 20): frames/s and stage times on one synthetic long video.

Workload: a 30-s 640x480 30-fps synthetic long video (``fastmer synth --long``, seed 5: head
motion, expressions, blinks, a cut), Haar face boxes, OpenCV decoding, MDMD at both scales
(2.67 flow pairs a frame at 30 fps). Sides, same run:

* ``opencv-tvl1``: the flow of the research scripts (OpenCV's DualTVL1 at its defaults, pair by
  pair over two threads): the baseline;
* ``fastmer-tvl1``: fastmer's native batched TV-L1, same parameters;
* ``farneback``: the default of ``fastmer spot`` (MDMD needs a cheap dense flow).

Command: python -m pytest bench/bench_spot.py -o python_files='bench_*.py' --benchmark-only -s
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ("opencv", "fastmer", "farneback")


@pytest.fixture(scope="session")
def video():
    from fastmer.datasets.long import load_long
    from fastmer.datasets.synth_long import LongSynthConfig, generate_long

    root = ROOT / ".benchmarks" / "long-speed-s5-30s"
    if not (root / "synth_long.json").is_file():
        generate_long(root, LongSynthConfig(subjects=1, seconds=30, seed=5), overwrite=True)
    return load_long("synth-long", root)[0]


@pytest.mark.parametrize("flow", FLOWS)
def test_spot_frames_per_second(benchmark, video, flow):
    from fastmer.face.detect import HaarFaceDetector
    from fastmer.spot import SpotConfig, spot_video

    config = SpotConfig(flow=flow)
    detector = HaarFaceDetector()
    benchmark.group = "spot"
    result = benchmark.pedantic(lambda: spot_video(video, config, detector, decoder="opencv"), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(frames=result.n_frames, frames_per_s=round(result.n_frames / seconds, 1),
                                stage_seconds={k: round(v, 2) for k, v in result.seconds.items()},
                                intervals=len(result.intervals))
    print(f"\n{flow}: {result.n_frames / seconds:.1f} frames/s, stages {benchmark.extra_info['stage_seconds']}")
