"""Decoding only what the crop needs (issue 19, item 3): time per frame and effect on the crops.

Workload: bench_extract.py's cached synthetic corpus (640x480 JPEG, quality of the
generator), the first CLIPS clips, onset..offset. The face box is the generator's true face
(``ground_truth/clips.csv``) squared to 1.25x, as bench_flow.py's face pairs, its corner and
side made even so that the half-scale box covers exactly the same pixels.

Modes, each timed over the same frames on one thread (DALI's pipelines built with one):

* ``whole-opencv``: ``cv2.imdecode`` of the whole frame to grey, then the box cut (the
  research script; fastmer's OpenCV engine).
* ``whole-dali``: DALI's CPU decoder, whole frames, then cut (fastmer before this item).
* ``region-dali``: fastmer's ``FrameSource.read(region=box)``: DALI's ``image_slice``
  (libjpeg-turbo decodes the box's columns and stops after its last row).
* ``scaled-opencv``: libjpeg-turbo's DCT-domain 1/2 scaling (``cv2.IMREAD_REDUCED_GRAYSCALE_2``),
  then the half box cut: allowed only where the face is >= 2x the crop (here 277 px vs 128).

Untimed, per mode: the 128x128 crops (fastmer's area resize) against the whole-frame
crops (mean and max absolute difference, grey levels), and TV-L1 (opencv preset) onset->apex
flow against the true flow (mean EPE, px): what each option does to the stored tensors.

Command: python -m pytest bench/bench_decode.py -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_extract import cached_corpus, synth_config

CLIPS = 8
SIZE = 128
MODES = ("whole-opencv", "whole-dali", "region-dali", "scaled-opencv")


@pytest.fixture(scope="session")
def clips():
    """[(folder, frame numbers onset..offset, apex, box (x, y, side), true flow at 128^2)]."""
    from fastmer.motion.flo import read_flo

    root = cached_corpus(synth_config(64))
    out = []
    with open(root / "ground_truth" / "clips.csv") as handle:
        for row in list(csv.DictReader(handle))[:CLIPS]:
            folder = root / f"sub{row['subject']}" / row["filename"]
            side = int(1.25 * float(row["face_w"]))
            x = int(round(float(row["face_x"]) + float(row["face_w"]) / 2 - side / 2))
            y = int(round(float(row["face_y"]) + float(row["face_h"]) / 2 - side / 2))
            x, y, side = x - x % 2, y - y % 2, side - side % 2  # even: the half-scale box covers the same pixels
            truth = read_flo(root / "ground_truth" / f"sub{row['subject']}" / f"{row['filename']}.flo")
            truth = cv2.resize(truth[y : y + side, x : x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA) * SIZE / side
            numbers = list(range(int(row["onset"]), int(row["offset"]) + 1))
            for n in numbers:
                (folder / f"img{n}.jpg").read_bytes()  # page cache warm for every mode
            out.append((folder, numbers, int(row["apex"]), (x, y, side), truth))
    return out


def decode(mode: str, folder: Path, numbers: list[int], box: tuple[int, int, int]) -> np.ndarray:
    """The box's pixels of every frame ((T, side, side); ``scaled``: (T, side/2, side/2))."""
    from fastmer.decode import open_frames

    x, y, side = box
    if mode == "whole-opencv":
        return np.stack([cv2.imdecode(np.fromfile(folder / f"img{n}.jpg", np.uint8), cv2.IMREAD_GRAYSCALE)
                         [y : y + side, x : x + side] for n in numbers])
    if mode == "scaled-opencv":
        half = (x // 2, y // 2, side // 2)  # exact: x, y, side are even
        return np.stack([cv2.imdecode(np.fromfile(folder / f"img{n}.jpg", np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)
                         [half[1] : half[1] + half[2], half[0] : half[0] + half[2]] for n in numbers])
    source = open_frames(folder, engine="dali")
    if mode == "whole-dali":
        return source.read(numbers)[:, y : y + side, x : x + side]
    return source.read(numbers, region=(x, y, side, side))


@pytest.mark.parametrize("mode", MODES)
def test_decode(benchmark, clips, mode, monkeypatch):
    from fastmer.decode import dali
    from fastmer.motion.flow import compute_flow
    from fastmer.ops import TVL1Params
    from fastmer.ops.resample import resize

    if "dali" in mode and not dali.available()[0]:
        pytest.skip(f"needs DALI: {dali.available()[1]}")
    cv2.setNumThreads(1)
    monkeypatch.setattr(dali, "_threads", lambda: 1)  # one core per mode: ms per frame = CPU time
    monkeypatch.setattr(dali._local, "pipes", {}, raising=False)  # pipelines built with one thread
    frames = sum(len(numbers) for _, numbers, _, _, _ in clips)
    benchmark.group = f"decode {frames} JPEG frames 640x480, face box {clips[0][3][2]} px"
    decode(mode, *clips[0][:2], clips[0][3])  # warm-up (DALI builds its pipeline)
    regions = benchmark.pedantic(lambda: [decode(mode, folder, numbers, box) for folder, numbers, _, box, _ in clips],
                                 rounds=3, iterations=1)
    references = [decode("whole-opencv", folder, numbers, box) for folder, numbers, _, box, _ in clips]
    crop = lambda pixels: resize(torch.from_numpy(pixels).float(), SIZE, SIZE).round_().clamp_(0, 255).to(torch.uint8)  # noqa: E731
    differences, epes = [], []
    for got, reference, (_, numbers, apex, _, truth) in zip(regions, references, clips, strict=True):
        ours, whole = crop(got), crop(reference)
        differences.append((ours.int() - whole.int()).abs())
        pair = ours[[0]], ours[[apex - numbers[0]]]
        flow = compute_flow(*pair, backend="fastmer", params=TVL1Params())[0].permute(1, 2, 0).numpy()
        epes.append(float(np.linalg.norm(flow - truth, axis=-1).mean()))
    benchmark.extra_info.update(mode=mode, frames=frames, ms_per_frame=benchmark.stats.stats.median / frames * 1e3,
                                crop_diff_mean=float(torch.cat([d.flatten() for d in differences]).float().mean()),
                                crop_diff_max=int(max(int(d.max()) for d in differences)),
                                epe_vs_truth=float(np.mean(epes)))
    print(f"\n{mode}: {benchmark.extra_info}")
