"""Middlebury ``.flo`` optical-flow files.

The format (Baker et al., "A Database and Evaluation Methodology for Optical Flow", 2011;
``flowIO.cpp`` of the Middlebury flow code) is, all little-endian:

====== ========= ==========================================================
offset type      content
====== ========= ==========================================================
0      float32   magic ``202021.25`` (the bytes ``PIEH``)
4      int32     width ``W``
8      int32     height ``H``
12     float32   ``H * W * 2`` values, row-major, interleaved ``(u, v)`` per pixel
====== ========= ==========================================================

``u`` is the horizontal (x, rightwards) and ``v`` the vertical (y, downwards) displacement
in pixels. Components with ``|value| > 1e9`` mark unknown flow in the Middlebury ground
truth; they are returned unchanged (see :data:`UNKNOWN_FLOW_THRESH`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fastmer.atomic import atomic_write

__all__ = ["FLO_MAGIC", "MAX_FLO_SIDE", "UNKNOWN_FLOW_THRESH", "read_flo", "write_flo"]

FLO_MAGIC = 202021.25
"""The float32 tag every ``.flo`` file starts with (bytes ``b"PIEH"``)."""

UNKNOWN_FLOW_THRESH = 1e9
"""Middlebury convention: a component above this magnitude means "flow unknown"."""

MAX_FLO_SIDE = 99_999
"""Largest width/height accepted, the sanity limit of the reference ``flowIO.cpp``."""

_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])
_MAGIC_BYTES = np.array(FLO_MAGIC, dtype="<f4").tobytes()


def read_flo(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Args:
        path: file to read.

    Returns:
        ``(H, W, 2)`` float32 array, ``[..., 0] = u`` (x) and ``[..., 1] = v`` (y), in pixels.
        Unknown-flow markers (``|value| > 1e9``) are kept as they are in the file.

    Raises:
        ValueError: the file is not a ``.flo`` file (wrong magic), declares a width or height
            outside ``[1, 99999]``, or its size does not match the declared ``W x H``
            (truncated or with trailing bytes). The message names the file.

    Example:
        >>> flow = read_flo("RubberWhale.flo")  # doctest: +SKIP
        >>> flow.shape
        (388, 584, 2)
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _HEADER.itemsize:
        raise ValueError(f"{path}: not a .flo file: {len(data)} bytes is shorter than the 12-byte header")
    header = np.frombuffer(data, dtype=_HEADER, count=1)[0]
    if data[:4] != _MAGIC_BYTES:
        raise ValueError(
            f"{path}: not a .flo file: magic is {float(header['magic'])!r} "
            f"(bytes {data[:4]!r}), expected {FLO_MAGIC} (b'PIEH')"
        )
    width, height = int(header["width"]), int(header["height"])
    for name, value in (("width", width), ("height", height)):
        if not 1 <= value <= MAX_FLO_SIDE:
            raise ValueError(f"{path}: corrupt .flo header: {name} {value} is outside [1, {MAX_FLO_SIDE}]")
    expected = _HEADER.itemsize + 8 * width * height
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: .flo file {what}: {len(data)} bytes, expected {expected} for {width}x{height} (W x H)"
        )
    flow = np.frombuffer(data, dtype="<f4", offset=_HEADER.itemsize).reshape(height, width, 2)
    # Copy: frombuffer views are read-only, and astype gives native byte order on any host.
    return flow.astype(np.float32, copy=True)


def write_flo(path: str | os.PathLike[str], flow: np.ndarray) -> None:
    """Write a Middlebury ``.flo`` file atomically.

    The data go to a temporary file in the destination directory which then replaces
    ``path`` (:func:`os.replace`), so readers never see a half-written file.

    Args:
        flow: ``(H, W, 2)`` array-like of ``(u, v)`` in pixels (any real dtype; stored as
            float32). The channels-first ``(2, H, W)`` layout is rejected rather than guessed,
            since a ``2 x H x 2`` field would be ambiguous.
        path: destination; its directory must exist.

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)``, is not real-valued, or ``H``/``W`` is
            outside ``[1, 99999]``.

    Example:
        >>> write_flo("zero.flo", np.zeros((4, 5, 2), np.float32))  # doctest: +SKIP
        >>> read_flo("zero.flo").shape  # doctest: +SKIP
        (4, 5, 2)
    """
    path = Path(path)
    arr = np.asarray(flow)
    if arr.ndim != 3 or arr.shape[2] != 2:
        hint = " (channels-first; pass flow.transpose(1, 2, 0))" if arr.ndim == 3 and arr.shape[0] == 2 else ""
        raise ValueError(f"write_flo({path}): flow must have shape (H, W, 2), got {tuple(arr.shape)}{hint}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"write_flo({path}): flow must be real-valued, got dtype {arr.dtype}")
    height, width = arr.shape[:2]
    for name, value in (("width", width), ("height", height)):
        if not 1 <= value <= MAX_FLO_SIDE:
            raise ValueError(f"write_flo({path}): {name} {value} is outside [1, {MAX_FLO_SIDE}]")
    header = np.array([(FLO_MAGIC, width, height)], dtype=_HEADER).tobytes()
    body = np.ascontiguousarray(arr, dtype="<f4").tobytes()

    atomic_write(path, lambda handle: (handle.write(header), handle.write(body)))
