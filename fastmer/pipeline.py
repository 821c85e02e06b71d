"""The extraction pipeline's stages, defined once: clip -> crops -> features -> rows.

Every executor runs these and nothing else: the local thread pool
(:mod:`fastmer.executors.local`), Ray Data's actors (:mod:`fastmer.executors.ray`), and
through them :func:`fastmer.extract.extract` (rows into a feature store) and
:func:`fastmer.engine.score.score_clips` (rows scored without touching disk).

1. *clip* (:func:`process_clip`, one clip per call, on a worker): decode
   (:mod:`fastmer.decode`: DALI, PyAV or OpenCV), split into views, one face box per view
   (:mod:`fastmer.face`), the clip streamed in chunks and cropped, its motion curve drawn
   and its apex resolved (:mod:`fastmer.phases`): a :class:`ClipResult` with the crops of
   every view, or the clip's error.
2. *features* (:class:`FeatureStage`, a batch of clips per call): one optical-flow call
   for every pair of the batch, then every requested representation
   (:func:`compute_representations`) and the key frames (:func:`keyframes`), stored
   dtype; the crops are let go.
3. *rows*: :func:`representation_specs` (the columns a store holds) and
   :func:`results_store` (clips with features as an in-memory feature store); a feature
   store on disk is written by :class:`~fastmer.store.writer.StoreWriter`.

This module imports only the layers below it (config, datasets, decode, face, phases,
motion, ops, store), never an executor nor what drives them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fastmer import __version__
from fastmer.config import FLOW_REPRESENTATIONS, ExtractConfig
from fastmer.datasets.clip import Clip
from fastmer.decode import open_clip_frames, rgb_to_gray, split_views, view_rects
from fastmer.decode.source import Region
from fastmer.errors import ClipError
from fastmer.face import FaceBox, FaceDetector, crop_clip, locate_face
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
from fastmer.store.writer import RepresentationSpec, clips_table

#: Pipeline stages, in data order: the first four run per clip (:func:`process_clip`), ``flow``
#: and ``representations`` per batch (:class:`FeatureStage`), ``write`` where the rows are stored.
STAGES = ("decode", "face", "crop", "apex", "flow", "representations", "write")
#: Full-size frames decoded at a time while a clip streams through decode -> crop.
CHUNK_BYTES = 32 << 20
#: Frames whose faces make the box in ``--face-box union`` mode.
FACE_SAMPLES = 8


@dataclass
class ClipResult:
    """One clip through the first stage (:func:`process_clip`), then the second (:class:`FeatureStage`)."""

    row: dict[str, Any]  # the clip's identity (the error row on failure)
    views: list[tuple[dict[str, Any], np.ndarray]] = field(default_factory=list)  # (row, crops onset..offset)
    stage: str = ""
    error: str = ""
    decoder: tuple[str, str] = ("", "")  # engine and why it was chosen
    seconds: dict[str, float] = field(default_factory=dict)  # busy time per stage
    features: list[dict[str, np.ndarray]] = field(default_factory=list)  # per view, once computed
    color_crops: list[np.ndarray] = field(default_factory=list)  # per view, (T, 3, size, size), with --color


def process_clip(clip: Clip, detector: FaceDetector, config: ExtractConfig, decode_device: str = "cpu") -> ClipResult:
    """Decode, crop and resolve the key frames of one clip.

    Returns one row and the ``(T, size, size)`` uint8 crops (onset..offset) per view, or the error.
    """
    row: dict[str, Any] = {
        "uid": clip.uid, "dataset": clip.dataset, "subject": clip.subject, "clip_id": clip.clip_id,
        "view": clip.view, "source": clip.source,
    }
    result = ClipResult(row)
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
            # Only the part of the frames the crops read is decoded (``decode_region``).
            height, width = probe.shape[1:3]
            rects = view_rects(width, height, config.views if clip.view == "full" else "split")
            region, parts = crop_plan({name: (rects[name], track.box, track.angle) for name, track in tracks.items()},
                                      whole=not config.decode_region)
            # (chunks sized by whole frames: engines that cannot decode a region decode them whole)
            step = max(8, min(256, CHUNK_BYTES // max(1, height * width * (3 if config.color else 1))))
            crops = {name: np.empty((len(numbers), config.size, config.size), np.uint8) for name in tracks}
            color_crops = {name: np.empty((len(numbers), 3, config.size, config.size), np.uint8)
                           for name in (tracks if config.color else ())}
            changes = ChangeMeter()
            at = 0
            for chunk in frames_source.chunks(numbers, step, color=config.color, region=region):
                grey = rgb_to_gray(chunk) if config.color else chunk
                changes.add(grey)  # on what was decoded: the face's region, or whole frames
                clock.lap("decode")
                for name, ((x, y, w, h), box) in parts.items():
                    angle = tracks[name].angle
                    crops[name][at : at + len(chunk)] = crop_clip(grey[:, y : y + h, x : x + w], box, config.size,
                                                                  angle=angle)
                    if config.color:
                        color_crops[name][at : at + len(chunk)] = crop_color_clip(chunk[:, y : y + h, x : x + w], box,
                                                                                  config.size, angle=angle)
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


def crop_plan(views: dict[str, tuple[Region, FaceBox, float]], *, whole: bool = False
              ) -> tuple[Region | None, dict[str, tuple[Region, FaceBox]]]:
    """What to decode of a clip's frames so that every view's crop can be taken, and where.

    Args:
        views: per view, where it lies in the frames (``(x, y, w, h)``, :func:`view_rects`),
            its face box (in the view's coordinates) and its crop's rotation angle.
        whole: decode whole frames (no region).

    Returns:
        ``(region, parts)``: the rectangle of the frames to decode (None: whole frames) and,
        per view, the part of the decoded frames that stands for the view, ``(x, y, w, h)``
        in their coordinates, and the face box within that part. Cropping the box from the
        part gives the crop that cropping it from the whole view gives, bit for bit: an
        unrotated crop reads the box and nothing else, so the part is the box; a rotated
        crop samples up to the view's edges (replicated border), so the part is the view.

    Example:
        >>> crop_plan({"full": ((0, 0, 640, 480), FaceBox(200, 100, 240, 240), 0.0)})
        ((200, 100, 240, 240), {'full': ((0, 0, 240, 240), FaceBox(x=0, y=0, w=240, h=240))})
    """
    needed = {}
    for name, ((vx, vy, vw, vh), box, angle) in views.items():
        needed[name] = (vx + box.x, vy + box.y, box.w, box.h) if angle == 0.0 else (vx, vy, vw, vh)
    if whole:
        region, (ox, oy) = None, (0, 0)
    else:
        x0 = min(x for x, _, _, _ in needed.values())
        y0 = min(y for _, y, _, _ in needed.values())
        x1 = max(x + w for x, _, w, _ in needed.values())
        y1 = max(y + h for _, y, _, h in needed.values())
        region, (ox, oy) = (x0, y0, x1 - x0, y1 - y0), (x0, y0)
    parts = {}
    for name, ((vx, vy, vw, vh), box, _) in views.items():
        x, y, w, h = needed[name] if region else (vx, vy, vw, vh)
        parts[name] = ((x - ox, y - oy, w, h), FaceBox(box.x + vx - x, box.y + vy - y, box.w, box.h))
    return region, parts


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


class FeatureStage:
    """The second stage: flow and representations for a batch of clip results, in place.

    Shared by the executors (local threads, Ray actors): it holds what a batch needs (the
    flow backend, its parameters and the device) and adds each view's tensors, stored
    dtype, to :attr:`ClipResult.features`.
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

    def __call__(self, results: Sequence[ClipResult]) -> tuple[int, dict[str, float]]:
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


def results_store(results: Sequence[tuple[int, ClipResult]], specs: dict[str, RepresentationSpec],
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
