"""NVIDIA DALI engine: images and video decoded by DALI, on the CPU or (device="cuda") the GPU.

* GPU (``"dali-gpu"``): ``fn.decoders.image(device="mixed")`` (nvJPEG / nvImageCodec) for
  image files; ``fn.decoders.video(device="mixed")`` (NVDEC) for H.264, HEVC, VP8, VP9,
  AV1, MPEG-4 and MJPEG video. Frames come back to the host as numpy arrays.
* CPU (``"dali-cpu"``): the same operators with ``device="cpu"``; DALI's CPU video decoder
  handles only VP8, VP9 and MJPEG (its bundled libavcodec has no H.264/HEVC decoder).

Each pipeline is fed encoded bytes through ``fn.external_source`` (a batch of image files,
or one whole video file plus the wanted frame indices), so one pipeline per kind serves
every clip: pipelines are built once per (process, thread, kind, device), not per call.
DALI pipelines are not thread-safe, hence one per thread (:class:`threading.local`); the
process id is part of the key because pipelines do not survive ``fork``.

Nothing here imports DALI at module import time: ``import nvidia.dali`` takes ~0.5 s.
"""

from __future__ import annotations

import os
import re
import threading
from functools import cache

import numpy as np

from fastmer.decode.integrity import check_complete, diagnose, read_file
from fastmer.decode.source import (
    ImageSequenceSource,
    Region,
    VideoSource,
    check_fits,
    rgb_to_gray,
    show_numbers,
)
from fastmer.errors import ClipError

INSTALL_HINT = "pip install nvidia-dali-cuda120 (Linux x86-64; fastmer's `dali` extra)"
CPU_VIDEO_CODECS = ("vp8", "vp9", "mjpeg")
GPU_VIDEO_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg")
IMAGE_BATCH = 32  # files per pipeline run (the batch size the image pipelines are built for)
_VIDEO_CHUNK_BYTES = 256 << 20  # RGB bytes decoded per video run, to bound peak memory


@cache
def available() -> tuple[bool, str]:
    """``(True, "DALI <version>")`` when DALI imports and has the video decoder, else ``(False, why)``.

    ``FASTMER_NO_DALI=1`` turns DALI off (e.g. a broken install), as if it were absent.
    """
    if os.environ.get("FASTMER_NO_DALI", "").strip() not in ("", "0"):
        return False, "DALI disabled by FASTMER_NO_DALI"
    try:
        from nvidia import dali  # noqa: PLC0415
        from nvidia.dali import fn  # noqa: PLC0415
    except ModuleNotFoundError as error:
        if error.name in ("nvidia", "nvidia.dali"):
            return False, f"DALI not installed: {INSTALL_HINT}"
        return False, f"DALI does not import: {error}"
    except Exception as error:  # noqa: BLE001 - a broken install must not break fastmer
        return False, f"DALI does not import: {type(error).__name__}: {error}"
    if _video_decoder(fn) is None:
        return False, f"DALI {dali.__version__} has no fn.decoders.video (needs DALI >= 2.0)"
    return True, f"DALI {dali.__version__}"


def _video_decoder(fn: object) -> object | None:
    decoders = getattr(fn, "decoders", None)
    if decoders is not None and hasattr(decoders, "video"):
        return decoders.video
    experimental = getattr(getattr(fn, "experimental", None), "decoders", None)
    return getattr(experimental, "video", None)


_SAMPLE = re.compile(r"Failed to decode sample #(\d+)\s*:?")


class _DaliFailure(Exception):
    """A pipeline run failed; the message is DALI's, shortened.

    Attributes:
        sample: the index in the batch of the sample DALI names ("Failed to decode sample #3"),
            or None when its message names none.
        reason: DALI's message without that prefix ("" when it gives no more than the index).
    """

    def __init__(self, detail: str, full: str = "") -> None:
        super().__init__(detail)
        match = _SAMPLE.search(full or detail)
        self.sample = int(match.group(1)) if match else None
        self.reason = _SAMPLE.sub("", detail).strip(" :") if match else detail


