"""Helpers shared by the long-video loaders (:mod:`~fastmer.datasets.casme2_lv`,
:mod:`~fastmer.datasets.samm_lv`, :mod:`~fastmer.datasets.casme3_lv`).

A long-video loader reads its annotation rows as the clip loaders do (:func:`read_sheet`
or :func:`read_rows`, :class:`~fastmer.datasets.common.AnnotationTable` for the rows it
skips and the frame numbers it reads) and hands each usable row to a :class:`LongTable`,
which groups the coded intervals by recording and applies the rules every long-video
corpus shares:

* **onset or offset not coded** (blank, ``0`` where frames are numbered from 1, ``-1``):
  the apex stands in for it, as the MEGC spotting scripts do (CAS(ME)² and SAMM Long
  Videos leave the offset of some expressions uncoded, SAMM the onset of a few), when the
  apex is coded and the other bound is too and the result is an interval; the annotation
  is noted ``onset_missing`` / ``offset_missing`` and ``report.details`` says so. Otherwise
  the row is excluded, counted as ``onset_missing`` / ``offset_missing``;
* **offset before onset**: excluded, counted as ``offset_before_onset``;
* **apex not coded**: noted ``apex_missing``; **apex outside onset..offset**: dropped
  (set to None), noted ``apex_outside``, told in ``report.details``;
* **frames absent**: an interval with a frame between its onset and offset absent from a
  recording that has frames is noted ``frames_missing`` (a recording without any frame is
  noted ``folder_missing`` itself, once, and its intervals are not);
* **duplicates**: a row coding the same recording, onset and offset as an earlier row
  (whatever its kind) is dropped; the earlier row's annotation is kept, noted
  ``duplicate_row`` once, and a detail names both rows and the columns on which they
  disagree.

Annotation defects are counted in ``report.defects`` under ``"<video uid>@<onset>-<offset>"``,
recording defects under the video's uid; every detail line names the file, the row (the
sheet's row number) and the column, ``"<path>, row <n>, column <col>: <problem>; row skipped"``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastmer.datasets.common import (
    AnnotationTable,
    FrameCache,
    SheetRow,
    cell_text,
    is_blank_row,
    natural_key,
    row_number,
    sheet_values,
    shown_value,
)
from fastmer.datasets.long import Annotation, LongVideo, VideoList
from fastmer.datasets.report import Defect, LoadReport
from fastmer.phases.intervals import Interval

ONSET_MISSING = "onset_missing"
OFFSET_MISSING = "offset_missing"
OFFSET_BEFORE_ONSET = "offset_before_onset"
TYPE_UNKNOWN = "type_unknown"

_KIND = re.compile(r"^\s*(micro|macro)", re.IGNORECASE)


def interval_kind(value: object) -> str | None:
    """``"micro"`` or ``"macro"`` for a Type cell starting with that word, case-insensitively
    (``"micro-expression"``, ``"Micro - 1/2"``, ``"Macro"``); None for anything else."""
    match = _KIND.match(cell_text(value))
    return match.group(1).lower() if match else None


def kind_problem(value: object) -> str:
    """Why a Type cell is refused, for a detail line."""
    text = cell_text(value)
    return f"{text!r} is neither a micro- nor a macro-expression" if text else "blank, not an expression type"


def subfolders(folder: Path) -> list[Path]:
    """The folders in ``folder`` in natural order (none when it is not a folder)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def column_letter(index: int) -> str:
    """Spreadsheet letter of the 0-based column ``index`` (0 -> ``A``, 26 -> ``AA``)."""
    from openpyxl.utils import get_column_letter  # noqa: PLC0415  (openpyxl: only with a sheet to read)

    return get_column_letter(index + 1)


