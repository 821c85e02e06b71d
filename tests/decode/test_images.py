"""Image sequences through open_frames: OpenCV and DALI-CPU engines, agreement and errors."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from fastmer.datasets.clip import Clip
from fastmer.decode import dali as dali_engine
from fastmer.decode import open_clip_frames, open_frames, read_gray, read_sequence
from fastmer.errors import ClipError

H, W = 61, 83  # odd sizes on purpose


def dali_or_skip() -> None:
    ok, why = dali_engine.available()
    if not ok:
        pytest.skip(f"needs NVIDIA DALI: {why}")


def colour_frame(t: int) -> np.ndarray:
    """An RGB frame with texture (for JPEG) and sharp colour edges; differs with t."""
    rng = np.random.default_rng(t)
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([(xx * 3 + t * 7) % 256, (yy * 4 + t * 11) % 256, ((xx // 6 + yy // 6) % 2) * 255], -1)
    return np.clip(rgb + rng.integers(-20, 20, rgb.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    """CASME II-like clip folder: img10.bmp, img11.png, img12.jpg, ... img21, mixed formats."""
    clip = tmp_path / "sub01" / "EP01"
    clip.mkdir(parents=True)
    for i in range(12):
        ext = ("bmp", "png", "jpg")[i % 3]
        cv2.imwrite(str(clip / f"img{10 + i}.{ext}"), cv2.cvtColor(colour_frame(i), cv2.COLOR_RGB2BGR))
    (clip / "notes.txt").write_text("not a frame")
    return clip


def listed(folder) -> tuple[list[str], list[int]]:
    paths = sorted((str(p) for p in folder.iterdir() if p.suffix != ".txt"), key=lambda p: int(p.split("img")[-1].split(".")[0]))
    return paths, [int(os.path.basename(p)[3:].split(".")[0]) for p in paths]


ENGINES = ["opencv", "dali"]


def open_listed(folder, engine: str):
    """The folder's frames by dataset number with ``engine`` (skipped without DALI)."""
    if engine == "dali":
        dali_or_skip()
    paths, numbers = listed(folder)
    return open_frames(folder, frame_paths=paths, frame_numbers=numbers, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_reads_mixed_formats_by_dataset_number(folder, engine):
    if engine == "dali":
        dali_or_skip()
    paths, numbers = listed(folder)
    source = open_frames(folder, frame_paths=paths, frame_numbers=numbers, engine=engine, fps=200)
    assert source.engine == ("opencv" if engine == "opencv" else "dali-cpu")
    assert len(source) == 12 and tuple(source.frame_numbers) == tuple(range(10, 22)) and source.fps == 200
    wanted = [21, 10, 15, 15, 12]  # unsorted, duplicates, all three formats
    frames = source.read(wanted)
    assert frames.shape == (5, H, W) and frames.dtype == np.uint8
    expected = np.stack([read_gray(source.path_of(n)) for n in wanted])
    np.testing.assert_array_equal(frames, expected)
    color = source.read(wanted, color=True)
    assert color.shape == (5, H, W, 3)
    rgb = np.stack([cv2.cvtColor(cv2.imread(source.path_of(n)), cv2.COLOR_BGR2RGB) for n in wanted])
    np.testing.assert_array_equal(color, rgb)
    # lossless formats round-trip exactly
    np.testing.assert_array_equal(source.read([20, 10], color=True), np.stack([colour_frame(10), colour_frame(0)]))


def test_dali_cpu_and_opencv_are_bit_identical(folder):
    """Both decode JPEG with libjpeg-turbo and gray JPEG as its luma plane; PNG/BMP gray
    conversion matches too (measured: 0 differing pixels, gray and RGB)."""
    dali_or_skip()
    paths, numbers = listed(folder)
    # more frames than one DALI batch, to cross batch boundaries
    paths, numbers = paths * 3, list(range(36))
    dali = open_frames(folder, frame_paths=paths, frame_numbers=numbers, engine="dali")
    ocv = open_frames(folder, frame_paths=paths, frame_numbers=numbers, engine="opencv")
    for color in (False, True):
        np.testing.assert_array_equal(dali.read(numbers, color=color), ocv.read(numbers, color=color))


def test_auto_choice_and_reason(folder, monkeypatch):
    paths, numbers = listed(folder)
    if dali_engine.available()[0]:
        source = open_frames(folder, frame_paths=paths, frame_numbers=numbers)
        assert source.engine == "dali-cpu" and "DALI" in source.reason
    monkeypatch.setattr(dali_engine, "available", lambda: (False, f"DALI not installed: {dali_engine.INSTALL_HINT}"))
    source = open_frames(folder, frame_paths=paths, frame_numbers=numbers)
    assert source.engine == "opencv"
    assert "not installed" in source.reason and "OpenCV" in source.reason
    with pytest.raises(ValueError, match="engine='dali' cannot be used: DALI not installed"):
        open_frames(folder, frame_paths=paths, engine="dali")
    with pytest.raises(ValueError, match="engine='pyav' decodes video files"):
        open_frames(folder, frame_paths=paths, engine="pyav")


def test_folder_listing_without_paths(folder):
    source = open_frames(folder, engine="opencv")  # lists jpg/png/bmp, numbers from the names
    assert tuple(source.frame_numbers) == tuple(range(10, 22))
    assert source.path_of(10).endswith("img10.bmp")
    paths, _ = listed(folder)
    plain = open_frames(folder, frame_paths=paths, engine="opencv")  # no numbers: 0, 1, ...
    assert tuple(plain.frame_numbers) == tuple(range(12))
    np.testing.assert_array_equal(plain.read([0]), source.read([10]))


def test_open_clip_frames(folder):
    paths, numbers = listed(folder)
    clip = Clip(dataset="casme2", subject="casme2/sub01", clip_id="EP01", source=str(folder),
                frame_numbers=tuple(numbers), frame_paths=tuple(paths), onset=10, apex=15, offset=21,
                labels=("happiness",), fps=200.0)
    source = open_clip_frames(clip, engine="opencv")
    assert source.fps == 200.0 and len(source) == 12
    np.testing.assert_array_equal(source.read([10, 15]), read_sequence([paths[0], paths[5]]))


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_and_corrupt_frames(folder, engine):
    paths, _ = listed(folder)
    source = open_listed(folder, engine)
    with pytest.raises(ClipError, match=r"frame\(s\) 9, 40 missing in .*EP01") as error:
        source.read([9, 12, 40])
    assert error.value.stage == "decode"
    os.remove(paths[3])  # img13.bmp listed but gone
    with pytest.raises(ClipError, match="img13.bmp"):
        source.read([12, 13])
    with open(paths[4], "wb") as f:  # img14.png: not an image
        f.write(b"garbage" * 50)
    with pytest.raises(ClipError, match="img14.png"):
        source.read([10, 11, 14, 15])
    # truncated and damaged JPEG/PNG/BMP files, and the causes named: test_corrupt_images.py
    open(paths[6], "wb").close()  # img16.bmp: empty
    with pytest.raises(ClipError, match="img16.bmp"):
        source.read([16])
    assert source.read([10, 11]).shape == (2, H, W)  # the engine still works afterwards


@pytest.mark.parametrize("engine", ENGINES)
def test_frames_of_another_size(folder, engine):
    if engine == "dali":
        dali_or_skip()
    paths, numbers = listed(folder)
    cv2.imwrite(paths[2], np.zeros((H + 2, W, 3), np.uint8))
    source = open_frames(folder, frame_paths=paths, frame_numbers=numbers, engine=engine)
    with pytest.raises(ClipError, match=f"img12.jpg is {W}x{H + 2}, expected {W}x{H}"):
        source.read([10, 12])


def test_argument_errors(folder, tmp_path):
    paths, _ = listed(folder)
    with pytest.raises(ValueError, match="12 frame_paths but 2 frame_numbers"):
        open_frames(folder, frame_paths=paths, frame_numbers=[1, 2])
    with pytest.raises(ValueError, match="duplicate frame_numbers"):
        open_frames(folder, frame_paths=paths[:2], frame_numbers=[1, 1])
    with pytest.raises(ClipError, match="no frames found"):
        open_frames(folder, frame_paths=[])
    with pytest.raises(ClipError, match="not found"):
        open_frames(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ClipError, match="no frames found"):
        open_frames(empty)
    with pytest.raises(ValueError, match="is one image"):
        open_frames(paths[0])


def test_read_gray_and_read_sequence_unchanged(folder, tmp_path):
    paths, _ = listed(folder)
    frames = read_sequence(paths[:4])
    assert frames.shape == (4, H, W) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[2], cv2.imread(paths[2], cv2.IMREAD_GRAYSCALE))
    with pytest.raises(ClipError, match="absent.jpg"):
        read_gray(str(tmp_path / "absent.jpg"))
    with pytest.raises(ClipError, match="no frames to read"):
        read_sequence([])


