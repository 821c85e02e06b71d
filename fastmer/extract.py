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
moment and resumed ends with the rows of an uninterrupted one). ``executor="ray"`` runs the
first two stages on Ray Data instead (:mod:`fastmer.executors.ray`); the store is the same.

A resumed store follows the corpus (:func:`plan_resume`): every row records its clip's
fingerprint (annotation fields, frame list, source file names, sizes and mtimes; no frame
is read), and a stored clip whose fingerprint changed (an edited coding sheet, a rewritten
frame) is extracted again and its rows replaced (:meth:`StoreWriter.supersede`). Clips in
the store that the corpus no longer lists are kept and reported.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from fastmer import __version__
from fastmer.config import EXECUTORS, FLOW_REPRESENTATIONS, ExtractConfig
from fastmer.datasets.clip import VIEWS, Clip
from fastmer.decode import open_clip_frames, rgb_to_gray, split_views
from fastmer.errors import ClipError
from fastmer.face import FaceDetector, crop_clip, locate_face, make_detector
from fastmer.face.track import sample_indices
from fastmer.motion.flow import compute_flow
from fastmer.motion.options import resolve_options
from fastmer.motion.representations import (
    LBPTOP_PARAMS,
    cof,
    dynamic_images,
    flow_features,
    frame_crops,
    lbptop_features,
    lbptop_min_frames,
    mesti,
    modulate_cof,
    motion_intensity_dynamic_images,
    phase_dynamic_images,
    phase_flow_features,
    representation_channels,
    representation_shape,
    temporal_ranked_dynamic_images,
)
from fastmer.ops.tvl1 import TVL1Params
from fastmer.phases import motion_curve, resolve
from fastmer.phases.cuts import ChangeMeter
from fastmer.store import schema
from fastmer.store.reader import FeatureStore
from fastmer.store.writer import RepresentationSpec, StoreWriter, clips_table

T = TypeVar("T")
R = TypeVar("R")


#: Pipeline stages, in data order: the first four run per clip on the workers, ``flow`` and
#: ``representations`` per batch, ``write`` on the writer thread.
STAGES = ("decode", "face", "crop", "apex", "flow", "representations", "write")
#: Full-size frames decoded at a time while a clip streams through decode -> crop.
CHUNK_BYTES = 32 << 20
#: A flow/representation batch is cut short when its clips' crops reach this size (long clips).
BATCH_CROP_BYTES = 256 << 20
#: Frames whose faces make the box in ``--face-box union`` mode.
FACE_SAMPLES = 8


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
    #: "annotation and source files changed", "re-extraction interrupted" (see :func:`plan_resume`).
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


