"""Reading single image files with OpenCV (CASME II, SAMM, SMIC store one image per frame).

These are the OpenCV image engine's primitives; :func:`fastmer.decode.open_frames` picks an
engine (DALI or OpenCV) and reads whole clips. Files are read once into memory, checked for
completeness (:mod:`fastmer.decode.integrity`: ``cv2.imread`` would accept a truncated JPEG,
grey below the cut) and decoded with ``cv2.imdecode``, which gives the same pixels as
``cv2.imread`` (EXIF orientation included).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fastmer.decode.integrity import check_complete, diagnose, read_file
from fastmer.errors import ClipError


def _imread(path: str, flag: int) -> np.ndarray:
    path = str(path)
    data = read_file(path)
    check_complete(path, data)
    image = cv2.imdecode(data, flag)
    if image is None:
        raise ClipError("decode", f"cannot decode {path}: {diagnose(data)}")
    return image


def read_gray(path: str) -> np.ndarray:
    """One frame as an ``(H, W)`` uint8 grayscale array (OpenCV's grayscale decoding).

    Raises:
        ClipError: stage ``decode`` naming the file and the cause when it is missing, empty,
            truncated or undecodable.
    """
    return _imread(path, cv2.IMREAD_GRAYSCALE)


def read_rgb(path: str) -> np.ndarray:
    """One frame as an ``(H, W, 3)`` uint8 RGB array.

    Raises:
        ClipError: stage ``decode`` naming the file and the cause when it is missing, empty,
            truncated or undecodable.
    """
    return cv2.cvtColor(_imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_sequence(paths: Sequence[str]) -> np.ndarray:
    """Frames ``paths`` as a ``(T, H, W)`` uint8 array; all frames must share one size."""
    if not paths:
        raise ClipError("decode", "no frames to read")
    first = read_gray(paths[0])
    frames = np.empty((len(paths), *first.shape), dtype=np.uint8)
    frames[0] = first
    for i, path in enumerate(paths[1:], start=1):
        image = read_gray(path)
        if image.shape != first.shape:
            raise ClipError("decode", f"frame {path} is {image.shape[1]}x{image.shape[0]}, expected "
                            f"{first.shape[1]}x{first.shape[0]} like {paths[0]}")
        frames[i] = image
    return frames
