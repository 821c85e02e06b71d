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
  lists no frames for them (``frame_numbers``/``frame_paths`` stay empty).
* optional columns: ``dataset`` (default ``"manifest"``), ``clip_id`` (default: the
  path's stem, i.e. the folder name or the video's name without extension; made unique
  within the subject with ``_2``, ``_3``... suffixes; rows of different views may share
  it), ``view`` (``full``, ``left`` or ``right``; default ``full``), ``fps`` (default 0:
  unknown), ``action_units``.

Rows without a subject or path are excluded and counted as ``row_unusable``, rows with an
unknown view as ``invalid_view``; every other row becomes a clip with its defects noted
(never raised).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from fastmer.datasets._common import (
    cell_text,
    frame_index,
    list_frames,
    match_columns,
    note_defects,
    require_columns,
    unique_clip_id,
)
from fastmer.datasets.clip import VIDEO_EXTENSIONS, VIEWS, Clip
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, LoadReport

NAME = "manifest"
REQUIRED_COLUMNS = ("subject", "path", "onset", "apex", "offset", "label")
COLUMNS = (*REQUIRED_COLUMNS, "dataset", "clip_id", "view", "fps", "action_units")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: Path) -> list[dict[str, object]]:
    """Rows of a CSV or Parquet manifest as dicts keyed by column (ValueError naming the file)."""
    suffix = path.suffix.lower()
    if suffix not in (*PARQUET_SUFFIXES, ".csv", ".tsv"):
        raise ValueError(f"manifest {path}: unsupported format {suffix!r} (use .csv, .tsv or .parquet)")
    try:
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq  # noqa: PLC0415

            return pq.read_table(path).to_pylist()
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
        return [row for row in rows if any(isinstance(v, str) and v.strip() for v in row.values())]
    except Exception as exc:  # csv, codecs and pyarrow raise many types for bad files
        raise ValueError(f"cannot read the manifest {path}: {exc}") from exc


def _header(path: Path) -> list[str]:
    """Column names of a manifest (for the missing-column message of an empty table)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq  # noqa: PLC0415

        return list(pq.read_schema(path).names)
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def _index(value: object) -> int | None:
    """Frame cell -> int (0 allowed); blank, NaN and non-integers -> None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return frame_index(value, allow_zero=True)


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
        One :class:`Clip` per usable row, in table order, defects noted (never raised);
        ``.report`` (named after the rows' dataset when they share one, else
        ``"manifest"``) counts them.

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
    used: set[tuple[str, str]] = set()
    clips = []
    for i, row in enumerate(rows, start=2):
        dataset = _text(row.get("dataset")) or NAME
        subject, where = _text(row["subject"]), _text(row["path"])
        if not subject or not where:
            report.exclude("row_unusable", f"{path.name} row {i}")
            continue
        view = _text(row.get("view")).lower() or "full"
        if view not in VIEWS:
            report.exclude("invalid_view", f"{path.name} row {i}")
            continue
        if subject.startswith(f"{dataset}/"):
            subject = subject[len(dataset) + 1:]
        source = Path(where).expanduser()
        source = source if source.is_absolute() else base / source
        onset, apex, offset = (_index(row.get(c)) for c in ("onset", "apex", "offset"))
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
            dataset=dataset, subject=subject, clip_id=unique_clip_id(used, f"{subject}@{view}", clip_id),
            source=str(source), frame_numbers=numbers, frame_paths=paths, onset=onset, apex=apex, offset=offset,
            labels=split_labels(_text(row["label"])), action_units=_text(row.get("action_units")), view=view,
            fps=_fps(row.get("fps")),
        )
        clips.append(note_defects(clip, report))
    return ClipList(clips, report)
