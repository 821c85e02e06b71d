"""Optical flow between frame pairs, batched over pairs, with one switch for the backend.

Backends (:data:`fastmer.config.FLOW_BACKENDS`):

* ``fastmer``: fastmer's TV-L1 kernels (:func:`fastmer.ops.tvl1`), on the GPU when the
  images are there (or ``device="cuda"``), else the C++ kernel on all CPU cores.
* ``torch``: the pure-PyTorch TV-L1 reference (slow; the test oracle).
* ``opencv``: OpenCV's ``DualTVL1OpticalFlow`` with the same parameters (OpenCV-compatible
  ones only), for comparison.
* ``dis``: OpenCV's DIS (``PRESET_MEDIUM``) and ``farneback``: OpenCV's Farnebäck (pyramid
  0.5, 3 levels, window 15, 3 iterations, poly_n 5, sigma 1.2): fast approximations.

OpenCV backends run pairs on a thread pool, one OpenCV thread each (faster than OpenCV's
own threading on small face crops).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import cv2
import numpy as np
import torch

from fastmer.choices import FLOW_BACKENDS
from fastmer.ops.tvl1 import TVL1Params, tvl1

_local = threading.local()


@contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """OpenCV's own thread pool off while we parallelise across pairs."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _opencv_solver(backend: str, params: TVL1Params) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A per-thread OpenCV solver for ``backend``: (I0, I1) uint8 -> (H, W, 2) float32."""
    if backend == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    key = (backend, params)
    solvers = getattr(_local, "solvers", None)
    if solvers is None:
        solvers = _local.solvers = {}
    if key not in solvers:
        if backend == "dis":
            solvers[key] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        else:
            if not hasattr(cv2, "optflow"):
                raise RuntimeError(f"cv2.optflow is missing from OpenCV {cv2.__version__}: "
                                   "install opencv-contrib-python-headless")
            # (sic) "innnerIterations" is the keyword's spelling in OpenCV's Python binding.
            solvers[key] = cv2.optflow.DualTVL1OpticalFlow_create(
                tau=params.tau, lambda_=params.lambda_, theta=params.theta, nscales=params.nscales, warps=params.warps,
                epsilon=params.epsilon, innnerIterations=params.inner_iterations,
                outerIterations=params.outer_iterations, scaleStep=params.scale_step, gamma=params.gamma,
                medianFiltering=params.median_size)
    solver = solvers[key]
    return lambda a, b: solver.calc(a, b, None)


def _check_opencv_params(backend: str, params: TVL1Params | None) -> TVL1Params:
    params = params or TVL1Params()
    if backend == "opencv":
        fastmer_only = ("normalize", "presmooth_sigma", "pyramid", "cubic_a", "warp_border", "min_size")
        extras = {name: getattr(params, name) for name in fastmer_only
                  if getattr(params, name) != getattr(TVL1Params(), name)}
        if extras:
            raise ValueError(f"the opencv backend takes OpenCV's TV-L1 parameters only; these have no OpenCV "
                             f"equivalent: {extras} (use backend 'fastmer' for the ipol preset)")
    elif params != TVL1Params():
        raise ValueError(f"TV-L1 parameters do not apply to the {backend} backend")
    return params


def _as_uint8_batch(images: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.dtype != np.uint8:
        raise ValueError(f"{name}: OpenCV backends take uint8 images of shape [N, H, W], got {array.dtype} "
                         f"{list(array.shape)}")
    return np.ascontiguousarray(array)


def compute_flow(
    I0: np.ndarray | torch.Tensor,
    I1: np.ndarray | torch.Tensor,
    *,
    backend: str = "fastmer",
    params: TVL1Params | None = None,
    device: str | torch.device | None = None,
    workers: int | None = None,
) -> torch.Tensor:
    """Flow from ``I0[k]`` to ``I1[k]`` for every pair of a batch.

    Args:
        I0, I1: ``(N, H, W)`` (or ``(N, 1, H, W)``) grayscale images, uint8 or (TV-L1
            backends) float32 in [0, 1]; numpy arrays or tensors.
        backend: one of :data:`fastmer.config.FLOW_BACKENDS`.
        params: TV-L1 parameters (``fastmer``, ``torch`` and, OpenCV-compatible ones only,
            ``opencv``); default OpenCV's.
        device: for ``fastmer``/``torch``: where to compute (default: where the tensors are).
        workers: pairs in parallel for the OpenCV backends (default: CPU count).

    Returns:
        ``(N, 2, H, W)`` float32 flow on the CPU (``fastmer``/``torch``: on ``device``).
    """
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; available: {', '.join(FLOW_BACKENDS)}")
    if backend in ("fastmer", "torch"):
        a = I0 if isinstance(I0, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(I0))
        b = I1 if isinstance(I1, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(I1))
        if device is not None:
            a, b = a.to(device), b.to(device)
        return tvl1(a, b, params, backend="auto" if backend == "fastmer" else "reference")
    params = _check_opencv_params(backend, params)
    a, b = _as_uint8_batch(I0, "I0"), _as_uint8_batch(I1, "I1")
    if a.shape != b.shape:
        raise ValueError(f"I0 has shape {list(a.shape)} but I1 has {list(b.shape)}")
    if len(a) == 0:
        return torch.empty((0, 2, *a.shape[1:]), dtype=torch.float32)
    workers = min(workers or os.cpu_count() or 1, len(a))

    def one(k: int) -> np.ndarray:
        return _opencv_solver(backend, params)(a[k], b[k]).transpose(2, 0, 1)

    if workers == 1:  # one pair (or one worker): let OpenCV use its own threads
        return torch.from_numpy(np.ascontiguousarray(np.stack([one(k) for k in range(len(a))])))
    with single_threaded_opencv(), ThreadPoolExecutor(workers) as pool:
        return torch.from_numpy(np.ascontiguousarray(np.stack(list(pool.map(one, range(len(a)))))))
