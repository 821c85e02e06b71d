"""Apex-spotting accuracy of every estimator on a synthetic corpus, whose true apex is known.

    python bench/apex_accuracy.py CORPUS [--face-box onset|union]

CORPUS comes from ``fastmer synth``. Clips are decoded, face-cropped (Haar, one box per
clip, 128 px) as ``fastmer extract`` does, and each estimator's apex is compared with the
annotated (true) one. Prints, per estimator, the share of clips within 0/1/2 frames, the
mean error, the share within 2 frames by peak displacement, and the time per clip.
"""

from __future__ import annotations

import argparse
import csv
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from fastmer.config import APEX_ESTIMATORS
from fastmer.datasets import load
from fastmer.decode import open_clip_frames
from fastmer.face import HaarFaceDetector, crop_clip, locate_face
from fastmer.phases.spotting import spot_apex

PEAK_BINS = ((0.0, 0.5), (0.5, 0.8), (0.8, 1.2), (1.2, 99.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--face-box", default="onset", choices=("onset", "union"))
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips = load("casme2", args.corpus)
    truth_rows = {f"casme2/sub{r['subject']}/{r['filename']}": r
                  for r in csv.DictReader((args.corpus / "ground_truth" / "clips.csv").open())}
    detector = HaarFaceDetector()

    def prepare(clip):
        with open_clip_frames(clip, engine="opencv") as source:
            frames = source.read(range(clip.onset, clip.offset + 1))
        track = locate_face(frames, detector, mode=args.face_box)
        return clip, crop_clip(frames, track.box, args.size)

    with ThreadPoolExecutor() as pool:
        data = list(pool.map(prepare, clips))
    truth = np.array([clip.apex - clip.onset for clip, _ in data])
    peak = np.array([float(truth_rows[clip.uid]["peak_px"]) for clip, _ in data])
    print(f"{len(data)} clips of {args.corpus}; peak displacement {peak.min():.2f}-{peak.max():.2f} px")
    header = "estimator  exact  <=1   <=2   mean|err|  " + "  ".join(f"<=2@[{lo},{hi})" for lo, hi in PEAK_BINS)
    print(header + "  ms/clip")
    for estimator in APEX_ESTIMATORS:
        start = time.perf_counter()
        found = np.array([spot_apex([crops], estimator)[0] for _, crops in data])
        ms = (time.perf_counter() - start) / len(data) * 1e3
        err = np.abs(found - truth)
        by_peak = "  ".join(f"{np.mean(err[(peak >= lo) & (peak < hi)] <= 2) * 100:11.0f}%" for lo, hi in PEAK_BINS)
        print(f"{estimator:9s} {np.mean(err == 0) * 100:5.1f}% {np.mean(err <= 1) * 100:5.1f}% "
              f"{np.mean(err <= 2) * 100:5.1f}% {err.mean():8.2f}   {by_peak}  {ms:7.1f}")


if __name__ == "__main__":
    main()