# --- decoding a region --------------------------------------------------------------------

REGIONS = [(0, 0, W, H), (17, 9, 40, 33), (1, 2, 3, 5), (W - 10, H - 7, 10, 7)]  # whole, odd, tiny, corner


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("color", [False, True])
def test_a_region_is_the_same_pixels_as_the_whole_frame_cut(folder, engine, color):
    """Read and chunks with ``region``: bit for bit the whole frames' region, on every format
    (JPEG, where DALI decodes the region only, and PNG/BMP), grey and colour."""
    source = open_listed(folder, engine)
    numbers = list(source.frame_numbers)
    whole = source.read(numbers, color=color)
    for x, y, w, h in REGIONS:
        got = source.read([21, 10, 15, 15], color=color, region=(x, y, w, h))
        np.testing.assert_array_equal(got, whole[[11, 0, 5, 5], y : y + h, x : x + w])
        chunks = list(source.chunks(numbers, 5, color=color, region=(x, y, w, h)))
        assert [len(c) for c in chunks] == [5, 5, 2]
        np.testing.assert_array_equal(np.concatenate(chunks), whole[:, y : y + h, x : x + w])


def test_dali_decodes_only_the_region_of_jpeg_frames(tmp_path, monkeypatch):
    """DALI is asked for the region (its image_slice decoder), not the whole frame: what it
    returns is region-sized, and it runs the region pipeline."""
    dali_or_skip()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), rng.integers(0, 255, (480, 640), np.uint8))
    kinds, shapes = [], []
    real_run = dali_engine._run

    def spy(kind, device_id, feeds):
        outputs = real_run(kind, device_id, feeds)
        kinds.append(kind)
        shapes.extend(sample.shape for sample in outputs[0])
        return outputs

    monkeypatch.setattr(dali_engine, "_run", spy)
    source = open_frames(tmp_path, engine="dali")
    frames = source.read([0, 1, 2], region=(200, 100, 64, 48))
    assert kinds == ["gray-region"] and shapes == [(48, 64, 1)] * 3
    np.testing.assert_array_equal(frames, np.stack([read_gray(str(tmp_path / f"img{i}.jpg"))[100:148, 200:264]
                                                    for i in range(3)]))


