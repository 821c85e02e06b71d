"""``fastmer extract``: clips -> face crops -> key frames -> motion representations -> feature store.

The pipeline has three overlapping stages, so the slowest one sets the pace:

1. *clips* (a thread pool of ``--workers``): each clip is decoded (:mod:`fastmer.decode`:
   DALI, PyAV or OpenCV), split into views (``--views split``), cropped (one face box per
   view and clip, :mod:`fastmer.face`), its motion-intensity curve computed and its apex
   resolved (annotated or spotted, :mod:`fastmer.phases`). Decoding, detection and the
   native ops release the GIL. Results come back in corpus order through a bounded window.
2. *features* (the calling thread, and the GPU when there is one): the crops of many clips
   are gathered into a batch: one TV-L1 call for all its onset->apex and apex->offset pairs
   (fastmer's kernels: all cores, or the GPU), then every requested representation
   (``--representations``: flow features, COF, MM-COF, dynamic images, MESTI;
   :mod:`fastmer.motion.representations`) batched with the native ops.
3. *write* (one thread): rows go into atomic Parquet shards (:class:`StoreWriter`) while the
   next batch is computed; at most two batches wait for it.

Memory stays bounded whatever the corpus size: ``4 x workers`` clips in the first stage, one
batch in the second, two in the third. A clip that fails becomes an error row and the run
goes on. Running again into the same store with the same parameters resumes it: clips
already stored are skipped before decoding, failed ones are retried (a run killed at any
moment and resumed ends with the rows of an uninterrupted one). The stages are
:mod:`fastmer.pipeline`'s; ``executor="local"`` runs the first two on this machine's
threads (:mod:`fastmer.executors.local`), ``executor="ray"`` on Ray Data
(:mod:`fastmer.executors.ray`); the store is the same.

A resumed store follows the corpus (:func:`~fastmer.store.resume.plan_resume`): every row
records its clip's fingerprint (annotation fields, frame list, source file names, sizes and
mtimes; no frame is read), and a stored clip whose fingerprint changed (an edited coding
sheet, a rewritten frame) is extracted again and its rows replaced
(:meth:`StoreWriter.supersede`). Clips in the store that the corpus no longer lists are
kept and reported.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastmer.config import EXECUTORS, ExtractConfig
from fastmer.datasets.clip import Clip
from fastmer.executors import local
from fastmer.face import make_detector
from fastmer.pipeline import STAGES, ClipResult, FeatureStage, flow_intensity, representation_specs, resolve_device
from fastmer.store.resume import ResumePlan, plan_resume
from fastmer.store.writer import StoreWriter

#: What ``from fastmer.extract import ...`` offers; the stages themselves are :mod:`fastmer.pipeline`'s
#: (:data:`STAGES` and :func:`flow_intensity` re-exported), resuming is :mod:`fastmer.store.resume`'s.
__all__ = ["STAGES", "ExtractSummary", "ResumePlan", "StageTimes", "extract", "flow_intensity", "plan_resume"]



class StageTimes:
    """Busy seconds per stage, summed over the threads that ran it (thread-safe)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    def merge(self, seconds: dict[str, float]) -> None:
        with self._lock:
            for stage, value in seconds.items():
                self.seconds[stage] += value


