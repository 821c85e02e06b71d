"""OpenCV engine: image files with ``cv2.imdecode`` and, as a last resort, video with ``cv2.VideoCapture``.

OpenCV is always installed, so it is the fallback for images when DALI is not. For video it
is used only when PyAV is missing or forced: ``VideoCapture`` has no reliable frame seeking
(we decode sequentially from frame 0), its frame count is the container's estimate, and its
YUV -> RGB conversion is FFmpeg's fast path (see :mod:`fastmer.decode.source`), about 1 grey
level darker than PyAV/DALI on average.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import cv2
import numpy as np

from fastmer.decode.frames import read_gray, read_rgb
from fastmer.decode.source import (
    ImageSequenceSource,
    Region,
    VideoSource,
    rgb_to_gray,
    show_numbers,
)
from fastmer.errors import ClipError


class OpenCVImages(ImageSequenceSource):
    """Image sequence decoded file by file: read, checked for truncation, ``cv2.imdecode``
    (:func:`fastmer.decode.frames.read_gray`)."""

    engine = "opencv"

    def _decode_files(self, paths: list[str], color: bool, region: Region | None) -> list[np.ndarray]:
        read = read_rgb if color else read_gray
        if region is None:
            return [read(path) for path in paths]
        out = []
        for path in paths:  # each cut as soon as it is decoded: a chunk's whole frames are never held
            frame = read(path)
            self.check_sizes([frame.shape[:2]], [path])
            out.append(self.cut(frame, region, color, path).copy())
        return out


class OpenCVVideo(VideoSource):
    """Video decoded with ``cv2.VideoCapture``, sequentially from the first frame."""

    engine = "opencv"

    def __init__(self, path: str, reason: str) -> None:
        if not os.path.isfile(path):
            raise ClipError("decode", f"video file not found: {path}")
        capture = cv2.VideoCapture(path)
        try:
            if not capture.isOpened():
                raise ClipError("decode", f"cannot open video {path} with OpenCV (corrupt or unsupported)")
            n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(capture.get(cv2.CAP_PROP_FPS))
            fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
            width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            capture.release()
        if n_frames <= 0:
            raise ClipError("decode", f"cannot read video {path} with OpenCV: no frames found")
        codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ").lower()
        super().__init__(path, reason, n_frames=n_frames, fps=fps, codec=codec, width=width, height=height)

    def _chunks(self, wanted: list[int], size: int, color: bool, region: Region | None) -> Iterator[np.ndarray]:
        """One sequential pass (``read`` per chunk would restart from frame 0 every time)."""
        buffer: list[np.ndarray] = []
        position, index = 0, 0
        capture = cv2.VideoCapture(self.source)
        try:
            while position < len(wanted):
                ok, bgr = capture.read()
                if not ok:
                    break
                if index == wanted[position]:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    frame = rgb if color else rgb_to_gray(rgb)
                    buffer.append(frame if region is None else self.cut(frame, region, color))
                    position += 1
                    if len(buffer) == size or position == len(wanted):
                        yield np.stack(buffer)
                        buffer = []
                index += 1
        finally:
            capture.release()
        if position < len(wanted):
            raise ClipError("decode", f"cannot decode frame(s) {show_numbers(wanted[position:])} of {self.source}: "
                                      f"OpenCV stopped after {index} frames (corrupt or truncated video?)")

    def _decode(self, unique: list[int], color: bool) -> list[np.ndarray]:
        wanted = set(unique)
        got: dict[int, np.ndarray] = {}
        capture = cv2.VideoCapture(self.source)
        try:
            index = 0
            while index <= unique[-1]:
                ok, bgr = capture.read()
                if not ok:
                    break
                if index in wanted:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    got[index] = rgb if color else rgb_to_gray(rgb)
                index += 1
        finally:
            capture.release()
        missing = [n for n in unique if n not in got]
        if missing:
            raise ClipError("decode", f"cannot decode frame(s) {show_numbers(missing)} of {self.source}: "
                                      f"OpenCV stopped after {index} frames (corrupt or truncated video?)")
        return [got[n] for n in unique]
