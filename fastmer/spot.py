"""Spotting expressions in long videos: stream the frames, follow the face, measure regional motion.

:class:`VideoSpotter` reads a video of any length in chunks and keeps only what the spotters
need: the face crops of the last ``2k`` frames (``k`` the macro scale) and, per frame, the
regional motion of the flows ``j -> j + k`` and ``j -> j + 2k`` (:mod:`fastmer.phases.regions`,
28 numbers a pair). Memory is bounded by the chunk and the scale, not by the video's length
(the per-frame motion is a few hundred bytes a frame, 26 MB for an hour at 30 fps).

The face is detected at the start and again every :attr:`SpotConfig.redetect_seconds`; when
the detection has moved (:attr:`SpotConfig.drift_tolerance` of the box) or a scene cut is seen
(a thumbnail change far above the video's usual, as :mod:`fastmer.phases.cuts` measures), a
new *segment* starts with a new crop box: no flow pair crosses a segment boundary, so a cut
or a re-framing never looks like motion. Frames without a face belong to no segment.

:func:`spot_videos` runs it over a corpus into a Parquet dataset (``OUT/intervals``): one file per video
(written atomically), one row per spotted interval; a video that fails becomes an error row
and the run goes on; a rerun skips the videos already spotted with the same settings and
unchanged files.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fastmer.choices import FLOW_BACKENDS
from fastmer.datasets.clip import file_stats
from fastmer.datasets.long import LongVideo
from fastmer.errors import ClipError
from fastmer.face.crop import FaceBox, square_box
from fastmer.face.detect import FaceDetector
from fastmer.outputs import SPOT_FORMAT, SPOT_META_FILE, is_spot_output
from fastmer.phases.cuts import MEDIAN_FACTOR, MIN_CHANGE, THUMBNAIL_WIDTH
from fastmer.phases.flowspot import SpotParams, spot_intervals
from fastmer.phases.intervals import Interval

if TYPE_CHECKING:
    from fastmer.models.softnet import SpotterModel
from fastmer.phases.regions import MAP_SIZE, MOTION_STATS, REGIONS, face_regions, flow_map, region_motion
from fastmer.store.writer import atomic_write_bytes, atomic_write_table
from fastmer.train.spotting import MAPS_DIR
from fastmer.train.spotting import save_maps as save_video_maps

#: Changes remembered for the "usual change" a cut is measured against.
CUT_HISTORY = 300
STAGES = ("decode", "cuts", "face", "crop", "flow", "motion", "spot")


@dataclass(frozen=True)
class SpotConfig:
    """How :class:`VideoSpotter` reads a video (what changes its output is in :meth:`fingerprint`).

    Attributes:
        params: the spotting method and its thresholds.
        flow: flow backend (:data:`fastmer.choices.FLOW_BACKENDS`). Farneback by default: MDMD
            needs a cheap dense flow (its authors used RLOF), and on the synthetic long videos
            it spots as well as the native TV-L1 at OpenCV's settings for a quarter of the
            time (bench/RESULTS.md); ``fastmer`` (TV-L1) on a GPU.
        flow_size: side of the face crop the flow is computed on, pixels.
        face_scale: crop side as a multiple of the detector's box.
        redetect_seconds: how often the face is detected again.
        drift_tolerance: a re-detected face whose centre moved more than this fraction of the
            box's side (or whose side changed by more) starts a new segment.
        chunk: frames decoded at a time.
        batch: flow pairs per call.
        device: where the native flow runs (``cpu``, ``cuda``).
    """

    params: SpotParams = field(default_factory=SpotParams)
    flow: str = "farneback"
    flow_size: int = 112
    face_scale: float = 1.25
    redetect_seconds: float = 1.0
    drift_tolerance: float = 0.1
    chunk: int = 128
    batch: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.flow not in FLOW_BACKENDS:
            raise ValueError(f"flow must be one of {', '.join(FLOW_BACKENDS)}, got {self.flow!r}")
        if not 32 <= self.flow_size <= 512:
            raise ValueError(f"flow_size must be in [32, 512] pixels, got {self.flow_size}")
        if not 0.5 <= self.face_scale <= 3:
            raise ValueError(f"face_scale must be in [0.5, 3], got {self.face_scale}")
        if not self.redetect_seconds > 0 or not 0 < self.drift_tolerance < 1:
            raise ValueError("redetect_seconds must be > 0 and drift_tolerance in (0, 1)")
        if self.chunk < 1 or self.batch < 1:
            raise ValueError("chunk and batch must be >= 1")

    def fingerprint(self, detector: str) -> str:
        """Digest of every setting that changes the intervals (not chunk, batch or device)."""
        settings = {**dataclasses.asdict(self), "detector": detector}
        for name in ("chunk", "batch", "device"):
            settings.pop(name)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Segment:
    """Frames ``start..end`` (0-based indices, inclusive) read with one face crop box."""

    start: int
    end: int
    box: FaceBox  # the detector's
    crop: FaceBox  # the square cut from the frames


@dataclass
class SpotResult:
    """What :meth:`VideoSpotter.finish` found in one video.

    Attributes:
        intervals: spotted intervals, 0-based frame indices, onset order.
        curves: per scale, the method's per-frame curve.
        segments: the stretches read with one face box.
        n_frames: frames read.
        faceless: frames in no segment (no face found).
        seconds: time per stage (:data:`STAGES`).
        motion: per scale ``(near, far)`` regional motion (see :mod:`fastmer.phases.flowspot`).
        maps: per scale, each head's flow map (``keep_maps``), else None.
        fps: the frame rate the scales were computed at.
    """

    intervals: list[Interval]
    curves: dict[str, np.ndarray]
    segments: list[Segment]
    n_frames: int
    faceless: int
    seconds: dict[str, float]
    motion: dict[str, tuple[np.ndarray, np.ndarray]]
    maps: dict[str, np.ndarray] | None = None
    fps: float = 0.0


class VideoSpotter:
    """Streamed spotting of one video: :meth:`feed` grey frames in order, then :meth:`finish`.

    Example:
        >>> spotter = VideoSpotter(SpotConfig(), HaarFaceDetector(), fps=30, n_frames=len(source))  # doctest: +SKIP
        >>> for chunk in source.chunks(source.frame_numbers, 128):  # doctest: +SKIP
        ...     spotter.feed(chunk)
        >>> result = spotter.finish()  # doctest: +SKIP
    """

    def __init__(self, config: SpotConfig, detector: FaceDetector, fps: float, n_frames: int, *,
                 spotter: SpotterModel | None = None, keep_maps: bool = False) -> None:
        """
        Args:
            spotter: the learned spotter of method ``softnet`` (scores each flow map as it comes).
            keep_maps: keep each head's :func:`~fastmer.phases.regions.flow_map` (float16), what
                ``fastmer train --task spot`` learns from (about 1.5 KB a frame).
        """
        self.config, self.detector, self.fps, self.n_frames = config, detector, float(fps), int(n_frames)
        self.scales = config.params.scales(self.fps)
        self.needs_far = config.params.method == "mdmd"
        if config.params.method == "softnet" and spotter is None:
            raise ValueError("the softnet method needs a trained spotter (--model RUN of 'fastmer train --task spot')")
        self.spotter, self.keep_maps = spotter, keep_maps
        heads = {kind: math.ceil(self.n_frames / stride) for kind, (_, stride) in self.scales.items()}
        self.scores = {kind: np.full(n, np.nan, np.float32) for kind, n in heads.items()} if spotter else None
        self.maps = {kind: np.full((n, 3, MAP_SIZE, MAP_SIZE), np.nan, np.float16) for kind, n in heads.items()} \
            if keep_maps else None
        shape = (len(REGIONS), len(MOTION_STATS))
        self.motion = {kind: (np.full((math.ceil(self.n_frames / stride), *shape), np.nan, np.float32),
                              np.full((math.ceil(self.n_frames / stride), *shape), np.nan, np.float32))
                       for kind, (_, stride) in self.scales.items()}
        self.redetect_every = max(1, round(config.redetect_seconds * self.fps))
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.segments: list[Segment] = []
        self.segment: Segment | None = None
        self.regions: dict[str, tuple[slice, slice]] = {}
        self.crops: dict[int, np.ndarray] = {}
        self.next_head = dict.fromkeys(self.scales, 0)
        self.index = 0  # next frame's index
        self.last_detection = -10**9
        self.faceless = 0
        self.last_thumb: np.ndarray | None = None
        self.changes: collections.deque[float] = collections.deque(maxlen=CUT_HISTORY)

    # --- per frame -----------------------------------------------------------------
    def feed(self, frames: np.ndarray) -> None:
        """The next ``(t, H, W)`` uint8 grey frames."""
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise ValueError(f"VideoSpotter.feed takes (t, H, W) uint8 grey frames, got {frames.dtype} {frames.shape}")
        if self.index + len(frames) > self.n_frames:
            raise ValueError(f"more frames fed than the {self.n_frames} announced")
        for frame in frames:
            i = self.index
            if self._is_cut(frame):
                self._end_segment()
            if self.segment is None or i - self.last_detection >= self.redetect_every:
                self._detect(frame, i)
            if self.segment is not None:
                start = time.perf_counter()
                self.crops[i] = self._crop(frame, self.segment.crop)
                self.segment.end = i
                self.seconds["crop"] += time.perf_counter() - start
            else:
                self.faceless += 1
            self.index += 1
        self._flows(final=False)

    def _is_cut(self, frame: np.ndarray) -> bool:
        start = time.perf_counter()
        height, width = frame.shape
        size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width))) if width > THUMBNAIL_WIDTH else (width, height)
        thumb = cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        cut = False
        if self.last_thumb is not None:
            change = float(np.abs(thumb - self.last_thumb).mean())
            usual = float(np.median(self.changes)) if self.changes else 0.0
            cut = change > max(MIN_CHANGE, MEDIAN_FACTOR * usual)
            if not cut:
                self.changes.append(change)
        self.last_thumb = thumb
        self.seconds["cuts"] += time.perf_counter() - start
        return cut

    def _detect(self, frame: np.ndarray, i: int) -> None:
        start = time.perf_counter()
        faces = self.detector.detect(frame)
        self.seconds["face"] += time.perf_counter() - start
        # Without a face, try again a quarter of the interval later.
        self.last_detection = i if faces else i - self.redetect_every + max(1, self.redetect_every // 4)
        if not faces:
            return
        face = max(faces, key=lambda f: f.box.area)
        if self.segment is not None:
            old = self.segment.box
            moved = math.dist(face.box.center, old.center) / old.w
            resized = abs(face.box.w / old.w - 1)
            if moved <= self.config.drift_tolerance and resized <= self.config.drift_tolerance:
                return
            self._end_segment()
        height, width = frame.shape
        crop = square_box(face.box, self.config.face_scale, width, height)
        self.segment = Segment(i, i, face.box, crop)
        self.regions = face_regions(face.box, crop, self.config.flow_size, face.landmarks)
        self.next_head = {kind: _ceil_to(i, stride) for kind, (_, stride) in self.scales.items()}

    def _crop(self, frame: np.ndarray, box: FaceBox) -> np.ndarray:
        size = self.config.flow_size
        return cv2.resize(frame[box.y: box.y + box.h, box.x: box.x + box.w], (size, size), interpolation=cv2.INTER_AREA)

    def _end_segment(self) -> None:
        if self.segment is not None:
            self._flows(final=True)
            self.segments.append(self.segment)
        self.segment = None
        self.crops.clear()

    # --- flows ---------------------------------------------------------------------
    def _flows(self, final: bool) -> None:
        """Compute every pair whose frames are in; drop crops no pair needs any more."""
        if self.segment is None:
            return
        last = self.segment.end
        pairs: list[tuple[str, int, int, int]] = []  # (scale, head, distance, slot 0 near / 1 far)
        for kind, (k, stride) in self.scales.items():
            reach = 2 * k if self.needs_far else k
            j = self.next_head[kind]
            while j + reach <= last:
                pairs.append((kind, j, k, 0))
                if self.needs_far:
                    pairs.append((kind, j, 2 * k, 1))
                j += stride
            self.next_head[kind] = j
        for start in range(0, len(pairs), self.config.batch):
            self._compute(pairs[start: start + self.config.batch])
        if final:
            return
        keep_from = min(self.next_head.values())
        for index in [i for i in self.crops if i < keep_from]:
            del self.crops[index]

    def _compute(self, pairs: list[tuple[str, int, int, int]]) -> None:
        from fastmer.motion.flow import compute_flow  # noqa: PLC0415  (torch and the native ops: when flows are due)

        if not pairs:
            return
        first = np.stack([self.crops[j] for _, j, _, _ in pairs])
        second = np.stack([self.crops[j + d] for _, j, d, _ in pairs])
        start = time.perf_counter()
        device = self.config.device if self.config.flow in ("fastmer", "torch") else None
        flow = compute_flow(first, second, backend=self.config.flow, device=device).cpu()
        self.seconds["flow"] += time.perf_counter() - start
        start = time.perf_counter()
        motion = region_motion(flow, self.regions).numpy()
        for (kind, j, _, slot), values in zip(pairs, motion, strict=True):
            self.motion[kind][slot][j // self.scales[kind][1]] = values
        if self.spotter is not None or self.keep_maps:
            near = [row for row, (_, _, _, slot) in enumerate(pairs) if slot == 0]
            maps = flow_map(flow[near], self.regions)
            for kind in self.scales:
                rows = [r for r, i in enumerate(near) if pairs[i][0] == kind]
                heads = [pairs[near[r]][1] // self.scales[kind][1] for r in rows]
                if not rows:
                    continue
                if self.keep_maps:
                    self.maps[kind][heads] = maps[rows].numpy().astype(np.float16)
                if self.spotter is not None:
                    self.scores[kind][heads] = self.spotter.score(kind, maps[rows]).numpy()
        self.seconds["motion"] += time.perf_counter() - start

    def finish(self) -> SpotResult:
        """Spot the intervals of the frames fed (all announced frames must have been fed)."""
        if self.index != self.n_frames:
            raise ValueError(f"{self.index} frames fed, {self.n_frames} announced")
        self._end_segment()
        start = time.perf_counter()
        motion = {kind: (near, far if self.needs_far else None) for kind, (near, far) in self.motion.items()}
        intervals, curves = spot_intervals(motion, self.config.params, self.fps, self.n_frames, self.scores)
        self.seconds["spot"] += time.perf_counter() - start
        return SpotResult(intervals, curves, self.segments, self.n_frames, self.faceless, dict(self.seconds),
                          self.motion, self.maps, self.fps)


def _ceil_to(value: int, step: int) -> int:
    return -(-value // step) * step


def spot_video(video: LongVideo, config: SpotConfig, detector: FaceDetector, *, decoder: str = "auto",
               spotter: SpotterModel | None = None, keep_maps: bool = False) -> SpotResult:
    """Spot one long video (streamed; see :class:`VideoSpotter`). Intervals use the video's frame
    numbers (``video.frame_numbers`` for image sequences).

    Raises:
        ClipError: the video cannot be decoded, or has no frame rate.
    """
    from fastmer.decode.engines import open_frames  # noqa: PLC0415

    with open_frames(video.source, frame_paths=video.frame_paths or None, frame_numbers=video.frame_numbers or None,
                     engine=decoder, fps=video.fps) as source:
        fps = video.fps or source.fps
        if not fps or fps <= 0:
            raise ClipError("decode", f"{video.uid}: the frame rate of {video.source} is unknown; spotting needs it")
        numbers = list(source.frame_numbers)
        streamer = VideoSpotter(config, detector, fps, len(numbers), spotter=spotter, keep_maps=keep_maps)
        start = time.perf_counter()
        for chunk in source.chunks(numbers, config.chunk):
            streamer.seconds["decode"] += time.perf_counter() - start
            streamer.feed(chunk)
            start = time.perf_counter()
        result = streamer.finish()
    if video.frame_numbers:  # indices -> the corpus's frame numbers
        result.intervals = [dataclasses.replace(i, onset=numbers[i.onset], offset=numbers[i.offset],
                                                apex=None if i.apex is None else numbers[i.apex])
                            for i in result.intervals]
    return result


# --- the corpus run -----------------------------------------------------------------------

SCHEMA = pa.schema([
    ("video", pa.string()), ("dataset", pa.string()), ("subject", pa.string()), ("source", pa.string()),
    ("onset", pa.int64()), ("apex", pa.int64()), ("offset", pa.int64()), ("kind", pa.string()),
    ("score", pa.float64()), ("method", pa.string()), ("error", pa.string()),
])
#: The output folder's Parquet dataset: one file per video (``pq.read_table(OUT / "intervals")``).
INTERVALS_DIR = "intervals"
#: Keys of each video file's Parquet metadata (what resuming and reports read).
META_KEY = b"fastmer.spot"


def video_fingerprint(video: LongVideo) -> str:
    """What the video's intervals depend on: its source path and each file's size and mtime."""
    files = file_stats(video.frame_paths or (video.source,))
    blob = json.dumps({"source": video.source, "numbers": list(video.frame_numbers), "files": files,
                       "fps": video.fps}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def part_path(out: Path, video: LongVideo) -> Path:
    """The file of ``video`` in the output folder ``out`` (named after a digest of its uid)."""
    return out / INTERVALS_DIR / f"video-{hashlib.sha256(video.uid.encode()).hexdigest()[:16]}.parquet"


def read_part_meta(path: Path) -> dict | None:
    """The metadata of one output file (None when unreadable)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else None