@dataclass
class _ClipResult:
    row: dict[str, Any]  # the clip's identity (the error row on failure)
    views: list[tuple[dict[str, Any], np.ndarray]] = field(default_factory=list)  # (row, crops onset..offset)
    stage: str = ""
    error: str = ""
    decoder: tuple[str, str] = ("", "")  # engine and why it was chosen
    seconds: dict[str, float] = field(default_factory=dict)  # busy time per stage
    features: list[dict[str, np.ndarray]] = field(default_factory=list)  # per view, once computed
    color_crops: list[np.ndarray] = field(default_factory=list)  # per view, (T, 3, size, size), with --color


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
        clock = _Clock(result.seconds)
        onset, apex, offset = clip.validate_annotation()
        if "lbptop" in config.representations and offset - onset + 1 < lbptop_min_frames():
            raise ClipError("annotation", f"{clip.uid}: {offset - onset + 1} frames onset..offset; LBP-TOP "
                                          f"(lbptop, R_T = {LBPTOP_PARAMS['radii'][2]}) needs at least {lbptop_min_frames()}")
        numbers = range(onset, offset + 1)
        if len(numbers) > config.max_frames:
            raise ClipError("annotation", f"{clip.uid}: {len(numbers)} frames onset..offset, more than max_frames "
                                          f"{config.max_frames} (--max-frames): far longer than a micro-expression; "
                                          "give the clip's onset and offset, or raise the limit (memory grows with it)")

        def views_of(frames: np.ndarray) -> dict[str, np.ndarray]:
            if clip.view == "full":
                return split_views(frames, config.views)
            return {clip.view: split_views(frames, "split")[clip.view]}  # one half of side-by-side frames

        onset_file = (clip.frame_paths[clip.frame_numbers.index(onset)] if onset in clip.frame_numbers
                      else f"frame {onset} of {clip.source}")
        with open_clip_frames(clip, engine=config.decoder, device=decode_device) as frames_source:
            result.decoder = (frames_source.engine, frames_source.reason)
            # The face first, from the frames the box needs (the onset, or the union's samples)...
            probe_at = [0] if config.face_box == "onset" else sample_indices(len(numbers), FACE_SAMPLES)
            probe = frames_source.read([numbers[i] for i in probe_at], color=config.color)
            if config.color:  # faces, flows, apex and key frames: the grey (luma) frames in either mode
                probe = rgb_to_gray(probe)
            clock.lap("decode")
            tracks = {}
            for name, view_frames in views_of(probe).items():
                where = (clip.uid if name == clip.view else clip.with_view(name).uid) + f" ({onset_file})"
                tracks[name] = locate_face(view_frames, detector, mode=config.face_box, scale=config.face_scale,
                                           samples=FACE_SAMPLES, align=config.align, where=where)
            clock.lap("face")
            # ... then the clip streamed in chunks, cropped as it comes: only the crops are
            # kept, so memory grows with the clip by size^2 bytes a frame, not by its frames'.
            height, width = probe.shape[1:3]
            step = max(8, min(256, CHUNK_BYTES // max(1, height * width * (3 if config.color else 1))))
            crops = {name: np.empty((len(numbers), config.size, config.size), np.uint8) for name in tracks}
            color_crops = {name: np.empty((len(numbers), 3, config.size, config.size), np.uint8)
                           for name in (tracks if config.color else ())}
            changes = ChangeMeter()
            at = 0
            for chunk in frames_source.chunks(numbers, step, color=config.color):
                grey = rgb_to_gray(chunk) if config.color else chunk
                changes.add(grey)
                clock.lap("decode")
                for name, view_frames in views_of(grey).items():
                    crops[name][at : at + len(chunk)] = crop_clip(view_frames, tracks[name].box, config.size,
                                                                  angle=tracks[name].angle)
                for name, view_frames in views_of(chunk).items() if config.color else ():
                    color_crops[name][at : at + len(chunk)] = crop_color_clip(view_frames, tracks[name].box,
                                                                              config.size, angle=tracks[name].angle)
                at += len(chunk)
                clock.lap("crop")
        jump = changes.jump()  # before the apex could be spotted on it
        if jump is not None:
            raise ClipError("phases", f"{clip.uid}: the frames jump between frame {onset + jump.index} and "
                                      f"{onset + jump.index + 1} (mean change {jump.change:.0f} grey levels, above the "
                                      f"clip's limit of {jump.threshold:.0f}): a scene cut, missing frames or a flash, "
                                      "not one continuous recording of a face")
        # Every view's curve is stored; a spotted apex is found on their sum.
        curves = {name: motion_curve(c, config.apex_estimator).double().cpu().numpy() for name, c in crops.items()}
        phases = resolve(onset, apex, offset, list(crops.values()), mode=config.apex,
                         estimator=config.apex_estimator, where=clip.uid, curves=list(curves.values()))
        clock.lap("apex")
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
            "decoder": result.decoder[0], "motion_curve": curves[name].astype(np.float32).tolist(),
        }
        result.views.append((view_row, crops[name]))
        if config.color:
            result.color_crops.append(color_crops[name])
    return result


def crop_color_clip(frames: np.ndarray, box: Any, size: int, *, angle: float = 0.0) -> np.ndarray:
    """:func:`~fastmer.face.crop_clip` of ``(T, H, W, 3)`` RGB frames, each channel as the grey
    frames are cropped: ``(T, 3, size, size)`` uint8."""
    t, height, width, _ = frames.shape
    planes = np.ascontiguousarray(np.moveaxis(frames, 3, 1)).reshape(t * 3, height, width)
    return crop_clip(planes, box, size, angle=angle).reshape(t, 3, size, size)


class _Clock:
    """Adds the time since its last lap to ``seconds[stage]``."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


def keyframes(crops: np.ndarray, apex: int) -> np.ndarray:
    """The ``(3, H, W)`` crops at onset, apex (an index into ``crops``) and offset."""
    return np.stack([crops[0], crops[apex], crops[-1]])


def flow_intensity(clips: Sequence[np.ndarray], flow: Callable[[np.ndarray, np.ndarray], torch.Tensor]
                   ) -> list[torch.Tensor]:
    """MI-DI's flow intensity: per clip, the mean TV-L1 flow magnitude from the onset to each
    frame, ``(T_i,)`` float32 (0 at the onset); one ``flow`` call for every pair of the batch."""
    firsts = [np.broadcast_to(c[0], c[1:].shape) for c in clips]
    flows = flow(np.concatenate(firsts), np.concatenate([c[1:] for c in clips])).float()
    magnitude = flows.square().sum(dim=1).sqrt().mean(dim=(1, 2)).cpu()
    out, at = [], 0
    for c in clips:
        out.append(torch.cat([torch.zeros(1), magnitude[at : at + len(c) - 1]]))
        at += len(c) - 1
    return out


def compute_representations(
    clips: Sequence[np.ndarray],
    apexes: Sequence[int],
    names: Sequence[str],
    flow: Callable[[np.ndarray, np.ndarray], torch.Tensor],
    device: torch.device | str = "cpu",
    options: dict[str, dict[str, Any]] | None = None,
    color_clips: Sequence[np.ndarray] | None = None,
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
        options: the representations' knobs (:func:`fastmer.motion.options.resolve_options`;
            default: every knob at its default).
        color_clips: ``(T_i, 3, H, W)`` uint8 RGB crops of the same clips: the dynamic images
            and MESTI are computed from them (3 channels per grey channel).

    Returns:
        ``{name: (N, C, H, W) float32}``, rows in the order of ``clips``.
    """
    n = len(clips)
    wanted = set(names)
    knobs = resolve_options(options, names)
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
        if "cof" in wanted:
            theta = knobs["cof"]["theta"]
            out["cof"] = cof(onset_apex, apex_offset, theta1=theta[0], theta2=theta[1], direction=knobs["cof"]["direction"])
        if "mm_cof" in wanted:
            mm = knobs["mm_cof"]
            same = "cof" in out and (mm["theta"], mm["direction"]) == (knobs["cof"]["theta"], knobs["cof"]["direction"])
            combined = out["cof"] if same else cof(onset_apex, apex_offset, theta1=mm["theta"][0],
                                                     theta2=mm["theta"][1], direction=mm["direction"])
            out["mm_cof"] = modulate_cof(combined, modulation=mm["modulation"], tau=mm["tau"])
    if wanted - FLOW_REPRESENTATIONS:
        frames = [torch.from_numpy(c).to(device=device, dtype=torch.float32) for c in (color_clips or clips)]
        apex_index = list(apexes)
        if "dynamic_image" in wanted:
            out["dynamic_image"] = dynamic_images(frames, coefficients=knobs["dynamic_image"]["coefficients"])
        if "dynamic_image_phases" in wanted:
            out["dynamic_image_phases"] = phase_dynamic_images(
                frames, apex_index, coefficients=knobs["dynamic_image_phases"]["coefficients"])
        if "trdi" in wanted:
            out["trdi"] = temporal_ranked_dynamic_images(frames, coefficients=knobs["trdi"]["coefficients"])
        if "midi" in wanted:
            midi = knobs["midi"]
            intensity = flow_intensity(clips, flow) if midi["intensity"] == "flow" else None
            out["midi"] = motion_intensity_dynamic_images(frames, intensity=intensity, sigma=midi["sigma"],
                                                          coefficients=midi["coefficients"])
        if "mesti" in wanted:
            out["mesti"] = mesti(frames, apex_index, weighting=knobs["mesti"]["weighting"],
                                 coefficients=knobs["mesti"]["coefficients"])
        if "lbptop" in wanted:
            out["lbptop"] = lbptop_features(list(clips))
        if "apex_frame" in wanted:
            out["apex_frame"] = frame_crops(frames, apex_index)
        if "onset_frame" in wanted:
            out["onset_frame"] = frame_crops(frames, [0] * len(frames))
    return {name: out[name].contiguous() for name in names}


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


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


class FeatureStage:
    """The second stage: flow and representations for a batch of clip results, in place.

    Shared by the executors (local threads, Ray actors): it holds what a batch needs (the
    flow backend, its parameters and the device) and adds each view's tensors, stored
    dtype, to :attr:`_ClipResult.features`.
    """

    def __init__(self, config: ExtractConfig, device: torch.device, workers: int) -> None:
        self.config = config
        self.device = device
        self.workers = workers
        backend = config.flow_backend
        self.params = TVL1Params.preset(config.flow_preset) if backend in ("fastmer", "torch", "opencv") else None

    def flow(self, first: np.ndarray, second: np.ndarray) -> torch.Tensor:
        backend = self.config.flow_backend
        flows = compute_flow(first, second, backend=backend, params=self.params,
                             device=self.device if backend in ("fastmer", "torch") else None, workers=self.workers)
        if flows.is_cuda:  # the flow stage's time is the GPU's, not the launch's
            torch.cuda.synchronize(flows.device)
        return flows

    def __call__(self, results: Sequence[_ClipResult]) -> tuple[int, dict[str, float]]:
        """Compute the features of every view of ``results``; returns (flow pairs, seconds per stage)."""
        views = [(row, crops) for result in results for row, crops in result.views]
        seconds = {"flow": 0.0, "representations": 0.0}
        if not views:
            return 0, seconds
        flow_seconds = 0.0
        n_pairs = 0

        def timed_flow(first: np.ndarray, second: np.ndarray) -> torch.Tensor:
            nonlocal flow_seconds, n_pairs
            begin = time.perf_counter()
            flows = self.flow(first, second)
            flow_seconds += time.perf_counter() - begin
            n_pairs += len(first)
            return flows

        begin = time.perf_counter()
        apexes = [row["apex"] - row["onset"] for row, _ in views]
        color = [crops for result in results for crops in result.color_crops] if self.config.color else None
        features = compute_representations([crops for _, crops in views], apexes, self.config.representations,
                                           timed_flow, self.device, self.config.representation_options, color)
        dtype = np.dtype(self.config.dtype)
        arrays = {name: tensor.cpu().numpy().astype(dtype, copy=False) for name, tensor in features.items()}
        i = 0
        for result in results:
            result.features = []
            for row, crops in result.views:
                view_features = {name: array[i] for name, array in arrays.items()}
                view_features[schema.KEYFRAMES] = keyframes(crops, row["apex"] - row["onset"])
                result.features.append(view_features)
                i += 1
            # The crops are spent: results waiting to be written must not hold whole clips.
            result.views = [(row, None) for row, _ in result.views]
            result.color_crops = []
        seconds["flow"] = flow_seconds
        seconds["representations"] = time.perf_counter() - begin - flow_seconds
        return n_pairs, seconds


def representation_specs(config: ExtractConfig) -> dict[str, RepresentationSpec]:
    """The tensor columns an extraction with ``config`` stores (its representations and the key frames)."""
    specs = {name: RepresentationSpec(representation_shape(name, config.size, config.color), config.dtype,
                                      representation_channels(name, config.color))
             for name in config.representations}
    specs[schema.KEYFRAMES] = RepresentationSpec((3, config.size, config.size), "uint8", schema.KEYFRAME_CHANNELS)
    return specs


def results_store(results: Sequence[tuple[int, _ClipResult]], specs: dict[str, RepresentationSpec],
                  params: dict[str, Any], name: str) -> FeatureStore:
    """The views of extracted clips (``(corpus index, result)`` with features) as an
    in-memory feature store, without touching disk (scoring raw video)."""
    rows: list[dict[str, Any]] = []
    tensors: dict[str, list[np.ndarray]] = {column: [] for column in specs}
    digest = schema.params_hash(params)
    for index, result in results:
        for (row, _), features in zip(result.views, result.features, strict=True):
            rows.append({**row, "corpus_index": index, "fastmer_version": __version__, "params_hash": digest})
            for column in specs:
                tensors[column].append(features[column])
    meta = {"format": schema.FORMAT, "format_version": schema.FORMAT_VERSION, "params": params,
            "params_hash": digest, "complete": True,
            "representations": {column: {"shape": list(spec.shape), "dtype": spec.dtype, "channels": list(spec.channels)}
                                for column, spec in specs.items()}}
    return FeatureStore.from_table(clips_table(rows, tensors, specs), meta, name)


def _run_local(
    todo: dict[int, Clip],
    detector: FaceDetector,
    config: ExtractConfig,
    features: FeatureStage,
    workers: int,
    decode_device: str,
    on_batch: Callable[[int, dict[str, float]], None],
) -> Iterator[tuple[int, _ClipResult]]:
    """Stages 1 and 2 on this machine: ``(corpus index, result with features)`` in corpus order."""
    with clip_workers(workers) as pool:
        results = ordered_map(lambda c: process_clip(c, detector, config, decode_device), todo.values(), pool,
                              window=4 * workers)
        batch: list[tuple[int, _ClipResult]] = []
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
    (:func:`plan_resume`).

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
            (or clips in another order, see :func:`plan_resume`), or something else.
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
                                  "executor": executor, "face_model": str(getattr(detector, "model", "")) or None})
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

    def write(index: int, result: _ClipResult) -> None:
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
        results = _run_local(todo, detector, config, FeatureStage(config, device, workers), workers, decode_device,
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


@dataclass
class ResumePlan:
    """What a run does with the store it resumes (:func:`plan_resume`).

    Attributes:
        todo: corpus index -> clip to process, in corpus order.
        fingerprints: corpus index -> fingerprint of each clip to process (recorded in its rows).
        redone: why stored clips are processed again -> how many.
        removed: uids (one per clip, without ``@view``) of stored clips the run does not list.
        n_unverified: stored clips without a fingerprint, skipped without being checked.
    """

    todo: dict[int, Clip] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)
    redone: Counter[str] = field(default_factory=Counter)
    removed: list[str] = field(default_factory=list)
    n_unverified: int = 0

    def describe(self, store: str, n_clips: int, n_retried: int) -> list[str]:
        """The log lines of a resumed run."""
        stored = n_clips - len(self.todo)
        lines = [f"resuming {store}: {stored} of {n_clips} clips already stored"
                 + (f", {n_retried} failed clip(s) retried" if n_retried else "")]
        if self.redone:
            reasons = ", ".join(f"{why} ({n})" for why, n in sorted(self.redone.items(), key=lambda item: -item[1]))
            lines.append(f"{_clips(sum(self.redone.values()))} re-extracted: {reasons}")
        if self.removed:
            shown = ", ".join(self.removed[:20]) + (f" and {len(self.removed) - 20} more" if len(self.removed) > 20 else "")
            verb = "is" if len(self.removed) == 1 else "are"
            lines.append(f"{_clips(len(self.removed))} in the store {verb} no longer in the corpus: {shown} (kept; "
                         "--overwrite rebuilds the store from the corpus alone)")
        if self.n_unverified:
            lines.append(f"note: {_clips(self.n_unverified)} in the store have no fingerprint (written before fastmer "
                         "recorded them): kept without checking their annotation and files; --overwrite re-extracts them")
        return lines


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _what_changed(stored: str, now: str) -> str:
    """Why a clip's fingerprint changed (both ``"<annotation>:<source>"``)."""
    old, new = stored.split(":"), now.split(":")
    if len(old) != 2:
        return "fingerprint changed"
    annotation, source = old[0] != new[0], old[1] != new[1]
    return ("annotation and source files changed" if annotation and source
            else "annotation changed" if annotation else "source files changed")


