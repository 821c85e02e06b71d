"""SAMM Long Videos (Yap et al., FG 2020): micro- and macro-expression spotting in SAMM's recordings.

Layout::

    ROOT/SAMM_longvideos/sss_v/sss_v_NNNN.jpg     e.g. SAMM_longvideos/006_1/006_1_0001.jpg
    ROOT/SAMM_LongVideos_V2_Release.xlsx            (or beside ROOT, or given explicitly)

The frames are in ``ROOT/SAMM_longvideos`` (matched case-insensitively; else ROOT itself:
ROOT may be that folder), one folder per recording, ``sss_v``: the 3-digit subject and the
recording's number (``006_1``, the video id; subject ``"samm-lv/006"``). A frame's number
is the digits after the last underscore of its name (``0001`` -> 1). 200 fps.

The workbook is ``SAMM_LongVideos_V3_Release.xlsx``, ``SAMM_LongVideos_V2_Release.xlsx``
or any ``SAMM_LongVideos*.xlsx`` (tried in this order), in ROOT then its parent. Its sheet
``FACS_Movement_Only`` (else the first sheet) has rows of text above the table (9 in the
release); the header row is the first of the first 40 rows holding the columns Subject,
Filename, Onset, Apex, Offset, Type (``header_row=`` gives it instead), names matched
ignoring case and punctuation. Action Units is read too; Inducement Code, Duration and
Notes are not. There is no emotion column: the annotations have no labels.

Subject is a number (``6``) or its text (``'006'``) -> ``006``. Filename names one
expression, ``sss_v_k`` (``006_1_2``): its recording is ``sss_v`` (``006_1``), the name
without its last ``_k``. Type is ``Micro - 1/2`` (micro: any text starting with ``micro``,
case-insensitively) or ``Macro``. Frame numbers are integers, integral floats or their
text; ``-1`` (the release's apex not coded), ``0``, ``/`` or a blank mean not coded. An
onset or offset not coded is replaced by the apex (noted ``onset_missing`` /
``offset_missing``) when the apex is coded, else the row is excluded; see
:mod:`fastmer.datasets.long_common` for the rules shared by the long-video loaders
(``apex_missing``, ``apex_outside``, ``frames_missing``, ``duplicate_row``,
``offset_before_onset``).

One :class:`~fastmer.datasets.long.LongVideo` per recording a row names (even if the row is
then excluded; one whose folder is absent too, noted ``folder_missing``), in order of first
mention, then (``uncoded=True``, the default) the ``sss_v`` folders on disk that no row
names, without annotations, in name order: spotting is scored on them too (every interval
spotted there is a false positive). Rows excluded: a Subject that is blank or not a number,
a Filename that is blank or not ``sss_v_k`` (``row_unusable``; footnotes below the table
land here), a Type that is neither (``type_unknown``), an unreadable frame number
(``"abc"``, ``12.5``, ``-5``: ``frame_number_invalid``); ``report.details`` names the file,
row and column of each.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastmer.datasets.common import (
    AnnotationTable,
    FrameCache,
    cell_text,
    explicit_file,
    find_annotation_file,
    find_child,
    locate_header_row,
    match_columns,
    read_sheet,
    require_columns,
    require_root,
    sheet_names,
)
from fastmer.datasets.long import VideoList
from fastmer.datasets.long_common import TYPE_UNKNOWN, LongTable, interval_kind, kind_problem, subfolders
from fastmer.datasets.report import LoadReport
from fastmer.datasets.samm import subject_folder

NAME = "samm-lv"
FPS = 200.0
SPREADSHEET_PATTERNS = ("SAMM_LongVideos_V3_Release.xlsx", "SAMM_LongVideos_V2_Release.xlsx", "SAMM_LongVideos*.xlsx")
FRAME_FOLDER = "SAMM_longvideos"
SHEET = "FACS_Movement_Only"
REQUIRED_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "Type")
COLUMNS = (*REQUIRED_COLUMNS, "Action Units")
FRAME_COLUMNS = ("Onset", "Apex", "Offset")
COLUMN_OF = {"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
             "action_units": "Action Units", "kind": "Type"}
_FRAME_RE = re.compile(r"^.*_(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)
_EXPRESSION = re.compile(r"^(\d+_\d+)_\d+$")
_RECORDING_DIR = re.compile(r"^(\d{3})_\d+$")


def find_spreadsheet(root: Path) -> Path:
    """The long-videos workbook in ROOT or its parent (FileNotFoundError naming both)."""
    return find_annotation_file((root, root.parent), SPREADSHEET_PATTERNS, "SAMM Long Videos workbook")


def frames_root(root: Path) -> Path:
    """``ROOT/SAMM_longvideos``, else ROOT."""
    found = find_child(root, FRAME_FOLDER)
    return found if found is not None and found.is_dir() else root


def recording_of(filename: str) -> str | None:
    """The recording of an expression's Filename (``006_1_2`` -> ``006_1``), or None."""
    match = _EXPRESSION.match(filename)
    return match.group(1) if match else None


