"""Synthetic long videos with known expression intervals: what spotting is tested and measured on.

Real long-video corpora (CAS(ME)², SAMM-LV, CAS(ME)³) are licence-restricted, and a spotter's
F1 needs the true intervals. :func:`generate_long` renders minutes-long recordings of the
synthetic subjects of :mod:`fastmer.datasets.synth` (the same photograph, appearances and
deformation model) in which, over a slowly moving head, these happen at known frames:

* **micro-expressions**: one of the synthetic classes' local fields (brows down, lip corners
  up, brows up) rising from onset to apex and back to neutral at offset, onset..offset at
  most 0.5 s, peak displacement :attr:`LongSynthConfig.micro_peak_px`;
* **macro-expressions**: the same fields, 0.8-3 s, larger (:attr:`LongSynthConfig.macro_peak_px`);
* **blinks** (distractors, not expressions): both eyelids pushed down 3-4 px and back within
  0.1-0.25 s — as fast as a micro-expression and larger, so a spotter must tell them apart;
* **head motion**: a smooth translation (two sinusoids per axis, periods 4-16 s, amplitude up
  to :attr:`LongSynthConfig.head_motion_px`);
* **a scene cut** (distractor): halfway through, the video switches to another appearance of
  the subject (another place, size, tilt and lighting), as an edited recording does; the
  face must be found again.

Events never overlap and stay 0.5 s away from the cut and the ends. Each frame is rendered
with one interpolation of the photograph (:class:`~fastmer.datasets.synth.LocalField`,
exact motion), fresh sensor noise, and written to a Motion-JPEG AVI (intra-only, so
every frame decodes alone; OpenCV always has the codec).

Layout::

    out_dir/
      synth_long.json              # the config and, per video, fps, frames, cut frame
      README.txt
      videos/s01/s01_01.avi        # subject s01's first recording
      intervals.csv                # the truth: subject, video, onset, apex, offset, kind,
                                   # label, emotion, action_units, peak_px (0-based frames)
      distractors.csv              # blinks and cuts: subject, video, kind, onset, offset

:func:`load` reads it back as a :class:`~fastmer.datasets.long.VideoList` (``load_long
("synth-long", out_dir)``). The output is a pure function of the config (seeded streams per
video), whatever the number of workers.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fastmer.datasets.long import Annotation, LongVideo, VideoList
from fastmer.datasets.report import Defect, LoadReport
from fastmer.datasets.synth import (
    SYNTH_EXPRESSIONS,
    DeformationSite,
    LocalField,
    SynthConfig,
    SynthExpression,
    SynthSubject,
    affine_grid,
    noise_counts,
    plan_subject,
    raised_cosine,
    seeded_rng,
    subject_photo,
)
from fastmer.phases.intervals import Interval

NAME = "synth-long"
CONFIG_FILE = "synth_long.json"
INTERVALS_FILE = "intervals.csv"
DISTRACTORS_FILE = "distractors.csv"
INTERVAL_COLUMNS = ("subject", "video", "onset", "apex", "offset", "kind", "label", "emotion", "action_units",
                    "peak_px")
DISTRACTOR_COLUMNS = ("subject", "video", "kind", "onset", "offset")
#: A blink: both upper eyelids pushed down (AU45), narrow vertically so the brows barely move.
BLINK = SynthExpression(
    label="blink", emotion="", action_units="45", face_half="upper",
    sites=(DeformationSite("left_eye", direction=(0.0, 1.0), sigma=(7.0, 4.0)),
           DeformationSite("right_eye", direction=(0.0, 1.0), sigma=(7.0, 4.0))),
)
MICRO_SECONDS = (0.2, 0.5)
MACRO_SECONDS = (0.8, 3.0)
BLINK_SECONDS = (0.1, 0.25)
BLINK_PEAK_PX = (2.5, 3.5)
CLEARANCE_SECONDS = 0.5  # between events, and from the cut and the ends
# SeedSequence purposes, beside synth's 0-3 (subject, clip, noise, haar).
_KEY_TIMELINE, _KEY_LONG_NOISE, _KEY_HEAD = 10, 11, 12


@dataclass(frozen=True)
class LongSynthConfig:
    """What :func:`generate_long` renders; invalid values raise ``ValueError``.

    Attributes:
        subjects: subjects (``s01``...), each with its own appearance(s): the LOSO groups.
        videos_per_subject: recordings per subject.
        seconds: length of each recording.
        fps: frame rate.
        width, height: frame size (the face sizes below must fit it, as in :class:`SynthConfig`).
        micro_per_minute, macro_per_minute, blinks_per_minute: mean event rates.
        micro_peak_px, macro_peak_px: ``(low, high)`` peak displacement, uniform in between.
        head_motion_px: amplitude of the slow head translation, per axis (0: still).
        cut: whether each recording has one scene cut (to another appearance).
        noise_std: sensor noise, grey levels (per subject ``U(0.5, 1)`` of it).
        min_face_px, max_face_px: face-box width range, as :class:`SynthConfig`.
        jpeg_quality: Motion-JPEG quality, 1-100.
        seed: master seed.
    """

    subjects: int = 4
    videos_per_subject: int = 1
    seconds: float = 60.0
    fps: float = 30.0
    width: int = 640
    height: int = 480
    micro_per_minute: float = 8.0
    macro_per_minute: float = 4.0
    blinks_per_minute: float = 12.0
    micro_peak_px: tuple[float, float] = (1.2, 2.0)
    macro_peak_px: tuple[float, float] = (2.5, 4.0)
    head_motion_px: float = 6.0
    cut: bool = True
    noise_std: float = 2.0
    min_face_px: float = 170.0
    max_face_px: float = 240.0
    jpeg_quality: int = 90
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo, hi in (("subjects", 1, 999), ("videos_per_subject", 1, 99), ("jpeg_quality", 1, 100),
                             ("seed", 0, 2**63)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ValueError(f"LongSynthConfig.{name} must be an int in [{lo}, {hi}], got {value!r}")
        for name, lo, hi in (("seconds", 2.0, 24 * 3600.0), ("fps", 5.0, 1000.0), ("micro_per_minute", 0.0, 60.0),
                             ("macro_per_minute", 0.0, 30.0), ("blinks_per_minute", 0.0, 60.0),
                             ("head_motion_px", 0.0, 40.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ValueError(f"LongSynthConfig.{name} must be a number in [{lo}, {hi}], got {value!r}")
        for name in ("micro_peak_px", "macro_peak_px"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"LongSynthConfig.{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.fps * MICRO_SECONDS[0] < 4:
            raise ValueError(f"LongSynthConfig.fps {self.fps} is too low: a 0.2-s micro-expression needs >= 4 frames "
                             "(fps >= 20)")
        # The appearance and the peak limits are SynthConfig's: it checks them (and names the field).
        self.appearance()
        limit = self.appearance().max_peak_px
        for name in ("micro_peak_px", "macro_peak_px"):
            if getattr(self, name)[1] > limit:
                raise ValueError(f"LongSynthConfig.{name} {getattr(self, name)} is too large: peaks must stay <= "
                                 f"{limit} px at min_face_px {self.min_face_px} (larger ones fold the face)")
        if BLINK_PEAK_PX[1] > limit:
            raise ValueError(f"LongSynthConfig.min_face_px {self.min_face_px} is too small: peaks must stay <= {limit} px "
                             f"there, and blinks reach {BLINK_PEAK_PX[1]} px")

    def appearance(self) -> SynthConfig:
        """The :class:`SynthConfig` whose subjects and deformation limits these videos use."""
        limit = round(0.75 * 4.0 * self.min_face_px / 99, 3)  # synth's peak/sigma bound at the narrowest bump
        return SynthConfig(subjects=self.subjects, clips_per_subject=1, seed=self.seed, width=self.width,
                           height=self.height, min_face_px=self.min_face_px, max_face_px=self.max_face_px,
                           noise_std=self.noise_std, jpeg_quality=self.jpeg_quality, max_peak_px=min(4.0, limit))

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))


@dataclass(frozen=True)
class Event:
    """One timed deformation of a recording: an expression (``micro``/``macro``) or a ``blink``."""

    kind: str
    onset: int
    apex: int
    offset: int
    expression: SynthExpression
    peak_px: float

    def profile(self, t: int) -> float:
        """:func:`~fastmer.datasets.synth.raised_cosine` from onset to apex to offset."""
        return raised_cosine(t, self.onset, self.apex, self.offset)


@dataclass(frozen=True)
class VideoPlan:
    """Every random choice of one recording, made before rendering."""

    subject: str
    video: str
    n_frames: int
    fps: float
    looks: tuple[SynthSubject, ...]  # before and after the cut
    cut: int | None  # first frame of the second shot
    events: tuple[Event, ...]
    head: tuple[tuple[float, float, float], ...]  # per axis x, y: (amplitude, period frames, phase), twice each

    def look_at(self, t: int) -> SynthSubject:
        return self.looks[1] if self.cut is not None and t >= self.cut else self.looks[0]

    def head_at(self, t: int) -> np.ndarray:
        """The head's translation at frame ``t`` (x, y) in pixels."""
        out = np.zeros(2)
        for axis in range(2):
            for amplitude, period, phase in self.head[2 * axis: 2 * axis + 2]:
                out[axis] += amplitude * math.sin(2 * math.pi * t / period + phase)
        return out


