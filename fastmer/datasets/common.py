"""Helpers shared by the dataset adapters: spreadsheets, frame listings, annotation checks.

Every loader that reads an annotation table (a spreadsheet or a manifest) goes through the
same three steps here: :func:`read_sheet` (or the manifest's reader) gives
:class:`SheetRow` s that know their row number as the user sees it, :func:`parse_frame`
reads the onset/apex/offset cells, and an :class:`AnnotationTable` turns the rows into
clips, each clip once, and records what it skipped in the
:class:`~fastmer.datasets.report.LoadReport`, naming the file, the row and the column.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from fastmer.datasets.clip import IMAGE_EXTENSIONS, Clip
from fastmer.datasets.report import ClipList, Defect, LoadReport

_TRAILING_NUMBER = re.compile(r"(\d+)(?=\.[A-Za-z0-9]+$)")
_DIGITS = re.compile(r"(\d+)")


class SheetRow(dict):
    """One row of an annotation table: its cells keyed by column name, and its row number.

    Attributes:
        number: the row as the user sees it: the spreadsheet's row number (the header row
            of a sheet without text above it is row 1, its first data row row 2; blank rows
            count), a CSV/TSV file's physical line (1-based, the header line included), a
            Parquet table's 1-based record number (no header).
    """

    __slots__ = ("number",)

    def __init__(self, cells: Mapping[str, object] | Iterable[tuple[str, object]] = (), number: int = 0) -> None:
        super().__init__(cells)
        self.number = number


def row_number(row: Mapping[str, object], fallback: int = 0) -> int:
    """``row.number`` for a :class:`SheetRow`, else ``fallback``."""
    return row.number if isinstance(row, SheetRow) else fallback


def sheet_values(path: Path, sheet: str | None = None, min_row: int = 1) -> list[tuple[int, tuple]]:
    """``(row number, cell values)`` of every row of an .xlsx sheet from ``min_row`` on, blank rows
    included (so that numbers are the sheet's own).

    Raises:
        ValueError: naming the file, when it cannot be read or the sheet is absent.
    """
    from openpyxl import load_workbook  # slow import, only needed here  # noqa: PLC0415

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for bad files
        raise ValueError(f"cannot read the annotation spreadsheet {path}: {exc}") from exc
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise ValueError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
        ws = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        # read-only sheets yield blank rows too: numbers hold
        return list(enumerate(ws.iter_rows(min_row=min_row, values_only=True), start=min_row))
    finally:
        workbook.close()


def is_blank_row(values: Iterable[object]) -> bool:
    """Every cell empty or white space."""
    return not any(v is not None and str(v).strip() for v in values)


def read_sheet(path: Path, sheet: str | None = None, header_row: int = 1) -> list[SheetRow]:
    """Rows of an .xlsx sheet as dicts keyed by the header cells (stripped), blank rows left out.

    Each row is a :class:`SheetRow` whose ``number`` is its row number in the sheet, as a
    spreadsheet program shows it (blank rows above it counted).

    Args:
        path: the workbook.
        sheet: sheet name (default: the first sheet).
        header_row: 1-based row holding the column names (SAMM's is row 14).

    Raises:
        ValueError: naming the file, when it cannot be read or the sheet is absent.
    """
    rows = sheet_values(path, sheet, header_row)
    if not rows:
        return []
    header = [str(h).strip() if h is not None else "" for h in rows[0][1]]
    return [SheetRow(zip(header, values, strict=False), number) for number, values in rows[1:]
            if not is_blank_row(values)]


def require_columns(rows: list[dict[str, object]], columns: Iterable[str], path: Path, where: str = "") -> None:
    """ValueError naming the file and the missing columns."""
    present = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in present]
    if rows and missing:
        raise ValueError(f"{path}{where}: missing column(s) {', '.join(missing)}")


BLANK_CELLS = frozenset({"", "/", "-", "n/a", "na", "nan", "none", "null"})
"""Cell texts (lower-cased, stripped) that mean "not annotated": CASME II's ``/``, a dash."""


def parse_frame(value: object, *, allow_zero: bool = True, minus_one_blank: bool = False) -> int | None:
    """An onset/apex/offset cell as a frame number; None for a blank cell.

    The one parser of frame-number cells of every loader. Blank: None, NaN (what pandas
    and Parquet write for a missing number), empty or white-space text, and the texts of
    :data:`BLANK_CELLS` (``/``, ``-``, ``n/a``...). Numbers: integers, integral floats
    (``123.0`` -> 123, as pandas writes integer columns holding a blank) and their texts
    (``"46"``, ``" 46 "``, ``"123.0"``).

    Args:
        value: the cell.
        allow_zero: whether 0 is a frame (corpora numbered from 0, video indices); when
            not, 0 means not annotated (None).
        minus_one_blank: whether -1 means not annotated (the corpora's spreadsheets, where
            SAMM and 4DME write it for an apex not marked; not manifests); other negative
            numbers are never frames.

    Raises:
        ValueError: the cell is not blank and not a whole non-negative number (``"abc"``,
            ``123.5``, ``-5``, ``True``); the message says why, without the cell's place
            (the caller names the file, row and column).

    Example:
        >>> [parse_frame(v) for v in (46, "46", 123.0, "123.0", "/", None, float("nan"))]
        [46, 46, 123, 123, None, None, None]
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a frame number")
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number" if math.isfinite(value) else f"{value!r} is not a number")
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if text.lower() in BLANK_CELLS:
            return None
        match = re.fullmatch(r"([+-]?\d+)(?:\.0*)?", text)
        if match is not None:
            number = int(match.group(1))
        else:
            try:
                real = float(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a number") from None
            if not math.isfinite(real):
                raise ValueError(f"{value!r} is not a number")
            if not real.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            number = int(real)
    if number == -1 and minus_one_blank:
        return None
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    return number if number > 0 or allow_zero else None


def list_frames(folder: Path, pattern: re.Pattern[str] | None = None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Numbers and paths of the image frames in ``folder``, ascending by number.

    The number is ``pattern``'s first group if given, else the digits before the extension
    (``img46.jpg``, ``006_05562.jpg``, ``image069140.bmp``, ``12.jpg``). Empty when the
    folder is missing.
    """
    if not folder.is_dir():
        return (), ()
    frames = []
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        match = pattern.match(path.name) if pattern is not None else _TRAILING_NUMBER.search(path.name)
        if match is not None:
            frames.append((int(match.group(1)), str(path)))
    frames.sort()
    return tuple(n for n, _ in frames), tuple(p for _, p in frames)


def natural_key(name: str, *, case_sensitive: bool = False) -> tuple[tuple[int, int | str], ...]:
    """Sort key reading digit runs as numbers: ``spNO.2`` before ``spNO.10``, ``img9.jpg``
    before ``img10.jpg``; the text between them compared case-insensitively unless
    ``case_sensitive`` (then ``"B" < "a"``, as ``sorted`` has it)."""
    parts = _DIGITS.split(name if case_sensitive else name.lower())  # odd indices: the digit runs
    return tuple((0, int(part)) if i % 2 else (1, part) for i, part in enumerate(parts) if part)


def note_defects(clip: Clip, report: LoadReport) -> Clip:
    """Check a clip's annotation and frames, note its defects on it and in the report."""
    notes = list(clip.notes)

    def note(defect: Defect) -> None:
        notes.append(defect.value)
        report.note(defect, clip.uid)

    if not (Path(clip.source).is_file() if clip.is_video else clip.frame_paths):
        note(Defect.FOLDER_MISSING)
    if clip.onset is None or clip.offset is None or clip.onset >= clip.offset:
        note(Defect.ONSET_OFFSET_INVALID)
    if clip.apex is None:
        note(Defect.APEX_MISSING)
    elif clip.onset is not None and clip.apex == clip.onset:
        note(Defect.ONSET_EQUALS_APEX)
    elif clip.onset is not None and clip.offset is not None and not clip.onset < clip.apex <= clip.offset:
        note(Defect.APEX_OUTSIDE)
    if clip.frame_paths and clip.onset is not None and clip.offset is not None and clip.onset < clip.offset:
        present = set(clip.frame_numbers)
        if any(n not in present for n in range(clip.onset, clip.offset + 1)):
            note(Defect.FRAMES_MISSING)
    return dataclasses.replace(clip, notes=tuple(notes))


# --- helpers added for the SAMM, SMIC, MMEW, CAS(ME)3, 4DME, MEGC 2019 and manifest adapters ---


def find_child(parent: Path, *names: str) -> Path | None:
    """The entry of ``parent`` called one of ``names`` (tried in order; exact name first,
    then case-insensitively), or None when there is none or ``parent`` is not a directory."""
    names = tuple(n for n in names if n)
    if not names or not parent.is_dir():
        return None
    for name in names:
        if (parent / name).exists():
            return parent / name
    by_lower: dict[str, Path] = {}
    for entry in sorted(parent.iterdir()):
        by_lower.setdefault(entry.name.lower(), entry)
    for name in names:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    return None


def find_annotation_file(folders: Iterable[Path], patterns: Iterable[str], what: str,
                         exclude: Iterable[str] = ()) -> Path:
    """The first file matching one of the glob ``patterns`` and none of ``exclude``
    (case-insensitively; Excel's ``~$`` lock files skipped) in the first of ``folders``
    that has one.

    Patterns are tried in order within a folder, so list the exact release name first.

    Raises:
        FileNotFoundError: naming the patterns and the folders searched.
    """
    from fnmatch import fnmatchcase  # noqa: PLC0415

    folders, patterns = list(folders), list(patterns)
    for folder in folders:
        if not folder.is_dir():
            continue
        files = sorted(
            p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith("~$")
            and not any(fnmatchcase(p.name.lower(), x.lower()) for x in exclude)
        )
        for pattern in patterns:
            found = [p for p in files if fnmatchcase(p.name.lower(), pattern.lower())]
            if found:
                return found[0]
    raise FileNotFoundError(
        f"no {what} ({' or '.join(patterns)}) in {' or '.join(map(str, folders))}; pass the spreadsheet explicitly"
    )


def explicit_file(path: str | Path, what: str) -> Path:
    """A file the user named (FileNotFoundError naming it when absent)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    return path


def require_root(root: str | Path) -> Path:
    """``root`` as a Path (FileNotFoundError naming it when it is not a directory)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    return root


def cell_text(value: object) -> str:
    """A spreadsheet cell as stripped text; integral numbers without '.0'; '' for blanks."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def unique_clip_id(used: set[tuple[str, str]], subject: str, clip_id: str) -> str:
    """``clip_id``, or ``clip_id_2``, ``clip_id_3``... the first not yet used within
    ``subject``; records it in ``used``."""
    candidate, n = clip_id, 1
    while (subject, candidate) in used:
        n += 1
        candidate = f"{clip_id}_{n}"
    used.add((subject, candidate))
    return candidate


_COMPARED = ("onset", "apex", "offset", "labels", "action_units")


def shown_value(value: object) -> str:
    """A cell as a detail line shows it: ``blank``, ``'4+7'`` (text and AU tuples quoted), ``12``."""
    if value is None or value == "" or value == ():
        return "blank"
    if isinstance(value, tuple):
        return repr("+".join(map(str, value)))
    return repr(value) if isinstance(value, str) else str(value)


class AnnotationTable:
    """The clips of one annotation file, built row by row: each clip once, every skipped row told.

    Loaders build a :class:`Clip` per row and :meth:`add` it; rows that make no clip go to
    :meth:`skip` (or :meth:`frames`, for unreadable frame numbers). What happened to each
    such row is recorded in ``report``: counted in ``report.excluded`` under
    ``"<file name> row <n>"``, and told in ``report.details`` with the file, the row
    (:class:`SheetRow` numbers) and the column.

    Duplicates: a row repeats an earlier one when both describe the same clip, i.e. the
    same subject, view and clip folder or video (the same uid, before any suffix) and, for
    a ``segments`` file, the same onset and offset. The earlier row's clip is kept,
    annotation included, and noted :attr:`~fastmer.datasets.report.Defect.DUPLICATE_ROW`
    (once, whatever the number of repeats); the later row is dropped, and a detail names
    both rows and, if they disagree, the columns and the two values. A row describing
    another clip whose clip id is taken (in a ``segments`` file: the same recording, another
    onset..offset) gets a suffix: ``x``, ``x_2``, ``x_3``...

    Args:
        path: the annotation file.
        report: the load's report.
        columns: the file's column name for each clip field, for the details: ``subject``,
            ``clip`` (the column naming the clip folder or video), optionally ``view``,
            ``onset``, ``apex``, ``offset``, ``labels``, ``action_units``.
        segments: whether one clip folder or video may hold several clips told apart by
            their onset and offset (CAS(ME)³ recordings, manifests); else a clip is its
            folder (CASME II).
    """

    def __init__(self, path: Path, report: LoadReport, columns: Mapping[str, str], *, segments: bool) -> None:
        self.path = Path(path)
        self.report = report
        self.columns = dict(columns)
        self.segments = segments
        self.clips: list[Clip] = []
        self._first: dict[tuple[object, ...], tuple[int, int]] = {}  # identity -> (index in clips, row number)
        self._ids: set[tuple[str, str, str]] = set()

    def where(self, row: Mapping[str, object], column: str | None = None) -> str:
        """``"<path>, row <n>[, column <column>]"``."""
        return f"{self.path}, row {row_number(row)}" + (f", column {column}" if column else "")

    def skip(self, row: Mapping[str, object], reason: str, column: str, problem: str) -> None:
        """Exclude ``row`` (counted under ``reason``), telling what is wrong in ``column``."""
        self.report.exclude(reason, f"{self.path.name} row {row_number(row)}")
        self.report.detail(f"{self.where(row, column)}: {problem}; row skipped")

    def frames(self, row: Mapping[str, object], columns: Iterable[str], *, allow_zero: bool = True,
               minus_one_blank: bool = False) -> tuple[int | None, ...] | None:
        """The frame numbers in ``row``'s ``columns`` (:func:`parse_frame`), or None when one
        cannot be read: then the row is excluded as ``frame_number_invalid`` and each
        unreadable cell told."""
        values, bad = [], []
        for column in columns:
            try:
                values.append(parse_frame(row.get(column), allow_zero=allow_zero, minus_one_blank=minus_one_blank))
            except ValueError as exc:
                bad.append((column, str(exc)))
        if not bad:
            return tuple(values)
        self.report.exclude("frame_number_invalid", f"{self.path.name} row {row_number(row)}")
        for column, problem in bad:
            self.report.detail(f"{self.where(row, column)}: {problem}, not a frame number (nor blank); row skipped")
        return None

    def subject_clip_frames(self, row: Mapping[str, object], subject_folder: Callable[[object], tuple[str, bool]],
                            frame_columns: Iterable[str]) -> tuple[str, bool, str, tuple[int | None, ...]] | None:
        """The Subject, Filename and frame cells of a CASME II-style sheet row (CASME II, SAMM):
        ``(subject folder, subject given as text, clip id, frame numbers)``, or None when the
        row is skipped (told): a Subject ``subject_folder`` refuses or a blank Filename
        (``row_unusable``), or an unreadable frame number (:meth:`frames`). ``-1`` and ``0``
        are blanks."""
        try:
            subject, was_text = subject_folder(row["Subject"])
        except ValueError as exc:
            self.skip(row, "row_unusable", "Subject", str(exc))
            return None
        clip_id = cell_text(row["Filename"])
        if not clip_id:
            self.skip(row, "row_unusable", "Filename", "blank")
            return None
        frames = self.frames(row, frame_columns, allow_zero=False, minus_one_blank=True)
        return None if frames is None else (subject, was_text, clip_id, frames)

    def add(self, row: Mapping[str, object], clip: Clip) -> Clip | None:
        """Keep ``clip``, built from ``row``: its defects noted (:func:`note_defects`), its
        clip id suffixed if taken; or, when ``row`` repeats an earlier row, drop it (see
        the class docstring). Returns the clip kept, or None."""
        identity = (clip.subject, clip.view, clip.source, *((clip.onset, clip.offset) if self.segments else ()))
        first = self._first.get(identity)
        if first is not None:
            self._repeat(row, clip, *first)
            return None
        clip_id, n = clip.clip_id, 1
        while (clip.subject, clip.view, clip_id) in self._ids:
            n += 1
            clip_id = f"{clip.clip_id}_{n}"
        self._ids.add((clip.subject, clip.view, clip_id))
        if clip_id != clip.clip_id:
            clip = dataclasses.replace(clip, clip_id=clip_id)
        clip = note_defects(clip, self.report)
        self._first[identity] = (len(self.clips), row_number(row))
        self.clips.append(clip)
        return clip

    def _repeat(self, row: Mapping[str, object], clip: Clip, index: int, first_row: int) -> None:
        kept = self.clips[index]
        if Defect.DUPLICATE_ROW.value not in kept.notes:
            self.clips[index] = dataclasses.replace(kept, notes=(*kept.notes, Defect.DUPLICATE_ROW.value))
            self.report.note(Defect.DUPLICATE_ROW, kept.uid)
        keys = ("subject", "clip", *(("view",) if "view" in self.columns else ()),
                *(("onset", "offset") if self.segments else ()))
        same = ", ".join(self.columns.get(k, k) for k in keys)
        number = row_number(row)
        line = f"{self.path}, rows {first_row} and {number}: both describe {kept.uid} (same {same})"
        differ = [
            f"{self.columns.get(f, f)} ({shown_value(getattr(kept, f))} vs {shown_value(getattr(clip, f))})"
            for f in _COMPARED if getattr(kept, f) != getattr(clip, f)
        ]
        if differ:
            line += f" but disagree on {', '.join(differ)}; row {first_row}'s annotation kept"
        self.report.detail(f"{line}; row {number} skipped")

    def result(self) -> ClipList:
        """The clips kept, in row order, with the report."""
        return ClipList(self.clips, self.report)


class FrameCache:
    """:func:`list_frames` memoised per folder (several clips of one long recording)."""

    def __init__(self, pattern: re.Pattern[str] | None = None) -> None:
        self.pattern = pattern
        self._cache: dict[Path, tuple[tuple[int, ...], tuple[str, ...]]] = {}

    def __call__(self, folder: Path) -> tuple[tuple[int, ...], tuple[str, ...]]:
        if folder not in self._cache:
            self._cache[folder] = list_frames(folder, self.pattern)
        return self._cache[folder]


def locate_header_row(path: Path, sheet: str | None, columns: Iterable[str], max_row: int = 40) -> int | None:
    """1-based number of the first row among the first ``max_row`` of the sheet holding all
    of ``columns`` (as :func:`match_columns` matches them; for sheets with text above the
    table), or None.

    Call it on a workbook that :func:`read_sheet` has read (errors are not wrapped)."""
    from openpyxl import load_workbook  # noqa: PLC0415

    wanted = {_column_key(c) for c in columns}
    workbook = load_workbook(path, read_only=True, data_only=True)  # read_sheet has read it already
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            return None
        ws = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        for number, row in enumerate(ws.iter_rows(max_row=max_row, values_only=True), start=1):
            if wanted <= {_column_key(str(v)) for v in row if v is not None}:
                return number
        return None
    finally:
        workbook.close()


def _column_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def match_columns(rows: list[dict[str, object]], columns: Iterable[str]) -> list[dict[str, object]]:
    """``rows`` with each header that names one of ``columns`` up to case and
    non-alphanumeric characters (``Onset_Frame``, ``EMOTION``, ``sub_ID'``) renamed to that
    column's spelling; headers already spelled exactly are kept, the others untouched.
    Row numbers (:class:`SheetRow`) are kept."""
    if not rows:
        return rows
    header = list(rows[0])
    wanted = {_column_key(c): c for c in columns if c not in header}
    renames = {h: wanted[_column_key(h)] for h in header if h not in columns and _column_key(h) in wanted}
    if len(set(renames.values())) != len(renames):  # two headers for one column: leave them be
        return rows
    if not renames:
        return rows
    return [SheetRow(((renames.get(k, k), v) for k, v in row.items()), row_number(row)) for row in rows]


def sheet_names(path: Path) -> list[str]:
    """Names of the sheets of an .xlsx workbook (ValueError naming the file if unreadable)."""
    from openpyxl import load_workbook  # noqa: PLC0415

    try:
        workbook = load_workbook(path, read_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for bad files
        raise ValueError(f"cannot read the annotation spreadsheet {path}: {exc}") from exc
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def preferred_sheet(path: Path, sheet: str | None, preferred: str) -> str | None:
    """``sheet`` if given, else ``preferred`` when the workbook has it, else None (the first)."""
    if sheet is not None:
        return sheet
    return preferred if preferred in sheet_names(path) else None
