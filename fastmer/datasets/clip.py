"""The clip: one annotated micro-expression sample, independent of the corpus it came from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fastmer.errors import ClipError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIEWS = ("full", "left", "right")


@dataclass(frozen=True)
class Clip:
    """One micro-expression clip as listed by a dataset's annotations.

    For image sequences, frame numbers are the dataset's own (CASME II ``img46.jpg`` is
    frame 46); for a video file they are 0-based frame indices. ``onset``, ``apex`` and
    ``offset`` use the same numbering.

    Attributes:
        dataset: dataset name, e.g. ``"casme2"``.
        subject: subject namespaced by dataset, e.g. ``"casme2/sub01"``, ``"samm/006"``,
            ``"smic/s1"``, so subjects of different corpora never collide in composites.
        clip_id: clip name, unique within the subject (``"EP02_01f"``).
        source: the clip's frame folder or video file.
        frame_numbers: numbers of the frames found in ``source`` (image sequences),
            ascending; empty for a video file.
        frame_paths: path of each of those frames; empty for a video file.
        onset, apex, offset: annotated frame numbers; ``apex`` is None when not annotated,
            onset/offset None when unusable. Validity is checked at extraction.
        labels: annotated emotions, canonical lower-case words (see
            :func:`fastmer.datasets.labels.normalize_emotion`); several for multi-label sets.
        action_units: FACS action units as annotated (``"4+7"``).
        view: ``"full"``, or ``"left"``/``"right"``: the half of side-by-side frames (4DME).
        fps: frame rate of the corpus (0 if unknown).
        notes: annotation defects found while loading (kinds of
            :class:`fastmer.datasets.report.Defect`), for reports and error messages.
    """

    dataset: str
    subject: str
    clip_id: str
    source: str
    frame_numbers: tuple[int, ...]
    frame_paths: tuple[str, ...]
    onset: int | None
    apex: int | None
    offset: int | None
    labels: tuple[str, ...]
    action_units: str = ""
    view: str = "full"
    fps: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def uid(self) -> str:
        """Unique key across corpora: ``"<dataset>/<subject>/<clip_id>[@view]"``."""
        key = f"{self.subject}/{self.clip_id}"
        return key if self.view == "full" else f"{key}@{self.view}"

    @property
    def is_video(self) -> bool:
        """Whether ``source`` is a video file (else a folder of frame images)."""
        return Path(self.source).suffix.lower() in VIDEO_EXTENSIONS

    def with_view(self, view: str) -> Clip:
        """The same clip restricted to one half of side-by-side frames."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        return dataclasses.replace(self, view=view)

    def fingerprint(self) -> str:
        """What the clip's stored features and row depend on, cheaply: ``"<annotation>:<source>"``.

        Two 16-hex-digit digests (sha256 of sorted-key JSON):

        * *annotation*: every field of the clip but its files and ``notes`` (dataset,
          subject, clip_id, onset, apex, offset, labels, action units, view, fps): an
          edited coding sheet changes it. ``notes`` are left out: they comment on fields
          and files that are counted here (an apex outside onset..offset, missing frames,
          an unreadable video) or on other rows (a duplicated sheet row), so they would
          only redo clips whose data did not change when a loader reports differently.
        * *source*: the ``source`` path, the frame numbers and, for each frame file (or the
          video file), its name, size and modification time (``st_mtime_ns``); a missing
          file counts as such. A rewritten, added or removed frame changes it; so does a
          moved corpus (the row's ``source`` names the old place) or a copy that does not
          keep modification times (``cp -p``/``rsync -t`` keep them).

        One ``stat`` per file, no file is read. Take it *before* reading the frames: a file
        changed meanwhile then shows as changed on the next run, never the reverse.

        Example:
            >>> a, s = clip.fingerprint().split(":")
        """
        annotation = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                      if f.name not in ("source", "frame_numbers", "frame_paths", "notes")}
        source = {"source": self.source, "frame_numbers": self.frame_numbers,
                  "files": file_stats(self.frame_paths or (self.source,))}
        return f"{_digest(annotation)}:{_digest(source)}"

    @property
    def apex_is_valid(self) -> bool:
        """An annotated apex strictly after the onset and not after the offset."""
        return (
            self.apex is not None and self.onset is not None and self.offset is not None
            and self.onset < self.apex <= self.offset
        )

    def validate_annotation(self) -> tuple[int, int | None, int]:
        """Check that onset < offset; returns ``(onset, apex or None, offset)``.

        The apex is returned only when :attr:`apex_is_valid`; callers spot it otherwise
        (or reject the clip, see ``fastmer extract --apex``).

        Raises:
            ClipError: stage ``annotation``, with the offending values.
        """
        # Defect.VIDEO_UNREADABLE (fastmer.datasets.report imports this module, not the reverse)
        if self.onset is None and "video_unreadable" in self.notes:
            raise ClipError("decode", f"{self.uid}: {self.source} is not a readable video (its frames could not be "
                                      "counted)")
        if self.onset is None or self.offset is None:
            raise ClipError("annotation", f"{self.uid}: onset/offset not annotated (onset={self.onset}, offset={self.offset})")
        if not self.onset < self.offset:
            raise ClipError("annotation", f"{self.uid}: onset {self.onset} is not before offset {self.offset}")
        return self.onset, self.apex if self.apex_is_valid else None, self.offset


def file_stats(paths: Iterable[str]) -> list[list]:
    """``[path, size, st_mtime_ns]`` of each file (``None, None`` for a missing one): what a
    fingerprint of files records, one ``stat`` each, nothing read."""
    out = []
    for path in paths:
        try:
            info = os.stat(path)
            out.append([path, info.st_size, info.st_mtime_ns])
        except OSError:
            out.append([path, None, None])
    return out


def _digest(value: object) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
