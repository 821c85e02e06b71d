"""Helpers shared by the dataset adapters: spreadsheets, frame listings, annotation checks."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

from fastmer.datasets.clip import IMAGE_EXTENSIONS, Clip
from fastmer.datasets.report import Defect, LoadReport

_TRAILING_NUMBER = re.compile(r"(\d+)(?=\.[A-Za-z0-9]+$)")


def read_sheet(path: Path, sheet: str | None = None, header_row: int = 1) -> list[dict[str, object]]:
    """Rows of an .xlsx sheet as dicts keyed by the header cells (stripped).

    Args:
        path: the workbook.
        sheet: sheet name (default: the first sheet).
        header_row: 1-based row holding the column names (SAMM's is row 14).

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
        rows = ws.iter_rows(min_row=header_row, values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        return [dict(zip(header, row, strict=False)) for row in rows if any(v is not None and str(v).strip() for v in row)]
    finally:
        workbook.close()


def require_columns(rows: list[dict[str, object]], columns: Iterable[str], path: Path, where: str = "") -> None:
    """ValueError naming the file and the missing columns."""
    present = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in present]
    if rows and missing:
        raise ValueError(f"{path}{where}: missing column(s) {', '.join(missing)}")


def frame_number(value: object) -> int | None:
    """Annotation frame cell -> int; '/', blanks, -1 and other non-positive values mean unknown.

    0 is a valid frame number only where a corpus numbers from 0 (see ``allow_zero``)."""
    return frame_index(value, allow_zero=False)


def frame_index(value: object, *, allow_zero: bool = True) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = int(value)
        if number != value:
            return None
    else:
        text = str(value).strip()
        if not re.fullmatch(r"-?\d+", text):
            return None
        number = int(text)
    return number if number > 0 or (allow_zero and number == 0) else None


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
    column's spelling; headers already spelled exactly are kept, the others untouched."""
    if not rows:
        return rows
    header = list(rows[0])
    wanted = {_column_key(c): c for c in columns if c not in header}
    renames = {h: wanted[_column_key(h)] for h in header if h not in columns and _column_key(h) in wanted}
    if len(set(renames.values())) != len(renames):  # two headers for one column: leave them be
        return rows
    if not renames:
        return rows
    return [{renames.get(k, k): v for k, v in row.items()} for row in rows]


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
