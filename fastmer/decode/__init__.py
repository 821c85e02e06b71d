"""Decoding: frames of a clip (image sequence or video file) into uint8 arrays.

:func:`open_frames` / :func:`open_clip_frames` return a :class:`FrameSource` whose engine
(DALI on CPU or GPU, PyAV, OpenCV) is chosen automatically; the rules are in
:mod:`fastmer.decode.engines`, the colour conventions in :mod:`fastmer.decode.source`.
:func:`read_gray` / :func:`read_sequence` read image files with OpenCV directly.
DALI and PyAV are imported only when used.
"""

from fastmer.decode.engines import (
    choose_engine,
    decode_engines,
    open_clip_frames,
    open_frames,
)
from fastmer.decode.frames import read_gray, read_rgb, read_sequence
from fastmer.decode.source import FrameSource, rgb_to_gray
from fastmer.decode.views import split_views, view_rects

__all__ = [
    "FrameSource", "choose_engine", "decode_engines", "open_clip_frames", "open_frames", "read_gray", "read_rgb",
    "read_sequence", "rgb_to_gray", "split_views", "view_rects",
]