def load(root: str | Path, *, spreadsheet: str | Path | None = None, sheet: str | None = None,
         header_row: int | None = None, uncoded: bool = True) -> VideoList:
    """List the long videos of SAMM and their coded micro- and macro-expressions.

    Args:
        root: folder holding ``SAMM_longvideos``, or that folder itself.
        spreadsheet: the workbook; searched in ``root`` and its parent if None.
        sheet: the sheet to read (None: ``FACS_Movement_Only``, or the first sheet).
        header_row: 1-based row of the column names (None: found).
        uncoded: also list the recordings on disk that no row codes (no annotations).

    Returns:
        One :class:`~fastmer.datasets.long.LongVideo` per recording (see the module
        docstring), defects noted (never raised); ``.report`` counts them and the rows
        excluded, ``.report.details`` tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the workbook is missing; ValueError: the workbook,
        its sheet or its columns cannot be read (naming the file).
    """
    root = require_root(root)
    path = explicit_file(spreadsheet, "SAMM Long Videos workbook") if spreadsheet is not None else find_spreadsheet(root)
    names = sheet_names(path)
    if sheet is None:
        sheet = SHEET if SHEET in names else None
    elif sheet not in names:
        raise ValueError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(names)})")
    where = f"{path} (sheet {sheet or names[0]})"
    if header_row is None:
        header_row = locate_header_row(path, sheet, REQUIRED_COLUMNS)
        if header_row is None:
            raise ValueError(f"{where}: no header row with {', '.join(REQUIRED_COLUMNS)} in its first 40 rows")
    rows = match_columns(read_sheet(path, sheet, header_row), COLUMNS)
    require_columns(rows, REQUIRED_COLUMNS, path, f" (sheet {sheet or names[0]}, header row {header_row})")
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    folder = frames_root(root)
    long = LongTable(NAME, FPS, report, FrameCache(_FRAME_RE))
    for row in rows:
        try:
            subject, _ = subject_folder(row.get("Subject"))
        except ValueError as exc:
            table.skip(row, "row_unusable", "Subject", str(exc))
            continue
        filename = cell_text(row.get("Filename"))
        recording = recording_of(filename)
        if recording is None:
            problem = f"{filename!r} does not read <subject>_<recording>_<expression> (006_1_2)" if filename else "blank"
            table.skip(row, "row_unusable", "Filename", problem)
            continue
        uid = long.recording(subject, recording, find_child(folder, recording) or folder / recording)
        kind = interval_kind(row.get("Type"))
        if kind is None:
            table.skip(row, TYPE_UNKNOWN, "Type", kind_problem(row.get("Type")))
            continue
        frames = table.frames(row, FRAME_COLUMNS, allow_zero=False, minus_one_blank=True)
        if frames is None:
            continue
        onset, apex, offset = frames
        long.add(table, row, uid, kind=kind, onset=onset, apex=apex, offset=offset,
                 action_units=cell_text(row.get("Action Units")))
    on_disk = [(m.group(1), p.name, p) for p in subfolders(folder) if (m := _RECORDING_DIR.match(p.name))]
    return long.result(on_disk if uncoded else ())
