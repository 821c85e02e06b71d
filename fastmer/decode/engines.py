"""One interface for image sequences and video files: :func:`open_frames` picks the engine.

Engine choice with ``engine="auto"`` (``FrameSource.reason`` says which rule applied):

================  =========================================  ===============================
source            device="cpu"                               device="cuda"
================  =========================================  ===============================
image files       DALI CPU decoder, else OpenCV (imread)     DALI nvJPEG, else OpenCV (CPU)
VP8, VP9, MJPEG   DALI CPU video decoder, else PyAV          DALI NVDEC, else PyAV (CPU)
H.264, HEVC, AV1, PyAV (DALI's CPU decoder cannot)           DALI NVDEC, else PyAV (CPU)
MPEG-4
other video       PyAV                                       PyAV (CPU)
================  =========================================  ===============================

"else" means DALI is not installed / does not import (or ``FASTMER_NO_DALI=1``); when PyAV
is missing, OpenCV's ``VideoCapture`` reads video as a last resort. ``engine="dali"``,
``"pyav"`` or ``"opencv"`` forces one and raises ValueError naming why it cannot be used.
``device="cuda"`` without a visible GPU is a ValueError, so the GPU path cannot be reached
by accident. All engines return the same pixels (see :mod:`fastmer.decode.source` for the
colour conventions; the tests measure the agreement).

The video codec comes from a PyAV probe (demux only), which also gives the frame count and
rate every engine reports. DALI is imported only when first needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fastmer.choices import DECODERS as ENGINE_OPTIONS
from fastmer.datasets.common import natural_key
from fastmer.decode import dali as _dali
from fastmer.decode import pyav as _pyav
from fastmer.decode.opencv import OpenCVImages, OpenCVVideo
from fastmer.decode.source import FrameSource
from fastmer.errors import ClipError

if TYPE_CHECKING:
    from fastmer.datasets.clip import Clip

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")  # as fastmer.datasets.clip
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# codecs decode_engines() reports on (DALI's names)
REPORTED_CODECS = ("h264", "hevc", "av1", "mpeg4", "vp8", "vp9", "mjpeg")
# OpenCV FOURCC -> codec, used only when PyAV is missing
_FOURCC_CODECS = {"avc1": "h264", "h264": "h264", "x264": "h264", "hev1": "hevc", "hvc1": "hevc", "hevc": "hevc",
                  "vp80": "vp8", "vp90": "vp9", "mjpg": "mjpeg", "av01": "av1", "mp4v": "mpeg4", "fmp4": "mpeg4",
                  "xvid": "mpeg4", "divx": "mpeg4"}


def open_frames(source: str | os.PathLike, *, frame_paths: Sequence[str] | None = None,
                frame_numbers: Sequence[int] | None = None, engine: str = "auto", device: str = "cpu",
                fps: float = 0.0) -> FrameSource:
    """Open a clip's frames for reading by number.

    Args:
        source: a folder of frame images, or a video file (``.mp4 .avi .mkv .webm .mov``,
            or any existing non-image file).
        frame_paths: for a folder, the ordered frame files (as ``Clip.frame_paths``);
            None lists the folder's jpg/png/bmp files in natural order.
        frame_numbers: the dataset's number of each of ``frame_paths`` (as
            ``Clip.frame_numbers``); None numbers given ``frame_paths`` 0, 1, ..., and listed
            files by the trailing digits of their names (``img46.jpg`` is 46) when those are
            unique, else 0, 1, ... Video frames are always 0-based indices.
        engine: ``"auto"``, ``"dali"``, ``"pyav"``, ``"opencv"`` (or ``"dali-cpu"``/``"dali-gpu"``).
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"`` (where DALI decodes; frames are returned
            as numpy arrays in host memory either way).
        fps: frame rate of an image sequence, if known (video: read from the file).

    Returns:
        A :class:`~fastmer.decode.source.FrameSource`: ``read(numbers, color=False)`` gives
        ``(T, H, W)`` uint8 gray or ``(T, H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: bad arguments, ``device="cuda"`` without a GPU, or a forced engine that
            cannot decode this source (the message says why).
        ClipError: stage ``decode``: the video or folder is missing, unreadable or empty.
    """
    device_id = _parse_device(device)
    engine = _parse_engine(engine, device_id)
    source = os.fspath(source)
    if _is_video(source, frame_paths):
        if frame_paths:
            raise ValueError(f"{source} is a video file: frame_paths apply to folders of images only")
        return _open_video(source, engine, device_id)
    paths, numbers = _image_frames(source, frame_paths, frame_numbers)
    name, reason = choose_engine("images", engine=engine, gpu=device_id is not None)
    if name == "opencv":
        return OpenCVImages(source, paths, numbers, reason, fps)
    return _dali.DaliImages(source, paths, numbers, reason, device_id=device_id, fps=fps)


def open_clip_frames(clip: Clip, **kw: object) -> FrameSource:
    """:func:`open_frames` for a :class:`~fastmer.datasets.clip.Clip` (its source, frame paths,
    numbers and, for image sequences, fps). ``kw``: ``engine``, ``device``.
    The ``clip.view`` half of side-by-side frames is not cropped here."""
    if clip.is_video:
        return open_frames(clip.source, **kw)  # type: ignore[arg-type]
    return open_frames(clip.source, frame_paths=clip.frame_paths, frame_numbers=clip.frame_numbers,
                       fps=kw.pop("fps", clip.fps), **kw)  # type: ignore[arg-type]


def choose_engine(kind: str, *, codec: str | None = None, engine: str = "auto", gpu: bool = False,
                  subject: str = "") -> tuple[str, str]:
    """The engine for ``kind`` (``"images"`` or ``"video"`` of ``codec``) and why.

    Args:
        engine: ``"auto"``, ``"dali"``, ``"pyav"`` or ``"opencv"``.
        gpu: decode on a CUDA device (the caller has checked that one exists).
        subject: how to name the source in reasons (a file name; default: the codec).

    Returns:
        ``(name, reason)``, name one of ``"dali-cpu"``, ``"dali-gpu"``, ``"pyav"``, ``"opencv"``.

    Raises:
        ValueError: a forced ``engine`` cannot decode this kind/codec; the message says why.
    """
    dali_name = "dali-gpu" if gpu else "dali-cpu"
    cpu_note = " (decodes on the CPU)" if gpu else ""
    dali_ok, dali_why = _dali.available()
    if kind == "images":
        if engine == "pyav":
            raise ValueError("engine='pyav' decodes video files; image sequences use 'opencv' or 'dali'")
        if engine == "opencv":
            return "opencv", f"engine='opencv' requested{cpu_note}"
        if engine == "dali":
            if not dali_ok:
                raise ValueError(f"engine='dali' cannot be used: {dali_why}")
            return dali_name, f"engine='dali' requested ({dali_why})"
        if dali_ok:
            how = "nvJPEG via fn.decoders.image(device='mixed')" if gpu else \
                "its CPU image decoder, in batches (same pixels as OpenCV)"
            return dali_name, f"{dali_why} installed: decodes images with {how} -> {dali_name}"
        return "opencv", f"{dali_why} -> OpenCV (cv2.imread){cpu_note}"
    if kind != "video":
        raise ValueError(f"kind must be 'images' or 'video', got {kind!r}")

    codec = codec or "unknown"
    supported = _dali.GPU_VIDEO_CODECS if gpu else _dali.CPU_VIDEO_CODECS
    if not dali_ok:
        dali_no = dali_why
    elif codec in supported:
        dali_no = ""
    elif gpu:
        dali_no = f"DALI's GPU video decoder (NVDEC) handles {', '.join(supported)}; {_is(subject, codec)}"
    else:
        dali_no = f"DALI's CPU video decoder handles only VP8, VP9 and MJPEG; {_is(subject, codec)}"
    pyav_ok, pyav_why = _pyav.available()
    if engine == "opencv":
        return "opencv", f"engine='opencv' requested: cv2.VideoCapture{cpu_note}"
    if engine == "pyav":
        if not pyav_ok:
            raise ValueError(f"engine='pyav' cannot be used: {pyav_why}")
        return "pyav", f"engine='pyav' requested{cpu_note}"
    if engine == "dali":
        if dali_no:
            hint = " (use device='cuda' or engine='pyav')" if dali_ok and not gpu else ""
            raise ValueError(f"engine='dali' cannot decode {subject or codec + ' video'}: {dali_no}{hint}")
        return dali_name, f"engine='dali' requested ({dali_why}, {codec} {'NVDEC' if gpu else 'CPU'} decoder)"
    if not dali_no:
        how = f"decodes {codec} with NVDEC on the GPU" if gpu else f"its CPU video decoder handles {codec}"
        return dali_name, f"{dali_why} installed: {how} -> {dali_name}"
    if pyav_ok:
        return "pyav", f"{dali_no} -> PyAV{cpu_note}"
    return "opencv", f"{dali_no}; {pyav_why} -> OpenCV VideoCapture{cpu_note}"


def decode_engines() -> dict:
    """What ``fastmer info`` shows about decoding: engines, devices, and auto's choices.

    Returns:
        JSON-ready ``{"engines": {name: {"available", "detail"}}, "devices": {"cpu"|"cuda":
        {"available", "detail"}}, "auto": {device: {"images": {"engine", "reason"},
        "video": {codec: {"engine", "reason"}}}}}``; ``engine`` is None where the device is
        missing. Imports DALI (about half a second) and torch to find out.
    """
    import cv2  # noqa: PLC0415

    dali_ok, dali_why = _dali.available()
    pyav_ok, pyav_why = _pyav.available()
    cuda_ok, cuda_why = _cuda_status()
    out: dict = {
        "engines": {
            "dali": {"available": dali_ok, "detail": dali_why if dali_ok else f"{dali_why}; needed for GPU decoding"},
            "pyav": {"available": pyav_ok, "detail": pyav_why},
            "opencv": {"available": True, "detail": f"OpenCV {cv2.__version__}"},
        },
        "devices": {"cpu": {"available": True, "detail": ""}, "cuda": {"available": cuda_ok, "detail": cuda_why}},
        "auto": {},
    }
    for device, gpu in (("cpu", False), ("cuda", True)):
        if gpu and not cuda_ok:
            out["auto"][device] = {"images": _no_gpu(cuda_why, "images"),
                                   "video": {c: _no_gpu(cuda_why, "video", c) for c in REPORTED_CODECS}}
            continue
        choices: dict = {"images": _as_dict(choose_engine("images", gpu=gpu)), "video": {}}
        for codec in REPORTED_CODECS:
            choices["video"][codec] = _as_dict(choose_engine("video", codec=codec, gpu=gpu))
        out["auto"][device] = choices
    return out


# --- helpers --------------------------------------------------------------------------------

def _is(subject: str, codec: str) -> str:
    return f"{subject} is {codec}" if subject else f"{codec} is not one of them"


def _as_dict(choice: tuple[str, str]) -> dict:
    return {"engine": choice[0], "reason": choice[1]}


def _no_gpu(why: str, kind: str, codec: str | None = None) -> dict:
    """Auto's choice where no GPU is visible: none, and what it would be with one."""
    would, _ = choose_engine(kind, codec=codec, gpu=True)
    return {"engine": None, "reason": f"device='cuda' unavailable: {why}; with a GPU auto would pick {would}"}


def _cuda_status() -> tuple[bool, str]:
    try:
        import torch  # noqa: PLC0415
    except ImportError as error:
        return False, f"torch not importable ({error})"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU visible (torch.cuda.is_available() is False)"
    return True, f"{torch.cuda.device_count()} GPU(s), {torch.cuda.get_device_name(0)}"


def _parse_device(device: object) -> int | None:
    """None for the CPU, the CUDA device index otherwise; ValueError without a GPU."""
    text = str(device).lower()
    if text == "cpu":
        return None
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not match:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    ok, why = _cuda_status()
    if not ok:
        raise ValueError(f"device={device!r} but {why}; use device='cpu'")
    import torch  # noqa: PLC0415

    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return index


def _parse_engine(engine: str, device_id: int | None) -> str:
    if engine not in ENGINE_OPTIONS:
        raise ValueError(f"engine must be one of {ENGINE_OPTIONS}, got {engine!r}")
    if engine == "dali-gpu" and device_id is None:
        raise ValueError("engine='dali-gpu' needs device='cuda'")
    if engine == "dali-cpu" and device_id is not None:
        raise ValueError("engine='dali-cpu' needs device='cpu'")
    return "dali" if engine.startswith("dali") else engine


def _is_video(source: str, frame_paths: Sequence[str] | None) -> bool:
    suffix = Path(source).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if frame_paths is not None or os.path.isdir(source):
        return False
    if os.path.isfile(source):
        if suffix in IMAGE_EXTENSIONS:
            raise ValueError(f"{source} is one image: pass its folder (and frame_paths) to read an image sequence")
        return True  # some other container (.mpg, .m4v, ...): let the video engines try
    raise ClipError("decode", f"clip source not found: {source}")


def _image_frames(source: str, frame_paths: Sequence[str] | None,
                  frame_numbers: Sequence[int] | None) -> tuple[list[str], list[int]]:
    """The frame files and their numbers (see :func:`open_frames`)."""
    if frame_paths is None:
        if not os.path.isdir(source):
            raise ClipError("decode", f"frame folder not found: {source}")
        paths = sorted((os.path.join(source, name) for name in os.listdir(source)
                        if Path(name).suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda path: natural_key(os.path.basename(path)))
    else:
        paths = [os.fspath(path) for path in frame_paths]
    if not paths:
        raise ClipError("decode", f"no frames found in {source}")
    if frame_numbers is None:
        numbers = list(range(len(paths)))
        if frame_paths is None:  # listed: number by name, as the dataset loaders do
            trailing = [re.search(r"(\d+)$", Path(path).stem) for path in paths]
            if all(trailing) and len({int(m.group(1)) for m in trailing}) == len(paths):
                numbers = [int(m.group(1)) for m in trailing]
    else:
        numbers = [int(n) for n in frame_numbers]
        if len(numbers) != len(paths):
            raise ValueError(f"{len(paths)} frame_paths but {len(numbers)} frame_numbers for {source}")
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"duplicate frame_numbers for {source}")
    return paths, numbers


def _open_video(source: str, engine: str, device_id: int | None) -> FrameSource:
    if engine == "opencv":
        return OpenCVVideo(source, choose_engine("video", engine="opencv", gpu=device_id is not None)[1])
    info = None
    if _pyav.available()[0]:
        info = _pyav.probe(source)  # ClipError if missing/corrupt
        codec, n_frames, fps, width, height = info.codec, info.n_frames, info.fps, info.width, info.height
    else:  # no PyAV: OpenCV's container metadata
        probe = OpenCVVideo(source, "")
        codec = _FOURCC_CODECS.get(probe.codec, probe.codec)
        n_frames, fps, width, height = probe.n_frames, probe.fps, probe.width, probe.height
    name, reason = choose_engine("video", codec=codec, engine=engine, gpu=device_id is not None,
                                 subject=os.path.basename(source))
    if name == "pyav":
        return _pyav.PyAVVideo(source, reason, info)
    if name == "opencv":
        return OpenCVVideo(source, reason)
    return _dali.DaliVideo(source, reason, device_id=device_id, n_frames=n_frames, fps=fps, codec=codec,
                           width=width, height=height)
