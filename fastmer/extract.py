"""``fastmer extract``: clips -> face crops -> key frames -> flow features -> feature store.

Each clip is decoded, cropped (one face box per clip, found on the onset frame) and its
apex resolved on a thread pool (decoding and detection release the GIL). Results come
back in corpus order through a bounded window, so memory stays flat however long the
corpus. Onset/apex crop pairs of many clips are gathered into batches for one TV-L1 call
each (fastmer's kernels: all cores, or the GPU), magnitude and strain are computed on the
same batch with the native ops, and rows are written in atomic shards. A clip that fails
becomes an error row and the run goes on.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from fastmer.config import ExtractConfig
from fastmer.datasets.clip import Clip
from fastmer.decode import read_sequence
from fastmer.errors import ClipError
from fastmer.face import HaarFaceDetector, crop_sequence, square_box
from fastmer.motion.flow import compute_flow
from fastmer.motion.representations import FLOW_CHANNELS, flow_features
from fastmer.ops.tvl1 import TVL1Params
from fastmer.phases import resolve
from fastmer.store.writer import RepresentationSpec, StoreWriter

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ExtractSummary:
    """What an extraction did."""

    store: str
    n_clips: int
    n_ok: int
    n_failed: int
    seconds: float
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def clips_per_s(self) -> float:
        return self.n_clips / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _ClipResult:
    row: dict[str, Any]
    pair: tuple[np.ndarray, np.ndarray] | None  # onset and apex crops on success
    stage: str = ""
    error: str = ""


def process_clip(clip: Clip, detector: HaarFaceDetector, config: ExtractConfig) -> _ClipResult:
    """Decode, crop and resolve the phases of one clip; returns its onset and apex crops."""
    row: dict[str, Any] = {
        "uid": clip.uid, "dataset": clip.dataset, "subject": clip.subject, "clip_id": clip.clip_id,
        "view": clip.view, "source": clip.source,
    }
    try:
        onset, apex, offset = clip.validate_annotation()
        paths = clip.paths_between(onset, offset)
        frames = read_sequence(paths)
        _, height, width = frames.shape
        found = detector.largest(frames[0], where=f"the onset frame {paths[0]}")
        box = square_box(found, config.face_scale, width, height)
        crops = crop_sequence(frames, box, config.size)
        phases = resolve(onset, apex, offset, crops)
    except ClipError as exc:
        return _ClipResult(row, None, exc.stage, str(exc))
    except Exception as exc:  # noqa: BLE001  (a corrupt file must not end the run)
        return _ClipResult(row, None, "internal", f"{type(exc).__name__}: {exc}")
    row.update(
        onset=phases.onset, apex=phases.apex, offset=phases.offset, apex_source=phases.apex_source,
        labels=list(clip.labels), action_units=clip.action_units, face_box=box.as_list(),
    )
    return _ClipResult(row, (crops[0], crops[phases.apex - onset]))


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """``map`` on a thread pool, in input order, with at most ``window`` items in flight."""
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[R]] = deque()
        source = iter(items)
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


def extract(
    clips: Sequence[Clip],
    out: str | Path,
    config: ExtractConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> ExtractSummary:
    """Extract the features of ``clips`` into a new feature store at ``out``.

    Args:
        clips: clips to process (e.g. from :func:`fastmer.datasets.load`).
        out: store directory (must not exist or be empty unless ``overwrite``).
        config: extraction parameters.
        overwrite: replace an existing store.
        progress: show a progress bar with clips/s on stderr.
        log: receives one line per failed clip (default: stderr).

    Returns:
        An :class:`ExtractSummary`; failed clips are in the store's errors table.
    """
    from tqdm import tqdm  # noqa: PLC0415

    config = config or ExtractConfig()
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    workers = config.workers or os.cpu_count() or 1
    device = resolve_device(config.device)
    params = TVL1Params.preset(config.flow_preset) if config.flow_backend in ("fastmer", "torch", "opencv") else None
    detector = HaarFaceDetector()
    spec = RepresentationSpec((len(FLOW_CHANNELS), config.size, config.size), config.dtype, FLOW_CHANNELS)
    writer = StoreWriter(out, {"flow_onset_apex": spec}, config.feature_params(), overwrite=overwrite,
                         shard_size=config.shard_size, runtime={"device": str(device), "workers": workers})
    start = time.perf_counter()
    n_ok, failures = 0, []
    batch: list[_ClipResult] = []

    def write_batch() -> None:
        onsets = np.stack([r.pair[0] for r in batch])
        apexes = np.stack([r.pair[1] for r in batch])
        flows = compute_flow(onsets, apexes, backend=config.flow_backend, params=params,
                             device=device if config.flow_backend in ("fastmer", "torch") else None, workers=workers)
        features = flow_features(flows).cpu().numpy()
        for result, feature in zip(batch, features, strict=True):
            writer.add(result.row, {"flow_onset_apex": feature})
        batch.clear()

    with writer, tqdm(total=len(clips), unit="clip", disable=not progress, file=sys.stderr, desc="extract") as bar:
        results = ordered_map(lambda c: process_clip(c, detector, config), clips, workers, window=4 * workers)
        for result in results:
            if result.pair is None:
                failures.append({"uid": result.row["uid"], "stage": result.stage, "error": result.error})
                writer.add_error({**result.row, "stage": result.stage, "error": result.error})
                log(f"error: {result.row['uid']} [{result.stage}] {result.error}")
            else:
                batch.append(result)
                n_ok += 1
                if len(batch) >= config.batch_size:
                    write_batch()
            bar.update()
        if batch:
            write_batch()
    seconds = time.perf_counter() - start
    return ExtractSummary(str(out), len(clips), n_ok, len(failures), seconds, failures)
