"""End-to-end extraction throughput (clips/s): ``fastmer.extract`` vs the typical research script.

Workload: a synthetic CASME II-like corpus (``fastmer synth``: FASTMER_BENCH_CLIPS clips,
default 64, of 60 JPEG frames of 640x480, 8 clips per subject), generated once and cached
under ``.benchmarks/corpus-<hash>`` (the hash covers the config and the generator's source).
Each clip is processed from its annotated onset to its annotated offset (~50 of its 60 frames).

Both sides compute the same thing: the Haar face box of the onset frame (OpenCV's bundled
``haarcascade_frontalface_default.xml``, scaleFactor 1.1, minNeighbors 5, squared to 1.25x),
every frame cropped to 128x128, TV-L1 flow (OpenCV's default parameters = fastmer's
``opencv`` preset) onset->apex and apex->offset at the annotated apex, and all nine
representations (flow features, COF, MM-COF, dynamic images, MESTI), stored as float32.

* baseline: the per-clip Python loop a research script would be — ``cv2.imread`` of every
  frame, ``cv2.CascadeClassifier``, ``cv2.resize(INTER_AREA)`` per frame,
  ``cv2.optflow.DualTVL1OpticalFlow`` per pair, the representations in NumPy per clip
  (``np.hypot``, ``np.gradient``, approximate rank pooling coefficients), one ``.npz`` per
  clip. Always on the CPU; its per-stage times go into ``extra_info["stages"]``.
* fastmer: ``fastmer.extract.extract`` into a feature store, on the CPU and, where CUDA is
  available, on the GPU (the ``device`` fixture).

Untimed, after the fastmer run, a correctness guard compares its store with the baseline's
output (every clip when the baseline benchmark ran in the session, else a fresh baseline run
of GUARD_CLIPS clips): the same face box and apex exactly, flows within EPE_TOLERANCE, dynamic
images within DI_TOLERANCE, so the comparison is like for like. The session summary
(conftest.py) prints clips/s of each side, the ratio fastmer / baseline and the stage times.

Environment: FASTMER_BENCH_CLIPS (default 64), FASTMER_BENCH_ROUNDS (default 3).
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
N_CLIPS = int(os.environ.get("FASTMER_BENCH_CLIPS", 64))
ROUNDS = int(os.environ.get("FASTMER_BENCH_ROUNDS", 3))
FRAMES = 60
SIZE = 128
FACE_SCALE = 1.25
CLIPS_PER_SUBJECT = 8
GUARD_CLIPS = 4
# Mean end-point error between the two sides' stored flows (px), per flow. Measured on the
# 64 clips (128 flows): median 0.021, max 0.028 px, with identical crops: fastmer's TV-L1 and
# OpenCV's differ by that much (bench_flow.py: both are ~0.03 px from the true flow). The
# motion is small (mean |flow| 0.02-0.06 px), so EPE alone would not see a wrong apex; the
# guard checks the face box and the apex exactly, and the phase dynamic images.
EPE_TOLERANCE = 0.05
# Mean absolute difference of the min-max normalised dynamic images (values in [0, 1]);
# measured: at most 3.3e-4 (area-resampling rounding of a few crop pixels).
DI_TOLERANCE = 0.01
DI_NAMES = ("dynamic_image", "dynamic_image_phases", "trdi", "midi", "mesti")


# --------------------------------------------------------------------------------------
# The corpus, generated once and cached across runs.
# --------------------------------------------------------------------------------------

def synth_config(n_clips: int):
    from fastmer.datasets.synth import SynthConfig

    subjects = math.ceil(n_clips / CLIPS_PER_SUBJECT)
    return SynthConfig(subjects=subjects, clips_per_subject=math.ceil(n_clips / subjects), seed=0,
                       width=640, height=480, min_frames=FRAMES, max_frames=FRAMES)


def cached_corpus(config) -> Path:
    """The corpus of ``config`` under ``.benchmarks/``, generated when absent or stale."""
    from fastmer.datasets import synth

    key = hashlib.sha256(repr(sorted(asdict(config).items())).encode() + inspect.getsource(synth).encode())
    root = ROOT / ".benchmarks" / f"corpus-{key.hexdigest()[:16]}"
    if not (root / synth.SPREADSHEET_NAME).is_file():
        synth.generate(root, config, overwrite=True)
    return root


@pytest.fixture(scope="session")
def corpus():
    """The first N_CLIPS clips, their files read once (page cache warm for both sides)."""
    from fastmer.datasets import load

    root = cached_corpus(synth_config(N_CLIPS))
    clips = load("casme2", root)
    clips = type(clips)(list(clips)[:N_CLIPS], clips.report) if len(clips) > N_CLIPS else clips
    assert len(clips) == N_CLIPS and all(len(c.frame_paths) == FRAMES for c in clips)
    for clip in clips:
        for path in clip.frame_paths:
            Path(path).read_bytes()
    return clips


def frames_in_phases(clips) -> int:
    return sum(c.offset - c.onset + 1 for c in clips)


# --------------------------------------------------------------------------------------
# The baseline: one clip at a time, OpenCV + NumPy.
# --------------------------------------------------------------------------------------

def rank_pool(frames: np.ndarray) -> np.ndarray:
    """Approximate rank pooling (Bilen et al. 2016): sum_t alpha_t I_t, T = 1 -> the frame."""
    t = len(frames)
    if t == 1:
        return frames[0].astype(np.float32)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, t + 1))])
    steps = np.arange(1, t + 1)
    alpha = 2 * (t - steps + 1) - (t + 1) * (harmonic[t] - harmonic[steps - 1])
    return np.tensordot(alpha.astype(np.float32), frames.astype(np.float32), axes=1)


def minmax(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min() + 1e-8)


def flow_channels(flow: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow -> (4, H, W): u, v, magnitude, optical strain."""
    u, v = flow[..., 0], flow[..., 1]
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    strain = np.sqrt(du_dx**2 + dv_dy**2 + 2 * (0.5 * (du_dy + dv_dx)) ** 2)
    return np.stack([u, v, np.hypot(u, v), strain])


