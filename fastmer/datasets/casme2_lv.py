"""CAS(ME)² (Qu et al., IEEE TAC 2018), its raw long videos: micro- and macro-expression spotting.

Layout::

    ROOT/rawpic/sNN/NN_CCCCname/imgN.jpg      e.g. rawpic/s15/15_0101disgustingteeth/img1.jpg
    ROOT/CAS(ME)^2code_final(Updated).xlsx     (or beside ROOT, or given explicitly)

The frames are in ``ROOT/rawpic`` (else ``ROOT/rawpic_crop``, else ROOT itself: ROOT may be
the ``rawpic`` folder), one folder ``sNN`` per subject (``s15``: subject ``"casme2-lv/s15"``)
holding one folder per recording, ``<NN>_<CCCC><name>``: the subject code, the 4-digit code
of the video shown (``0101``) and its name (``15_0101disgustingteeth``, the video id).
Frames are ``imgN.jpg`` numbered from 1; the workbook's frame numbers are these N. 30 fps.

The coding workbook is ``CAS(ME)^2code_final(Updated).xlsx``, ``CAS(ME)^2code_final.xlsx``,
``code_final.xlsx`` or any ``*code_final*.xlsx`` (tried in this order), in ROOT then its
parent. It has three sheets, none with a header row:

* the coding sheet (``CASFEcode_final``: the first sheet that is not a naming sheet), one
  expression a row (a first row whose frame cells are all text is taken for a header and
  skipped). Its columns, which the details name by letter and meaning: A (participant) the
  participant number (``1``); B (expression) the expression's name (``disgust1_3``: the
  video's name, ``disgust1``, is the text before the first underscore); C (onset), D (apex),
  E (offset); F (action units); G (emotion) the coded emotion class (``negative``,
  ``positive``, ``surprise``, ``others``...: the annotation's labels); H (type)
  ``macro-expression`` or ``micro-expression`` (any text starting with ``macro`` or
  ``micro``, case-insensitively); I (self-report) the emotion the participant reported,
  not read.
* ``naming rule1`` (else the second sheet): participant number -> subject code (``1`` ->
  ``15`` or ``s15``: the folder ``s15``).
* ``naming rule2`` (else the third sheet): 4-digit video code (``0101``, or the number
  ``101``, zero-padded) -> video name (``disgust1``, matched case-insensitively).

The naming sheets' column order (and number) varies between releases, so their columns are
detected (``rule1_columns=`` / ``rule2_columns=`` give them as letters instead). Only the
rows holding two numbers (rule 1) or a number and a text (rule 2) are read, and a column
is a candidate when every such row's cell in it reads so:

* rule 1: the subject column is the one whose cells carry an ``s`` prefix, if exactly one
  does; else the one whose numbers name the most ``sNN`` folders on disk, ties going to the
  larger numbers (participant numbers count from 1, subject codes run from 15 to 40). The
  participant column is, among the others, the one holding the most participant numbers of
  the coding sheet, ties going to the rightmost (the order the MEGC scripts read: B the
  subject code, C the participant number).
* rule 2: the code column is, among the all-digit ones, the one whose codes are most often
  those of recording folders on disk, then the one most often written as 4-character text,
  then the leftmost; the name column is, among the all-text ones, the one holding the most
  video names of the coding sheet, then the leftmost.

A row's recording is the folder of ``s<code>`` named ``<NN>_<video code>...`` (the first
by name); when there is none it is listed all the same, video id ``<NN>_<video code>``,
noted ``folder_missing``. Frame numbers are integers, integral floats or their text; ``0``,
``-1``, ``/`` or a blank mean not coded. The release codes the offset of some expressions
as ``0``: the apex then stands in for it, as in the MEGC spotting scripts (noted
``offset_missing``, told in ``report.details``); a row whose onset or offset is not coded
and has no apex to take its place is excluded (``onset_missing`` / ``offset_missing``).
:mod:`fastmer.datasets.long_common` tells the rules shared by the long-video loaders
(``apex_missing``, ``apex_outside``, ``frames_missing``, ``duplicate_row``,
``offset_before_onset``).

One :class:`~fastmer.datasets.long.LongVideo` per recording a row names (even if the row is
then excluded), in order of first mention, then (``uncoded=True``, the default) the
recordings on disk that no row names, without annotations, in subject then name order:
spotting is scored on them too (every interval spotted there is a false positive). Rows
excluded: a participant cell that is blank or not a number, a blank expression name
(``row_unusable``); a participant or video name that the naming sheets do not list
(``recording_unknown``); a type that is neither (``type_unknown``); an unreadable frame
number (``"abc"``, ``12.5``, ``-5``: ``frame_number_invalid``). ``report.details`` names
the file, row and column of each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fastmer.datasets.common import (
    AnnotationTable,
    FrameCache,
    SheetRow,
    cell_text,
    explicit_file,
    find_annotation_file,
    find_child,
    require_root,
    sheet_names,
)
from fastmer.datasets.labels import split_labels
from fastmer.datasets.long import VideoList
from fastmer.datasets.long_common import (
    TYPE_UNKNOWN,
    LongTable,
    interval_kind,
    kind_problem,
    read_rows,
    subfolders,
)
from fastmer.datasets.report import LoadReport

NAME = "casme2-lv"
FPS = 30.0
SPREADSHEET_PATTERNS = ("CAS(ME)^2code_final(Updated).xlsx", "CAS(ME)^2code_final.xlsx", "code_final.xlsx",
                        "*code_final*.xlsx")
FRAME_FOLDERS = ("rawpic", "rawpic_crop")
RULE1_SHEET, RULE2_SHEET = "naming rule1", "naming rule2"
# the coding sheet's columns, by position, as the details name them
COLUMNS = ("A (participant)", "B (expression)", "C (onset)", "D (apex)", "E (offset)", "F (action units)",
           "G (emotion)", "H (type)", "I (self-report)")
PARTICIPANT, EXPRESSION, ONSET, APEX, OFFSET, AUS, EMOTION, TYPE = COLUMNS[:8]
FRAME_COLUMNS = (ONSET, APEX, OFFSET)
COLUMN_OF = {"subject": PARTICIPANT, "clip": EXPRESSION, "onset": ONSET, "apex": APEX, "offset": OFFSET,
             "labels": EMOTION, "action_units": AUS, "kind": TYPE}
_FRAME_RE = re.compile(r"^img(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)
_SUBJECT_DIR = re.compile(r"^s(\d+)$", re.IGNORECASE)
_RECORDING_DIR = re.compile(r"^(\d+)_(\d{4})(?!\d)")


def find_spreadsheet(root: Path) -> Path:
    """The coding workbook in ROOT or its parent (FileNotFoundError naming both)."""
    return find_annotation_file((root, root.parent), SPREADSHEET_PATTERNS, "CAS(ME)2 coding workbook")


def frames_root(root: Path) -> Path:
    """``ROOT/rawpic``, else ``ROOT/rawpic_crop``, else ROOT."""
    for name in FRAME_FOLDERS:
        found = find_child(root, name)
        if found is not None and found.is_dir():
            return found
    return root


def _number(value: object, prefix: bool = False) -> tuple[int | None, bool]:
    """A cell as a whole number (``15``, ``"15"``, ``15.0``; ``"s15"`` when ``prefix``) and
    whether it carried the ``s`` prefix; (None, False) otherwise."""
    if isinstance(value, bool):
        return None, False
    text = cell_text(value)
    prefixed = prefix and text[:1] in ("s", "S")
    digits = text[1:] if prefixed else text
    return (int(digits), prefixed) if digits.isdigit() else (None, False)


def _letters(rows: list[SheetRow]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _given(columns: tuple[str, str], rows: list[SheetRow], path: Path, sheet: str, option: str) -> tuple[str, str]:
    letters = _letters(rows)
    chosen = tuple(str(c).strip().upper() for c in columns)
    missing = [c for c in chosen if c not in letters]
    if len(chosen) != 2 or missing:
        raise ValueError(f"{path}, sheet {sheet!r}: {option}={columns!r} must name two of its columns "
                         f"({', '.join(letters) or 'none'})")
    return chosen  # type: ignore[return-value]


def subject_codes(rows: list[SheetRow], path: Path, sheet: str, participants: set[int], folders: set[int],
                  columns: tuple[str, str] | None = None) -> dict[int, str]:
    """Naming rule 1: participant number -> subject folder name (``s15``).

    Args:
        rows: the sheet's rows (:func:`~fastmer.datasets.long_common.read_rows`, cells by letter).
        participants: the participant numbers of the coding sheet.
        folders: the numbers of the ``sNN`` folders on disk.
        columns: (participant column, subject column) letters, instead of detecting them.

    Raises:
        ValueError: naming the file and sheet, when the columns cannot be told.
    """
    data = [r for r in rows if sum(_number(v, prefix=True)[0] is not None for v in r.values()) >= 2]
    if columns is not None:
        participant_col, subject_col = _given(columns, rows, path, sheet, "rule1_columns")
    else:
        candidates = [c for c in _letters(data) if all(_number(r.get(c), prefix=True)[0] is not None for r in data)]
        values = {c: [_number(r.get(c), prefix=True)[0] for r in data] for c in candidates}
        prefixed = [c for c in candidates if any(_number(r.get(c), prefix=True)[1] for r in data)]
        if len(candidates) < 2:
            raise ValueError(f"{path}, sheet {sheet!r}: no two columns of participant numbers and subject codes; "
                             "pass rule1_columns=(participant, subject) letters")
        subject_col = prefixed[0] if len(prefixed) == 1 else max(
            candidates, key=lambda c: (sum(v in folders for v in set(values[c])), max(values[c])))
        others = [c for c in candidates if c != subject_col]
        participant_col = max(reversed(others), key=lambda c: sum(v in participants for v in set(values[c])))
    mapping: dict[int, str] = {}
    for row in data:
        participant, _ = _number(row.get(participant_col))
        subject, _ = _number(row.get(subject_col), prefix=True)
        if participant is not None and subject is not None:
            mapping.setdefault(participant, f"s{subject:02d}")
    return mapping


def video_codes(rows: list[SheetRow], path: Path, sheet: str, names: set[str], codes: set[str],
                columns: tuple[str, str] | None = None) -> dict[str, str]:
    """Naming rule 2: video name (lower case) -> 4-digit video code (``"0101"``).

    Args:
        rows: the sheet's rows (cells by letter).
        names: the video names (lower case) of the coding sheet.
        codes: the video codes of the recording folders on disk.
        columns: (code column, name column) letters, instead of detecting them.

    Raises:
        ValueError: naming the file and sheet, when the columns cannot be told.
    """

    def is_code(value: object) -> bool:
        return _number(value)[0] is not None

    def is_name(value: object) -> bool:
        return bool(cell_text(value)) and not is_code(value)

    data = [r for r in rows if any(is_code(v) for v in r.values()) and any(is_name(v) for v in r.values())]
    if columns is not None:
        code_col, name_col = _given(columns, rows, path, sheet, "rule2_columns")
    else:
        letters = _letters(data)
        code_cols = [c for c in letters if data and all(is_code(r.get(c)) for r in data)]
        name_cols = [c for c in letters if data and all(is_name(r.get(c)) for r in data)]
        if not code_cols or not name_cols:
            raise ValueError(f"{path}, sheet {sheet!r}: no column of video codes (all digits) beside a column of "
                             "video names; pass rule2_columns=(code, name) letters")
        code_col = max(code_cols, key=lambda c: (
            sum(f"{_number(r.get(c))[0]:04d}" in codes for r in data),
            sum(isinstance(r.get(c), str) and len(cell_text(r.get(c))) == 4 for r in data)))
        name_col = max(name_cols, key=lambda c: sum(cell_text(r.get(c)).lower() in names for r in data))
    mapping: dict[str, str] = {}
    for row in data:
        code, name = _number(row.get(code_col))[0], cell_text(row.get(name_col)).lower()
        if code is not None and name:
            mapping.setdefault(name, f"{code:04d}")
    return mapping


def _sheets(path: Path) -> tuple[str, str, str]:
    names = sheet_names(path)

    def named(rule: str, position: int) -> str | None:
        wanted = re.compile(rf"rule\s*_?{rule}$", re.IGNORECASE)
        found = [n for n in names if wanted.search(n.strip())]
        return found[0] if found else (names[position] if len(names) > position else None)

    rule1, rule2 = named("1", 1), named("2", 2)
    if rule1 is None or rule2 is None or len(names) < 3:
        raise ValueError(f"{path}: needs the coding sheet and the sheets {RULE1_SHEET!r} and {RULE2_SHEET!r} "
                         f"(sheets: {', '.join(names)})")
    coding = next(n for n in names if n not in (rule1, rule2))
    return coding, rule1, rule2


def _is_header(row: SheetRow) -> bool:
    def text(value: object) -> bool:
        return isinstance(value, str) and not re.fullmatch(r"\s*[+-]?\d+(?:\.0*)?\s*", value) and bool(value.strip())

    return all(text(row.get(c)) for c in FRAME_COLUMNS)


def _on_disk(folder: Path) -> Iterable[tuple[str, str, Path]]:
    """(subject, video id, folder) of the recording folders on disk, in natural order."""
    for subject_dir in subfolders(folder):
        match = _SUBJECT_DIR.match(subject_dir.name)
        if match is None:
            continue
        for recording in subfolders(subject_dir):
            if _RECORDING_DIR.match(recording.name):
                yield f"s{int(match.group(1)):02d}", recording.name, recording


def recording_folder(folder: Path, subject: str, code: str) -> tuple[str, Path]:
    """(video id, folder) of the recording of video ``code`` by ``subject`` (``s15``) when
    ``<folder>/s15`` has no folder ``15_<code>...``: ``15_<code>`` (absent)."""
    video_id = f"{int(subject[1:]):02d}_{code}"
    return video_id, (find_child(folder, subject) or folder / subject) / video_id


def load(root: str | Path, *, spreadsheet: str | Path | None = None, rule1_columns: tuple[str, str] | None = None,
         rule2_columns: tuple[str, str] | None = None, uncoded: bool = True) -> VideoList:
    """List the long videos of CAS(ME)² and their coded micro- and macro-expressions.

    Args:
        root: folder holding ``rawpic`` (or ``rawpic_crop``), or that folder itself.
        spreadsheet: the coding workbook; searched in ``root`` and its parent if None.
        rule1_columns: (participant number, subject code) column letters of the
            ``naming rule1`` sheet, e.g. ``("C", "B")``; detected if None.
        rule2_columns: (video code, video name) column letters of ``naming rule2``, e.g.
            ``("A", "B")``; detected if None.
        uncoded: also list the recordings on disk that no row codes (no annotations).

    Returns:
        One :class:`~fastmer.datasets.long.LongVideo` per recording (see the module
        docstring), defects noted (never raised); ``.report`` counts them and the rows
        excluded, ``.report.details`` tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the workbook is missing; ValueError: the workbook,
        its sheets or their columns cannot be read (naming the file).
    """
    root = require_root(root)
    path = explicit_file(spreadsheet, "CAS(ME)2 coding workbook") if spreadsheet is not None else find_spreadsheet(root)
    coding, rule1, rule2 = _sheets(path)
    rows = read_rows(path, coding, COLUMNS)
    if rows and rows[0].number == 1 and _is_header(rows[0]):
        rows = rows[1:]
    folder = frames_root(root)
    on_disk = list(_on_disk(folder))
    participants = {p for p in (_number(r.get(PARTICIPANT))[0] for r in rows) if p is not None}
    names = {cell_text(r.get(EXPRESSION)).split("_")[0].lower() for r in rows}
    subjects = subject_codes(read_rows(path, rule1), path, rule1, participants,
                             {int(s[1:]) for s, _, _ in on_disk}, rule1_columns)
    videos = video_codes(read_rows(path, rule2), path, rule2, names,
                         {_RECORDING_DIR.match(v).group(2) for _, v, _ in on_disk}, rule2_columns)
    recordings: dict[tuple[str, str], tuple[str, Path]] = {}
    for subject, video_id, recording in on_disk:  # (subject, video code) -> its folder, the first by name
        recordings.setdefault((subject, _RECORDING_DIR.match(video_id).group(2)), (video_id, recording))
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    long = LongTable(NAME, FPS, report, FrameCache(_FRAME_RE))
    for row in rows:
        participant, _ = _number(row.get(PARTICIPANT))
        if participant is None:
            value = row.get(PARTICIPANT)
            table.skip(row, "row_unusable", PARTICIPANT,
                       f"{value!r} is not a participant number" if cell_text(value) else "blank, not a participant number")
            continue
        expression = cell_text(row.get(EXPRESSION))
        if not expression:
            table.skip(row, "row_unusable", EXPRESSION, "blank")
            continue
        video_name = expression.split("_")[0]
        if participant not in subjects:
            table.skip(row, "recording_unknown", PARTICIPANT, f"participant {participant} is not in sheet {rule1!r}")
            continue
        if video_name.lower() not in videos:
            table.skip(row, "recording_unknown", EXPRESSION, f"video {video_name!r} is not in sheet {rule2!r}")
            continue
        subject, code = subjects[participant], videos[video_name.lower()]
        uid = long.recording(subject, *(recordings.get((subject, code)) or recording_folder(folder, subject, code)))
        kind = interval_kind(row.get(TYPE))
        if kind is None:
            table.skip(row, TYPE_UNKNOWN, TYPE, kind_problem(row.get(TYPE)))
            continue
        frames = table.frames(row, FRAME_COLUMNS, allow_zero=False, minus_one_blank=True)
        if frames is None:
            continue
        onset, apex, offset = frames
        long.add(table, row, uid, kind=kind, onset=onset, apex=apex, offset=offset,
                 labels=split_labels(row.get(EMOTION)), action_units=cell_text(row.get(AUS)))
    return long.result(on_disk if uncoded else ())