def plan_video(cfg: LongSynthConfig, subject: int, video: int) -> VideoPlan:
    """The recording ``video`` of subject ``subject`` (both 0-based)."""
    appearance = cfg.appearance()
    rng = seeded_rng(cfg.seed, _KEY_TIMELINE, subject, video)
    n, fps = cfg.n_frames, cfg.fps
    clearance = int(math.ceil(CLEARANCE_SECONDS * fps))
    cut = int(rng.uniform(0.35, 0.65) * n) if cfg.cut else None
    # Appearance indices: the subject's own first; the second shot another draw of it.
    second = cfg.subjects + subject * cfg.videos_per_subject + video
    looks = (plan_subject(appearance, subject),) + ((plan_subject(appearance, second),) if cut is not None else ())
    rates = np.array([cfg.micro_per_minute, cfg.macro_per_minute, cfg.blinks_per_minute]) / 60.0
    events: list[Event] = []
    t = clearance + int(rng.exponential(1.0 / rates.sum()) * fps) if rates.sum() > 0 else n
    order = int(rng.integers(len(SYNTH_EXPRESSIONS)))
    while t < n:
        kind = ("micro", "macro", "blink")[int(rng.choice(3, p=rates / rates.sum()))]
        low, high = {"micro": MICRO_SECONDS, "macro": MACRO_SECONDS, "blink": BLINK_SECONDS}[kind]
        length = max(int(round(rng.uniform(low, high) * fps)), 4 if kind != "blink" else 3)
        if kind == "micro":
            length = min(length, int(MICRO_SECONDS[1] * fps))  # onset..offset <= 0.5 s: a micro-expression
        onset, offset = t, t + length - 1
        if kind == "blink":
            peak = rng.uniform(*BLINK_PEAK_PX)
            expr = BLINK
        else:
            peak = rng.uniform(*(cfg.micro_peak_px if kind == "micro" else cfg.macro_peak_px))
            expr = SYNTH_EXPRESSIONS[order % len(SYNTH_EXPRESSIONS)]
        span = offset - onset
        apex = onset + min(max(round(rng.uniform(0.35, 0.55) * span), 1), span - 1)
        near_cut = cut is not None and onset - clearance <= cut <= offset + clearance
        if offset + clearance < n and not near_cut:
            events.append(Event(kind, onset, apex, offset, expr, float(peak)))
            order += kind != "blink"
        gap = rng.exponential(1.0 / rates.sum()) * fps
        t = offset + 1 + clearance + int(gap)
    head_rng = seeded_rng(cfg.seed, _KEY_HEAD, subject, video)
    head = tuple((cfg.head_motion_px * head_rng.uniform(0.3, 0.5), head_rng.uniform(4.0, 16.0) * fps,
                  head_rng.uniform(0, 2 * math.pi)) for _ in range(4))
    name = f"s{subject + 1:02d}"
    return VideoPlan(name, f"{name}_{video + 1:02d}", n, fps, looks, cut, tuple(events), head)