def plan_resume(clips: Sequence[Clip], writer: StoreWriter) -> ResumePlan:
    """Match the run's clips with what the store holds; release the clips that changed.

    Clips are matched by uid (a clip's rows: its uid, or ``uid@view`` for split views).
    A stored clip whose fingerprint (:meth:`Clip.fingerprint`, taken here, before any frame
    is read) differs from the run's is released (:meth:`StoreWriter.supersede`) and
    processed again under its stored corpus index, so its new rows replace the old ones
    in place in the corpus order. Failed clips are retried the same way, and clips a
    killed run had released and not written yet (``writer.pending``) are processed under
    their recorded index. Rows without a fingerprint (stores written before fastmer
    recorded it) are taken as unchanged, and counted.

    Stored clips the run does not list (a row deleted from the coding sheet, or a run
    over a narrower protocol) are kept and reported in :attr:`ResumePlan.removed`, not
    deleted: a narrower or mistaken clip list then costs nothing, and ``--overwrite``
    gives a store of exactly the corpus. Clips new to the store are appended after the
    stored ones, which keeps the rows in corpus order only when they come after every
    stored clip of the run (a prefix was stored: an interrupted first run); a new clip
    listed before a stored one, or stored clips listed in another order, would break that
    order, and such a store is refused, as is a store none of whose clips the run lists.

    Returns:
        The plan; ``todo`` holds the clips to process by corpus index, in corpus order.

    Raises:
        FileExistsError: the store was extracted from other clips, or in another order.
    """
    def refuse(why: str) -> FileExistsError:
        return FileExistsError(f"store {writer.path} was extracted from other clips ({why}), so it cannot be resumed: "
                               "use --overwrite to replace it, or another --out")

    plan = ResumePlan()
    known: dict[str, int] = {uid: index for index, clip in writer.stored.items() for uid in clip.uids}
    for index, uids in writer.pending.items():
        known.update(dict.fromkeys(uids, index))
    next_index = max([*writer.stored, *writer.pending], default=-1) + 1
    matched: set[int] = set()
    last: Clip | None = None  # the last clip of the run found in the store
    first_new: Clip | None = None  # the first clip of the run not in it
    for clip in clips:
        fingerprint = clip.fingerprint()
        index = next((known[uid] for uid in (clip.uid, *(f"{clip.uid}@{view}" for view in VIEWS[1:])) if uid in known),
                     None)
        if index is None:
            first_new = first_new or clip
            plan.todo[next_index], plan.fingerprints[next_index] = clip, fingerprint
            next_index += 1
            continue
        stored = writer.stored.get(index)
        uids = stored.uids if stored else writer.pending[index]
        if index in matched or not all(uid == clip.uid or uid.startswith(clip.uid + "@") for uid in uids):
            raise refuse(f"it holds {', '.join(uids)} as clip {index}; the run lists {clip.uid}")
        if first_new is not None:
            raise refuse(f"{first_new.uid} is not in it but comes before {clip.uid}, which is; new clips can only "
                         "follow the stored ones, to keep the rows in corpus order")
        if last is not None and index < max(matched):
            raise refuse(f"in another order: the run lists {clip.uid} after {last.uid}, the store before it")
        matched.add(index)
        last = clip
        if stored is None:  # released by a killed run, not written again yet
            plan.redone["re-extraction interrupted"] += 1
        elif index not in writer.committed:  # a failed clip, retried
            pass
        elif stored.fingerprint is None:
            plan.n_unverified += 1
            continue
        elif stored.fingerprint != fingerprint:
            plan.redone[_what_changed(stored.fingerprint, fingerprint)] += 1
            writer.supersede(index)
        else:
            continue
        plan.todo[index], plan.fingerprints[index] = clip, fingerprint
    if writer.stored and clips and not matched:
        some = next(iter(writer.stored.values())).uids[0]
        raise refuse(f"none of its {len(writer.stored)} clips, e.g. {some}, is among the run's {len(clips)}")
    for index, stored in sorted(writer.stored.items()):
        if index not in matched:
            if stored.failed and index not in writer.committed:
                writer.retain(index)  # kept like the others: not retried, its error row stays
            plan.removed.append(stored.uids[0] if len(stored.uids) == 1 else stored.uids[0].split("@")[0])
    return plan
