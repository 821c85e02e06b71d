"""Optical flow between frame pairs, batched over pairs.

Backends (one place; ``fastmer extract --flow-backend``):

* ``opencv``: OpenCV's Dual TV-L1 (``cv2.optflow.DualTVL1OpticalFlow``, Zach et al. 2007,
  library defaults: tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01).
  Pairs run in parallel on a thread pool, one OpenCV thread each (faster than OpenCV's
  own threading on small face crops).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import cv2
import numpy as np

from fastmer.config import FLOW_BACKENDS

_local = threading.local()


def _opencv_tvl1() -> cv2.optflow.DualTVL1OpticalFlow:
    solver = getattr(_local, "tvl1", None)
    if solver is None:
        if not hasattr(cv2, "optflow"):
            raise RuntimeError(
                f"cv2.optflow is missing from OpenCV {cv2.__version__}: install opencv-contrib-python-headless"
            )
        solver = _local.tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    return solver


def tvl1_opencv_pair(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """OpenCV Dual TV-L1 flow from ``first`` to ``second``: ``(H, W)`` uint8 -> ``(2, H, W)`` float32."""
    flow = _opencv_tvl1().calc(first, second, None)
    return np.ascontiguousarray(flow.transpose(2, 0, 1))


def compute_flow(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, backend: str = "opencv", workers: int | None = None
) -> np.ndarray:
    """Flow from the first to the second image of every pair.

    Args:
        pairs: ``N`` pairs of same-size ``(H, W)`` uint8 grayscale images.
        backend: one of :data:`FLOW_BACKENDS`.
        workers: pairs computed in parallel (default: CPU count).

    Returns:
        ``(N, 2, H, W)`` float32 flow ``(u, v)`` in pixels.
    """
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; available: {', '.join(FLOW_BACKENDS)}")
    if not pairs:
        return np.empty((0, 2, 0, 0), dtype=np.float32)
    shape = pairs[0][0].shape
    for i, (a, b) in enumerate(pairs):
        if a.shape != shape or b.shape != shape or a.ndim != 2:
            raise ValueError(f"pair {i}: images {a.shape} and {b.shape}, expected two {shape} grayscale images")
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(pairs) == 1:
        return np.stack([tvl1_opencv_pair(a, b) for a, b in pairs])
    with single_threaded_opencv(), ThreadPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(lambda p: tvl1_opencv_pair(*p), pairs)))


@contextmanager
def single_threaded_opencv() -> Iterator[None]:
    """OpenCV's own thread pool off while we parallelise across pairs."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)