class _LookRenderer:
    """One appearance's photo and base sampling grid, reused for every frame it shows."""

    def __init__(self, look: SynthSubject, width: int, height: int) -> None:
        self.look = look
        self.photo = subject_photo(look)
        self.m = look.to_photo()
        self.base = affine_grid(self.m, width, height)
        self.map_x = np.empty_like(self.base[0])
        self.map_y = np.empty_like(self.base[1])
        self.frame = np.empty((height, width, 3), np.float32)

    def render(self, shift: np.ndarray, field: LocalField | None, a: float) -> np.ndarray:
        m = self.m
        np.add(self.base[0], np.float32(-(m[0, 0] * shift[0] + m[0, 1] * shift[1])), out=self.map_x)
        np.add(self.base[1], np.float32(-(m[1, 0] * shift[0] + m[1, 1] * shift[1])), out=self.map_y)
        if field is not None and a > 0.0:
            qx, qy, _ = field.inverse(shift, a)
            roi = (slice(field.y0, field.y1), slice(field.x0, field.x1))
            self.map_x[roi] = m[0, 0] * qx + m[0, 1] * qy + m[0, 2]
            self.map_y[roi] = m[1, 0] * qx + m[1, 1] * qy + m[1, 2]
        return cv2.remap(self.photo, self.map_x, self.map_y, cv2.INTER_LINEAR, dst=self.frame,
                         borderMode=cv2.BORDER_REFLECT_101)


