"""PyAV engine: any video FFmpeg can decode, on the CPU; also the probe every engine relies on.

:func:`probe` demuxes the file once (no decoding: ~40 ms for 472 H.264 frames) to learn the
codec, the frame rate, the number of frames and where the keyframes are. Reading a set of
frames then seeks to the last keyframe at or before each run of wanted frames and decodes
forward, converting only the wanted ones; a gap containing a keyframe starts a new seek.
Decoded frames are identified by their timestamps, so a seek that lands early costs only
time; if timestamps are missing or a seek misbehaves the read restarts sequentially from frame 0.

YUV -> RGB uses :data:`SWS_FLAGS` (bilinear + full chroma interpolation + accurate rounding),
which reproduces DALI's CPU decoder bit for bit; see :mod:`fastmer.decode.source`.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from fastmer.decode.source import Region, VideoSource, rgb_to_gray, show_numbers
from fastmer.errors import ClipError

# decoder names (PyAV reports the decoder) -> codec names DALI's docs use
_CODEC_ALIASES = {"libdav1d": "av1", "libaom-av1": "av1", "av1_cuvid": "av1", "libvpx": "vp8", "libvpx-vp9": "vp9",
                  "h264_cuvid": "h264", "hevc_cuvid": "hevc", "libopenh264": "h264"}


@cache
def available() -> tuple[bool, str]:
    """``(True, version)`` when PyAV imports, else ``(False, why)``."""
    try:
        import av  # noqa: PLC0415
    except ImportError as error:
        return False, f"PyAV not importable ({error}); pip install av"
    return True, f"PyAV {av.__version__} (FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})"


@cache
def sws_flags() -> object:
    """libswscale flags for YUV -> RGB24: bilinear | full chroma interpolation | accurate rounding.

    Without the last two, FFmpeg's fast path subsamples chroma and rounds down: ~1 grey level
    darker than the exact BT.601 result, and up to ~100 off in RGB at sharp colour edges.
    """
    from av.video.reformatter import Interpolation  # noqa: PLC0415

    return Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND


def frame_to_rgb(frame: object, reformatter: object | None = None) -> np.ndarray:
    """A PyAV ``VideoFrame`` as an ``(H, W, 3)`` uint8 RGB array, by the shared convention.

    BT.601 coefficients whatever the stream's colour tag says (PyAV would otherwise follow
    the tag, e.g. BT.709): DALI's CPU and GPU video decoders always use BT.601, and with
    them ``rgb_to_gray`` of the result is the luma. ``reformatter``: a reusable
    ``av.video.reformatter.VideoReformatter`` (keeps its libswscale context between frames).
    """
    from av.video.reformatter import Colorspace, VideoReformatter  # noqa: PLC0415

    reformatter = reformatter or VideoReformatter()
    return reformatter.reformat(frame, format="rgb24", src_colorspace=Colorspace.ITU601,  # type: ignore[attr-defined]
                                interpolation=sws_flags()).to_ndarray()


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from demuxing a video file (no decoding).

    Attributes:
        codec: codec name (``"h264"``, ``"hevc"``, ``"vp8"``, ``"vp9"``, ``"av1"``, ``"mjpeg"``, ...).
        n_frames: number of (non-empty) video packets, i.e. frames.
        pts: presentation timestamps of the frames, ascending (frame i has ``pts[i]``);
            None when some packet has none (then reads decode sequentially).
        keyframes: indices of the frames that are keyframes, ascending.
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    n_frames: int
    pts: tuple[int, ...] | None
    keyframes: tuple[int, ...]


def probe(path: str) -> VideoInfo:
    """Demux ``path`` once: codec, size, frame rate, frame count, timestamps and keyframes.

    Raises:
        ClipError: stage ``decode`` when the file is missing, not a video or has no frames.
    """
    import av  # noqa: PLC0415

    if not os.path.isfile(path):
        raise ClipError("decode", f"video file not found: {path}")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ClipError("decode", f"no video stream in {path}")
            stream = container.streams.video[0]
            context = stream.codec_context
            codec = context.name
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            packets = [(packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.size > 0]
            width, height = context.width, context.height
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ClipError("decode", f"cannot open video {path}: {error}") from error
    if not packets:
        raise ClipError("decode", f"no video frames in {path}")
    if any(pts is None for pts, _ in packets):
        pts, keyframes = None, (0,)
    else:
        packets.sort()
        pts = tuple(int(p) for p, _ in packets)
        keyframes = tuple(i for i, (_, key) in enumerate(packets) if key) or (0,)
    return VideoInfo(path=path, codec=_CODEC_ALIASES.get(codec, codec), width=int(width), height=int(height),
                     fps=float(rate) if rate else 0.0, n_frames=len(packets), pts=pts, keyframes=keyframes)


class _Resync(Exception):
    """Timestamps did not line up with the probe: start over, sequentially."""


class PyAVVideo(VideoSource):
    """Video decoded with PyAV on the CPU; any codec FFmpeg supports."""

    engine = "pyav"

    def __init__(self, path: str, reason: str, info: VideoInfo | None = None) -> None:
        self.info = info or probe(path)
        super().__init__(path, reason, n_frames=self.info.n_frames, fps=self.info.fps, codec=self.info.codec,
                         width=self.info.width, height=self.info.height)
        self._index_of = {p: i for i, p in enumerate(self.info.pts)} if self.info.pts else {}

    def _decode(self, unique: list[int], color: bool) -> list[np.ndarray]:
        import av  # noqa: PLC0415
        from av.video.reformatter import VideoReformatter  # noqa: PLC0415

        convert = VideoReformatter()  # one per read (not shared between threads), reused per frame
        got: dict[int, np.ndarray] = {}
        try:
            try:
                if not self._index_of:
                    raise _Resync
                self._decode_seeking(unique, color, got, convert)
            except _Resync:
                got.clear()
                self._decode_sequential(unique, color, got, convert)
        except av.error.FFmpegError as error:
            raise ClipError("decode", f"cannot decode frame(s) {show_numbers(unique)} of {self.source}: {error}") from error
        missing = [n for n in unique if n not in got]
        if missing:
            raise ClipError("decode", f"cannot decode frame(s) {show_numbers(missing)} of {self.source}: "
                                      "the decoder ran out of frames (corrupt or truncated video?)")
        return [got[n] for n in unique]

    def _chunks(self, wanted: list[int], size: int, color: bool, region: Region | None) -> Iterator[np.ndarray]:
        """One seek to the keyframe before the first wanted frame, then forward decoding,
        yielding every ``size`` wanted frames. If timestamps do not line up (or there are
        none to seek by), the frames not yet yielded are read by :meth:`read`, which
        resynchronises by decoding sequentially."""
        import av  # noqa: PLC0415
        from av.video.reformatter import VideoReformatter  # noqa: PLC0415

        if not self._index_of:
            yield from super()._chunks(wanted, size, color, region)
            return
        convert = VideoReformatter()
        buffer: list[np.ndarray] = []
        position = 0  # next wanted frame
        try:
            container, stream = self._open()
            with container:
                keyframes = self.info.keyframes
                key = keyframes[max(bisect.bisect_right(keyframes, wanted[0]) - 1, 0)]
                if key > 0:
                    container.seek(self.info.pts[key], stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    index = self._index_of.get(frame.pts)
                    if index is None or index > wanted[position]:
                        break  # unknown timestamp, or the seek landed past a wanted frame
                    if index < wanted[position]:
                        continue
                    rgb = frame_to_rgb(frame, convert)
                    image = rgb if color else rgb_to_gray(rgb)
                    buffer.append(image if region is None else self.cut(image, region, color))
                    position += 1
                    if len(buffer) == size or position == len(wanted):
                        yield np.stack(buffer)
                        buffer = []
                    if position == len(wanted):
                        return
        except av.error.FFmpegError:
            pass  # read() below decodes again and names the frames it cannot get
        yield from super()._chunks(wanted[position - len(buffer):], size, color, region)

    def _open(self) -> tuple[object, object]:
        import av  # noqa: PLC0415

        container = av.open(self.source)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: ~10% faster on H.264, harmless elsewhere
        return container, stream

    def _groups(self, unique: list[int]) -> list[tuple[int, list[int]]]:
        """Split the wanted frames into runs worth one seek each: ``(keyframe, frames)``."""
        keyframes = self.info.keyframes
        groups: list[tuple[int, list[int]]] = []
        for n in unique:
            key = keyframes[max(bisect.bisect_right(keyframes, n) - 1, 0)]
            if groups and key <= groups[-1][1][-1]:
                groups[-1][1].append(n)  # no keyframe in between: keep decoding forward
            else:
                groups.append((key, [n]))
        return groups

    def _decode_seeking(self, unique: list[int], color: bool, got: dict[int, np.ndarray], convert: object) -> None:
        container, stream = self._open()
        with container:
            for key, frames in self._groups(unique):
                if key > 0:
                    container.seek(self.info.pts[key], stream=stream, backward=True, any_frame=False)
                wanted, last = set(frames), frames[-1]
                for frame in container.decode(stream):
                    index = self._index_of.get(frame.pts)
                    if index is None:
                        raise _Resync
                    if index in wanted:
                        rgb = frame_to_rgb(frame, convert)
                        got[index] = rgb if color else rgb_to_gray(rgb)
                    if index >= last:
                        break
                if any(n not in got for n in frames):
                    raise _Resync  # the seek landed past a wanted frame, or the stream ended early

    def _decode_sequential(self, unique: list[int], color: bool, got: dict[int, np.ndarray],
                           convert: object) -> None:
        wanted, last = set(unique), unique[-1]
        container, stream = self._open()
        with container:
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    rgb = frame_to_rgb(frame, convert)
                    got[index] = rgb if color else rgb_to_gray(rgb)
                if index >= last:
                    break
