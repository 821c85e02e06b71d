"""``fastmer extract``: clips -> face crops -> key frames -> motion representations -> feature store.

Each clip is decoded (:mod:`fastmer.decode`: DALI, PyAV or OpenCV), split into views
(``--views split``), cropped (one face box per view and clip, :mod:`fastmer.face`) and its
apex resolved (annotated or spotted, :mod:`fastmer.phases`) on a thread pool (decoding,
detection and the native ops release the GIL). Results come
back in corpus order through a bounded window, so memory stays flat however long the
corpus. The crops of many clips are gathered into batches: one TV-L1 call per batch for all
its onset->apex and apex->offset pairs (fastmer's kernels: all cores, or the GPU), then every
requested representation (``--representations``: flow features, COF, MM-COF, dynamic
images, MESTI; :mod:`fastmer.motion.representations`) batched with the native ops, and
rows are written in atomic shards. A clip that fails
becomes an error row and the run goes on. Running again into the same store with the same
parameters resumes it: clips already stored are skipped before decoding, failed ones are
retried (a run killed at any moment and resumed ends with the rows of an uninterrupted one).
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

from fastmer.config import FLOW_REPRESENTATIONS, ExtractConfig
from fastmer.datasets.clip import Clip
from fastmer.decode import open_clip_frames, split_views
from fastmer.errors import ClipError
from fastmer.face import FaceDetector, crop_clip, locate_face, make_detector
from fastmer.motion.flow import compute_flow
from fastmer.motion.representations import (
    REPRESENTATIONS,
    cof,
    dynamic_images,
    flow_features,
    mesti,
    modulate_cof,
    motion_intensity_dynamic_images,
    phase_dynamic_images,
    phase_flow_features,
    temporal_ranked_dynamic_images,
)
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
    n_rows: int = 0  # rows written: one per view of each clip that succeeded
    n_skipped: int = 0  # clips already in the (resumed) store, not processed again

    @property
    def clips_per_s(self) -> float:
        processed = self.n_clips - self.n_skipped
        return processed / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _ClipResult:
    row: dict[str, Any]  # the clip's identity (the error row on failure)
    views: list[tuple[dict[str, Any], np.ndarray]] = field(default_factory=list)  # (row, crops onset..offset)
    stage: str = ""
    error: str = ""
    decoder: tuple[str, str] = ("", "")  # engine and why it was chosen


def process_clip(clip: Clip, detector: FaceDetector, config: ExtractConfig, decode_device: str = "cpu") -> _ClipResult:
    """Decode, crop and resolve the key frames of one clip.

    Returns one row and the ``(T, size, size)`` uint8 crops (onset..offset) per view, or the error.
    """
    row: dict[str, Any] = {
        "uid": clip.uid, "dataset": clip.dataset, "subject": clip.subject, "clip_id": clip.clip_id,
        "view": clip.view, "source": clip.source,
    }
    result = _ClipResult(row)
    try:
        onset, apex, offset = clip.validate_annotation()
        with open_clip_frames(clip, engine=config.decoder, device=decode_device) as frames_source:
            result.decoder = (frames_source.engine, frames_source.reason)
            frames = frames_source.read(range(onset, offset + 1))
        if clip.view == "full":
            views = split_views(frames, config.views)
        else:  # a clip that is already one half of side-by-side frames
            views = {clip.view: split_views(frames, "split")[clip.view]}
        onset_file = (clip.frame_paths[clip.frame_numbers.index(onset)] if onset in clip.frame_numbers
                      else f"frame {onset} of {clip.source}")
        tracks, crops = {}, {}
        for name, view_frames in views.items():
            where = clip.uid if name == clip.view else clip.with_view(name).uid
            where += f" ({onset_file})"
            tracks[name] = locate_face(view_frames, detector, mode=config.face_box, scale=config.face_scale,
                                       align=config.align, where=where)
            crops[name] = crop_clip(view_frames, tracks[name].box, config.size, angle=tracks[name].angle)
        phases = resolve(onset, apex, offset, list(crops.values()), mode=config.apex,
                         estimator=config.apex_estimator, where=clip.uid)
    except ClipError as exc:
        message = str(exc) if clip.uid in str(exc) else f"{clip.uid}: {exc}"
        result.stage, result.error = exc.stage, message
        return result
    except Exception as exc:  # noqa: BLE001  (a corrupt file must not end the run)
        result.stage, result.error = "internal", f"{clip.uid}: {type(exc).__name__}: {exc}"
        return result
    for name, track in tracks.items():
        view_clip = clip if name == clip.view else clip.with_view(name)
        view_row = {
            **row, "uid": view_clip.uid, "view": name, "onset": phases.onset, "apex": phases.apex,
            "offset": phases.offset, "apex_source": phases.apex_source, "labels": list(clip.labels),
            "action_units": clip.action_units, "face_box": track.box.as_list(), "face_angle": track.angle,
            "decoder": result.decoder[0],
        }
        result.views.append((view_row, crops[name]))
    return result


def compute_representations(
    clips: Sequence[np.ndarray],
    apexes: Sequence[int],
    names: Sequence[str],
    flow: Callable[[np.ndarray, np.ndarray], torch.Tensor],
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Every requested representation of a batch of clips, each computed batched across the clips.

    Args:
        clips: ``(T_i, H, W)`` uint8 face crops, onset first and offset last.
        apexes: index of the apex within each clip (``1 <= apex <= T_i - 1``).
        names: representations to compute (:data:`fastmer.config.REPRESENTATION_NAMES`).
        flow: optical flow of ``(M, H, W)`` first frames to second frames -> ``(M, 2, H, W)``;
            called once for all the pairs the batch needs (onset->apex, and apex->offset when a
            phase representation is asked for).
        device: where the dynamic images are computed.

    Returns:
        ``{name: (N, C, H, W) float32}``, rows in the order of ``clips``.
    """
    n = len(clips)
    wanted = set(names)
    out: dict[str, torch.Tensor] = {}
    if wanted & FLOW_REPRESENTATIONS:
        first = [c[0] for c in clips]
        second = [c[a] for c, a in zip(clips, apexes, strict=True)]
        both_phases = bool(wanted & {"flow_phases", "cof", "mm_cof"})
        if both_phases:  # apex -> offset pairs in the same call
            first += [c[a] for c, a in zip(clips, apexes, strict=True)]
            second += [c[-1] for c in clips]
        flows = flow(np.stack(first), np.stack(second)).float()
        onset_apex, apex_offset = flows[:n], flows[n:] if both_phases else None
        if "flow_phases" in wanted:
            out["flow_phases"] = phase_flow_features(onset_apex, apex_offset)
        if "flow_onset_apex" in wanted:  # the first phase's channels, if already computed
            out["flow_onset_apex"] = (out["flow_phases"][:, :4] if "flow_phases" in out
                                      else flow_features(onset_apex))
        if wanted & {"cof", "mm_cof"}:
            combined = cof(onset_apex, apex_offset)
            out["cof"], out["mm_cof"] = combined, modulate_cof(combined)
    if wanted - FLOW_REPRESENTATIONS:
        frames = [torch.from_numpy(c).to(device=device, dtype=torch.float32) for c in clips]
        apex_index = list(apexes)
        if "dynamic_image" in wanted:
            out["dynamic_image"] = dynamic_images(frames)
        if "dynamic_image_phases" in wanted:
            out["dynamic_image_phases"] = phase_dynamic_images(frames, apex_index)
        if "trdi" in wanted:
            out["trdi"] = temporal_ranked_dynamic_images(frames)
        if "midi" in wanted:
            out["midi"] = motion_intensity_dynamic_images(frames)
        if "mesti" in wanted:
            out["mesti"] = mesti(frames, apex_index)
    return {name: out[name].contiguous() for name in names}


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
    """Extract the features of ``clips`` into the feature store at ``out``.

    An existing store written with the same parameters from the same clips is resumed:
    the clips it holds are skipped (not decoded again), those that failed are retried.

    Args:
        clips: clips to process (e.g. from :func:`fastmer.datasets.load`; its load report,
            if any, is logged).
        out: store directory: new, empty, or a store to resume.
        config: extraction parameters.
        overwrite: replace an existing store (recompute everything).
        progress: show a progress bar with clips/s on stderr.
        log: receives the run's choices (decoder, face detector and why) and one line per
            failed clip (default: stderr).

    Returns:
        An :class:`ExtractSummary`; failed clips are in the store's errors table.

    Raises:
        FileExistsError: ``out`` holds a store with other parameters or from other clips,
            or something else.
    """
    from tqdm import tqdm  # noqa: PLC0415

    config = config or ExtractConfig()
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    workers = config.workers or os.cpu_count() or 1
    device = resolve_device(config.device)
    params = TVL1Params.preset(config.flow_preset) if config.flow_backend in ("fastmer", "torch", "opencv") else None
    detector, why = make_detector(config.face_detector, config.face_model)
    log(f"face detector: {detector.name} ({why})")
    report = getattr(clips, "report", None)
    if report is not None:
        log(f"annotations: {report.summary()}")
    decode_device = "cuda" if device.type == "cuda" else "cpu"
    specs = {name: RepresentationSpec((len(REPRESENTATIONS[name]), config.size, config.size), config.dtype,
                                      REPRESENTATIONS[name])
             for name in config.representations}
    writer = StoreWriter(out, specs, config.feature_params(detector.name), overwrite=overwrite,
                         shard_size=config.shard_size,
                         runtime={"device": str(device), "workers": workers, "decoder": config.decoder,
                                  "face_model": str(getattr(detector, "model", "")) or None})
    try:
        todo = _clips_to_do(clips, writer)
    except BaseException:
        writer.abort()
        raise
    if writer.resumed:
        log(f"resuming {out}: {len(clips) - len(todo)} of {len(clips)} clips already stored"
            + (f", {writer.n_retried} failed clip(s) retried" if writer.n_retried else ""))
    start = time.perf_counter()
    n_ok, n_rows, failures = 0, 0, []
    decoders_seen: set[tuple[str, str]] = set()
    batch: list[tuple[dict[str, Any], np.ndarray]] = []

    def flow(first: np.ndarray, second: np.ndarray) -> torch.Tensor:
        return compute_flow(first, second, backend=config.flow_backend, params=params,
                            device=device if config.flow_backend in ("fastmer", "torch") else None, workers=workers)

    def write_batch() -> None:
        apexes = [row["apex"] - row["onset"] for row, _ in batch]
        features = compute_representations([crops for _, crops in batch], apexes, config.representations, flow,
                                           device)
        arrays = {name: tensor.cpu().numpy() for name, tensor in features.items()}
        for i, (row, _) in enumerate(batch):
            writer.add(row, {name: array[i] for name, array in arrays.items()})
        batch.clear()

    with writer, tqdm(total=len(clips), initial=len(clips) - len(todo), unit="clip", disable=not progress,
                      file=sys.stderr, desc="extract") as bar:
        results = ordered_map(lambda c: process_clip(c, detector, config, decode_device), todo.values(), workers,
                              window=4 * workers)
        for index, result in zip(todo, results, strict=True):
            result.row["corpus_index"] = index
            for view_row, _ in result.views:
                view_row["corpus_index"] = index
            if result.decoder[0] and result.decoder not in decoders_seen:
                decoders_seen.add(result.decoder)
                log(f"decoder: {result.decoder[0]} ({result.decoder[1]})")
            if not result.views:
                failures.append({"uid": result.row["uid"], "stage": result.stage, "error": result.error})
                writer.add_error({**result.row, "stage": result.stage, "error": result.error})
                log(f"error: {result.row['uid']} [{result.stage}] {result.error}")
            else:
                n_ok += 1
                n_rows += len(result.views)
                batch.extend(result.views)
                if len(batch) >= config.batch_size:
                    write_batch()
            bar.update()
        if batch:
            write_batch()
    seconds = time.perf_counter() - start
    return ExtractSummary(str(out), len(clips), n_ok, len(failures), seconds, failures, n_rows,
                          n_skipped=len(clips) - len(todo))


def _clips_to_do(clips: Sequence[Clip], writer: StoreWriter) -> dict[int, Clip]:
    """The clips (by corpus index) not in the store yet; refuses a store made from other clips."""
    for index, uids in writer.committed.items():
        clip = clips[index] if 0 <= index < len(clips) else None
        if clip is None or not all(uid == clip.uid or uid.startswith(clip.uid + "@") for uid in uids):
            found = f"the run's clip {index} is {clip.uid}" if clip else f"the run has {len(clips)} clips"
            raise FileExistsError(
                f"store {writer.path} was extracted from other clips (it holds {', '.join(uids)} as clip {index}; "
                f"{found}), so it cannot be resumed: use --overwrite to replace it, or another --out")
    return {index: clip for index, clip in enumerate(clips) if index not in writer.committed}
