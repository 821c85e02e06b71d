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

from fastmer.datasets._common import frame_number, list_frames, note_defects, read_sheet, require_columns
from fastmer.datasets.clip import Clip
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, Defect, LoadReport

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


def subject_folder(value: object) -> tuple[str, bool]:
    """Subject cell ('01', 1, 'sub01') -> (folder name 'sub01', whether it was text)."""
    was_text = isinstance(value, str)
    text = str(int(value)) if isinstance(value, (int, float)) else str(value).strip()
    if text.lower().startswith("sub"):
        text = text[3:]
    if not text.isdigit():
        raise ValueError(f"unrecognised Subject value {value!r}")
    return f"sub{int(text):02d}", was_text


def load(root: str | Path, *, spreadsheet: str | Path | None = None) -> ClipList:
    """List the clips of a CASME II-layout corpus.

    Args:
        root: folder holding the ``subXX`` folders.
        spreadsheet: coding spreadsheet; searched in ``root`` and its parent if None.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order, with annotation defects
        noted (never raised); ``.report`` counts them.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    sheet = Path(spreadsheet) if spreadsheet is not None else find_spreadsheet(root)
    rows = read_sheet(sheet, "Sheet1" if spreadsheet is None else None)
    require_columns(rows, REQUIRED_COLUMNS, sheet)
    report = LoadReport(NAME, rows=len(rows))
    clips = []
    for i, row in enumerate(rows, start=2):
        try:
            subject, was_text = subject_folder(row["Subject"])
        except ValueError as exc:
            raise ValueError(f"{sheet}, row {i}: {exc}") from None
        clip_id = str(row["Filename"]).strip()
        folder = root / subject / clip_id
        numbers, paths = list_frames(folder, _FRAME_RE)
        clip = Clip(
            dataset=NAME, subject=f"{NAME}/{subject}", clip_id=clip_id, source=str(folder),
            frame_numbers=numbers, frame_paths=paths, onset=frame_number(row["OnsetFrame"]),
            apex=frame_number(row["ApexFrame"]), offset=frame_number(row["OffsetFrame"]),
            labels=split_labels(row["Estimated Emotion"]), action_units=str(row.get("Action Units") or "").strip(),
            fps=FPS,
        )
        if was_text:
            report.note(Defect.SUBJECT_ID_TEXT, clip.uid)
        clips.append(note_defects(clip, report))
    return ClipList(clips, report)
