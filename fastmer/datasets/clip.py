"""The clip: one annotated micro-expression sample, independent of the corpus it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastmer.errors import ClipError


@dataclass(frozen=True)
class Clip:
    """One micro-expression clip as listed by a dataset's annotations.

    Frame numbers are the dataset's own (CASME II ``img46.jpg`` is frame 46); ``onset``,
    ``apex`` and ``offset`` use the same numbering.

    Attributes:
        dataset: dataset name, e.g. ``"casme2"``.
        subject: subject namespaced by dataset, e.g. ``"casme2/sub01"``, so subjects of
            different corpora never collide in composite protocols.
        clip_id: clip name, unique within the subject (``"EP02_01f"``).
        source: the clip's frame folder (or video file).
        frame_numbers: numbers of the frames found in ``source``, ascending.
        frame_paths: path of each of those frames.
        onset, apex, offset: annotated frame numbers; ``apex`` is None when not annotated
            (it is then spotted from the frames), onset/offset None when unusable.
        labels: annotated emotion words, lower case (one, or several for multi-label sets).
        action_units: FACS action units as annotated (``"4+7"``).
        view: camera view (``"full"`` unless the corpus has several).
        fps: frame rate of the corpus.
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

    def validate_annotation(self) -> tuple[int, int | None, int]:
        """Check onset <= apex <= offset and that all three lie in the clip's frames.

        Returns:
            ``(onset, apex, offset)`` frame numbers.

        Raises:
            ClipError: stage ``annotation``, with the offending values.
        """
        if self.onset is None or self.offset is None:
            raise ClipError("annotation", f"{self.uid}: onset/offset not annotated (onset={self.onset}, offset={self.offset})")
        if not self.onset < self.offset:
            raise ClipError("annotation", f"{self.uid}: onset {self.onset} is not before offset {self.offset}")
        if self.apex is not None and not self.onset < self.apex <= self.offset:
            raise ClipError(
                "annotation", f"{self.uid}: apex {self.apex} is not in (onset {self.onset}, offset {self.offset}]"
            )
        return self.onset, self.apex, self.offset

    def paths_between(self, first: int, last: int) -> list[str]:
        """Paths of frames ``first..last`` (inclusive), all of which must exist.

        Raises:
            ClipError: stage ``decode``, naming the folder and the missing frame numbers.
        """
        if not self.frame_paths:
            raise ClipError("decode", f"{self.uid}: no frames found in {self.source}")
        by_number = dict(zip(self.frame_numbers, self.frame_paths, strict=True))
        missing = [n for n in range(first, last + 1) if n not in by_number]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise ClipError(
                "decode", f"{self.uid}: {len(missing)} frame(s) missing in {self.source} between {first} and {last}: {shown}"
            )
        return [by_number[n] for n in range(first, last + 1)]
