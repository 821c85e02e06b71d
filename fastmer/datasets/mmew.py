"""MMEW, the Micro-and-Macro Expression Warehouse (Ben et al., IEEE TPAMI 2021), micro part.

Layout::

    ROOT/Micro_Expression/<emotion>/<Filename>/<N>.jpg     e.g. Micro_Expression/happiness/S01_01/12.jpg
    ROOT/MMEW_Micro_Exp.xlsx               (or beside ROOT, or given explicitly)

(as in MEB's loader, a clip's folder is ``/{emotion}/{Filename}/``). ROOT may also be the
``Micro_Expression`` folder itself, i.e. hold the emotion folders. A clip's folder is
``<emotion folder>/<Filename>`` where the emotion folder's name matches the row's
Estimated Emotion case-insensitively (or after canonicalisation, so ``Others`` matches
``other``); when it is not there, the one emotion folder holding a ``<Filename>`` folder is
used (a clip filed under another emotion), else the clip is noted ``folder_missing``.

The spreadsheet is ``MMEW_Micro_Exp.xlsx`` (any ``MMEW*Micro*.xlsx`` is accepted), searched
in ROOT then its parent; its first sheet has the columns Subject, Filename, OnsetFrame,
ApexFrame, OffsetFrame, Action Units, Estimated Emotion, and optional remarks (ignored);
names are matched ignoring case and punctuation.
Subject is kept as written, stripped (``"S01"`` -> subject ``"mmew/S01"``). Frames are
numbered from 1 (the digits before the extension); a frame number 0 in the sheet is read as
frame 0 only when the clip's folder has a frame 0, else as not annotated. Frame numbers are
integers, integral floats or their text; ``/``, ``-1`` or a blank mean not annotated.
90 fps.

Every row becomes a clip, defects noted (a clip id repeated within a subject with another
OnsetFrame/OffsetFrame gets a suffix: ``x``, ``x_2``, ``x_3``...). A row repeating an
earlier one (same Subject, clip folder, OnsetFrame and OffsetFrame) is dropped: the first
row's clip is kept once, noted ``duplicate_row``. Rows without a Subject or Filename are
excluded and counted as ``row_unusable``, rows with a frame number that cannot be read
(``"abc"``, ``12.5``, ``-5``) as ``frame_number_invalid``; ``report.details`` names the
row (the sheet's row number) and the column of each.
"""

from __future__ import annotations

from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.common import (
    AnnotationTable,
    cell_text,
    explicit_file,
    find_annotation_file,
    find_child,
    list_frames,
    match_columns,
    read_sheet,
    require_columns,
    require_root,
)
from fastmer.datasets.labels import normalize_emotion, split_labels
from fastmer.datasets.report import ClipList, LoadReport

NAME = "mmew"
FPS = 90.0
SPREADSHEET_PATTERNS = ("MMEW_Micro_Exp.xlsx", "MMEW*Micro*.xlsx")
EMOTIONS_FOLDER = "Micro_Expression"
REQUIRED_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion")
COLUMNS = (*REQUIRED_COLUMNS, "Action Units")
FRAME_COLUMNS = ("OnsetFrame", "ApexFrame", "OffsetFrame")
COLUMN_OF = {"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
             "offset": "OffsetFrame", "labels": "Estimated Emotion", "action_units": "Action Units"}


def find_spreadsheet(root: Path) -> Path:
    """The MMEW micro-expression spreadsheet in ROOT or its parent."""
    return find_annotation_file((root, root.parent), SPREADSHEET_PATTERNS, "MMEW micro-expression spreadsheet")


def _emotion_folders(base: Path) -> dict[str, Path]:
    """Emotion folder by lower-case and canonical name."""
    folders: dict[str, Path] = {}
    for entry in sorted(base.iterdir()):
        if entry.is_dir():
            folders.setdefault(entry.name.strip().lower(), entry)
            folders.setdefault(normalize_emotion(entry.name), entry)
    return folders


def _clip_folder(base: Path, folders: dict[str, Path], emotion: str, clip_id: str) -> Path:
    written = emotion.strip().lower()
    emotion_dir = folders.get(written) or folders.get(normalize_emotion(emotion))
    if emotion_dir is not None and (emotion_dir / clip_id).is_dir():
        return emotion_dir / clip_id
    elsewhere = {f / clip_id for f in folders.values() if (f / clip_id).is_dir()}
    if len(elsewhere) == 1:
        return elsewhere.pop()
    return (emotion_dir or base / emotion.strip()) / clip_id


def load(root: str | Path, *, spreadsheet: str | Path | None = None) -> ClipList:
    """List the micro-expression clips of MMEW.

    Args:
        root: folder holding ``Micro_Expression`` (or the emotion folders themselves).
        spreadsheet: the annotation workbook; searched in ``root`` and its parent if None.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order, defects noted (never raised),
        each clip once; ``.report`` counts them and the rows excluded, ``.report.details``
        tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the spreadsheet is missing; ValueError: the
        spreadsheet or its columns cannot be read (naming the file).
    """
    root = require_root(root)
    base = find_child(root, EMOTIONS_FOLDER) or root
    path = explicit_file(spreadsheet, "MMEW spreadsheet") if spreadsheet is not None else find_spreadsheet(root)
    rows = match_columns(read_sheet(path), COLUMNS)
    require_columns(rows, REQUIRED_COLUMNS, path)
    folders = _emotion_folders(base)
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    for row in rows:
        subject, clip_id = cell_text(row["Subject"]), cell_text(row["Filename"])
        if not subject or not clip_id:
            table.skip(row, "row_unusable", "Subject" if not subject else "Filename", "blank")
            continue
        emotion = cell_text(row["Estimated Emotion"])
        folder = _clip_folder(base, folders, emotion, clip_id)
        numbers, paths = list_frames(folder)
        zero = bool(numbers) and numbers[0] == 0  # a clip numbered from 0
        frames = table.frames(row, FRAME_COLUMNS, allow_zero=zero, minus_one_blank=True)
        if frames is None:
            continue
        onset, apex, offset = frames
        clip = Clip(
            dataset=NAME, subject=f"{NAME}/{subject}", clip_id=clip_id, source=str(folder), frame_numbers=numbers,
            frame_paths=paths, onset=onset, apex=apex, offset=offset, labels=split_labels(emotion),
            action_units=cell_text(row.get("Action Units")), fps=FPS,
        )
        table.add(row, clip)
    return table.result()