@dataclass
class ExtractSummary:
    """What an extraction did.

    ``stages`` holds busy seconds per stage (:data:`STAGES`), summed over the threads (or
    Ray workers) that ran it, so a stage on ``workers`` threads can exceed the wall time
    ``seconds``; ``stage_report()`` puts them side by side.
    """

    store: str
    n_clips: int
    n_ok: int
    n_failed: int
    seconds: float
    failures: list[dict[str, str]] = field(default_factory=list)
    n_rows: int = 0  # rows written: one per view of each clip that succeeded
    n_skipped: int = 0  # clips already in the (resumed) store, not processed again
    n_pairs: int = 0  # optical-flow pairs computed
    stages: dict[str, float] = field(default_factory=dict)
    executor: str = "local"
    #: stored clips extracted again, by why: "annotation changed", "source files changed",
    #: "annotation and source files changed", "re-extraction interrupted"
    #: (see :func:`~fastmer.store.resume.plan_resume`).
    redone: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)  # clips in the store the corpus no longer lists (kept)
    n_unverified: int = 0  # stored clips without a fingerprint (older stores): skipped unchecked

    @property
    def n_redone(self) -> int:
        """Stored clips extracted again because they changed (counted in ``n_ok``/``n_failed``)."""
        return sum(self.redone.values())

    @property
    def clips_per_s(self) -> float:
        processed = self.n_clips - self.n_skipped
        return processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def pairs_per_s(self) -> float:
        return self.n_pairs / self.seconds if self.seconds > 0 else 0.0

    def stage_report(self) -> str:
        """One line: wall time, then each stage's busy seconds and share of the wall time."""
        parts = [f"{stage} {value:.2f} s ({value / self.seconds:.0%})" if self.seconds > 0 else f"{stage} {value:.2f} s"
                 for stage, value in self.stages.items()]
        return f"wall {self.seconds:.2f} s; busy: " + ", ".join(parts)