_local = threading.local()
_orphans: list[object] = []  # pipelines inherited across fork: never destroyed (their threads are gone)


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _build(kind: str, device_id: int | None) -> object:
    """One pipeline: ``kind`` is ``"gray"``/``"rgb"`` (image files), the same with
    ``"-region"`` (a rectangle of each image, and each image's whole shape), or ``"video"``."""
    from nvidia.dali import fn, pipeline_def, types  # noqa: PLC0415

    backend = "cpu" if device_id is None else "mixed"  # mixed = CPU input, GPU decode and output

    @pipeline_def(batch_size=1 if kind == "video" else IMAGE_BATCH, num_threads=_threads(), device_id=device_id,
                  prefetch_queue_depth=1, exec_dynamic=True)
    def pipeline():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
        if kind == "video":
            frames = fn.external_source(name="frames", dtype=types.INT32, ndim=1)
            return _video_decoder(fn)(encoded, device=backend, frames=frames)
        output_type = types.RGB if kind.startswith("rgb") else types.GRAY
        if not kind.endswith("-region"):
            return fn.decoders.image(encoded, device=backend, output_type=output_type)
        # (y, x) and (h, w) in pixels. libjpeg-turbo (CPU) and nvJPEG decode only the region's
        # columns and stop after its last row. The second output, each file's whole shape
        # read from its header, is checked against the first file's (a region past an
        # image's edge makes DALI fail: _decode_files then decodes whole frames to say why).
        anchor = fn.external_source(name="anchor", dtype=types.INT32, ndim=1)
        shape = fn.external_source(name="shape", dtype=types.INT32, ndim=1)
        region = fn.decoders.image_slice(encoded, anchor, shape, device=backend, output_type=output_type,
                                         axes=[0, 1], normalized_anchor=False, normalized_shape=False)
        return region, fn.peek_image_shape(encoded)

    pipe = pipeline()
    pipe.build()
    return pipe


def _pipeline(kind: str, device_id: int | None) -> object:
    if getattr(_local, "pid", None) != os.getpid():
        _orphans.extend(getattr(_local, "pipes", {}).values())
        _local.pid, _local.pipes = os.getpid(), {}
    key = (kind, device_id)
    if key not in _local.pipes:
        _local.pipes[key] = _build(kind, device_id)
    return _local.pipes[key]