def read_rows(path: Path, sheet: str | None = None, names: Sequence[str] = ()) -> list[SheetRow]:
    """Rows of an .xlsx sheet without a header row (CAS(ME)²'s), blank rows left out.

    A row's cells are keyed by ``names`` (the first ``len(names)`` columns) and by their
    column letter beyond; its ``number`` is its row number in the sheet (the first row is 1).

    Raises:
        ValueError: naming the file, when it cannot be read or the sheet is absent.
    """
    return [SheetRow(((names[i] if i < len(names) else column_letter(i), v) for i, v in enumerate(values)), number)
            for number, values in sheet_values(path, sheet) if not is_blank_row(values)]


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def rename_columns(rows: list[SheetRow], aliases: Mapping[str, str]) -> list[SheetRow]:
    """``rows`` with a header named like a key of ``aliases`` (ignoring case and punctuation)
    renamed to its value, unless the header already has that column (CAS(ME)³'s MaE workbook
    writes ``sub``/``seq`` for Subject/Filename). Row numbers are kept."""
    if not rows:
        return rows
    header = list(rows[0])
    wanted = {_key(alias): name for alias, name in aliases.items() if name not in header}
    renames = {h: wanted[_key(h)] for h in header if _key(h) in wanted}
    if not renames or len(set(renames.values())) != len(renames):
        return rows
    return [SheetRow(((renames.get(k, k), v) for k, v in row.items()), row_number(row)) for row in rows]




@dataclass
class _Recording:
    subject: str
    video_id: str
    source: str
    frame_numbers: tuple[int, ...]
    frame_paths: tuple[str, ...]
    notes: tuple[str, ...]
    # (annotation, file, row number) in the order coded
    coded: list[tuple[Annotation, Path, int]] = field(default_factory=list)