def render_frames(cfg: LongSynthConfig, plan: VideoPlan, start: int = 0, stop: int | None = None):
    """Yield the recording's frames ``start..stop-1`` as ``(H, W, 3)`` uint8 BGR (one buffer, reused).

    Frame ``t``'s noise comes from its own stream, so any stretch renders the same pixels as
    the whole recording does.
    """
    stop = plan.n_frames if stop is None else stop
    renderers = {id(look): _LookRenderer(look, cfg.width, cfg.height) for look in plan.looks}
    fields: dict[int, LocalField] = {}
    events = iter(plan.events)
    event = next(events, None)
    image = np.empty((cfg.height, cfg.width, 3), np.uint8)
    for t in range(start, stop):
        while event is not None and event.offset < t:
            fields.pop(id(event), None)
            event = next(events, None)
        look = plan.look_at(t)
        field, a = None, 0.0
        if event is not None and event.onset <= t:
            field = fields.get(id(event))
            if field is None:
                field = fields[id(event)] = LocalField(look, event.expression, event.peak_px, cfg.width, cfg.height)
            a = event.profile(t)
        frame = renderers[id(look)].render(plan.head_at(t), field, a)
        std = look.noise_std
        if std > 0:
            k = std / math.sqrt(8.0)
            counts = noise_counts(seeded_rng(cfg.seed, _KEY_LONG_NOISE, look.index, t).bit_generator, frame.shape)
            cv2.addWeighted(frame, 1.0, counts, k, -16.0 * k, dst=image, dtype=cv2.CV_8U)
        else:
            np.copyto(image, np.clip(np.rint(frame), 0, 255).astype(np.uint8))
        yield image


