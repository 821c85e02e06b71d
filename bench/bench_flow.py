"""Optical-flow throughput (pairs/s) with accuracy (EPE) beside every figure.

Pairs are onset->apex face crops of the synthetic corpus (``fastmer synth``), resized to
128x128 and 256x256, whose exact flow is known, so speed is never reported without the
accuracy it was bought at; plus the Middlebury RubberWhale pair from ../shared.

Each backend is timed in the same run (ratios are the stable figure). The summary at the
end of the session prints pairs/s and EPE per group (see conftest.py). Batch sizes above
FASTMER_BENCH_MAX_N (default 64 on a CPU-only machine, 1024 with CUDA) are skipped, and
the slow pure-PyTorch backend runs up to FASTMER_BENCH_MAX_N_TORCH (default 16 on CPU).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import sync

from fastmer.motion.flo import read_flo
from fastmer.motion.flow import compute_flow
from fastmer.ops import TVL1Params

CUDA = torch.cuda.is_available()
MAX_N = int(os.environ.get("FASTMER_BENCH_MAX_N", 1024 if CUDA else 64))
MAX_N_TORCH = int(os.environ.get("FASTMER_BENCH_MAX_N_TORCH", 1024 if CUDA else 16))
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# (backend, device); fastmer and torch also run on the GPU when there is one.
BACKENDS = [("fastmer", "cpu"), ("opencv", "cpu"), ("dis", "cpu"), ("farneback", "cpu"), ("torch", "cpu")]
if CUDA:
    BACKENDS += [("fastmer", "cuda"), ("torch", "cuda")]


@pytest.fixture(scope="session")
def face_pairs(tmp_path_factory) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{size: (I0 [M, s, s] uint8, I1, true flow [M, s, s, 2])} from 48 synthetic clips."""
    from fastmer.datasets.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("bench") / "corpus"
    generate(root, SynthConfig(subjects=8, clips_per_subject=6, seed=0, min_frames=20, max_frames=30))
    out: dict[int, list] = {128: [[], [], []], 256: [[], [], []]}
    with open(root / "ground_truth" / "clips.csv") as handle:
        for row in csv.DictReader(handle):
            folder = root / f"sub{row['subject']}" / row["filename"]
            onset = cv2.imread(str(folder / f"img{row['onset']}.jpg"), cv2.IMREAD_GRAYSCALE)
            apex = cv2.imread(str(folder / f"img{row['apex']}.jpg"), cv2.IMREAD_GRAYSCALE)
            truth = read_flo(root / "ground_truth" / f"sub{row['subject']}" / f"{row['filename']}.flo")
            cx = float(row["face_x"]) + float(row["face_w"]) / 2
            cy = float(row["face_y"]) + float(row["face_h"]) / 2
            side = int(1.25 * float(row["face_w"]))
            x, y = int(round(cx - side / 2)), int(round(cy - side / 2))
            for size, (i0, i1, gt) in out.items():
                crop = (slice(y, y + side), slice(x, x + side))
                i0.append(cv2.resize(onset[crop], (size, size), interpolation=cv2.INTER_AREA))
                i1.append(cv2.resize(apex[crop], (size, size), interpolation=cv2.INTER_AREA))
                gt.append(cv2.resize(truth[crop], (size, size), interpolation=cv2.INTER_AREA) * (size / side))
    return {size: tuple(np.stack(v) for v in values) for size, values in out.items()}