class LongTable:
    """The recordings of a long-video corpus and their coded intervals, built row by row.

    Register a row's recording with :meth:`recording` (in order of first mention), then
    :meth:`add` its interval; :meth:`result` gives the :class:`VideoList`. See the module
    docstring for the rules applied.

    Args:
        dataset: the corpus name (``subject`` is namespaced by it).
        fps: the corpus's frame rate.
        report: the load's report.
        frames: the frame lister (:class:`~fastmer.datasets.common.FrameCache`).
    """

    def __init__(self, dataset: str, fps: float, report: LoadReport, frames: FrameCache) -> None:
        self.dataset = dataset
        self.fps = fps
        self.report = report
        self.frames = frames
        self._recordings: dict[str, _Recording] = {}
        self._sources: set[str] = set()
        self._intervals: dict[tuple[str, int, int], int] = {}  # (uid, onset, offset) -> index in its recording's coded

    def recording(self, subject: str, video_id: str, source: Path) -> str:
        """The uid of the recording ``video_id`` of ``subject`` (not namespaced) stored in
        ``source``, registered at its first mention: its frames listed, ``folder_missing``
        noted when it has none."""
        subject = f"{self.dataset}/{subject}"
        uid = f"{subject}/{video_id}"
        if uid not in self._recordings:
            numbers, paths = self.frames(Path(source))
            notes = () if paths else (Defect.FOLDER_MISSING.value,)
            if notes:
                self.report.note(Defect.FOLDER_MISSING, uid)
            self._recordings[uid] = _Recording(subject, video_id, str(source), numbers, paths, notes)
            self._sources.add(str(source))
        return uid

    def add(self, table: AnnotationTable, row: Mapping[str, object], uid: str, *, kind: str, onset: int | None,
            apex: int | None, offset: int | None, labels: tuple[str, ...] = (), action_units: str = "") -> Annotation | None:
        """Add the interval coded by ``row`` (of ``table``'s file) to recording ``uid``; its
        defects noted, the row skipped (told) when it makes no interval or repeats an
        earlier one. ``table.columns`` names the sheet's ``onset``, ``apex``, ``offset``
        (and ``kind``, ``labels``, ``action_units``) columns for the details. Returns the
        annotation kept, or None."""
        columns = table.columns
        notes: list[str] = []
        told: list[str] = []  # details of a kept row
        if onset is None or offset is None:
            bound = "onset" if onset is None else "offset"
            other, other_name = (offset, "offset") if onset is None else (onset, "onset")
            text = cell_text(row.get(columns[bound]))
            shown = f"{text} (not coded)" if text else "blank"
            if other is None:
                problem = f"{shown}, and the {other_name} is not coded either"
            elif apex is None:
                problem = f"{shown}, and no apex to take in its place"
            elif (apex > offset) if onset is None else (apex < onset):
                problem = f"{shown}, and the apex {apex} is {'after' if onset is None else 'before'} the {other_name} {other}"
            else:
                problem = ""
            if problem:
                table.skip(row, f"{bound}_missing", columns[bound], problem)
                return None
            onset, offset = (apex, offset) if onset is None else (onset, apex)
            notes.append(f"{bound}_missing")
            told.append(f"{table.where(row, columns[bound])}: {shown}; the apex {apex} taken as the {bound}")
        if offset < onset:
            table.skip(row, OFFSET_BEFORE_ONSET, columns["offset"], f"{offset} is before the onset {onset}")
            return None
        if apex is None:
            notes.append(Defect.APEX_MISSING.value)
        elif not onset <= apex <= offset:
            notes.append(Defect.APEX_OUTSIDE.value)
            told.append(f"{table.where(row, columns['apex'])}: {apex} is outside the interval {onset}..{offset}; "
                        "apex dropped")
            apex = None
        recording = self._recordings[uid]
        identity = (uid, onset, offset)
        annotation = Annotation(interval=Interval(onset, offset, kind, apex), labels=labels, action_units=action_units)
        if identity in self._intervals:
            self._repeat(table, row, recording, self._intervals[identity], annotation)
            return None
        if recording.frame_paths:
            present = set(recording.frame_numbers)
            if any(n not in present for n in range(onset, offset + 1)):
                notes.append(Defect.FRAMES_MISSING.value)
        annotation = dataclasses.replace(annotation, notes=tuple(notes))
        for line in told:
            self.report.detail(line)
        for note in notes:
            self.report.note(note, f"{uid}@{onset}-{offset}")
        self._intervals[identity] = len(recording.coded)
        recording.coded.append((annotation, table.path, row_number(row)))
        return annotation

    def _repeat(self, table: AnnotationTable, row: Mapping[str, object], recording: _Recording, index: int,
                annotation: Annotation) -> None:
        interval = annotation.interval
        kept, first_path, first_row = recording.coded[index]
        name = f"{recording.subject}/{recording.video_id}@{interval.onset}-{interval.offset}"
        if Defect.DUPLICATE_ROW.value not in kept.notes:
            recording.coded[index] = (dataclasses.replace(kept, notes=(*kept.notes, Defect.DUPLICATE_ROW.value)),
                                      first_path, first_row)
            self.report.note(Defect.DUPLICATE_ROW, name)
        columns = table.columns
        number = row_number(row)
        if first_path == table.path:
            rows, first, this = f"{table.path}, rows {first_row} and {number}", f"row {first_row}", f"row {number}"
        else:
            rows = f"{first_path}, row {first_row} and {table.path}, row {number}"
            first, this = f"{first_path.name} row {first_row}", f"{table.path.name} row {number}"
        line = f"{rows}: both describe {name} (same recording, {columns['onset']} and {columns['offset']})"
        compared = (("kind", kept.interval.kind, interval.kind), ("apex", kept.interval.apex, interval.apex),
                    ("labels", kept.labels, annotation.labels),
                    ("action_units", kept.action_units, annotation.action_units))
        differ = [f"{columns.get(f, f)} ({shown_value(a)} vs {shown_value(b)})" for f, a, b in compared if a != b]
        if differ:
            line += f" but disagree on {', '.join(differ)}; {first}'s annotation kept"
        self.report.detail(f"{line}; {this} skipped")

    def result(self, uncoded: Iterable[tuple[str, str, Path]] = ()) -> VideoList:
        """The recordings in order of first mention, then the ``uncoded`` ones
        (``(subject, video_id, folder)``: recordings on disk that no row codes, listed
        without annotations; those already listed, by folder, are skipped), each with its
        annotations in onset order."""
        for subject, video_id, folder in uncoded:
            if str(folder) not in self._sources:
                self.recording(subject, video_id, folder)
        videos = [
            LongVideo(dataset=self.dataset, subject=r.subject, video_id=r.video_id, source=r.source,
                      frame_numbers=r.frame_numbers, frame_paths=r.frame_paths, fps=self.fps,
                      notes=r.notes).with_annotations(tuple(a for a, _, _ in r.coded))
            for r in self._recordings.values()
        ]
        return VideoList(videos, self.report)


__all__ = ["OFFSET_BEFORE_ONSET", "OFFSET_MISSING", "ONSET_MISSING", "TYPE_UNKNOWN", "LongTable", "column_letter",
           "interval_kind", "kind_problem", "natural_key", "read_rows", "rename_columns", "subfolders"]