def representations(crops: np.ndarray, apex: int, flow_oa: np.ndarray, flow_ao: np.ndarray) -> dict[str, np.ndarray]:
    """The nine representations of one clip (crops onset..offset, apex index within them)."""
    oa, ao = flow_channels(flow_oa), flow_channels(flow_ao)
    m1, m2 = oa[2], ao[2]
    combined = 0.6 * minmax(m1) + 0.4 * minmax(m2)
    direction = 0.6 * oa[:2] / (m1.max() + 1e-8) - 0.4 * ao[:2] / (m2.max() + 1e-8)
    cof = np.concatenate([direction, combined[None]])
    gate = combined >= 0.2
    mm_cof = np.concatenate([direction * gate, combined[None]])
    di = minmax(rank_pool(crops))
    intensity = np.abs(crops.astype(np.float32) - crops[0].astype(np.float32)).mean(axis=(1, 2))
    order = np.argsort(intensity, kind="stable")
    mesti = rank_pool(crops[: apex + 1]) + rank_pool(crops[apex:][::-1])
    out = {
        "flow_onset_apex": oa,
        "flow_phases": np.concatenate([oa, ao]),
        "cof": cof,
        "mm_cof": mm_cof,
        "dynamic_image": di[None],
        "dynamic_image_phases": np.stack([minmax(rank_pool(crops[: apex + 1])), minmax(rank_pool(crops[apex:]))]),
        "trdi": minmax(rank_pool(crops))[None],
        "midi": minmax(rank_pool(crops[order]))[None],
        "mesti": minmax(mesti)[None],
    }
    return {name: array.astype(np.float32) for name, array in out.items()}