def tile(array: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([array] * (n // len(array) + 1))[:n]


def run(benchmark, backend: str, device: str, I0: np.ndarray, I1: np.ndarray, truth: np.ndarray | None,
        params: TVL1Params | None, valid: np.ndarray | None = None, workers: int | None = None) -> None:
    a, b = torch.from_numpy(I0), torch.from_numpy(I1)
    if backend in ("fastmer", "torch"):
        a, b = a.to(device), b.to(device)
    kwargs = {"params": params} if backend in ("fastmer", "torch", "opencv") else {}
    if workers is not None and backend not in ("fastmer", "torch"):
        kwargs["workers"] = workers

    def timed():
        flow = compute_flow(a, b, backend=backend, **kwargs)
        sync(device)
        return flow

    big = len(I0) * I0.shape[1] * I0.shape[2] >= 256 * 128 * 128 or backend == "torch"
    flow = benchmark.pedantic(timed, rounds=1 if big else 3, warmup_rounds=0 if big else 1)
    benchmark.extra_info.update(pairs=len(I0), backend=backend, device=device, threads=torch.get_num_threads())
    if truth is not None:
        est = flow.permute(0, 2, 3, 1).cpu().numpy()
        err = np.linalg.norm(est - truth, axis=-1)
        benchmark.extra_info["epe"] = float(err[valid].mean() if valid is not None else err.mean())


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("n", [1, 16, 64, 256, 1024])
@pytest.mark.parametrize("backend, device", BACKENDS, ids=[f"{b}-{d}" for b, d in BACKENDS])
def test_face_crops(benchmark, face_pairs, backend, device, size, n):
    limit = MAX_N_TORCH if backend == "torch" else MAX_N
    if n > limit:
        pytest.skip(f"N={n} > {limit} for {backend} (set FASTMER_BENCH_MAX_N / FASTMER_BENCH_MAX_N_TORCH)")
    benchmark.group = f"faces {size}x{size} N={n}"
    I0, I1, truth = (tile(x, n) for x in face_pairs[size])
    run(benchmark, backend, device, I0, I1, truth, TVL1Params() if backend in ("fastmer", "torch", "opencv") else None)


@pytest.fixture
def competitor(request):
    """Another busy process on this machine, for the contended rows: one Python spinning in
    a loop (what a decoder thread or a neighbour's job does to our cores)."""
    import subprocess
    import sys

    if request.param != "busy":
        yield None
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("competitor", ["quiet", "busy"], indirect=True)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [32, 256])
@pytest.mark.parametrize("backend", ["fastmer", "opencv"])
def test_threads_and_contention(benchmark, face_pairs, competitor, threads, n, backend):
    """128² face crops with 1 or 2 threads, quiet or beside one busy process (issue 19: fastmer
    must stay >= 3x OpenCV with the competitor, >= 4x quiet). OpenCV gets the same number of
    threads: its own pool and as many pair workers (compute_flow's ``workers``)."""
    benchmark.group = f"faces 128x128 N={n} threads={threads} {'busy' if competitor else 'quiet'}"
    I0, I1, truth = (tile(x, n) for x in face_pairs[128])
    torch_threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    try:
        run(benchmark, backend, "cpu", I0, I1, truth, TVL1Params(), workers=threads)
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv_threads)
    benchmark.extra_info.update(competitor="busy" if competitor else "quiet")


RUBBERWHALE = [("fastmer", "cpu", "opencv"), ("fastmer", "cpu", "ipol"), ("opencv", "cpu", "opencv"),
               ("dis", "cpu", None), ("farneback", "cpu", None)]
if CUDA:
    RUBBERWHALE += [("fastmer", "cuda", "opencv"), ("fastmer", "cuda", "ipol")]


@pytest.mark.parametrize("backend, device, preset", RUBBERWHALE, ids=[f"{b}-{d}-{p}" for b, d, p in RUBBERWHALE])
def test_rubberwhale(benchmark, backend, device, preset):
    folder = SHARED / "data" / "flow" / "middlebury"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (../shared ships beside the repo in CI only)")
    benchmark.group = "rubberwhale 584x388"
    I0 = cv2.imread(str(folder / "RubberWhale1.png"), cv2.IMREAD_GRAYSCALE)[None]
    I1 = cv2.imread(str(folder / "RubberWhale2.png"), cv2.IMREAD_GRAYSCALE)[None]
    truth = read_flo(folder / "RubberWhale.flo")[None]
    valid = (np.abs(truth) < 1e9).all(axis=-1)
    run(benchmark, backend, device, I0, I1, truth, TVL1Params.preset(preset) if preset else None, valid)


# Peak DRAM bandwidth of the cards this project is benchmarked on (GB/s).
PEAK_BANDWIDTH = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H200": 4800.0}


@pytest.mark.skipif(not CUDA, reason="the roofline is a GPU measurement")
@pytest.mark.parametrize("half_state", [False, True], ids=["fp32-state", "fp16-state"])
def test_gpu_roofline(benchmark, face_pairs, half_state):
    """Every iteration runs (epsilon ~ 0), so pixel-iterations are known exactly: the fused
    iteration kernel moves ~16 state values per pixel-iteration (reads u1, u2, p11..p22 and
    the four warp terms; writes u1, u2, p11..p22); neighbours come from cache."""
    from fastmer.ops.tvl1 import pyramid_sizes

    n, size = 256, 128
    params = TVL1Params(epsilon=1e-12, half_state=half_state)
    I0, I1, _ = (torch.from_numpy(tile(x, n)).cuda() for x in face_pairs[size])
    benchmark.group = "gpu roofline N=256 128x128"

    def timed():
        flow = compute_flow(I0, I1, backend="fastmer", params=params)
        torch.cuda.synchronize()
        return flow

    benchmark.pedantic(timed, rounds=3, warmup_rounds=1)
    pixels = sum(h * w for h, w in pyramid_sizes(size, size, params))
    pixel_iterations = n * pixels * params.warps * params.max_iterations
    bytes_per = 16 * (2 if half_state else 4)
    seconds = benchmark.stats.stats.median
    achieved = bytes_per * pixel_iterations / seconds / 1e9
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BANDWIDTH.items() if k in name), None)
    benchmark.extra_info.update(device_name=name, pixel_iterations=pixel_iterations, achieved_gb_s=achieved,
                                roofline_fraction=achieved / peak if peak else None, pairs=n)