def _run(kind: str, device_id: int | None, feeds: dict[str, list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Feed one batch, run, and return each output's samples as owned numpy arrays."""
    pipe = _pipeline(kind, device_id)
    try:
        for name, data in feeds.items():
            pipe.feed_input(name, data)
        outputs = []
        for out in pipe.run():
            if hasattr(out, "as_cpu") and device_id is not None:
                out = out.as_cpu()  # GPU -> host copy
            outputs.append([np.array(out[i]) for i in range(len(out))])  # copy: DALI reuses its buffers
        return outputs
    except Exception as error:  # DALI raises RuntimeError with a long traceback-like message
        _local.pipes.pop((kind, device_id), None)  # "no longer valid" after an error: rebuild next time
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = next((line for line in reversed(lines) if "pipeline" not in line.lower()), lines[-1] if lines else "")
        raise _DaliFailure(detail or type(error).__name__, str(error)) from error


def build_time(device_id: int | None = None) -> dict[str, float]:
    """Seconds to build a fresh pipeline of each kind (for benchmarks; the cache is untouched)."""
    import time  # noqa: PLC0415

    times = {}
    for kind in ("gray", "rgb", "video"):
        start = time.perf_counter()
        _build(kind, device_id)
        times[kind] = time.perf_counter() - start
    return times


class DaliImages(ImageSequenceSource):
    """Image sequence decoded by DALI in batches of :data:`IMAGE_BATCH` files.

    Each file is checked for completeness before it is fed (a truncated JPEG is refused with
    the same message as with OpenCV); a file DALI then fails on is named from the sample
    index in DALI's message, with :func:`~fastmer.decode.integrity.diagnose`'s cause and
    DALI's own reason where it gives one.
    """

    def __init__(self, source: str, paths: list[str], numbers: list[int], reason: str, *,
                 device_id: int | None, fps: float = 0.0) -> None:
        super().__init__(source, paths, numbers, reason, fps)
        self.device_id = device_id
        self.engine = "dali-cpu" if device_id is None else "dali-gpu"

    def _decode_files(self, paths: list[str], color: bool, region: Region | None) -> list[np.ndarray]:
        kind = ("rgb" if color else "gray") + ("" if region is None else "-region")
        out: list[np.ndarray] = []
        shapes: list[tuple[int, int]] = []
        for start in range(0, len(paths), IMAGE_BATCH):
            chunk = paths[start:start + IMAGE_BATCH]
            feeds = {"encoded": [read_file(path) for path in chunk]}
            for path, blob in zip(chunk, feeds["encoded"], strict=True):
                check_complete(path, blob)
            if region is not None:
                x, y, w, h = region
                feeds["anchor"] = [np.array([y, x], np.int32)] * len(chunk)
                feeds["shape"] = [np.array([h, w], np.int32)] * len(chunk)
            try:
                outputs = _run(kind, self.device_id, feeds)
            except _DaliFailure as error:
                if region is not None:  # a frame too small for the region, or a bad file: say which
                    frames = self._decode_files(chunk, color, None)
                    self.check_sizes([frame.shape[:2] for frame in frames], chunk)
                    check_fits(region, frames[0].shape[:2], chunk[0])
                    raise ClipError("decode", f"DALI could not decode the region {region} (x, y, w, h) of "
                                              f"{len(chunk)} images from {chunk[0]}, which it decodes whole: "
                                              f"{error}") from error
                if error.sample is not None and error.sample < len(chunk):
                    raise _undecodable(chunk[error.sample], feeds["encoded"][error.sample], error) from error
                self._raise_for_culprit(kind, chunk, feeds)
                raise  # not reached: one file of the batch fails on its own
            samples = outputs[0]
            if region is not None:
                shapes += [(int(shape[0]), int(shape[1])) for shape in outputs[1]]
            out.extend(samples if color else [s[..., 0] for s in samples])  # GRAY is (H, W, 1)
        if region is not None:
            self.check_sizes(shapes, paths)
            check_fits(region, shapes[0], paths[0])
        return out

    def _raise_for_culprit(self, kind: str, chunk: list[str], feeds: dict[str, list[np.ndarray]]) -> None:
        """A batch failed: decode its files one by one to name the bad one."""
        for i, path in enumerate(chunk):
            try:
                _run(kind, self.device_id, {name: [data[i]] for name, data in feeds.items()})
            except _DaliFailure as error:
                raise _undecodable(path, feeds["encoded"][i], error) from error
        raise ClipError("decode", f"DALI failed on a batch of {len(chunk)} images from {chunk[0]} "
                                  "but on none of them alone")


def _undecodable(path: str, blob: np.ndarray, error: _DaliFailure) -> ClipError:
    """The error for a file DALI could not decode: the cause, and DALI's reason if it gave one."""
    said = f"; DALI: {error.reason}" if error.reason else ""
    return ClipError("decode", f"cannot decode {path} with DALI: {diagnose(blob)}{said}")


class DaliVideo(VideoSource):
    """Video decoded by DALI: CPU for VP8/VP9/MJPEG, NVDEC on the GPU for most codecs.

    The frame count, rate and codec come from a probe (PyAV, else OpenCV): DALI's decoder
    does not report them, and pads silently past the end, so indices are checked first.
    """

    def __init__(self, path: str, reason: str, *, device_id: int | None, n_frames: int, fps: float, codec: str,
                 width: int = 0, height: int = 0) -> None:
        if not os.path.isfile(path):
            raise ClipError("decode", f"video file not found: {path}")
        super().__init__(path, reason, n_frames=n_frames, fps=fps, codec=codec, width=width, height=height)
        self.device_id = device_id
        self.engine = "dali-cpu" if device_id is None else "dali-gpu"

    def _decode(self, unique: list[int], color: bool) -> list[np.ndarray]:
        data = read_file(self.source)  # per read, not held: the OS caches it anyway
        per_frame = max(1, self.width * self.height * 3)
        chunk = max(1, min(256, _VIDEO_CHUNK_BYTES // per_frame))
        out: list[np.ndarray] = []
        for start in range(0, len(unique), chunk):
            frames = unique[start:start + chunk]
            try:
                ((sequence,),) = _run("video", self.device_id, {"encoded": [data], "frames": [np.asarray(frames, np.int32)]})
            except _DaliFailure as error:
                raise ClipError("decode", f"cannot decode frame(s) {show_numbers(frames)} of {self.source} "
                                          f"with DALI: {error}") from error
            if sequence.ndim != 4 or sequence.shape[0] != len(frames):
                raise ClipError("decode", f"DALI returned {sequence.shape} for {len(frames)} frame(s) of {self.source}")
            out.extend(sequence if color else rgb_to_gray(sequence))
        return out
