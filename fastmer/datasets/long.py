"""Long videos with their coded expression intervals: what spotting reads and is scored on.

A clip corpus (:func:`fastmer.datasets.load`) lists pre-cut micro-expressions; a long-video
corpus lists whole recordings, each with every micro- and macro-expression coded in it.
``load_long(name, root)`` reads one in its documented layout and returns a :class:`VideoList`
of :class:`LongVideo`, whose ``.report`` (a :class:`~fastmer.datasets.report.LoadReport`)
counts the annotation defects found and the rows excluded, naming file, row and column,
exactly as for the clip corpora. The corpora (:data:`LONG_DATASETS`):

=============  =========================================  ===  ======================================
name           corpus                                     fps  root
=============  =========================================  ===  ======================================
casme2-lv      CAS(ME)², raw long videos                   30  ``rawpic/sNN/NN_0101name/imgN.jpg``
samm-lv        SAMM Long Videos                           200  ``SAMM_longvideos/006_1/006_1_N.jpg``
casme3-lv      CAS(ME)³ Part A, whole recordings           30  ``spNO.1/a/color/N.jpg``
synth-long     ``fastmer synth --long`` (known truth)       -  ``videos/*.avi`` + ``intervals.csv``
=============  =========================================  ===  ======================================

Frame numbers follow the corpus's own numbering (``img1.jpg`` is frame 1) for image
sequences and are 0-based indices for video files; every interval uses the same numbering.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fastmer.datasets.clip import VIDEO_EXTENSIONS, Clip
from fastmer.datasets.report import LoadReport
from fastmer.phases.intervals import Interval

# name -> module with load(root, **options) -> VideoList
LONG_DATASETS = {
    "casme2-lv": "fastmer.datasets.casme2_lv",
    "samm-lv": "fastmer.datasets.samm_lv",
    "casme3-lv": "fastmer.datasets.casme3_lv",
    "synth-long": "fastmer.datasets.synth_long",
}


@dataclass(frozen=True)
class Annotation:
    """One coded expression of a long video.

    Attributes:
        interval: onset..offset (inclusive), kind ``micro``/``macro``, apex if coded.
        labels: emotion words, canonical (:func:`fastmer.datasets.labels.normalize_emotion`).
        action_units: FACS action units as coded (``"4+7"``).
        notes: annotation defects of this row (:class:`~fastmer.datasets.report.Defect` values).
    """

    interval: Interval
    labels: tuple[str, ...] = ()
    action_units: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LongVideo:
    """One recording of a long-video corpus and its coded expressions.

    Attributes:
        dataset: corpus name (a key of :data:`LONG_DATASETS`).
        subject: subject namespaced by corpus (``"casme2-lv/s15"``): the LOSO group.
        video_id: the recording's name, unique within the subject (``"15_0101disgustingteeth"``).
        source: its frame folder or video file.
        frame_numbers, frame_paths: an image sequence's frames, ascending (empty for a video file).
        fps: frame rate (0 if unknown).
        annotations: the coded expressions, in onset order.
        notes: defects of the recording itself (``folder_missing``...).
    """

    dataset: str
    subject: str
    video_id: str
    source: str
    frame_numbers: tuple[int, ...] = ()
    frame_paths: tuple[str, ...] = ()
    fps: float = 0.0
    annotations: tuple[Annotation, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def uid(self) -> str:
        """``"<subject>/<video_id>"``, unique across corpora."""
        return f"{self.subject}/{self.video_id}"

    @property
    def is_video(self) -> bool:
        """Whether ``source`` is a video file (else a folder of frame images)."""
        return Path(self.source).suffix.lower() in VIDEO_EXTENSIONS

    @property
    def intervals(self) -> tuple[Interval, ...]:
        """The coded intervals (ground truth of spotting)."""
        return tuple(a.interval for a in self.annotations)

    def clip(self, interval: Interval, clip_id: str | None = None, labels: tuple[str, ...] = ()) -> Clip:
        """The frames ``interval.onset..interval.offset`` of this recording as a :class:`Clip`
        (what recognition reads after spotting); its apex is the interval's, if any."""
        clip_id = clip_id or f"{self.video_id}@{interval.onset}-{interval.offset}"
        if self.frame_numbers:
            kept = [(n, p) for n, p in zip(self.frame_numbers, self.frame_paths, strict=True)
                    if interval.onset <= n <= interval.offset]
            numbers, paths = tuple(n for n, _ in kept), tuple(p for _, p in kept)
        else:
            numbers, paths = (), ()
        return Clip(dataset=self.dataset, subject=self.subject, clip_id=clip_id, source=self.source,
                    frame_numbers=numbers, frame_paths=paths, onset=interval.onset, apex=interval.apex,
                    offset=interval.offset, labels=labels, fps=self.fps)

    def with_annotations(self, annotations: tuple[Annotation, ...]) -> LongVideo:
        return replace(self, annotations=tuple(sorted(annotations, key=lambda a: (a.interval.onset,
                                                                                   a.interval.offset))))


class VideoList(list):
    """A list of :class:`LongVideo` with the :class:`LoadReport` of the load that produced it."""

    def __init__(self, videos: list[LongVideo] = (), report: LoadReport | None = None) -> None:
        super().__init__(videos)
        self.report = report or LoadReport(dataset="")


def videos_from_paths(paths: Sequence[str | Path]) -> VideoList:
    """Unannotated long videos: each of ``paths`` a video file, a folder searched for videos or a
    ``.txt`` list of them (as :func:`fastmer.datasets.videos.video_paths`); the subject is the
    video's folder name, the frame rate read from the file when spotted.

    Raises:
        FileNotFoundError, ValueError: as :func:`~fastmer.datasets.videos.video_paths`.
    """
    from fastmer.datasets.videos import video_paths  # noqa: PLC0415

    files = [path for root in paths for path in video_paths(root)]
    report = LoadReport("videos", rows=len(files))
    used: set[tuple[str, str]] = set()
    videos = []
    for path in files:
        subject = f"videos/{path.parent.name or 'videos'}"
        video_id, n = path.stem, 1
        while (subject, video_id) in used:
            n += 1
            video_id = f"{path.stem}_{n}"
        used.add((subject, video_id))
        videos.append(LongVideo(dataset="videos", subject=subject, video_id=video_id, source=str(path)))
    return VideoList(videos, report)


def load_long(name: str, root: str | Path, **options: object) -> VideoList:
    """The recordings of long-video corpus ``name`` stored under ``root``.

    Raises:
        ValueError: unknown corpus, or annotations that cannot be read (naming the file);
        FileNotFoundError: missing root or annotations.
    """
    if name not in LONG_DATASETS:
        raise ValueError(f"unknown long-video dataset {name!r}; known: {', '.join(LONG_DATASETS)}")
    return importlib.import_module(LONG_DATASETS[name]).load(root, **options)


__all__ = ["LONG_DATASETS", "Annotation", "LongVideo", "VideoList", "load_long", "videos_from_paths"]
