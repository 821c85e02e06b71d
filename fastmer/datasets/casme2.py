"""CASME II (Yan et al., PLoS ONE 2014) and corpora in its layout (e.g. fastmer's synthetic one).

Layout::

    ROOT/subXX/EPxx_yy[f]/imgN.jpg        (raw frames; provider crops: reg_imgN.jpg)
    ROOT/CASME2-coding-*.xlsx              (or beside ROOT, or given explicitly)

The coding spreadsheet's first sheet (``Sheet1``) has the columns Subject, Filename,
OnsetFrame, ApexFrame, OffsetFrame, Action Units and Estimated Emotion. Subject may be
text (``'01'``, ``'sub01'``; noted ``subject_id_text``) or an integer. Frame numbers are
integers, integral floats or their text; ``'/'`` or a blank (ApexFrame's usual defect),
``-1`` and ``0`` mean not annotated. 200 fps.

A row is a clip, its folder ``subXX/<Filename>``; its annotation defects are noted, never
raised. A row that repeats a clip already listed (same Subject and Filename) is dropped:
the first row's clip is returned once, noted ``duplicate_row``, and ``report.details``
names both rows and any column on which they disagree. Rows whose Subject is blank or not
a number, whose Filename is blank (``row_unusable``), or whose OnsetFrame, ApexFrame or
OffsetFrame cannot be read (``"abc"``, ``12.5``, ``-5``: ``frame_number_invalid``) are
excluded, counted, and told in ``report.details`` with the sheet's row number and the
column; the load goes on with the other rows.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.common import AnnotationTable, cell_text, list_frames, read_sheet, require_columns
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, Defect, LoadReport

NAME = "casme2"
FPS = 200.0
SPREADSHEET_GLOB = "CASME2-coding-*.xlsx"
REQUIRED_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion")
FRAME_COLUMNS = ("OnsetFrame", "ApexFrame", "OffsetFrame")
# the sheet's column of each clip field, for report details
COLUMN_OF = {"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
             "offset": "OffsetFrame", "labels": "Estimated Emotion", "action_units": "Action Units"}
_FRAME_RE = re.compile(r"^(?:reg_)?img(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)


def find_spreadsheet(root: Path) -> Path:
    """The coding spreadsheet in ROOT or its parent (FileNotFoundError naming both)."""
    for folder in (root, root.parent):
        found = sorted(folder.glob(SPREADSHEET_GLOB))
        if found:
            return found[0]
    raise FileNotFoundError(f"no {SPREADSHEET_GLOB} in {root} or {root.parent}; pass the spreadsheet explicitly")


def subject_folder(value: object) -> tuple[str, bool]:
    """Subject cell ('01', 1, 1.0, 'sub01') -> (folder name 'sub01', whether it was text).

    Raises:
        ValueError: the cell is blank or not a subject number (``'x1'``, ``1.5``).
    """
    text = cell_text(value) if not isinstance(value, bool) else ""
    number = text[3:] if text.lower().startswith("sub") else text
    if not number.isdigit():
        raise ValueError(f"{value!r} is not a subject number" if text else "blank, not a subject number")
    return f"sub{int(number):02d}", isinstance(value, str)


def load(root: str | Path, *, spreadsheet: str | Path | None = None) -> ClipList:
    """List the clips of a CASME II-layout corpus.

    Args:
        root: folder holding the ``subXX`` folders.
        spreadsheet: coding spreadsheet; searched in ``root`` and its parent if None.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order, with annotation defects
        noted (never raised), each clip once; ``.report`` counts them and the rows excluded
        (see the module docstring), ``.report.details`` tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the spreadsheet is missing; ValueError: the
        spreadsheet or its columns cannot be read (naming the file).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    sheet = Path(spreadsheet) if spreadsheet is not None else find_spreadsheet(root)
    rows = read_sheet(sheet, "Sheet1" if spreadsheet is None else None)
    require_columns(rows, REQUIRED_COLUMNS, sheet)
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(sheet, report, COLUMN_OF, segments=False)
    for row in rows:
        fields = table.subject_clip_frames(row, subject_folder, FRAME_COLUMNS)
        if fields is None:
            continue
        subject, was_text, clip_id, (onset, apex, offset) = fields
        folder = root / subject / clip_id
        numbers, paths = list_frames(folder, _FRAME_RE)
        clip = Clip(
            dataset=NAME, subject=f"{NAME}/{subject}", clip_id=clip_id, source=str(folder),
            frame_numbers=numbers, frame_paths=paths, onset=onset, apex=apex, offset=offset,
            labels=split_labels(row["Estimated Emotion"]), action_units=cell_text(row.get("Action Units")),
            fps=FPS,
        )
        kept = table.add(row, clip)
        if kept is not None and was_text:
            report.note(Defect.SUBJECT_ID_TEXT, kept.uid)
    return table.result()