class Baseline:
    """The research script's loop, with a timer per stage."""

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        self.stages: dict[str, float] = defaultdict(float)
        self.boxes: dict[str, tuple[int, int, int, int]] = {}

    def clip(self, clip, out_dir: Path) -> None:
        tic = time.perf_counter()
        first = clip.frame_numbers.index(clip.onset)
        paths = clip.frame_paths[first : first + clip.offset - clip.onset + 1]
        frames = [cv2.imread(path, cv2.IMREAD_GRAYSCALE) for path in paths]
        tic = self._lap("decode", tic)

        height, width = frames[0].shape
        side = int(0.15 * min(height, width))
        faces = self.cascade.detectMultiScale(frames[0], scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        side = min(round(FACE_SCALE * max(w, h)), width, height)
        x = round(min(max(x + w / 2 - side / 2, 0), width - side))
        y = round(min(max(y + h / 2 - side / 2, 0), height - side))
        self.boxes[clip.uid] = (x, y, side, side)
        tic = self._lap("haar", tic)

        crops = np.stack([cv2.resize(f[y : y + side, x : x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
                          for f in frames])
        tic = self._lap("crop", tic)

        apex = clip.apex - clip.onset
        flow_oa = self.tvl1.calc(crops[0], crops[apex], None)
        flow_ao = self.tvl1.calc(crops[apex], crops[-1], None)
        tic = self._lap("tvl1", tic)

        features = representations(crops, apex, flow_oa, flow_ao)
        tic = self._lap("representations", tic)

        np.savez(out_dir / f"{clip.uid.replace('/', '_')}.npz", **features)
        self._lap("save", tic)

    def _lap(self, stage: str, tic: float) -> float:
        now = time.perf_counter()
        self.stages[stage] += now - tic
        return now

    def run(self, clips, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for clip in clips:
            self.clip(clip, out_dir)


def baseline_features(clip, out_dir: Path) -> dict[str, np.ndarray]:
    with np.load(out_dir / f"{clip.uid.replace('/', '_')}.npz") as data:
        return dict(data)


# --------------------------------------------------------------------------------------
# The benchmarks.
# --------------------------------------------------------------------------------------

def fastmer_config(device: str):
    from fastmer.config import ExtractConfig

    return ExtractConfig(size=SIZE, face_scale=FACE_SCALE, face_detector="haar", flow_backend="fastmer",
                         flow_preset="opencv", apex="annotation", dtype="float32", device=device)


def describe(benchmark, clips, side: str, device: str) -> None:
    benchmark.group = f"extract {len(clips)} clips x {FRAMES} frames 640x480 -> {SIZE}x{SIZE}, 9 representations"
    benchmark.extra_info.update(clips=len(clips), frames=frames_in_phases(clips), side=side, device=device,
                                threads=torch.get_num_threads(), cv2_threads=cv2.getNumThreads())


@pytest.fixture(scope="session")
def baseline_run() -> dict:
    """What the baseline benchmark left for the guard: its output folder and face boxes."""
    return {}


def test_extract_baseline(benchmark, corpus, tmp_path, baseline_run):
    clips = corpus
    describe(benchmark, clips, "baseline", "cpu")
    Baseline().run(clips[:2], tmp_path / "warmup")
    runs: list[Baseline] = []

    def timed():
        runs.append(Baseline())
        runs[-1].run(clips, tmp_path / f"round{len(runs)}")

    benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    median = sorted(runs, key=lambda run: sum(run.stages.values()))[len(runs) // 2]
    benchmark.extra_info["stages"] = dict(median.stages)  # seconds, the round of median total
    baseline_run.update(out_dir=tmp_path / f"round{len(runs)}", boxes=runs[-1].boxes)


def test_extract_fastmer(benchmark, corpus, device, tmp_path, baseline_run):
    from fastmer.extract import extract

    clips = corpus
    describe(benchmark, clips, "fastmer", device)
    config = fastmer_config(device)
    lines: list[str] = []
    extract(clips[:2], tmp_path / "warmup", config, overwrite=True, log=lines.append)
    summaries = []

    def timed():
        summaries.append(extract(clips, tmp_path / "store", config, overwrite=True, log=lines.append))

    benchmark.pedantic(timed, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    assert all(s.n_ok == len(clips) and s.n_failed == 0 for s in summaries), summaries[-1].failures
    median = sorted(summaries, key=lambda s: s.seconds)[len(summaries) // 2]
    benchmark.extra_info["log"] = sorted({line for line in lines if not line.startswith("stages:")})
    if hasattr(median, "stages"):
        benchmark.extra_info.update(stages=dict(median.stages), wall=median.seconds)
    benchmark.extra_info.update(guard(clips, tmp_path / "store", tmp_path / "reference", baseline_run))


def test_extract_fastmer_on_one_core(benchmark, corpus, tmp_path, monkeypatch):
    """fastmer with one clip worker and one thread, one round: its stage times are then CPU
    seconds, nothing waits for a core, and their sum bounds what two cores can do (the
    summary prints that bound beside the baseline)."""
    from dataclasses import replace

    from fastmer.decode import dali
    from fastmer.extract import extract

    clips = corpus
    describe(benchmark, clips, "fastmer, one core", "cpu")
    monkeypatch.setattr(dali, "_threads", lambda: 1)  # DALI's pipelines too
    monkeypatch.setattr(dali._local, "pipes", {}, raising=False)
    saved = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    config = replace(fastmer_config("cpu"), workers=1)
    try:
        extract(clips[:2], tmp_path / "warmup", config, overwrite=True, log=lambda line: None)
        summaries = []
        benchmark.pedantic(lambda: summaries.append(extract(clips, tmp_path / "store", config, overwrite=True,
                                                            log=lambda line: None)), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])
    benchmark.extra_info.update(stages=dict(summaries[-1].stages), wall=summaries[-1].seconds, one_core=True,
                                threads=1, cv2_threads=1)


def guard(clips, store_dir: Path, scratch: Path, baseline_run: dict) -> dict[str, float]:
    """Untimed: the store's features against the baseline's (its benchmark's output, or a
    fresh baseline run of GUARD_CLIPS clips). The same face box and apex (so the same pairs
    and crops), flows within EPE_TOLERANCE, dynamic images within DI_TOLERANCE."""
    from fastmer.store import open as open_store

    if "out_dir" in baseline_run:
        out_dir, boxes = baseline_run["out_dir"], baseline_run["boxes"]
    else:
        clips = clips[:GUARD_CLIPS]
        baseline = Baseline()
        baseline.run(clips, scratch)
        out_dir, boxes = scratch, baseline.boxes
    store = open_store(store_dir)
    rows = {uid: i for i, uid in enumerate(store.column("uid"))}
    face_boxes, apexes = store.column("face_box"), store.column("apex")
    flows = store.numpy("flow_phases")
    dis = {name: store.numpy(name) for name in DI_NAMES}
    epe, di_error = [], []
    for clip in clips:
        row = rows[clip.uid]
        assert tuple(face_boxes[row]) == boxes[clip.uid], f"{clip.uid}: face box {face_boxes[row]} vs {boxes[clip.uid]}"
        assert apexes[row] == clip.apex, f"{clip.uid}: apex {apexes[row]}, annotated {clip.apex}"
        ours = baseline_features(clip, out_dir)
        for phase in (slice(0, 2), slice(4, 6)):
            epe.append(float(np.linalg.norm(ours["flow_phases"][phase] - flows[row][phase], axis=0).mean()))
        di_error += [float(np.abs(ours[name] - dis[name][row]).mean()) for name in DI_NAMES]
    assert max(epe) < EPE_TOLERANCE, f"fastmer's flows differ from the baseline's: mean EPE up to {max(epe):.4f} px"
    assert max(di_error) < DI_TOLERANCE, f"fastmer's dynamic images differ from the baseline's: {max(di_error):.4f}"
    return {"guard_clips": len(clips), "guard_epe_median": float(np.median(epe)), "guard_epe_max": max(epe),
            "guard_di_mean_abs_max": max(di_error)}