def _render_video(cfg: LongSynthConfig, plan: VideoPlan, root: str) -> int:
    path = Path(root) / "videos" / plan.subject / f"{plan.video}.avi"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), plan.fps, (cfg.width, cfg.height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write Motion-JPEG AVI to {path}")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, cfg.jpeg_quality)
    try:
        for frame in render_frames(cfg, plan):
            writer.write(frame)
    finally:
        writer.release()
    return plan.n_frames


@dataclass(frozen=True)
class LongSynthSummary:
    """What :func:`generate_long` wrote."""

    out_dir: Path
    videos: int
    frames: int
    micro: int
    macro: int
    blinks: int
    seconds: float


def generate_long(out_dir: str | os.PathLike[str], config: LongSynthConfig | None = None, *,
                  workers: int = 1, overwrite: bool = False, progress: bool = False) -> LongSynthSummary:
    """Render synthetic long videos with their true intervals under ``out_dir`` (see module doc).

    Written to a sibling temporary folder and renamed into place at the end: an interrupted
    run leaves nothing that looks complete.

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty folder and not ``overwrite``, or
            not a synthetic long-video corpus (never deleted).
    """
    start = time.perf_counter()
    cfg = LongSynthConfig() if config is None else config
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not out_dir.is_dir() or not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite to replace it")
        if not (out_dir / CONFIG_FILE).is_file():
            raise FileExistsError(f"{out_dir} is not a synthetic long-video corpus (no {CONFIG_FILE}); "
                                  "refusing to overwrite it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        plans = [plan_video(cfg, s, v) for s in range(cfg.subjects) for v in range(cfg.videos_per_subject)]
        if workers > 1 and len(plans) > 1:
            from fastmer.interrupt import process_pool  # noqa: PLC0415

            with process_pool(min(workers, len(plans))) as pool:  # spawn; stopped at once when interrupted
                frames = sum(pool.map(_render_video, [cfg] * len(plans), plans, [str(tmp)] * len(plans)))
        else:
            jobs = plans
            if progress:
                from tqdm import tqdm  # noqa: PLC0415

                jobs = tqdm(plans, desc="synth long videos", unit="video")
            frames = sum(_render_video(cfg, plan, str(tmp)) for plan in jobs)
        _write_truth(tmp, plans)
        meta = {"generator": "fastmer.datasets.synth_long", "config": dataclasses.asdict(cfg),
                "videos": {p.video: {"subject": p.subject, "path": f"videos/{p.subject}/{p.video}.avi",
                                     "fps": p.fps, "frames": p.n_frames, "cut": p.cut} for p in plans}}
        (tmp / "README.txt").write_text(_README, encoding="utf-8")
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")  # last: marks it complete
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = {kind: sum(e.kind == kind for p in plans for e in p.events) for kind in ("micro", "macro", "blink")}
    return LongSynthSummary(out_dir, len(plans), frames, counts["micro"], counts["macro"], counts["blink"],
                            time.perf_counter() - start)


def _write_truth(root: Path, plans: list[VideoPlan]) -> None:
    with (root / INTERVALS_FILE).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(INTERVAL_COLUMNS)
        for p in plans:
            for e in p.events:
                if e.kind != "blink":
                    writer.writerow([p.subject, p.video, e.onset, e.apex, e.offset, e.kind, e.expression.label,
                                     e.expression.emotion, e.expression.action_units, f"{e.peak_px:.4f}"])
    with (root / DISTRACTORS_FILE).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(DISTRACTOR_COLUMNS)
        for p in plans:
            rows = [(e.onset, "blink", e.offset) for e in p.events if e.kind == "blink"]
            rows += [(p.cut - 1, "cut", p.cut)] if p.cut is not None else []
            for onset, kind, offset in sorted(rows):
                writer.writerow([p.subject, p.video, kind, onset, offset])


def load(root: str | os.PathLike[str]) -> VideoList:
    """The recordings of a :func:`generate_long` corpus with their true intervals.

    Raises:
        FileNotFoundError: ``root`` or its ``synth_long.json`` / ``intervals.csv`` is missing.
    """
    root = Path(root)
    meta_path = root / CONFIG_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {root} is not a 'fastmer synth --long' corpus")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    truth: dict[str, list[Annotation]] = {}
    with (root / INTERVALS_FILE).open(newline="") as fh:
        for row in csv.DictReader(fh):
            interval = Interval(int(row["onset"]), int(row["offset"]), row["kind"], apex=int(row["apex"]))
            truth.setdefault(row["video"], []).append(
                Annotation(interval, labels=(row["label"],), action_units=row["action_units"]))
    report = LoadReport(NAME, rows=sum(len(v) for v in truth.values()))
    videos = []
    for name, info in meta["videos"].items():
        path = root / info["path"]
        notes = () if path.is_file() else (Defect.FOLDER_MISSING.value,)
        video = LongVideo(dataset=NAME, subject=f"{NAME}/{info['subject']}", video_id=name, source=str(path),
                          fps=float(info["fps"]), notes=notes).with_annotations(tuple(truth.get(name, ())))
        if notes:
            report.note(Defect.FOLDER_MISSING, video.uid)
        videos.append(video)
    return VideoList(videos, report)


def distractors(root: str | os.PathLike[str]) -> dict[str, list[tuple[str, int, int]]]:
    """``{video: [(kind, onset, offset), ...]}``: the blinks and cuts of a corpus (not expressions)."""
    out: dict[str, list[tuple[str, int, int]]] = {}
    with (Path(root) / DISTRACTORS_FILE).open(newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["video"], []).append((row["kind"], int(row["onset"]), int(row["offset"])))
    return out


_README = """\
Synthetic long videos (fastmer.datasets.synth_long) -- NOT real data.

Each recording shows one of fastmer's synthetic subjects (scikit-image's astronaut
photograph, NASA, public domain) with a slowly moving head, micro-expressions (<= 0.5 s),
macro-expressions (0.8-3 s), blinks and one scene cut, all at known frames.
intervals.csv holds the true expression intervals (0-based frame indices, inclusive);
distractors.csv the blinks and cuts; synth_long.json the configuration.
"""