@pytest.mark.parametrize("engine", ENGINES)
def test_region_errors_name_the_argument_or_the_file(folder, engine):
    source = open_listed(folder, engine)
    for bad in [(0, 0, 0, 5), (-1, 0, 5, 5), (0, 0, 5), (0, 0, 5.0, 5), "0,0,5,5", (True, 0, 5, 5)]:
        with pytest.raises(ValueError, match="region must be"):
            source.read([10], region=bad)
        with pytest.raises(ValueError, match="region must be"):
            list(source.chunks([10, 11], 2, region=bad))
    with pytest.raises(ClipError, match=rf"img12.jpg: frames are {W}x{H}, too small for the region 20x10 at \({W - 19}, 0\)"):
        source.read([12], region=(W - 19, 0, 20, 10))
    # a frame of another size is still refused when only a region is decoded, across chunks too
    cv2.imwrite(listed(folder)[0][7], np.zeros((H + 2, W, 3), np.uint8))
    source = open_listed(folder, engine)
    with pytest.raises(ClipError, match=f"img17.png is {W}x{H + 2}, expected {W}x{H} like .*img10.bmp"):
        list(source.chunks(source.frame_numbers, 4, region=(0, 0, 8, 8)))


def test_a_dali_failure_on_a_region_alone_is_a_decode_error(folder, monkeypatch):
    """DALI fails on the region of files it decodes whole (a DALI defect): the clip becomes a
    decode error naming the files and DALI's message, never an internal one."""
    source = open_listed(folder, "dali")
    real_run = dali_engine._run

    def region_fails(kind, device_id, feeds):
        if kind.endswith("-region"):
            raise dali_engine._DaliFailure("crop window out of bounds")
        return real_run(kind, device_id, feeds)

    monkeypatch.setattr(dali_engine, "_run", region_fails)
    with pytest.raises(ClipError, match=r"could not decode the region \(1, 2, 3, 4\).*img12.jpg.*out of bounds"):
        source.read([12, 13], region=(1, 2, 3, 4))
