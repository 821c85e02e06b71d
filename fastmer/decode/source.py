"""What every decoding engine shares: the :class:`FrameSource` interface and the colour rules.

Colour conventions (the same in every engine, so that engines agree):

* Images, grayscale: the decoder's own grayscale mode (``cv2.IMREAD_GRAYSCALE``, DALI
  ``output_type=GRAY``). For JPEG that is the luma plane; both decoders give identical bytes.
* Video, RGB: YUV -> RGB24 by libswscale with BT.601 coefficients whatever the stream's
  colour tag (range as the pixel format implies: ``yuvj*`` full, others limited), bilinear,
  full chroma interpolation, accurate rounding. That is what DALI's CPU decoder produces
  (its GPU decoder also uses BT.601, with its own CUDA kernel); PyAV is told to do the same
  (:func:`fastmer.decode.pyav.frame_to_rgb`) and the two agree bit for bit, BT.709-tagged
  files included. FFmpeg's default fast path (PyAV's default, ``cv2.VideoCapture``) is ~1
  grey level darker on average and up to ~100 off in RGB at sharp colour edges.
* Video, grayscale: :func:`rgb_to_gray` of that RGB (``cv2.COLOR_RGB2GRAY``), in every engine.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence

import cv2
import numpy as np

from fastmer.errors import ClipError

ENGINES = ("dali-cpu", "dali-gpu", "pyav", "opencv")


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` or ``(T, H, W, 3)`` uint8 RGB -> ``(H, W)`` / ``(T, H, W)`` uint8 gray.

    The one RGB -> gray conversion all video engines use (``cv2.COLOR_RGB2GRAY``, BT.601 weights).
    """
    if rgb.ndim == 3:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = np.empty(rgb.shape[:-1], dtype=np.uint8)
    for i, frame in enumerate(rgb):
        out[i] = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return out


