"""SAMM, the Spontaneous Actions and Micro-Movements dataset (Davison et al., IEEE TAC 2018).

Layout::

    ROOT/sss/sss_i_j/sss_fffff.jpg         e.g. 006/006_1_2/006_05562.jpg
    ROOT/SAMM_Micro_FACS_Codes_v2.xlsx      (or beside ROOT, or given explicitly)

``sss`` is the 3-digit subject, ``sss_i_j`` the clip (the spreadsheet's Filename) and the
number after the last underscore of a frame's name is its frame number (``05562``).

The spreadsheet is ``SAMM_Micro_FACS_Codes_v2.xlsx``; any ``SAMM*_Micro_FACS_Codes*.xlsx``
is accepted too (e.g. ``SAMM_20181215_Micro_FACS_Codes_v2.xlsx``), searched in ROOT then
in its parent. Its sheet ``MICRO_ONLY`` (the first sheet if there is no such sheet) has 13
rows of text above the table, whose header is row 14: Subject, Filename, Inducement Code,
Onset Frame, Apex Frame, Offset Frame, Duration, Micro, Action Units, Estimated Emotion,
Objective Classes, Notes. (If row 14 does not hold the columns, the first of the first 40
rows that does is used; column names are matched ignoring case and punctuation.) Subject
is an integer (``6``) or text (``'006'``, noted as
:attr:`~fastmer.datasets.report.Defect.SUBJECT_ID_TEXT`) -> subject ``"samm/006"``.
Frame numbers are integers, integral floats or their text; Apex Frame may be ``-1``, ``/``
or blank (not annotated; ``0`` too). Estimated Emotion holds words such as ``Anger``,
``Contempt``, ``Happiness``, ``Surprise``, ``Other`` (-> canonical ``"others"``). 200 fps.

Every row becomes a clip, its defects noted (a Filename repeated within a subject with
another Onset/Offset Frame gets a suffix: ``x``, ``x_2``...). A row repeating an earlier
one (same Subject, Filename, Onset Frame and Offset Frame) is dropped: the first row's
clip is kept once, noted ``duplicate_row``. Rows without a Subject or Filename, or with a
Subject that is not a number (footnotes below the table), are excluded and counted as
``row_unusable``; rows with a frame number that cannot be read (``"abc"``, ``12.5``,
``-5``) as ``frame_number_invalid``. ``report.details`` names the row (the sheet's row
number) and the column of each.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.common import (
    AnnotationTable,
    cell_text,
    explicit_file,
    find_annotation_file,
    list_frames,
    locate_header_row,
    match_columns,
    preferred_sheet,
    read_sheet,
    require_columns,
    require_root,
)
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, Defect, LoadReport

NAME = "samm"
FPS = 200.0
SPREADSHEET_PATTERNS = ("SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM*_Micro_FACS_Codes*.xlsx")
SHEET = "MICRO_ONLY"
HEADER_ROW = 14
REQUIRED_COLUMNS = ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion")
COLUMNS = (*REQUIRED_COLUMNS, "Action Units")
FRAME_COLUMNS = ("Onset Frame", "Apex Frame", "Offset Frame")
COLUMN_OF = {"subject": "Subject", "clip": "Filename", "onset": "Onset Frame", "apex": "Apex Frame",
             "offset": "Offset Frame", "labels": "Estimated Emotion", "action_units": "Action Units"}
_FRAME_RE = re.compile(r"^.*_(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)


def find_spreadsheet(root: Path) -> Path:
    """The FACS codes spreadsheet in ROOT or its parent (FileNotFoundError naming both)."""
    return find_annotation_file((root, root.parent), SPREADSHEET_PATTERNS, "SAMM FACS codes spreadsheet")


def subject_folder(value: object) -> tuple[str, bool]:
    """Subject cell (6, '006', ' 6') -> (folder name '006', whether it was text).

    Raises:
        ValueError: the cell is blank or not a subject number.
    """
    text = cell_text(value) if not isinstance(value, bool) else ""
    if not text.isdigit():
        raise ValueError(f"{value!r} is not a subject number" if text else "blank, not a subject number")
    return f"{int(text):03d}", isinstance(value, str)


def load(
    root: str | Path, *, spreadsheet: str | Path | None = None, sheet: str | None = None, header_row: int = HEADER_ROW
) -> ClipList:
    """List the clips of SAMM.

    Args:
        root: folder holding the ``sss`` subject folders.
        spreadsheet: the FACS codes workbook; searched in ``root`` and its parent if None.
        sheet: the sheet to read (None: ``MICRO_ONLY``, or the first sheet if there is none).
        header_row: 1-based row of the column names.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order, with annotation defects
        noted (never raised), each clip once; ``.report`` counts them and the rows
        excluded, ``.report.details`` tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the spreadsheet is missing; ValueError: the
        spreadsheet, its sheet or its columns cannot be read (naming the file).
    """
    root = require_root(root)
    path = explicit_file(spreadsheet, "SAMM spreadsheet") if spreadsheet is not None else find_spreadsheet(root)
    sheet = preferred_sheet(path, sheet, SHEET)
    rows = match_columns(read_sheet(path, sheet, header_row), COLUMNS)
    if not rows or not set(REQUIRED_COLUMNS) <= set(rows[0]):
        found = locate_header_row(path, sheet, REQUIRED_COLUMNS)
        if found is not None and found != header_row:
            header_row = found
            rows = match_columns(read_sheet(path, sheet, header_row), COLUMNS)
        elif found is None and not rows:
            raise ValueError(f"{path} (sheet {sheet or 'first'}): no header row with {', '.join(REQUIRED_COLUMNS)}")
    require_columns(rows, REQUIRED_COLUMNS, path, f" (sheet {sheet or 'first'}, header row {header_row})")
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    for row in rows:
        fields = table.subject_clip_frames(row, subject_folder, FRAME_COLUMNS)
        if fields is None:
            continue
        subject, was_text, clip_id, (onset, apex, offset) = fields
        folder = root / subject / clip_id
        numbers, paths = list_frames(folder, _FRAME_RE)
        clip = Clip(
            dataset=NAME, subject=f"{NAME}/{subject}", clip_id=clip_id, source=str(folder), frame_numbers=numbers,
            frame_paths=paths, onset=onset, apex=apex, offset=offset, labels=split_labels(row["Estimated Emotion"]),
            action_units=cell_text(row.get("Action Units")), fps=FPS,
            notes=(Defect.SUBJECT_ID_TEXT.value,) if was_text else (),
        )
        kept = table.add(row, clip)
        if kept is not None and was_text:
            report.note(Defect.SUBJECT_ID_TEXT, kept.uid)
    return table.result()
