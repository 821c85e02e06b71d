"""4DME, the spontaneous 4D micro-expression dataset (Li et al., IEEE TAC 2022), registry name ``4dme``.

Layout (the release's ``gray_micro`` folder and label workbook, as read by MEB, Varanka et
al.'s micro-expression benchmark, ``github.com/tvaranka/Cross-dataset-micro-expression``;
video files are accepted too)::

    ROOT/<sub_ID>/<fold_name>/*.jpg          e.g. S01/S01_01/0012.jpg
    ROOT/<sub_ID>/<fold_name>.mp4            or one video per clip (.mp4 .avi .mkv .webm .mov)
    ROOT/<...4DME...>.xlsx                   (or beside ROOT, or given explicitly)

The spreadsheet is the first ``*4DME*.xlsx`` (case-insensitive; the release's is
``4DME_Labelling_Micro_release v1.xlsx``), searched in ROOT then its parent (so ROOT may be
the release's ``gray_micro`` folder). Its first sheet has the columns sub_ID, fold_name,
Onset, Apex, Offset, AUs, Emotion (names matched ignoring case and punctuation, e.g.
``sub_ID'``; other columns such as ``fold`` or ``eye blink`` are ignored). sub_ID and
fold_name are kept as written, stripped (subject ``"4dme/<sub_ID>"``, clip id
``<fold_name>``; folders matched case-insensitively). Emotion is multi-label,
``+``-separated, over Negative, Positive, Surprise, Repression, Others
(``"Surprise+Positive"`` -> labels ``("surprise", "positive")``; protocol
``4dme-multilabel``, as in the 4DMR challenge). 60 fps (the 4D capture system's rate).

Frames: a frame's number is the digits before its extension. A frame number 0 in the sheet
is read as frame 0 only when the clip's folder has a frame 0, else as not annotated.
Frame numbers are integers, integral floats or their text; ``-1``, ``/`` or a blank mean
not annotated.
Videos: a clip is a video when fold_name ends in a video extension, or when there is no
``<fold_name>`` folder but a ``<fold_name>.<ext>`` file. Its clip id is the name without
the extension, no frames are listed (the loader never opens videos), Onset/Apex/Offset are
0-based frame indices, and a missing file is noted ``folder_missing``.

Views: every frame holds two synchronised views of the face side by side. This loader
returns ``view="full"`` clips; extraction splits them into the left and right halves with
:meth:`~fastmer.datasets.clip.Clip.with_view` (uids ``...@left`` / ``...@right``).

Every row becomes a clip, defects noted (a clip id repeated within a subject with another
Onset/Offset gets a suffix: ``x``, ``x_2``, ``x_3``...). A row repeating an earlier one
(same sub_ID, clip folder or video, Onset and Offset) is dropped: the first row's clip is
kept once, noted ``duplicate_row``. Rows without a sub_ID or fold_name are excluded and
counted as ``row_unusable``, rows with a frame number that cannot be read (``"abc"``,
``12.5``, ``-5``) as ``frame_number_invalid``; ``report.details`` names the row (the
sheet's row number) and the column of each.
"""

from __future__ import annotations

from pathlib import Path

from fastmer.datasets.clip import VIDEO_EXTENSIONS, Clip
from fastmer.datasets.common import (
    AnnotationTable,
    FrameCache,
    cell_text,
    explicit_file,
    find_annotation_file,
    find_child,
    match_columns,
    read_sheet,
    require_columns,
    require_root,
)
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, LoadReport

NAME = "4dme"
FPS = 60.0
SPREADSHEET_PATTERNS = ("*4DME*.xlsx",)
REQUIRED_COLUMNS = ("sub_ID", "fold_name", "Onset", "Apex", "Offset", "Emotion")
COLUMNS = (*REQUIRED_COLUMNS, "AUs")
FRAME_COLUMNS = ("Onset", "Apex", "Offset")
COLUMN_OF = {"subject": "sub_ID", "clip": "fold_name", "onset": "Onset", "apex": "Apex", "offset": "Offset",
             "labels": "Emotion", "action_units": "AUs"}


def find_spreadsheet(root: Path) -> Path:
    """The 4DME label spreadsheet in ROOT or its parent."""
    return find_annotation_file((root, root.parent), SPREADSHEET_PATTERNS, "4DME label spreadsheet")


def clip_source(root: Path, subject: str, fold_name: str) -> Path:
    """The clip's frame folder or video file (names matched case-insensitively); the
    expected folder when neither exists."""
    subject_dir = find_child(root, subject) or root / subject
    if Path(fold_name).suffix.lower() in VIDEO_EXTENSIONS:
        return find_child(subject_dir, fold_name) or subject_dir / fold_name
    folder = find_child(subject_dir, fold_name)
    if folder is not None and folder.is_dir():
        return folder
    video = find_child(subject_dir, *(fold_name + ext for ext in VIDEO_EXTENSIONS))
    return video if video is not None and video.is_file() else subject_dir / fold_name


def load(root: str | Path, *, spreadsheet: str | Path | None = None) -> ClipList:
    """List the micro-expression clips of 4DME (full, side-by-side frames).

    Args:
        root: folder holding the ``<sub_ID>`` folders.
        spreadsheet: the label workbook; searched in ``root`` and its parent if None.

    Returns:
        One :class:`Clip` per spreadsheet row, in sheet order, defects noted (never raised),
        each clip once; ``.report`` counts them and the rows excluded, ``.report.details``
        tells each row-level finding.

    Raises:
        FileNotFoundError: ``root`` or the spreadsheet is missing; ValueError: the
        spreadsheet or its columns cannot be read (naming the file).
    """
    root = require_root(root)
    path = explicit_file(spreadsheet, "4DME spreadsheet") if spreadsheet is not None else find_spreadsheet(root)
    rows = match_columns(read_sheet(path), COLUMNS)
    require_columns(rows, REQUIRED_COLUMNS, path)
    report = LoadReport(NAME, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=True)
    frames = FrameCache()
    for row in rows:
        subject, clip_id = cell_text(row["sub_ID"]), cell_text(row["fold_name"])
        if not subject or not clip_id:
            table.skip(row, "row_unusable", "sub_ID" if not subject else "fold_name", "blank")
            continue
        source = clip_source(root, subject, clip_id)
        is_video = source.suffix.lower() in VIDEO_EXTENSIONS
        if is_video:
            clip_id = Path(clip_id).stem
        numbers, paths = ((), ()) if is_video else frames(source)
        zero = is_video or (bool(numbers) and numbers[0] == 0)  # numbered from 0
        annotation = table.frames(row, FRAME_COLUMNS, allow_zero=zero, minus_one_blank=True)
        if annotation is None:
            continue
        onset, apex, offset = annotation
        clip = Clip(
            dataset=NAME, subject=f"{NAME}/{subject}", clip_id=clip_id, source=str(source), frame_numbers=numbers,
            frame_paths=paths, onset=onset, apex=apex, offset=offset, labels=split_labels(row["Emotion"]),
            action_units=cell_text(row.get("AUs")), fps=FPS,
        )
        table.add(row, clip)
    return table.result()
