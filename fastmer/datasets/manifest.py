"""Any corpus described by a manifest: a CSV or Parquet table with one row per clip.

Layout: ROOT is the manifest file itself (``.csv``, ``.tsv``, or ``.parquet`` / ``.pq``);
the clips are wherever its ``path`` column says, relative to the manifest's folder or
absolute::

    clips.csv
    frames/s1_ne_01/0001.png ...      a folder of numbered frames, or
    videos/clip7.mp4                  a video file (.mp4, .avi, .mkv, .webm, .mov)

Columns (names matched ignoring case and punctuation; extra columns ignored):

* ``subject``, ``path``, ``onset``, ``apex``, ``offset``, ``label`` (required columns;
  a missing one is a ValueError naming the file and the columns). Subject is namespaced as
  ``"<dataset>/<subject>"`` (unless already written so). Label may be multi-label
  (``"surprise+positive"``); words are canonicalised (``"Happy"`` -> ``"happiness"``).
* ``onset``, ``apex``, ``offset`` (cells may be blank). For a frame folder they are
  frame numbers (the digits before each file's extension; 0 allowed); a blank onset /
  offset means the first / last frame found; a blank apex is not annotated
  (``apex_missing``). For a video they are 0-based frame indices and onset and offset are
  required (blank: noted ``onset_offset_invalid``); the loader never opens videos, so it
  lists no frames for them (``frame_numbers``/``frame_paths`` stay empty). A number is an
  integer or an integral float (``123.0``, as pandas writes an integer column holding a
  blank), as a number or as text; blank is an empty cell, NaN or a placeholder (``/``,
  ``-``, ``n/a``: :data:`~fastmer.datasets.common.BLANK_CELLS`). Any other
  value (``abc``, ``123.5``, a negative number such as ``-5`` or ``-1``) is not taken as
  blank: the row is excluded as ``frame_number_invalid``.
* optional columns: ``dataset`` (default ``"manifest"``), ``clip_id`` (default: the
  path's stem, i.e. the folder name or the video's name without extension; made unique
  within the subject with ``_2``, ``_3``... suffixes; rows of different views may share
  it), ``view`` (``full``, ``left`` or ``right``; default ``full``), ``fps`` (default 0:
  unknown), ``action_units``.

Rows without a subject or path are excluded and counted as ``row_unusable``, rows with an
unknown view as ``invalid_view``, rows with an unreadable onset, apex or offset as
``frame_number_invalid``; ``report.details`` names the row and the column of each (the row
is the CSV/TSV file's line, the header being line 1; for Parquet, the 1-based record
number). Every other row becomes a clip with its defects noted (never raised). A row
repeating an earlier one (same dataset, subject, view, path, and onset and offset once
blanks are resolved) is dropped: the first row's clip is kept once, noted
``duplicate_row``, and ``report.details`` names both rows and any column on which they
disagree.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from fastmer.datasets.clip import VIDEO_EXTENSIONS, VIEWS, Clip
from fastmer.datasets.common import (
    AnnotationTable,
    SheetRow,
    cell_text,
    list_frames,
    match_columns,
    require_columns,
)
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, LoadReport

NAME = "manifest"
REQUIRED_COLUMNS = ("subject", "path", "onset", "apex", "offset", "label")
COLUMNS = (*REQUIRED_COLUMNS, "dataset", "clip_id", "view", "fps", "action_units")
PARQUET_SUFFIXES = (".parquet", ".pq")
FRAME_COLUMNS = ("onset", "apex", "offset")
COLUMN_OF = {"subject": "subject", "clip": "path", "view": "view", "onset": "onset", "apex": "apex",
             "offset": "offset", "labels": "label", "action_units": "action_units"}


def _records(lines: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(physical line where it starts, fields) of each non-empty CSV record (a quoted field
    may span lines)."""
    consumed = 0

    def counted() -> Iterator[str]:
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    reader = csv.reader(counted(), delimiter=delimiter)
    while True:
        start = consumed + 1
        record = next(reader, None)
        if record is None:
            return
        if record:
            yield start, record


