"""Unannotated videos, each scored as one clip: what a lab's archive or a new recording is.

Layout: ROOT is a video file, a folder searched recursively for videos (``.mp4``, ``.avi``,
``.mkv``, ``.webm``, ``.mov``; sorted by path), or a text file listing one video per line
(relative to the list's folder or absolute; blank lines and ``#`` comments ignored).

Each video becomes a clip from its first to its last frame (counted by demuxing the file
once), with no apex (it is spotted) and no label; the subject is the video's folder name,
the clip id its name without extension. A video that cannot be opened is still listed,
noted ``video_unreadable``, and fails at extraction with a decode error (so a scoring
run reports it and goes on).

Micro-expressions last under half a second: cut long recordings into clips first, or
list the windows to score in a manifest (``--dataset manifest``: one row per window of
a video, with its onset and offset frames).
"""

from __future__ import annotations

from pathlib import Path

from fastmer.datasets.clip import VIDEO_EXTENSIONS, Clip
from fastmer.datasets.common import note_defects, unique_clip_id
from fastmer.datasets.report import ClipList, Defect, LoadReport
from fastmer.errors import ClipError

NAME = "videos"
LIST_SUFFIXES = (".txt", ".lst")


def video_paths(root: str | Path) -> list[Path]:
    """The videos ROOT names: itself, those under it, or those its list file names.

    Raises:
        FileNotFoundError: ROOT is missing, or a folder holding no video.
        ValueError: ROOT is a file that is neither a video nor a list (``.txt``/``.lst``).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if root.is_dir():
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not paths:
            raise FileNotFoundError(f"no video ({', '.join(VIDEO_EXTENSIONS)}) under {root}")
        return paths
    if root.suffix.lower() in VIDEO_EXTENSIONS:
        return [root]
    if root.suffix.lower() in LIST_SUFFIXES:
        paths = []
        for line in root.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                path = Path(line).expanduser()
                paths.append(path if path.is_absolute() else root.parent / path)
        return paths
    raise ValueError(f"{root} is neither a video ({', '.join(VIDEO_EXTENSIONS)}), a list of videos "
                     f"({', '.join(LIST_SUFFIXES)}) nor a folder")


def load(root: str | Path) -> ClipList:
    """One clip per video of ROOT (see the module docstring); ``.report`` notes unreadable ones."""
    from fastmer.decode.pyav import probe  # noqa: PLC0415  (PyAV: only when listing videos)

    paths = video_paths(root)
    report = LoadReport(NAME, rows=len(paths))
    used: set[tuple[str, str]] = set()
    clips = []
    for path in paths:
        subject = f"{NAME}/{path.parent.name or 'videos'}"
        notes: tuple[str, ...] = ()
        try:
            info = probe(str(path))
            onset, offset, fps = 0, info.n_frames - 1, info.fps
        except ClipError:
            onset = offset = None
            fps = 0.0
            notes = (Defect.VIDEO_UNREADABLE.value,)
        clip = Clip(dataset=NAME, subject=subject, clip_id=unique_clip_id(used, subject, path.stem), source=str(path),
                    frame_numbers=(), frame_paths=(), onset=onset, apex=None, offset=offset, labels=(), fps=fps,
                    notes=notes)
        if notes:
            report.note(Defect.VIDEO_UNREADABLE, clip.uid)
        clips.append(note_defects(clip, report))
    return ClipList(clips, report)
