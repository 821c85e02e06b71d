"""Decoding and cropping a clip: each engine next to the others on the same files.

* images: 48 JPEG frames of 640x480 (a synthetic clip, CASME II-like), decoded to gray
  by DALI (CPU) and by OpenCV;
* video: the 72 frames of ../shared/data/video/single_face.mp4 (H.264, 640x360) by PyAV
  and by OpenCV (DALI's CPU decoder has no H.264);
* crop: one box, 48 frames resized to 128x128 by ``crop_clip`` (area averaging) vs
  ``cv2.resize(INTER_AREA)`` frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fastmer.decode import open_frames
from fastmer.decode.dali import available as dali_available
from fastmer.face import FaceBox, crop_clip

SHARED = Path(__file__).resolve().parents[2] / "shared"
N_FRAMES = 48


@pytest.fixture(scope="module")
def jpeg_clip(tmp_path_factory) -> Path:
    from fastmer.datasets.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("bench_decode") / "corpus"
    generate(root, SynthConfig(subjects=1, clips_per_subject=1, min_frames=N_FRAMES, max_frames=N_FRAMES))
    return next(p for p in (root / "sub01").iterdir() if p.is_dir())


@pytest.mark.parametrize("engine", ["dali-cpu", "opencv"])
def test_decode_jpeg_sequence(benchmark, jpeg_clip, engine):
    if engine.startswith("dali") and not dali_available()[0]:
        pytest.skip(dali_available()[1])
    benchmark.group = f"decode {N_FRAMES} JPEG 640x480 -> gray"
    source = open_frames(jpeg_clip, engine=engine)
    numbers = list(source.frame_numbers)
    source.read(numbers[:2])  # build DALI's pipeline outside the timing
    benchmark.extra_info["frames"] = len(numbers)
    frames = benchmark.pedantic(lambda: source.read(numbers), rounds=10, warmup_rounds=1)
    assert frames.shape == (len(numbers), 480, 640)


@pytest.mark.parametrize("engine", ["pyav", "opencv"])
def test_decode_h264_video(benchmark, engine):
    video = SHARED / "data" / "video" / "single_face.mp4"
    if not video.is_file():
        pytest.skip(f"{video} absent (../shared ships beside the repository in CI only)")
    benchmark.group = "decode single_face.mp4 (H.264 640x360, 72 frames) -> gray"
    source = open_frames(video, engine=engine)
    benchmark.extra_info["frames"] = len(source)
    frames = benchmark.pedantic(lambda: source.read(range(len(source))), rounds=5, warmup_rounds=1)
    assert frames.shape == (72, 360, 640)


@pytest.mark.parametrize("method", ["crop_clip", "cv2-per-frame"])
def test_crop_clip(benchmark, method):
    benchmark.group = f"crop+resize {N_FRAMES} frames 640x480 -> 128x128"
    frames = np.random.default_rng(0).integers(0, 256, (N_FRAMES, 480, 640), dtype=np.uint8)
    box = FaceBox(200, 100, 230, 230)
    benchmark.extra_info["frames"] = N_FRAMES
    if method == "crop_clip":
        benchmark.pedantic(lambda: crop_clip(frames, box, 128), rounds=20, warmup_rounds=2)
    else:
        benchmark.pedantic(lambda: np.stack([cv2.resize(f[100:330, 200:430], (128, 128), interpolation=cv2.INTER_AREA)
                                             for f in frames]), rounds=20, warmup_rounds=2)