def open_output(out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """The output folder, created and marked (``spot.json``) if new; with ``overwrite`` an
    earlier spotting output there is emptied first. A non-empty folder that is not a spotting
    output is refused (FileExistsError naming it). Overwriting removes the earlier intervals,
    maps (what training would otherwise read) and scores."""
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not is_spot_output(out):
        raise FileExistsError(f"{out} is not empty and is not a 'fastmer spot' output; refusing to write there")
    (out / INTERVALS_DIR).mkdir(parents=True, exist_ok=True)
    if overwrite:
        for path in [*(out / INTERVALS_DIR).glob("video-*.parquet"), *(out / MAPS_DIR).glob("video-*.safetensors"),
                     out / "scores.json"]:
            path.unlink(missing_ok=True)
    if not is_spot_output(out):
        from fastmer import __version__  # noqa: PLC0415

        meta = {"format": SPOT_FORMAT, "version": 1, "fastmer": __version__,
                "files": f"{INTERVALS_DIR}/video-<digest of the video uid>.parquet, one per video",
                "columns": SCHEMA.names}
        atomic_write_bytes(out / SPOT_META_FILE, json.dumps(meta, indent=1).encode())
    return out


@dataclass
class SpotRun:
    """What :func:`spot_videos` did: per video uid, its result or error, and the skipped ones."""

    results: dict[str, SpotResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def maps_path(out: Path, video: LongVideo) -> Path:
    """Where ``save_maps`` keeps ``video``'s flow maps in the output folder ``out``."""
    return out / MAPS_DIR / part_path(out, video).with_suffix(".safetensors").name


def spot_videos(videos: Sequence[LongVideo], out: str | os.PathLike[str], config: SpotConfig,
                detector: FaceDetector, detector_name: str, *, decoder: str = "auto", resume: bool = True,
                spotter: SpotterModel | None = None, save_maps: bool = False,
                log: Callable[[str], None] = lambda line: None) -> SpotRun:
    """Spot every video into the Parquet dataset folder ``out`` (see the module docstring).

    A video's file records its fingerprint (:func:`video_fingerprint`), the settings'
    (:meth:`SpotConfig.fingerprint`), frames, faceless frames and stage times; with ``resume``
    a video whose file matches both is skipped. Errors (a missing or unreadable video, no
    face anywhere...) become a row with ``kind = "error"`` and the message, and the run goes on.

    Args:
        spotter: method ``softnet``'s trained spotter.
        save_maps: also keep each video's flow maps, regional motion and coded intervals in
            ``out/maps`` (what ``fastmer train --task spot`` learns from).
    """
    out = Path(out)
    (out / INTERVALS_DIR).mkdir(parents=True, exist_ok=True)
    settings = config.fingerprint(detector_name)
    if spotter is not None:  # another trained spotter spots otherwise: part of the settings
        settings = hashlib.sha256(f"{settings}:{spotter.digest()}".encode()).hexdigest()[:16]
    run = SpotRun()
    for n, video in enumerate(videos, 1):
        path = part_path(out, video)
        fingerprint = video_fingerprint(video)
        if save_maps:  # the maps file holds the coded intervals too: an edited coding redoes it
            truth = json.dumps([[i.onset, i.apex, i.offset, i.kind] for i in video.intervals])
            fingerprint = hashlib.sha256(f"{fingerprint}:{truth}".encode()).hexdigest()[:16]
        if resume and path.is_file():
            meta = read_part_meta(path)
            if meta and meta.get("settings") == settings and meta.get("fingerprint") == fingerprint \
                    and meta.get("status") == "ok" and (not save_maps or maps_path(out, video).is_file()):
                run.skipped.append(video.uid)
                continue
        start = time.perf_counter()
        meta = {"video": video.uid, "fingerprint": fingerprint, "settings": settings,
                "config": _jsonable(dataclasses.asdict(config)), "detector": detector_name}
        try:
            result = spot_video(video, config, detector, decoder=decoder, spotter=spotter, keep_maps=save_maps)
        except (ClipError, OSError, ValueError) as exc:
            message = str(exc)
            run.errors[video.uid] = message
            table = pa.Table.from_pylist([_row(video, None, config.params.method, message)], schema=SCHEMA)
            meta.update(status="error", error=message)
            log(f"[{n}/{len(videos)}] {video.uid}: error: {message}")
        else:
            run.results[video.uid] = result
            if save_maps:
                (out / MAPS_DIR).mkdir(exist_ok=True)
                save_video_maps(maps_path(out, video), uid=video.uid, dataset=video.dataset, subject=video.subject,
                                fps=result.fps, n_frames=result.n_frames, scales=config.params.scales(result.fps),
                                maps=result.maps, near={kind: near for kind, (near, _) in result.motion.items()},
                                truth=video.intervals, numbers=video.frame_numbers)
            table = pa.Table.from_pylist([_row(video, i, config.params.method) for i in result.intervals],
                                         schema=SCHEMA)
            meta.update(status="ok", frames=result.n_frames, faceless=result.faceless,
                        segments=len(result.segments), stage_seconds=result.seconds)
            elapsed = time.perf_counter() - start
            log(f"[{n}/{len(videos)}] {video.uid}: {len(result.intervals)} interval(s) in {result.n_frames} frames, "
                f"{result.n_frames / max(elapsed, 1e-9):.0f} frames/s")
        atomic_write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), path)
    return run