def extract(
    clips: Sequence[Clip],
    out: str | Path,
    config: ExtractConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    executor: str = "local",
    ray_options: dict[str, Any] | None = None,
) -> ExtractSummary:
    """Extract the features of ``clips`` into the feature store at ``out``.

    An existing store written with the same parameters from the same clips is resumed:
    the clips it holds are skipped (not decoded again), those that failed are retried, and
    those whose annotation or source files changed since are extracted again and their
    rows replaced; clips of the store the corpus no longer lists are kept and reported
    (:func:`~fastmer.store.resume.plan_resume`).

    Args:
        clips: clips to process (e.g. from :func:`fastmer.datasets.load`; its load report,
            if any, is logged).
        out: store directory: new, empty, or a store to resume.
        config: extraction parameters.
        overwrite: replace an existing store (recompute everything).
        progress: show a progress bar with clips/s, pairs/s and the ETA on stderr.
        log: receives the run's choices (decoder, face detector and why), one line per
            failed clip and the stage times (default: stderr).
        executor: ``"local"`` (threads on this machine) or ``"ray"`` (Ray Data: this machine
            or a cluster, see :mod:`fastmer.executors.ray`); the store is the same.
        ray_options: for ``executor="ray"``: :func:`fastmer.executors.ray.run`'s options
            (``address``, ``decode_actors``, ``feature_actors``, ``gpus_per_actor``).

    Returns:
        An :class:`ExtractSummary`; failed clips are in the store's errors table.

    Raises:
        FileExistsError: ``out`` holds a store with other parameters or from other clips
            (or clips in another order, see :func:`~fastmer.store.resume.plan_resume`), or something else.
    """
    from tqdm import tqdm  # noqa: PLC0415

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    config = config or ExtractConfig()
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    workers = config.workers or os.cpu_count() or 1
    device = resolve_device(config.device)
    detector, why = make_detector(config.face_detector, config.face_model)
    log(f"face detector: {detector.name} ({why})")
    report = getattr(clips, "report", None)
    if report is not None:
        log(f"annotations: {report.describe()}")
    decode_device = "cuda" if device.type == "cuda" else "cpu"
    specs = representation_specs(config)
    writer = StoreWriter(out, specs, config.feature_params(detector.name), overwrite=overwrite,
                         shard_size=config.shard_size,
                         runtime={"device": str(device), "workers": workers, "decoder": config.decoder,
                                  "decode_region": config.decode_region, "executor": executor,
                                  "face_model": str(getattr(detector, "model", "")) or None})
    try:
        plan = plan_resume(clips, writer)
    except BaseException:
        writer.abort()
        raise
    todo = plan.todo
    if writer.resumed:
        for line in plan.describe(str(out), len(clips), writer.n_retried):
            log(line)
    start = time.perf_counter()
    times = StageTimes()
    n_ok, n_rows, n_pairs, failures = 0, 0, 0, []
    decoders_seen: set[tuple[str, str]] = set()

    def on_batch(pairs: int, seconds: dict[str, float]) -> None:
        nonlocal n_pairs
        n_pairs += pairs
        times.merge(seconds)

    def write(index: int, result: ClipResult) -> None:
        begin = time.perf_counter()
        if result.views:
            for (row, _), tensors in zip(result.views, result.features, strict=True):
                writer.add(row, tensors)
        else:
            writer.add_error({**result.row, "stage": result.stage, "error": result.error})
        times.add("write", time.perf_counter() - begin)

    def flush() -> None:
        begin = time.perf_counter()
        writer.flush()
        times.add("write", time.perf_counter() - begin)

    if executor == "ray":
        from fastmer.executors.ray import run as run_ray  # noqa: PLC0415  (ray: only when asked for)

        results = run_ray(todo, config, workers, on_batch, **(ray_options or {}))
    else:
        results = local.run(todo, detector, config, FeatureStage(config, device, workers), workers, decode_device,
                            on_batch)
    with writer, _WriteQueue(limit=2 * config.batch_size) as queue, tqdm(
            total=len(clips), initial=len(clips) - len(todo), unit="clip", disable=not progress, file=sys.stderr,
            desc="extract", smoothing=0.1) as bar:
        for index, result in results:
            result.row["corpus_index"] = index
            result.row["fingerprint"] = plan.fingerprints[index]
            for view_row, _ in result.views:
                view_row["corpus_index"] = index
                view_row["fingerprint"] = plan.fingerprints[index]
            times.merge(result.seconds)
            if result.decoder[0] and result.decoder not in decoders_seen:
                decoders_seen.add(result.decoder)
                log(f"decoder: {result.decoder[0]} ({result.decoder[1]})")
            if not result.views:
                failures.append({"uid": result.row["uid"], "stage": result.stage, "error": result.error})
                log(f"error: {result.row['uid']} [{result.stage}] {result.error}")
            else:
                n_ok += 1
                n_rows += len(result.views)
            queue.put(write, index, result)
            bar.update()
            elapsed = time.perf_counter() - start
            if n_pairs and elapsed > 0:
                bar.set_postfix_str(f"{n_pairs / elapsed:.1f} pairs/s", refresh=False)
        queue.put(flush)  # the last shard's write counts as writing too
    seconds = time.perf_counter() - start
    summary = ExtractSummary(str(out), len(clips), n_ok, len(failures), seconds, failures, n_rows,
                             n_skipped=len(clips) - len(todo), n_pairs=n_pairs, stages=dict(times.seconds),
                             executor=executor, redone=dict(plan.redone), removed=list(plan.removed),
                             n_unverified=plan.n_unverified)
    if todo:
        log(f"stages: {summary.stage_report()}")
    return summary

class _WriteQueue:
    """Runs write jobs (one per clip) in order on one thread, at most ``limit`` waiting;
    a failed write surfaces in the caller at its next ``put`` (or on exit)."""

    def __init__(self, limit: int) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fastmer-write")
        self._pending: deque[Future[None]] = deque()
        self._limit = limit
        self._failed = False

    def put(self, fn: Callable[..., None], *args: Any) -> None:
        self._pending.append(self._pool.submit(self._run, fn, *args))
        while self._pending and (self._pending[0].done() or len(self._pending) > self._limit):
            self._pending.popleft().result()  # re-raises a failed write here

    def _run(self, fn: Callable[..., None], *args: Any) -> None:
        if self._failed:  # nothing after a failed write: the store keeps a prefix of the corpus
            return
        try:
            fn(*args)
        except BaseException:
            self._failed = True
            raise

    def __enter__(self) -> _WriteQueue:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft().result()
            else:  # the run is failing: drop what is queued, let the running job finish
                for future in self._pending:
                    future.cancel()
        finally:
            self._pool.shutdown(wait=True)
