"""CAS(ME)³ Part A (Li et al., IEEE TPAMI 2022), its labelled micro-expressions.

Layout::

    ROOT/<Subject>/<Filename>/color/<N>.jpg      e.g. spNO.1/a/color/0.jpg
    ROOT/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx  (or beside ROOT, or given explicitly)

``<Subject>`` is the spreadsheet's Subject (``spNO.1``, kept as written, stripped ->
subject ``"casme3/spNO.1"``) and ``<Filename>`` a letter naming one recording (``a``). The
frames are in the recording's ``color`` folder (``depth`` beside it is ignored); a
recording folder without ``color`` is read directly. Frames are numbered by the digits
before the extension, from 0 or 1: onset/apex/offset 0 is frame 0. Frame numbers are
integers, integral floats or their text; ``/``, ``-1`` or a blank mean not annotated.

The label spreadsheet is the first ``*part_A*ME*label*.xlsx`` or ``cas(me)3*.xlsx``
(case-insensitive; the macro-expression labels ``*_MaE_*`` are skipped), searched in ROOT
then its parent; its sheet ``label`` (else its first
sheet) has the columns Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion
(names matched ignoring case and punctuation; other columns ignored). Emotions are words
such as ``happy``, ``disgust``, ``others`` (canonical: ``happiness``...).

A long recording holds several micro-expressions, so several rows of a subject may share
a Filename: the clip ids are ``a`` for the first such row, then ``a_2``, ``a_3``... in
sheet order, while every one of them reads the frames of ``<Filename>/color``. 30 fps.

Every row becomes a clip, defects noted. A row repeating an earlier one (same Subject,
Filename, Onset and Offset: the same micro-expression of the same recording) is dropped:
the first row's clip is kept once, noted ``duplicate_row``. Rows without a Subject or
Filename are excluded and counted as ``row_unusable``, rows with a frame number that
cannot be read (``"abc"``, ``12.5``, ``-5``) as ``frame_number_invalid``;
``report.details`` names the row (the sheet's row number) and the column of each.
"""

from __future__ import annotations

from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.common import (
    AnnotationTable,
    FrameCache,
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
from fastmer.datasets.report import ClipList, LoadReport

NAME = "casme3"
FPS = 30.0
SPREADSHEET_PATTERNS = ("*part_A*ME*label*.xlsx", "cas(me)3*.xlsx")
SHEET = "label"
REQUIRED_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "emotion")
COLUMNS = (*REQUIRED_COLUMNS, "AU", "Objective class")
FRAME_COLUMNS = ("Onset", "Apex", "Offset")
COLUMN_OF = {"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
             "labels": "emotion", "action_units": "AU"}


def find_spreadsheet(root: Path) -> Path:
    """The Part A ME label spreadsheet in ROOT or its parent."""
    return find_annotation_file(
        (root, root.parent), SPREADSHEET_PATTERNS, "CAS(ME)3 part A ME label spreadsheet", exclude=("*_MaE_*",)
    )


def frame_folder(root: Path, subject: str, filename: str) -> Path:
    """``ROOT/<Subject>/<Filename>/color`` (names matched case-insensitively), or the
    recording folder itself when it has no ``color`` folder."""
    subject_dir = find_child(root, subject) or root / subject
    recording = find_child(subject_dir, filename) or subject_dir / filename
    color = find_child(recording, "color")
    return color if color is not None and color.is_dir() else (recording if recording.is_dir() else recording / "color")


def load(root: str | Path, *, spreadsheet: str | Path | None = None) -> ClipList:
    """List the labelled micro-expressions of CAS(ME)³ Part A.

    Args:
        root: folder holding the subject folders (``spNO.1`` ...).
        spreadsheet: the ME label workbook; searched in ``root`` and its parent if None.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order, defects noted (never raised),
        each clip once; ``.report`` counts them and the rows excluded, ``.report.details``
        tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the spreadsheet is missing; ValueError: the
        spreadsheet or its columns cannot be read (naming the file).
    """
    root = require_root(root)
    path = explicit_file(spreadsheet, "CAS(ME)3 spreadsheet") if spreadsheet is not None else find_spreadsheet(root)
    rows = match_columns(read_sheet(path, preferred_sheet(path, None, SHEET)), COLUMNS)
    require_columns(rows, REQUIRED_COLUMNS, path)
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    frames = FrameCache()
    for row in rows:
        subject, filename = cell_text(row["Subject"]), cell_text(row["Filename"])
        if not subject or not filename:
            table.skip(row, "row_unusable", "Subject" if not subject else "Filename", "blank")
            continue
        annotation = table.frames(row, FRAME_COLUMNS, allow_zero=True, minus_one_blank=True)
        if annotation is None:
            continue
        onset, apex, offset = annotation
        folder = frame_folder(root, subject, filename)
        numbers, paths = frames(folder)
        clip = Clip(
            dataset=NAME, subject=f"{NAME}/{subject}", clip_id=filename, source=str(folder), frame_numbers=numbers,
            frame_paths=paths, onset=onset, apex=apex, offset=offset, labels=split_labels(row["emotion"]),
            action_units=cell_text(row.get("AU")), fps=FPS,
        )
        table.add(row, clip)
    return table.result()
