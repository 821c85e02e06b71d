"""CAS(ME)³ Part A (Li et al., IEEE TPAMI 2022), its whole recordings: micro- and macro-expression spotting.

Layout (that of the clip loader, :mod:`fastmer.datasets.casme3`)::

    ROOT/<Subject>/<Filename>/color/<N>.jpg                    e.g. spNO.1/a/color/0.jpg
    ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx              micro-expressions
    ROOT/cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx     macro-expressions
                                                               (or beside ROOT, or given explicitly)

A recording is one (Subject, Filename) pair: subject ``"casme3-lv/spNO.1"`` (kept as
written, stripped), video id ``a``, frames in its ``color`` folder (found as
:func:`fastmer.datasets.casme3.frame_folder` finds them), numbered by the digits before the
extension, from 0: frame number 0 is frame 0. 30 fps.

Two workbooks, each searched in ROOT then its parent: the ME labels, found as
:func:`fastmer.datasets.casme3.find_spreadsheet` finds them (``*part_A*ME*label*.xlsx`` or
``cas(me)3*.xlsx``, not ``*_MaE_*``), code the micro-expressions; the MaE labels
(``*part_A*MaE*label*.xlsx``) the macro-expressions. The sheet read is ``label``, else the
first sheet (the MaE release's ``Sheet1``); the columns are Subject, Filename, Onset, Apex,
Offset (the MaE release's ``sub`` and ``seq`` read as Subject and Filename), and, if
present, AU and emotion (labels: ``happy`` -> ``happiness``...); names matched ignoring
case and punctuation, other columns (Objective class) ignored. Without an MaE workbook the
micro-expressions alone are loaded and ``report.details`` says, in one line, that
macro-expressions are not loaded, hence not scored (``macro_spreadsheet=`` names it; a
named workbook that is absent is an error).

Frame numbers are integers, integral floats or their text; ``-1``, ``/`` or a blank mean
not coded. An onset or offset not coded is replaced by the apex (noted ``onset_missing`` /
``offset_missing``) when the apex is coded, else the row is excluded; see
:mod:`fastmer.datasets.long_common` for the rules shared by the long-video loaders
(``apex_missing``, ``apex_outside``, ``frames_missing``, ``offset_before_onset``;
``duplicate_row``, also across the two workbooks: an interval coded as both a micro- and a
macro-expression is kept as the ME workbook codes it).

One :class:`~fastmer.datasets.long.LongVideo` per recording a row names (even if the row is
then excluded; one whose folder is absent too, noted ``folder_missing``), in order of first
mention (the ME rows, then the MaE rows), then (``uncoded=True``, the default) the
recordings on disk that no row names (``ROOT/<subject>/<recording>/color`` folders),
without annotations, in natural order: spotting is scored on them too (every interval
spotted there is a false positive). Rows without a Subject or Filename are excluded and
counted as ``row_unusable``, rows with an unreadable frame number (``"abc"``, ``12.5``,
``-5``) as ``frame_number_invalid``; ``report.details`` names the file, row and column of each.
"""

from __future__ import annotations

from pathlib import Path

from fastmer.datasets.casme3 import SHEET, find_spreadsheet, frame_folder
from fastmer.datasets.common import (
    AnnotationTable,
    FrameCache,
    SheetRow,
    cell_text,
    explicit_file,
    find_annotation_file,
    find_child,
    match_columns,
    preferred_sheet,
    read_sheet,
    require_columns,
    require_root,
)
from fastmer.datasets.labels import split_labels
from fastmer.datasets.long import VideoList
from fastmer.datasets.long_common import LongTable, rename_columns, subfolders
from fastmer.datasets.report import LoadReport

NAME = "casme3-lv"
FPS = 30.0
MACRO_PATTERNS = ("*part_A*MaE*label*.xlsx",)
REQUIRED_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset")
COLUMNS = (*REQUIRED_COLUMNS, "AU", "emotion")
ALIASES = {"sub": "Subject", "seq": "Filename"}
FRAME_COLUMNS = ("Onset", "Apex", "Offset")
COLUMN_OF = {"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
             "labels": "emotion", "action_units": "AU"}


def find_macro_spreadsheet(root: Path) -> Path:
    """The Part A MaE label workbook in ROOT or its parent (FileNotFoundError naming both)."""
    return find_annotation_file((root, root.parent), MACRO_PATTERNS, "CAS(ME)3 part A MaE label spreadsheet")


def _rows(path: Path) -> list[SheetRow]:
    rows = rename_columns(match_columns(read_sheet(path, preferred_sheet(path, None, SHEET)), COLUMNS), ALIASES)
    require_columns(rows, REQUIRED_COLUMNS, path)
    return rows


def load(root: str | Path, *, spreadsheet: str | Path | None = None, macro_spreadsheet: str | Path | None = None,
         uncoded: bool = True) -> VideoList:
    """List the recordings of CAS(ME)³ Part A and their coded micro- and macro-expressions.

    Args:
        root: folder holding the subject folders (``spNO.1`` ...).
        spreadsheet: the ME label workbook; searched in ``root`` and its parent if None.
        macro_spreadsheet: the MaE label workbook; searched likewise if None (then, if
            absent, only micro-expressions are loaded).
        uncoded: also list the recordings on disk that no row codes (no annotations).

    Returns:
        One :class:`~fastmer.datasets.long.LongVideo` per recording (see the module
        docstring), defects noted (never raised); ``.report`` counts them and the rows
        excluded, ``.report.details`` tells each row-level finding.

    Raises:
        FileNotFoundError: ``root``, the ME workbook or a named MaE workbook is missing;
        ValueError: a workbook or its columns cannot be read (naming the file).
    """
    root = require_root(root)
    micro = explicit_file(spreadsheet, "CAS(ME)3 spreadsheet") if spreadsheet is not None else find_spreadsheet(root)
    sources = [(micro, "micro", _rows(micro))]
    missing = ""
    if macro_spreadsheet is not None:
        macro = explicit_file(macro_spreadsheet, "CAS(ME)3 MaE spreadsheet")
    else:
        try:
            macro = find_macro_spreadsheet(root)
        except FileNotFoundError:
            macro = None
            missing = (f"no CAS(ME)3 part A MaE label spreadsheet ({' or '.join(MACRO_PATTERNS)}) in {root} or "
                       f"{root.parent}: macro-expressions not loaded, only micro-expressions are scored")
    if macro is not None:
        sources.append((macro, "macro", _rows(macro)))
    report = LoadReport(NAME, rows=sum(len(rows) for _, _, rows in sources))
    if missing:
        report.detail(missing)
    long = LongTable(NAME, FPS, report, FrameCache())
    for path, kind, rows in sources:
        table = AnnotationTable(path, report, COLUMN_OF, segments=True)
        for row in rows:
            subject, filename = cell_text(row["Subject"]), cell_text(row["Filename"])
            if not subject or not filename:
                table.skip(row, "row_unusable", "Subject" if not subject else "Filename", "blank")
                continue
            uid = long.recording(subject, filename, frame_folder(root, subject, filename))
            frames = table.frames(row, FRAME_COLUMNS, allow_zero=True, minus_one_blank=True)
            if frames is None:
                continue
            onset, apex, offset = frames
            long.add(table, row, uid, kind=kind, onset=onset, apex=apex, offset=offset,
                     labels=split_labels(row.get("emotion")), action_units=cell_text(row.get("AU")))
    on_disk = [(subject.name, recording.name, color) for subject in subfolders(root)
               for recording in subfolders(subject)
               if (color := find_child(recording, "color")) is not None and color.is_dir()]
    return long.result(on_disk if uncoded else ())
