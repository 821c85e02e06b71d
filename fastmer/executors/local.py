"""``fastmer extract`` (``--executor local``, the default) and raw-video scoring: the
pipeline's clip and feature stages (:mod:`fastmer.pipeline`) on this machine.

A thread pool of ``workers`` runs :func:`~fastmer.pipeline.process_clip` on the clips
(decoding, detection and the native ops release the GIL); the results come back in
corpus order through a bounded window (``4 x workers`` clips), and the calling thread
gathers them into batches for :class:`~fastmer.pipeline.FeatureStage` (one TV-L1 call
for all a batch's pairs, on all cores or the GPU). :func:`run` yields each clip with its
features, in corpus order; what becomes of them (store rows, predictions) is the caller's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

from fastmer.config import ExtractConfig
from fastmer.datasets.clip import Clip
from fastmer.face import FaceDetector
from fastmer.pipeline import ClipResult, FeatureStage, process_clip

T = TypeVar("T")
R = TypeVar("R")

#: A flow/representation batch is cut short when its clips' crops reach this size (long clips).
BATCH_CROP_BYTES = 256 << 20


@contextmanager
def clip_workers(workers: int) -> Iterator[ThreadPoolExecutor]:
    """The first stage's thread pool; torch ops on its threads run on one core each.

    Each thread that runs an ATen parallel op leads its own OpenMP team: with ``workers``
    threads cropping and drawing curves beside the main thread's TV-L1, there are more
    OpenMP threads than cores, libgomp stops spinning at barriers, and TV-L1 (thousands
    of barriers per pair) runs ~2.8x slower (bench/RESULTS.md). The workers already run
    ``workers`` clips in parallel, so one core each loses nothing.
    """
    saved = torch.get_num_threads()
    barrier = threading.Barrier(workers + 1)

    def one_core() -> None:
        torch.get_num_threads()  # ATen's lazy per-thread init first: it would undo the next line
        torch.set_num_threads(1)  # this thread's OpenMP team size (and the process default, restored below)

    with ThreadPoolExecutor(workers, initializer=one_core, thread_name_prefix="fastmer-clip") as pool:
        for _ in range(workers):  # start every thread now, so the default is restored after all of them
            pool.submit(barrier.wait)
        barrier.wait()
        torch.set_num_threads(saved)
        yield pool


def ordered_map(fn: Callable[[T], R], items: Iterable[T], pool: ThreadPoolExecutor, window: int) -> Iterator[R]:
    """``map`` on ``pool``, in input order, with at most ``window`` items in flight."""
    pending: deque[Future[R]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:
        for future in pending:  # a failed run does not wait for clips nobody will read
            future.cancel()


def run(
    todo: dict[int, Clip],
    detector: FaceDetector,
    config: ExtractConfig,
    features: FeatureStage,
    workers: int,
    decode_device: str,
    on_batch: Callable[[int, dict[str, float]], None],
) -> Iterator[tuple[int, ClipResult]]:
    """The clip and feature stages on this machine: ``(corpus index, result with features)`` in corpus order.

    ``features`` computes each batch (``config.batch_size`` views, or fewer long clips whose
    crops reach :data:`BATCH_CROP_BYTES`); ``on_batch`` receives what it returns (flow pairs,
    seconds per stage) before the batch's clips are yielded.
    """
    with clip_workers(workers) as pool:
        results = ordered_map(lambda c: process_clip(c, detector, config, decode_device), todo.values(), pool,
                              window=4 * workers)
        batch: list[tuple[int, ClipResult]] = []
        n_views, n_bytes = 0, 0
        for index, result in zip(todo, results, strict=True):
            batch.append((index, result))
            n_views += len(result.views)
            n_bytes += sum(crops.nbytes for _, crops in result.views)
            # --batch-size clips, or fewer long ones: the batch's crops stay within BATCH_CROP_BYTES
            if n_views >= config.batch_size or n_bytes >= BATCH_CROP_BYTES:
                on_batch(*features([r for _, r in batch]))
                yield from batch
                batch, n_views, n_bytes = [], 0, 0
        if batch:
            on_batch(*features([r for _, r in batch]))
            yield from batch