def read_table(path: Path) -> list[SheetRow]:
    """Rows of a CSV or Parquet manifest as dicts keyed by column (ValueError naming the file).

    Each row is a :class:`~fastmer.datasets.common.SheetRow` numbered by the line it
    starts on (CSV/TSV; the header is line 1, blank lines count) or its 1-based record
    number (Parquet). CSV/TSV rows without any non-blank cell are left out.
    """
    suffix = path.suffix.lower()
    if suffix not in (*PARQUET_SUFFIXES, ".csv", ".tsv"):
        raise ValueError(f"manifest {path}: unsupported format {suffix!r} (use .csv, .tsv or .parquet)")
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq  # noqa: PLC0415

            return [SheetRow(row, n) for n, row in enumerate(pq.read_table(path).to_pylist(), start=1)]
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = _records(f, "\t" if suffix == ".tsv" else ",")
            header = [h.strip() for h in next(records, (0, []))[1]]
            rows = [
                SheetRow(((h, record[i] if i < len(record) else None) for i, h in enumerate(header)), line)
                for line, record in records
            ]
        return [row for row in rows if any(isinstance(v, str) and v.strip() for v in row.values())]
    except Exception as exc:  # csv, codecs and pyarrow raise many types for bad files
        raise ValueError(f"cannot read the manifest {path}: {exc}") from exc


def _header(path: Path) -> list[str]:
    """Column names of a manifest (for the missing-column message of an empty table)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq  # noqa: PLC0415

        return list(pq.read_schema(path).names)
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [h.strip() for h in next(_records(f, "\t" if path.suffix.lower() == ".tsv" else ","), (0, []))[1]]


def _fps(value: object) -> float:
    try:
        fps = float(cell_text(value) or 0)
    except ValueError:
        return 0.0
    return fps if math.isfinite(fps) and fps > 0 else 0.0


def _text(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return cell_text(value)


def load(root: str | Path) -> ClipList:
    """List the clips of a manifest.

    Args:
        root: the manifest file (CSV or Parquet).

    Returns:
        One :class:`Clip` per usable row, in table order, defects noted (never raised),
        each clip once; ``.report`` (named after the rows' dataset when they share one,
        else ``"manifest"``) counts them and the rows excluded, ``.report.details`` tells
        each row-level finding (file, row, column).

    Raises:
        FileNotFoundError: the manifest is missing; ValueError: it cannot be read, or lacks
        a required column (naming the file).
    """
    path = Path(root)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found (give the manifest file as root)")
    rows = match_columns(read_table(path), COLUMNS)
    if not rows:
        header = match_columns([dict.fromkeys(_header(path))], COLUMNS)
        require_columns(header, REQUIRED_COLUMNS, path)
    require_columns(rows, REQUIRED_COLUMNS, path)
    base = path.parent
    names = {_text(row.get("dataset")) or NAME for row in rows}
    report = LoadReport(names.pop() if len(names) == 1 else NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    for row in rows:
        dataset = _text(row.get("dataset")) or NAME
        subject, where = _text(row["subject"]), _text(row["path"])
        if not subject or not where:
            table.skip(row, "row_unusable", "subject" if not subject else "path", "blank")
            continue
        view = _text(row.get("view")).lower() or "full"
        if view not in VIEWS:
            table.skip(row, "invalid_view", "view", f"{_text(row.get('view'))!r} is not one of {', '.join(VIEWS)}")
            continue
        annotation = table.frames(row, FRAME_COLUMNS, allow_zero=True, minus_one_blank=False)
        if annotation is None:
            continue
        onset, apex, offset = annotation
        if subject.startswith(f"{dataset}/"):
            subject = subject[len(dataset) + 1:]
        source = Path(where).expanduser()
        source = source if source.is_absolute() else base / source
        is_video = source.suffix.lower() in VIDEO_EXTENSIONS
        numbers: tuple[int, ...] = ()
        paths: tuple[str, ...] = ()
        if not is_video:
            numbers, paths = list_frames(source)
            if numbers:
                onset = numbers[0] if onset is None else onset
                offset = numbers[-1] if offset is None else offset
        clip_id = _text(row.get("clip_id")) or (source.stem if is_video else source.name)
        subject = f"{dataset}/{subject}"
        clip = Clip(
            dataset=dataset, subject=subject, clip_id=clip_id, source=str(source), frame_numbers=numbers,
            frame_paths=paths, onset=onset, apex=apex, offset=offset,
            labels=split_labels(_text(row["label"])), action_units=_text(row.get("action_units")), view=view,
            fps=_fps(row.get("fps")),
        )
        table.add(row, clip)
    return table.result()
