"""Video files through open_frames: PyAV, DALI-CPU and OpenCV engines, agreement, errors, speed.

Videos are generated here with PyAV (MJPEG .avi, VP9 .webm, VP8 .webm, H.264 .mp4) from a
synthetic pattern with sharp colour edges, the hardest case for YUV -> RGB agreement.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is not installed (pip install av)")

from fastmer.decode import dali as dali_engine
from fastmer.decode import open_frames, rgb_to_gray
from fastmer.decode import pyav as pyav_engine
from fastmer.errors import ClipError

N_FRAMES, WIDTH, HEIGHT, FPS = 20, 170, 98, 25  # odd multiples: not a multiple of 16 on purpose
# (file name, encoder, pixel format, codec as probed)
FORMATS = {
    "mjpeg": ("clip_mjpeg.avi", "mjpeg", "yuvj420p"),
    "vp9": ("clip_vp9.webm", "libvpx-vp9", "yuv420p"),
    "vp8": ("clip_vp8.webm", "libvpx", "yuv420p"),
    "h264": ("clip_h264.mp4", "libx264", "yuv420p"),
}


def dali_or_skip() -> None:
    ok, why = dali_engine.available()
    if not ok:
        pytest.skip(f"needs NVIDIA DALI: {why}")


def pattern(n: int = N_FRAMES, h: int = HEIGHT, w: int = WIDTH) -> list[np.ndarray]:
    """Moving stripes, a sine ramp and a checkerboard: every frame different, sharp colour edges."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        r = ((xx + 3 * t) % 32 < 16) * 255
        g = np.sin((yy + 2 * t) / 5.0) * 120 + 128
        b = ((xx // 8 + yy // 8 + t) % 2) * 200
        frames.append(np.stack([r, g, b], -1).astype(np.uint8))
    return frames


def write_video(path, encoder: str, pix_fmt: str, frames: list[np.ndarray], fps: int = FPS, gop: int = 0,
                bt709: bool = False) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        if bt709:
            stream.codec_context.colorspace = 1  # AVCOL_SPC_BT709
        for frame in frames:
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if bt709:
                frame = frame.reformat(format=pix_fmt, dst_colorspace="ITU709")
                frame.colorspace = 1
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("videos")
    frames = pattern()
    out = {}
    for codec, (name, encoder, pix_fmt) in FORMATS.items():
        write_video(folder / name, encoder, pix_fmt, frames)
        out[codec] = str(folder / name)
    # VP9 tagged BT.709 (PyAV would follow the tag, DALI's decoders use BT.601)
    write_video(folder / "bt709_vp9.webm", "libvpx-vp9", "yuv420p", frames, bt709=True)
    out["vp9_bt709"] = str(folder / "bt709_vp9.webm")
    # H.264 with a keyframe every 5 frames and B-frames, to exercise seeking
    write_video(folder / "gop5_h264.mp4", "libx264", "yuv420p", pattern(40), gop=5)
    out["h264_gop5"] = str(folder / "gop5_h264.mp4")
    return out


def decode_all_pyav(path: str, color: bool = False) -> np.ndarray:
    """Reference: every frame, decoded sequentially, with the shared conversions."""
    with av.open(path) as container:
        rgb = np.stack([pyav_engine.frame_to_rgb(f) for f in container.decode(video=0)])
    return rgb if color else rgb_to_gray(rgb)


def decode_all_opencv(path: str) -> np.ndarray:
    capture, frames = cv2.VideoCapture(path), []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def luma_reference(path: str) -> np.ndarray:
    """Engine-free gray: the decoded Y plane scaled to full range (BT.601 RGB2GRAY ~= luma)."""
    with av.open(path) as container:
        planes = []
        for frame in container.decode(video=0):
            y = np.frombuffer(frame.planes[0], np.uint8).reshape(frame.height, frame.planes[0].line_size)[:, :frame.width]
            full = frame.format.name.startswith("yuvj")
            planes.append(y.astype(np.float64) if full else (y.astype(np.float64) - 16) * 255 / 219)
    return np.stack(planes)


# --- probe, counts, auto choice ----------------------------------------------------------------

@pytest.mark.parametrize("codec", list(FORMATS))
def test_frame_count_fps_and_codec(videos, codec):
    source = open_frames(videos[codec], engine="pyav")
    assert len(source) == N_FRAMES and source.frame_numbers == range(N_FRAMES)
    assert source.fps == pytest.approx(FPS)
    assert source.codec == codec
    assert (source.width, source.height) == (WIDTH, HEIGHT)


def test_auto_picks_pyav_for_h264_on_cpu(videos):
    source = open_frames(videos["h264"])
    assert source.engine == "pyav"
    if dali_engine.available()[0]:
        assert "VP8, VP9 and MJPEG" in source.reason and "h264" in source.reason
    assert source.reason.endswith("-> PyAV")


@pytest.mark.parametrize("codec", ["vp9", "vp8", "mjpeg"])
def test_auto_picks_dali_cpu_for_vp9_vp8_mjpeg(videos, codec):
    dali_or_skip()
    source = open_frames(videos[codec])
    assert source.engine == "dali-cpu"
    assert codec in source.reason and "DALI" in source.reason
    assert len(source) == N_FRAMES and source.fps == pytest.approx(FPS)


def test_auto_without_dali_falls_back_to_pyav(videos, monkeypatch):
    monkeypatch.setattr(dali_engine, "available", lambda: (False, f"DALI not installed: {dali_engine.INSTALL_HINT}"))
    source = open_frames(videos["vp9"])
    assert source.engine == "pyav"
    assert "not installed" in source.reason and source.reason.endswith("-> PyAV")
    with pytest.raises(ValueError, match="not installed"):
        open_frames(videos["vp9"], engine="dali")


def test_without_pyav_opencv_reads_video(videos, monkeypatch):
    monkeypatch.setattr(dali_engine, "available", lambda: (False, "DALI not installed"))
    monkeypatch.setattr(pyav_engine, "available", lambda: (False, "PyAV not importable; pip install av"))
    source = open_frames(videos["h264"])
    assert source.engine == "opencv" and "VideoCapture" in source.reason
    assert len(source) == N_FRAMES
    assert source.read([0, 19]).shape == (2, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match="PyAV not importable"):
        open_frames(videos["h264"], engine="pyav")


def test_explicit_engine_errors(videos):
    if dali_engine.available()[0]:
        with pytest.raises(ValueError, match="only VP8, VP9 and MJPEG; clip_h264.mp4 is h264"):
            open_frames(videos["h264"], engine="dali")
    with pytest.raises(ValueError, match="engine must be one of"):
        open_frames(videos["h264"], engine="ffmpeg")
    with pytest.raises(ValueError, match="needs device='cuda'"):
        open_frames(videos["h264"], engine="dali-gpu")
    with pytest.raises(ValueError, match="frame_paths apply to folders"):
        open_frames(videos["h264"], frame_paths=["a.jpg"])


def test_cuda_without_gpu_is_a_clear_error(videos):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: device='cuda' is legitimate here")
    with pytest.raises(ValueError, match="device='cuda' but .*use device='cpu'"):
        open_frames(videos["vp9"], device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        open_frames(videos["vp9"], device="gpu")


# --- reading by index ------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["pyav", "dali", "opencv"])
def test_arbitrary_index_lists(videos, engine):
    if engine == "dali":
        dali_or_skip()
    path = videos["mjpeg"]  # every engine decodes MJPEG
    source = open_frames(path, engine=engine)
    reference = decode_all_pyav(path) if engine != "opencv" else rgb_to_gray(decode_all_opencv(path))
    numbers = [7, 3, 3, 19, 0, 7, 12]  # unsorted, duplicated, first and last
    frames = source.read(numbers)
    assert frames.shape == (len(numbers), HEIGHT, WIDTH) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, reference[numbers])
    assert np.array_equal(source.read(np.array([5])), reference[[5]])  # numpy input, one frame
    assert source.read(4).shape == (1, HEIGHT, WIDTH)  # a bare int
    color = source.read([2, 2, 9], color=True)
    assert color.shape == (3, HEIGHT, WIDTH, 3) and color.dtype == np.uint8


def test_pyav_seeks_and_matches_sequential_decoding(videos):
    path = videos["h264_gop5"]
    source = open_frames(path, engine="pyav")
    assert len(source) == 40 and len(source.info.keyframes) >= 4, source.info.keyframes
    reference = decode_all_pyav(path, color=True)
    numbers = [33, 2, 17, 18, 39, 17, 9, 0]
    np.testing.assert_array_equal(source.read(numbers, color=True), reference[numbers])
    groups = source._groups(sorted(set(numbers)))
    assert len(groups) > 1 and groups[0][0] == 0  # really seeks between runs of frames


@pytest.mark.parametrize("engine", ["pyav", "dali"])
def test_out_of_range_index_names_file_and_number(videos, engine):
    if engine == "dali":
        dali_or_skip()
    source = open_frames(videos["vp9"], engine=engine)
    with pytest.raises(ClipError, match=r"frame\(s\) 20, 25 beyond the end of .*clip_vp9.webm \(20 frames") as error:
        source.read([3, 25, 20])
    assert error.value.stage == "decode"
    with pytest.raises(ClipError, match="-1"):
        source.read([-1])
    with pytest.raises(ClipError, match="no frames requested"):
        source.read([])


def test_missing_and_corrupt_files(videos, tmp_path):
    with pytest.raises(ClipError, match="not found: .*absent.mp4") as error:
        open_frames(tmp_path / "absent.mp4")
    assert error.value.stage == "decode"
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ClipError, match="garbage.mp4"):
        open_frames(garbage)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(ClipError, match="empty.webm"):
        open_frames(empty)


@pytest.mark.parametrize("engine", ["pyav", "dali"])
def test_truncated_video(videos, tmp_path, engine):
    if engine == "dali":
        dali_or_skip()
    with open(videos["vp9"], "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    source = open_frames(cut, engine=engine)
    assert 0 < len(source) < N_FRAMES  # the probe counts only the frames that are there
    with pytest.raises(ClipError, match="cut.webm"):
        source.read(range(N_FRAMES))
    assert source.read([0]).shape == (1, HEIGHT, WIDTH)


# --- agreement between engines ---------------------------------------------------------------

@pytest.mark.parametrize("codec", ["mjpeg", "vp9", "vp8", "vp9_bt709"])
def test_dali_cpu_agrees_with_pyav(videos, codec):
    """DALI's CPU decoder converts YUV -> RGB with libswscale (bilinear, full chroma
    interpolation, accurate rounding); PyAV is told to do the same, so on DALI 2.4 / PyAV 18
    they are bit-identical. The tolerance leaves room for another libswscale build's SIMD
    rounding (+-1..2 levels) while still failing FFmpeg's fast path, which differs by ~1
    grey level on average and up to ~100 in RGB on these colour edges."""
    dali_or_skip()
    numbers = list(range(N_FRAMES))
    for color, mean_tol, max_tol in ((False, 0.25, 4), (True, 0.25, 8)):
        d = open_frames(videos[codec], engine="dali").read(numbers, color=color).astype(int)
        p = open_frames(videos[codec], engine="pyav").read(numbers, color=color).astype(int)
        diff = np.abs(d - p)
        assert diff.mean() <= mean_tol and diff.max() <= max_tol, (codec, color, diff.mean(), diff.max())


@pytest.mark.parametrize("codec", ["mjpeg", "vp9", "h264"])
def test_gray_is_unbiased_luma(videos, codec):
    """Gray (RGB -> gray of the shared RGB) is the BT.601 luma, without the fast path's bias.

    RGB2GRAY's weights are BT.601's, so gray = luma up to rounding and the clipping of
    out-of-gamut RGB, which this saturated pattern provokes at its colour edges. Measured
    (ours / FFmpeg's fast path): signed mean error +0.05..+0.20 / -0.35..-1.05, mean |error|
    0.9..1.3 / 1.7..2.0; on natural video (single_face.mp4) +-0.02 / -1.4, 0.3 / 1.4."""
    gray = open_frames(videos[codec], engine="pyav").read(range(N_FRAMES)).astype(np.float64)
    error = gray - luma_reference(videos[codec])
    assert abs(error.mean()) < 0.3 and np.abs(error).mean() < 1.5, (error.mean(), np.abs(error).mean())


def test_pyav_agrees_with_opencv_videocapture_h264(videos):
    """cv2.VideoCapture uses FFmpeg's fast YUV -> RGB path (no full chroma interpolation,
    truncating rounding): gray ~1.4 levels darker on average, a few levels more at colour
    edges. That is the gap this bounds (a wrong frame would differ by tens of levels)."""
    p = open_frames(videos["h264"], engine="pyav").read(range(N_FRAMES)).astype(int)
    o = open_frames(videos["h264"], engine="opencv").read(range(N_FRAMES)).astype(int)
    diff = p - o
    assert 0 <= diff.mean() <= 2.5 and np.percentile(np.abs(diff), 99) <= 10, (diff.mean(), np.abs(diff).max())


# --- DALI pipelines: built once, one per thread --------------------------------------------

def test_dali_pipelines_are_reused_across_reads_and_files(videos, monkeypatch):
    dali_or_skip()
    builds = []
    real_build = dali_engine._build
    monkeypatch.setattr(dali_engine, "_build", lambda kind, device: builds.append(kind) or real_build(kind, device))
    monkeypatch.setattr(dali_engine._local, "pipes", {}, raising=False)
    for codec in ("vp9", "mjpeg", "vp8", "vp9"):
        source = open_frames(videos[codec], engine="dali")
        source.read([1, 2])
        source.read([5], color=True)
    assert builds == ["video"]


def test_dali_is_thread_safe(videos):
    dali_or_skip()
    path = videos["vp9"]
    reference = decode_all_pyav(path)
    results, errors = {}, []

    def work(k: int) -> None:
        try:
            source = open_frames(path, engine="dali")
            for _ in range(3):
                results[k] = source.read([k, 19 - k, 10])
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for k, frames in results.items():
        np.testing.assert_array_equal(frames, reference[[k, 19 - k, 10]])


# --- the real videos in ../shared -------------------------------------------------------------

@pytest.mark.parametrize("name, n_frames, fps", [("single_face.mp4", 72, 30.0),
                                                 ("WolfgangLanger_Pexels.mp4", 472, 24000 / 1001)])
def test_real_videos(shared_dir, name, n_frames, fps):
    path = str(shared_dir / "data" / "video" / name)
    source = open_frames(path)
    assert source.engine == "pyav" and source.codec == "h264"
    assert len(source) == n_frames and source.fps == pytest.approx(fps)
    numbers = [n_frames - 1, 0, n_frames // 2, n_frames // 2, 1]
    frames = source.read(numbers)
    assert frames.shape == (5, 360, 640)
    # against OpenCV's VideoCapture, decoded sequentially (different YUV -> RGB path: see above)
    reference = rgb_to_gray(decode_all_opencv(path))
    assert len(reference) == n_frames
    diff = frames.astype(int) - reference[numbers]
    assert 0 <= diff.mean() <= 2.5 and np.abs(diff).max() <= 12, (diff.mean(), np.abs(diff).max())


def test_reading_a_clip_costs_about_a_sequential_decode(shared_dir):
    """60 frames in the middle of the 472-frame video: open + read within a small multiple
    of a plain sequential PyAV decode of the same frames (seeking makes it cheaper, if anything)."""
    path = str(shared_dir / "data" / "video" / "WolfgangLanger_Pexels.mp4")
    start = time.perf_counter()
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= 300:
                frame.to_ndarray(format="rgb24")
            if i == 359:
                break
    plain = time.perf_counter() - start
    start = time.perf_counter()
    frames = open_frames(path).read(range(300, 360))
    ours = time.perf_counter() - start
    assert frames.shape == (60, 360, 640)
    assert ours <= 3 * plain + 0.2, (ours, plain)


def test_open_clip_frames_for_a_video_clip(videos):
    from fastmer.datasets.clip import Clip
    from fastmer.decode import open_clip_frames

    clip = Clip(dataset="samm", subject="samm/006", clip_id="006_1_2", source=videos["h264"], frame_numbers=(),
                frame_paths=(), onset=2, apex=5, offset=9, labels=("surprise",))
    source = open_clip_frames(clip, engine="pyav")
    assert source.engine == "pyav" and len(source) == N_FRAMES
    assert source.read([clip.onset, clip.apex, clip.offset]).shape == (3, HEIGHT, WIDTH)


# --- streaming a clip in chunks (issue 17, item 15) ------------------------------------------

@pytest.mark.parametrize("engine", ["pyav", "opencv", "dali"])
@pytest.mark.parametrize(("first", "last", "size"), [(0, 39, 7), (11, 33, 4), (17, 17, 1), (2, 39, 100)])
def test_chunks_are_the_frames_read_gives(videos, engine, first, last, size):
    if engine == "dali":
        dali_or_skip()
    source = open_frames(videos["h264_gop5"] if engine != "dali" else videos["mjpeg"], engine=engine)
    last = min(last, len(source) - 1)
    numbers = range(first, last + 1)
    chunks = list(source.chunks(numbers, size))
    assert [len(c) for c in chunks[:-1]] == [size] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= size
    np.testing.assert_array_equal(np.concatenate(chunks), source.read(numbers))
    colour = np.concatenate(list(source.chunks(numbers, size, color=True)))
    np.testing.assert_array_equal(colour, source.read(numbers, color=True))


def test_pyav_chunks_decode_forward_once(videos, monkeypatch):
    """One open, one seek, forward decoding: chunking costs no re-decoding (read() per chunk
    would seek back to a keyframe each time)."""
    source = open_frames(videos["h264_gop5"], engine="pyav")
    opened = []
    open_ = source._open
    monkeypatch.setattr(source, "_open", lambda: (opened.append(1), open_())[1])
    monkeypatch.setattr(source, "read", lambda *a, **k: pytest.fail("fell back to read()"))
    reference = decode_all_pyav(videos["h264_gop5"])
    got = np.concatenate(list(source.chunks(range(12, 40), 5)))
    np.testing.assert_array_equal(got, reference[12:40])
    assert len(opened) == 1


def test_pyav_chunks_recover_from_unknown_timestamps(videos, monkeypatch):
    """A frame whose timestamp the probe did not see: the rest is read by read(), which resyncs."""
    source = open_frames(videos["h264_gop5"], engine="pyav")
    reference = decode_all_pyav(videos["h264_gop5"])
    lost = next(pts for pts, index in source._index_of.items() if index == 21)
    monkeypatch.delitem(source._index_of, lost)
    got = np.concatenate(list(source.chunks(range(3, 40), 6)))
    np.testing.assert_array_equal(got, reference[3:40])


@pytest.mark.parametrize("engine", ["pyav", "opencv"])
def test_chunks_check_their_arguments_before_decoding(videos, engine, tmp_path):
    source = open_frames(videos["h264_gop5"], engine=engine)
    with pytest.raises(ValueError, match="ascending, distinct"):
        source.chunks([3, 2], 4)
    with pytest.raises(ValueError, match="chunk size"):
        source.chunks([1, 2], 0)
    with pytest.raises(ClipError, match=r"frame\(s\) 40, 41 beyond the end"):
        source.chunks(range(35, 42), 4)
    with open(videos["vp9"], "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    truncated = open_frames(cut, engine=engine)
    with pytest.raises(ClipError, match="cut.webm"):
        list(truncated.chunks(range(N_FRAMES), 3))


@pytest.mark.parametrize("engine", ["pyav", "dali", "opencv"])
@pytest.mark.parametrize("color", [False, True])
def test_a_region_of_video_frames_is_the_whole_frames_cut(videos, engine, color):
    """Video codecs cannot decode part of a frame: every engine decodes whole frames and cuts,
    in read() and in the one-pass chunks()."""
    if engine == "dali":
        dali_or_skip()
    path = videos["mjpeg"]
    source = open_frames(path, engine=engine)
    whole = source.read(range(N_FRAMES), color=color)
    x, y, w, h = 31, 7, 50, 41
    np.testing.assert_array_equal(source.read([9, 2, 2], color=color, region=(x, y, w, h)),
                                  whole[[9, 2, 2], y : y + h, x : x + w])
    chunks = list(source.chunks(range(3, 17), 4, color=color, region=(x, y, w, h)))
    assert [len(c) for c in chunks] == [4, 4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), whole[3:17, y : y + h, x : x + w])
    with pytest.raises(ClipError, match=f"frames are {WIDTH}x{HEIGHT}, too small for the region"):
        list(source.chunks(range(3), 2, region=(WIDTH - 5, 0, 6, 6)))
