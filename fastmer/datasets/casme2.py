"""CASME II (Yan et al., PLoS ONE 2014) and corpora in its layout (e.g. fastmer's synthetic one).

Layout::

    ROOT/subXX/EPxx_yy[f]/imgN.jpg        (raw frames; provider crops: reg_imgN.jpg)
    ROOT/CASME2-coding-*.xlsx              (or beside ROOT, or given explicitly)

The coding spreadsheet's first sheet (``Sheet1``) has the columns Subject, Filename,
OnsetFrame, ApexFrame, OffsetFrame, Action Units and Estimated Emotion. Subject may be
text (``'01'``) or an integer; ApexFrame may be ``'/'`` (not annotated). 200 fps.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastmer.datasets.clip import Clip

NAME = "casme2"
FPS = 200.0
SPREADSHEET_GLOB = "CASME2-coding-*.xlsx"
REQUIRED_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion")
_FRAME_RE = re.compile(r"^(?:reg_)?img(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)


def find_spreadsheet(root: Path) -> Path:
    """The coding spreadsheet in ROOT or its parent (FileNotFoundError naming both)."""
    for folder in (root, root.parent):
        found = sorted(folder.glob(SPREADSHEET_GLOB))
        if found:
            return found[0]
    raise FileNotFoundError(f"no {SPREADSHEET_GLOB} in {root} or {root.parent}; pass the spreadsheet explicitly")


def _frame_number(value: object) -> int | None:
    """Spreadsheet frame cell -> int; '/', blanks and non-positive numbers mean unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = int(value)
        return number if number == value and number > 0 else None
    text = str(value).strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _subject_folder(value: object) -> str:
    """Subject cell ('01', 1, 'sub01') -> folder name 'sub01'."""
    text = str(int(value)) if isinstance(value, (int, float)) else str(value).strip()
    if text.lower().startswith("sub"):
        text = text[3:]
    if not text.isdigit():
        raise ValueError(f"unrecognised Subject value {value!r}")
    return f"sub{int(text):02d}"


def list_frames(folder: Path) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Frame numbers and paths in a clip folder, ascending; empty when the folder is missing."""
    if not folder.is_dir():
        return (), ()
    frames = sorted(
        (int(m.group(1)), str(p)) for p in folder.iterdir() if (m := _FRAME_RE.match(p.name)) is not None
    )
    return tuple(n for n, _ in frames), tuple(p for _, p in frames)


def read_coding(spreadsheet: Path) -> list[dict[str, object]]:
    """Rows of the coding sheet as dicts keyed by header (ValueError naming the file)."""
    from openpyxl import load_workbook  # noqa: PLC0415  (slow import, only needed here)

    try:
        workbook = load_workbook(spreadsheet, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for bad files
        raise ValueError(f"cannot read the coding spreadsheet {spreadsheet}: {exc}") from exc
    try:
        sheet = workbook["Sheet1"] if "Sheet1" in workbook.sheetnames else workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{spreadsheet}: missing column(s) {', '.join(missing)} in sheet {sheet.title!r}")
        return [dict(zip(header, row)) for row in rows if any(v is not None for v in row)]
    finally:
        workbook.close()


def load(root: str | Path, *, spreadsheet: str | Path | None = None) -> list[Clip]:
    """List the clips of a CASME II-layout corpus.

    Args:
        root: folder holding the ``subXX`` folders.
        spreadsheet: coding spreadsheet; searched in ``root`` and its parent if None.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order. Clips whose folder or
        annotation is unusable are still returned; extraction turns them into error rows.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    sheet = Path(spreadsheet) if spreadsheet is not None else find_spreadsheet(root)
    clips = []
    for i, row in enumerate(read_coding(sheet), start=2):
        try:
            subject = _subject_folder(row["Subject"])
        except ValueError as exc:
            raise ValueError(f"{sheet}, row {i}: {exc}") from None
        clip_id = str(row["Filename"]).strip()
        folder = root / subject / clip_id
        numbers, paths = list_frames(folder)
        emotion = str(row["Estimated Emotion"] or "").strip().lower()
        clips.append(
            Clip(
                dataset=NAME,
                subject=f"{NAME}/{subject}",
                clip_id=clip_id,
                source=str(folder),
                frame_numbers=numbers,
                frame_paths=paths,
                onset=_frame_number(row["OnsetFrame"]),
                apex=_frame_number(row["ApexFrame"]),
                offset=_frame_number(row["OffsetFrame"]),
                labels=(emotion,) if emotion else (),
                action_units=str(row.get("Action Units") or "").strip(),
                fps=FPS,
            )
        )
    return clips
