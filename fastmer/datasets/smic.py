"""SMIC-HS, the high-speed part of the Spontaneous Micro-expression Corpus (Li et al., FG 2013).

Layout::

    ROOT/sN/micro/<emotion>/sN_xx_NN/imageNNNNNN.bmp
         e.g. s1/micro/negative/s1_ne_01/image069140.bmp
    or ROOT/HS/sN/micro/...                 (the release's top folder; detected)

``<emotion>`` is ``negative``, ``positive`` or ``surprise``: it is the clip's label (any
other folder there is read the same way, its name as the label). Folders beside ``micro``
(the release's ``non_micro``) are ignored. Subject folders are ``s`` and a number
(``s01`` is read as ``s1``) -> subject ``"smic/s1"``; the clip id is the clip folder's name.
A frame's number is the digits before its extension (``image069140.bmp`` is 69140).

There is no spreadsheet: clips are pre-segmented, so onset = the first frame number found,
offset = the last, and the apex is not annotated (``None``; noted as
:attr:`~fastmer.datasets.report.Defect.APEX_MISSING` like any missing apex, which is how
extraction knows to spot it -- not a reason to exclude a clip). Numbers missing between the
first and last frames are noted as ``frames_missing``; an empty clip folder as
``folder_missing``. ``report.rows`` counts the clip folders. 100 fps.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.common import find_child, list_frames, natural_key, note_defects, require_root
from fastmer.datasets.labels import split_labels
from fastmer.datasets.report import ClipList, LoadReport

NAME = "smic"
FPS = 100.0
_SUBJECT_RE = re.compile(r"^s(\d+)$", re.IGNORECASE)


def _subjects(folder: Path) -> list[tuple[int, Path]]:
    """(number, folder) of the ``sN`` folders holding a ``micro`` folder, by number."""
    found = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _SUBJECT_RE.match(entry.name)
        if match and entry.is_dir() and find_child(entry, "micro") is not None:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _by_name(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Natural order of folder names, 's1_ne_2' before 's1_ne_10'; case-sensitive (an 'S_x'
    folder before 'a_x'), as this loader has always listed the clips."""
    return natural_key(path.name, case_sensitive=True)


def find_corpus_root(root: Path) -> Path:
    """ROOT itself, or ROOT/HS, whichever holds the ``sN/micro`` folders."""
    if _subjects(root):
        return root
    hs = find_child(root, "HS")
    if hs is not None and _subjects(hs):
        return hs
    raise FileNotFoundError(f"no SMIC-HS subject folders (sN/micro/...) in {root} or {root / 'HS'}")


def load(root: str | Path) -> ClipList:
    """List the clips of SMIC-HS.

    Args:
        root: folder holding the ``sN`` subject folders, or their parent ``HS`` folder's parent.

    Returns:
        One :class:`Clip` per clip folder, by subject number, then emotion folder, then clip
        folder name; defects noted (never raised), ``.report`` counts them.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no ``sN/micro`` folders.
    """
    corpus = find_corpus_root(require_root(root))
    report = LoadReport(NAME)
    clips = []
    for number, subject_dir in _subjects(corpus):
        subject = f"s{number}"
        micro = find_child(subject_dir, "micro")
        for emotion_dir in sorted((p for p in micro.iterdir() if p.is_dir()), key=_by_name):
            for clip_dir in sorted((p for p in emotion_dir.iterdir() if p.is_dir()), key=_by_name):
                report.rows += 1
                numbers, paths = list_frames(clip_dir)
                clip = Clip(
                    dataset=NAME, subject=f"{NAME}/{subject}", clip_id=clip_dir.name, source=str(clip_dir),
                    frame_numbers=numbers, frame_paths=paths, onset=numbers[0] if numbers else None, apex=None,
                    offset=numbers[-1] if numbers else None, labels=split_labels(emotion_dir.name), fps=FPS,
                )
                clips.append(note_defects(clip, report))
    return ClipList(clips, report)