def show_numbers(numbers: Iterable[int], limit: int = 10) -> str:
    """``"3, 7, 9"``: frame numbers for an error message, at most ``limit`` of them."""
    numbers = list(numbers)
    return ", ".join(map(str, numbers[:limit])) + (f" ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def as_numbers(numbers: int | Iterable[int]) -> list[int]:
    """Requested frame numbers as a list of Python ints (one int, a list, a numpy array)."""
    if isinstance(numbers, (int, np.integer)):
        return [int(numbers)]
    return [int(n) for n in numbers]


#: ``(x, y, w, h)``: a rectangle of a frame in pixels (the face crop's footprint).
Region = tuple[int, int, int, int]


def check_region(region: object) -> Region | None:
    """``region`` as a :data:`Region` (None stays None); ValueError naming ``region`` otherwise."""
    if region is None:
        return None
    try:
        values = tuple(region)  # type: ignore[call-overload]
    except TypeError:
        values = ()
    if (len(values) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
            or min(values[:2]) < 0 or min(values[2:]) < 1):
        raise ValueError(f"region must be (x, y, w, h) integers with x, y >= 0 and w, h >= 1, got {region!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def check_fits(region: Region, size: tuple[int, int], name: str) -> None:
    """ClipError naming ``name`` when ``region`` does not fit in frames of ``size`` = ``(H, W)``."""
    x, y, w, h = region
    height, width = size
    if x + w > width or y + h > height:
        raise ClipError("decode", f"{name}: frames are {width}x{height}, too small for the region {w}x{h} at ({x}, {y})")


class FrameSource(ABC):
    """Frames of one clip, read by number, whatever the engine.

    Attributes:
        source: the frame folder or video file.
        engine: ``"dali-cpu"``, ``"dali-gpu"``, ``"pyav"`` or ``"opencv"``.
        reason: why this engine was chosen (for ``fastmer info``, logs and error reports).
        fps: frame rate (video: from the container; images: as given, 0 if unknown).
    """

    engine: str = ""

    def __init__(self, source: str, reason: str, fps: float = 0.0) -> None:
        self.source = str(source)
        self.reason = reason
        self.fps = float(fps)

    @property
    @abstractmethod
    def frame_numbers(self) -> Sequence[int]:
        """The readable frame numbers, ascending (video: ``range(len(self))``)."""

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def read(self, numbers: int | Iterable[int], *, color: bool = False, region: Region | None = None) -> np.ndarray:
        """Frames ``numbers`` in the order given (duplicates allowed; each is decoded once).

        Args:
            numbers: frame numbers (see :attr:`frame_numbers`).
            color: RGB instead of grey.
            region: ``(x, y, w, h)``: only these pixels of each frame, the same as cutting
                them from the whole frames. Engines that can decode part of an image do
                only that (DALI's ``fn.decoders.image_slice``: libjpeg-turbo skips the
                columns beside the region and stops after its last row); the others decode
                whole frames and cut.

        Returns:
            ``(T, H, W)`` uint8 grayscale, or ``(T, H, W, 3)`` uint8 RGB when ``color``
            (``H, W`` = the region's ``h, w`` when given).

        Raises:
            ValueError: ``region`` is not four integers with ``x, y >= 0`` and ``w, h >= 1``.
            ClipError: stage ``decode``, naming the file or folder and the numbers, when a
                frame is missing, unreadable, truncated or corrupt (the message says which),
                beyond the end of a video, of another size, or smaller than ``region``.
        """
        wanted = as_numbers(numbers)
        if not wanted:
            raise ClipError("decode", f"no frames requested from {self.source}")
        region = check_region(region)
        unique = sorted(set(wanted))
        self._check(unique)
        # one frame per unique number, ascending
        decoded = self._decode(unique, color) if region is None else self._decode_region(unique, color, region)
        out = np.empty((len(wanted), *decoded[0].shape), dtype=np.uint8)
        position = {n: i for i, n in enumerate(unique)}
        for i, n in enumerate(wanted):
            out[i] = decoded[position[n]]
        return out

    def chunks(self, numbers: Iterable[int], size: int, *, color: bool = False,
               region: Region | None = None) -> Iterator[np.ndarray]:
        """Frames ``numbers`` (ascending, distinct) as consecutive ``(t, H, W[, 3])`` arrays of
        at most ``size`` frames, in order: a long clip is streamed, never held whole.

        The frames are those :meth:`read` gives (same engine, same conversion, same
        ``region``). Video engines decode forward once (one seek) rather than once per chunk.

        Raises:
            ValueError: ``numbers`` not ascending and distinct, ``size < 1`` or a bad ``region``.
            ClipError: as :meth:`read`; numbers this source does not have are reported before
                anything is decoded.
        """
        wanted = as_numbers(numbers)
        region = check_region(region)
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        if any(b <= a for a, b in itertools.pairwise(wanted)):
            raise ValueError("chunks() reads ascending, distinct frame numbers")
        if not wanted:
            raise ClipError("decode", f"no frames requested from {self.source}")
        self._check(wanted)
        return self._chunks(wanted, size, color, region)

    def _chunks(self, wanted: list[int], size: int, color: bool, region: Region | None) -> Iterator[np.ndarray]:
        """Checked ascending ``wanted`` in chunks; by default one :meth:`read` per chunk."""
        for start in range(0, len(wanted), size):
            yield self.read(wanted[start : start + size], color=color, region=region)

    def _check(self, unique: list[int]) -> None:
        """ClipError for numbers this source does not have."""
        numbers = self.frame_numbers
        if isinstance(numbers, range):
            bad = [n for n in unique if n not in numbers]
            if bad:
                raise ClipError("decode", f"frame(s) {show_numbers(bad)} beyond the end of {self.source} "
                                          f"({len(numbers)} frames, numbered 0..{len(numbers) - 1})")
        else:
            have = set(numbers)
            bad = [n for n in unique if n not in have]
            if bad:
                raise ClipError("decode", f"frame(s) {show_numbers(bad)} missing in {self.source}")

    @abstractmethod
    def _decode(self, unique: list[int], color: bool) -> np.ndarray | list[np.ndarray]:
        """Decode the valid, sorted, unique ``unique``: one ``(H, W[, 3])`` uint8 frame each."""

    def _decode_region(self, unique: list[int], color: bool, region: Region) -> list[np.ndarray]:
        """:meth:`_decode`'s frames cut to ``region``. By default whole frames are decoded and
        cut: a video codec cannot decode part of a frame (its frames predict from each other)."""
        return [self.cut(frame, region, color) for frame in self._decode(unique, color)]

    def cut(self, frames: np.ndarray, region: Region, color: bool, name: str = "") -> np.ndarray:
        """``region`` of one ``(H, W[, 3])`` frame or of ``(T, H, W[, 3])`` frames (a view, no
        copy); ClipError naming ``name`` (default: the source) when it does not fit."""
        x, y, w, h = region
        check_fits(region, (frames[..., 0] if color else frames).shape[-2:], name or self.source)
        return frames[..., y : y + h, x : x + w, :] if color else frames[..., y : y + h, x : x + w]

    def close(self) -> None:  # noqa: B027  (an optional hook: most engines hold nothing)
        """Release what the engine holds (nothing by default: files are opened per read)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source!r} engine={self.engine} frames={len(self)}>"


def check_same_size(sizes: Sequence[tuple[int, int]], names: Sequence[str]) -> None:
    """ClipError naming the first of ``names`` whose ``(H, W)`` differs from the first's."""
    first = sizes[0]
    for size, name in zip(sizes, names, strict=True):
        if tuple(size) != tuple(first):
            raise ClipError("decode", f"frame {name} is {size[1]}x{size[0]}, expected "
                                      f"{first[1]}x{first[0]} like {names[0]}")


def stack_same_size(frames: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Stack frames that must share one size; ClipError naming the odd one out otherwise."""
    check_same_size([frame.shape[:2] for frame in frames], names)
    out = np.empty((len(frames), *frames[0].shape), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = frame
    return out


class ImageSequenceSource(FrameSource):
    """A clip stored as one image file per frame; subclasses only decode files."""

    def __init__(self, source: str, paths: Sequence[str], numbers: Sequence[int], reason: str,
                 fps: float = 0.0) -> None:
        super().__init__(source, reason, fps)
        self._path_of = dict(zip(numbers, paths, strict=True))
        self._numbers = tuple(sorted(self._path_of))
        self._first: tuple[tuple[int, int], str] | None = None  # the first decoded file's (H, W) and path

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return self._numbers

    def path_of(self, number: int) -> str:
        """The file holding frame ``number``."""
        return self._path_of[number]

    def _decode(self, unique: list[int], color: bool) -> np.ndarray:
        paths = [self._path_of[n] for n in unique]
        frames = self._decode_files(paths, color, None)
        self.check_sizes([frame.shape[:2] for frame in frames], paths)
        return stack_same_size(frames, paths)

    def _decode_region(self, unique: list[int], color: bool, region: Region) -> np.ndarray:
        paths = [self._path_of[n] for n in unique]
        return stack_same_size(self._decode_files(paths, color, region), paths)

    def check_sizes(self, sizes: Sequence[tuple[int, int]], paths: Sequence[str]) -> None:
        """ClipError naming the first of ``paths`` whose whole ``(H, W)`` differs from the
        first file this source decoded (in this call or an earlier one: chunks are compared)."""
        if self._first is None:
            self._first = (tuple(sizes[0]), paths[0])  # type: ignore[assignment]
        first_size, first_path = self._first  # type: ignore[misc]
        check_same_size([first_size, *sizes], [first_path, *paths])

    @abstractmethod
    def _decode_files(self, paths: list[str], color: bool, region: Region | None) -> list[np.ndarray]:
        """Each file as ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8, cut to ``region`` when one
        is given (then the files' whole sizes are checked here, with :meth:`check_sizes`);
        ClipError naming a bad file."""


class VideoSource(FrameSource):
    """A clip stored as a video file; frames are numbered 0..len-1 in presentation order.

    Attributes:
        codec: codec name (``"h264"``, ``"vp9"``, ``"mjpeg"``, ...).
        width, height: frame size in pixels (0 if unknown).
    """

    def __init__(self, source: str, reason: str, *, n_frames: int, fps: float, codec: str = "",
                 width: int = 0, height: int = 0) -> None:
        super().__init__(source, reason, fps)
        self.n_frames = int(n_frames)
        self.codec = codec
        self.width = int(width)
        self.height = int(height)

    @property
    def frame_numbers(self) -> range:
        return range(self.n_frames)