def _row(video: LongVideo, interval: Interval | None, method: str, error: str | None = None) -> dict:
    base = {"video": video.uid, "dataset": video.dataset, "subject": video.subject, "source": video.source,
            "method": method, "error": error}
    if interval is None:
        return {**base, "onset": None, "apex": None, "offset": None, "kind": "error", "score": None}
    return {**base, "onset": interval.onset, "apex": interval.apex, "offset": interval.offset, "kind": interval.kind,
            "score": interval.score}


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def read_intervals(out: str | os.PathLike[str]) -> tuple[pa.Table, dict[str, dict]]:
    """The rows of a spotting output folder and, per video uid, its file's metadata."""
    out = Path(out)
    paths = sorted((out / INTERVALS_DIR).glob("video-*.parquet"))
    tables, metas = [], {}
    for path in paths:
        table = pq.read_table(path)
        meta = read_part_meta(path)
        if meta is not None:
            metas[meta["video"]] = meta
        tables.append(table.replace_schema_metadata(None))
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return table, metas


def spotted_by_video(table: pa.Table) -> dict[str, list[Interval]]:
    """``{video uid: intervals}`` of :func:`read_intervals`' rows (error rows left out)."""
    out: dict[str, list[Interval]] = {}
    for row in table.to_pylist():
        if row["kind"] in ("micro", "macro"):
            out.setdefault(row["video"], []).append(
                Interval(row["onset"], row["offset"], row["kind"], apex=row["apex"], score=row["score"] or 0.0))
    return out


def score_run(videos: Iterable[LongVideo], table: pa.Table) -> dict:
    """MEGC spotting scores of a run's rows against the videos' coded intervals."""
    from fastmer.phases.intervals import spotting_scores  # noqa: PLC0415

    spotted = spotted_by_video(table)
    videos = list(videos)
    scores = spotting_scores({v.uid: (spotted.get(v.uid, []), list(v.intervals)) for v in videos},
                             datasets={v.uid: v.dataset for v in videos})
    return scores


# --- spot, then recognise ---------------------------------------------------------------------

@dataclass
class SpottedClips:
    """The clips cut from spotted intervals (:func:`spotted_clips`).

    Attributes:
        clips: one :class:`~fastmer.datasets.clip.Clip` per interval (``clip_id``
            ``"<video_id>@<onset>-<offset>"``, the spotted apex as its apex, no label).
        intervals: clip uid -> ``(video uid, interval)``.
        errors: video uid -> why it could not be spotted.
        videos: videos spotted.
    """

    clips: list
    intervals: dict[str, tuple[str, Interval]]
    errors: dict[str, str]
    videos: int


def spotted_clips(videos: Sequence[LongVideo], config: SpotConfig, detector: FaceDetector, *,
                  kinds: Sequence[str] = ("micro",), decoder: str = "auto", spotter: SpotterModel | None = None,
                  log: Callable[[str], None] = lambda line: None) -> SpottedClips:
    """Spot ``videos`` and cut their intervals of ``kinds`` into clips for recognition
    (``fastmer infer --spot``, ``fastmer extract --spot``). A video that fails is recorded in
    ``errors``; the others go on."""
    out = SpottedClips([], {}, {}, len(videos))
    for n, video in enumerate(videos, 1):
        try:
            result = spot_video(video, config, detector, decoder=decoder, spotter=spotter)
        except (ClipError, OSError, ValueError) as exc:
            out.errors[video.uid] = str(exc)
            log(f"[{n}/{len(videos)}] {video.uid}: error: {exc}")
            continue
        kept = [i for i in result.intervals if i.kind in kinds]
        log(f"[{n}/{len(videos)}] {video.uid}: {len(kept)} {'/'.join(kinds)} interval(s) spotted in "
            f"{result.n_frames} frames")
        for interval in kept:
            if interval.offset <= interval.onset:
                continue  # one frame: nothing to recognise
            clip = video.clip(interval)
            out.clips.append(clip)
            out.intervals[clip.uid] = (video.uid, interval)
    return out


def add_interval_columns(predictions: str | os.PathLike[str], spotted: SpottedClips) -> None:
    """Add each row's spotted interval to a predictions file of :func:`spotted_clips`' clips:
    ``video``, ``onset``, ``apex``, ``offset``, ``kind``, ``spot_score`` (rewritten atomically,
    its metadata kept)."""
    path = Path(predictions)
    table = pq.read_table(path)
    found = [spotted.intervals.get(uid) for uid in table.column("uid").to_pylist()]
    columns = {
        "video": pa.array([f[0] if f else None for f in found], pa.string()),
        "onset": pa.array([f[1].onset if f else None for f in found], pa.int64()),
        "apex": pa.array([f[1].apex if f else None for f in found], pa.int64()),
        "offset": pa.array([f[1].offset if f else None for f in found], pa.int64()),
        "kind": pa.array([f[1].kind if f else None for f in found], pa.string()),
        "spot_score": pa.array([f[1].score if f else None for f in found], pa.float64()),
    }
    for name, values in columns.items():
        if name in table.column_names:
            table = table.drop([name])
        table = table.append_column(name, values)
    atomic_write_table(table, path)
