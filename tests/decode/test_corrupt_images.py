"""Truncated and corrupt frame files: a decode ClipError naming the file and the cause, with every image engine.

Image folders are decoded by OpenCV or DALI (PyAV decodes video only: ``engine="pyav"`` is
refused for image folders). ``cv2.imread`` used to return a truncated JPEG grey below the
cut with only "Premature end of JPEG file" on stderr; DALI failed with "Failed to decode
sample #0 :" and no cause. Intact files must still decode exactly as ``cv2.imread`` did.
"""

from __future__ import annotations

import os
import struct

import cv2
import numpy as np
import pytest

from fastmer.decode import dali as dali_engine
from fastmer.decode import open_frames, read_gray, read_sequence
from fastmer.decode.integrity import check_complete, diagnose
from fastmer.errors import ClipError

H, W = 96, 128
ENGINES = ["opencv", "dali"]


def engine_or_skip(engine: str) -> None:
    if engine == "dali":
        ok, why = dali_engine.available()
        if not ok:
            pytest.skip(f"needs NVIDIA DALI: {why}")


def textured(t: int) -> np.ndarray:
    """An RGB face-sized frame with texture everywhere (so a cut file loses real content)."""
    rng = np.random.default_rng(t)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([np.sin(xx / 7 + t) * 80 + 128, np.cos(yy / 5) * 80 + 128, (xx + yy + 9 * t) % 256], -1)
    return np.clip(base + rng.integers(-25, 25, base.shape), 0, 255).astype(np.uint8)


def with_exif_orientation(jpeg: bytes, orientation: int = 3) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding one Orientation tag (3: imread turns it by 180 degrees)."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00" * 4
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


@pytest.fixture
def clip(tmp_path):
    """img10..img21: baseline and progressive JPEGs, PNGs, a BMP, a JPEG with EXIF
    orientation and one with bytes after its end-of-image marker (both valid)."""
    folder = tmp_path / "sub01" / "EP01"
    folder.mkdir(parents=True)
    for i in range(12):
        bgr = cv2.cvtColor(textured(i), cv2.COLOR_RGB2BGR)
        name = folder / f"img{10 + i}.{'png' if i in (3, 7) else 'bmp' if i == 5 else 'jpg'}"
        params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if i == 4 else []
        assert cv2.imwrite(str(name), bgr, params)
    exif = folder / "img18.jpg"
    exif.write_bytes(with_exif_orientation(exif.read_bytes()))
    trailing = folder / "img19.jpg"
    trailing.write_bytes(trailing.read_bytes() + b"\x00" * 16 + b"camera trailer")
    return folder


def frames_of(folder) -> tuple[list[str], list[int]]:
    paths = sorted(map(str, folder.iterdir()), key=lambda p: int(os.path.basename(p)[3:].split(".")[0]))
    return paths, [int(os.path.basename(p)[3:].split(".")[0]) for p in paths]


def as_before(paths: list[str], color: bool) -> np.ndarray:
    """What the OpenCV engine returned before the fix: ``cv2.imread`` file by file."""
    if color:
        return np.stack([cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths])
    return np.stack([cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths])


def cut(path: str, keep: int) -> int:
    """Keep the first ``keep`` bytes of ``path``; returns how many it had."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:keep])
    return len(data)


def damage_middle(path: str, n: int = 40) -> None:
    """Flip bits in ``n`` bytes in the middle of ``path``; its size stays the same."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    middle = len(data) // 2
    data[middle:middle + n] = bytes(b ^ 0x5A for b in data[middle:middle + n])
    with open(path, "wb") as f:
        f.write(bytes(data))


def assert_decode_error(source, numbers, *messages: str, color: bool = False) -> ClipError:
    with pytest.raises(ClipError) as error:
        source.read(numbers, color=color)
    assert error.value.stage == "decode"
    for message in messages:
        assert message in str(error.value), (message, str(error.value))
    return error.value


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("frame, keep", [
    (12, "half"),          # baseline JPEG cut in the middle of its image data
    (14, "half"),          # progressive JPEG cut after some scans
    (12, "all but EOI"),   # every image byte there, only the end-of-image marker missing
    (12, 120),             # cut inside the headers
])
def test_truncated_jpeg_is_a_decode_error_naming_the_file(clip, engine, frame, keep):
    engine_or_skip(engine)
    paths, numbers = frames_of(clip)
    path = paths[numbers.index(frame)]
    size = os.path.getsize(path)
    keep = {"half": size // 2, "all but EOI": size - 2}.get(keep, keep)
    cut(path, keep)
    source = open_frames(clip, frame_paths=paths, frame_numbers=numbers, engine=engine)
    cause = "no end-of-image marker FF D9" if keep > 1000 else "ends in its headers"
    for color in (False, True):
        error = assert_decode_error(source, numbers, f"img{frame}.jpg: truncated JPEG", cause,
                                    f"after {keep:,} bytes", color=color)
        assert str(clip) in str(error)  # the full path
    # the other frames still decode, as before
    others = [n for n in numbers if n != frame]
    np.testing.assert_array_equal(source.read(others), as_before([p for p in paths if p != path], color=False))


@pytest.mark.parametrize("engine", ENGINES)
def test_intact_folder_decodes_as_before_and_damaged_files_are_named(clip, engine):
    """Bit-identical to cv2.imread on intact files (EXIF rotation and trailing bytes included);
    then each kind of damage is an error naming the file and what is wrong."""
    engine_or_skip(engine)
    paths, numbers = frames_of(clip)
    source = open_frames(clip, frame_paths=paths, frame_numbers=numbers, engine=engine)
    for color in (False, True):
        np.testing.assert_array_equal(source.read(numbers, color=color), as_before(paths, color))
    unturned = cv2.imread(paths[numbers.index(18)], cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(source.read([18])[0], unturned[::-1, ::-1])  # EXIF orientation applied

    png, bmp = paths[numbers.index(13)], paths[numbers.index(15)]
    damage_middle(png)  # inside IDAT: its CRC no longer matches
    assert_decode_error(source, numbers, "img13.png", "corrupt PNG (CRC mismatch in its IDAT chunk")
    cut(png, os.path.getsize(png) // 2)
    assert_decode_error(source, [10, 13], "img13.png", "truncated PNG (the file ends inside its IDAT chunk")
    size = cut(bmp, 5000)
    assert_decode_error(source, [15], "img15.bmp", f"truncated BMP ({W}x{H} at 24 bits per pixel needs {size:,} bytes, "
                                                  "the file has 5,000)")
    jpeg = paths[numbers.index(16)]
    with open(jpeg, "wb") as f:
        f.write(b"<html>not found</html>")
    assert_decode_error(source, [16], "img16.jpg", "not a JPEG, PNG or BMP file (it starts with 3c 68 74 6d")
    good = [10, 11, 12, 14, 17, 18, 19, 20, 21]
    np.testing.assert_array_equal(source.read(good), as_before([paths[numbers.index(n)] for n in good], color=False))


def test_read_gray_and_read_sequence_refuse_a_truncated_jpeg(clip):
    paths, _ = frames_of(clip)
    before = read_sequence(paths[:3])
    np.testing.assert_array_equal(before, as_before(paths[:3], color=False))
    size = cut(paths[2], 3000)
    for read in (read_gray, lambda p: read_sequence([paths[0], p])):
        with pytest.raises(ClipError, match=r"img12\.jpg: truncated JPEG \(no end-of-image marker FF D9: the file ends "
                                            r"after 3,000 bytes") as error:
            read(paths[2])
        assert error.value.stage == "decode"
    assert size > 3000


def test_dali_names_the_failing_sample_of_a_batch_without_redecoding(clip, monkeypatch):
    """The sample index in DALI's message names the file: the batch is not decoded again file by file."""
    engine_or_skip("dali")
    paths, numbers = frames_of(clip)
    damage_middle(paths[numbers.index(17)])  # a PNG, 8th of the batch: DALI fails on it
    runs = []
    real_run = dali_engine._run
    monkeypatch.setattr(dali_engine, "_run", lambda *a, **kw: runs.append(a) or real_run(*a, **kw))
    source = open_frames(clip, frame_paths=paths, frame_numbers=numbers, engine="dali")
    error = assert_decode_error(source, numbers, "img17.png with DALI: corrupt PNG (CRC mismatch in its IDAT chunk")
    assert len(runs) == 1, "the failing file was found by decoding the batch again"
    assert "sample #" not in str(error)  # DALI's index is resolved to the file, not repeated


def test_dali_failure_messages():
    failure = dali_engine._DaliFailure("Failed to decode sample #3 :", "Error in CPU operator ...\nFailed to decode sample #3 : \n")
    assert (failure.sample, failure.reason) == (3, "")
    failure = dali_engine._DaliFailure("Failed to decode sample #0 : bad Huffman table")
    assert (failure.sample, failure.reason) == (0, "bad Huffman table")
    failure = dali_engine._DaliFailure("nvImageCodec failure: '#17'")
    assert (failure.sample, failure.reason) == (None, "nvImageCodec failure: '#17'")
    png = cv2.imencode(".png", textured(0))[1].tobytes()
    error = dali_engine._undecodable("x/img3.png", np.frombuffer(png[:100], np.uint8), failure)
    assert error.stage == "decode"
    assert str(error) == ("cannot decode x/img3.png with DALI: truncated PNG (the file ends inside its IDAT chunk at byte 33: "
                          f"it has 100 bytes, the chunk ends at byte {12 + 33 + int.from_bytes(png[33:37], 'big'):,}); "
                          "DALI: nvImageCodec failure: '#17'")


def test_check_complete_and_diagnose():
    jpeg = cv2.imencode(".jpg", textured(1))[1].tobytes()
    assert jpeg.endswith(b"\xff\xd9")
    data = np.frombuffer(jpeg, np.uint8)
    check_complete("a.jpg", data)  # complete
    check_complete("a.jpg", np.frombuffer(jpeg + b"\xff\x00\x00", np.uint8))  # padding after EOI
    check_complete("a.jpg", np.frombuffer(with_exif_orientation(jpeg) + b"MP4 trailer", np.uint8))  # data after EOI
    # an EXIF thumbnail's EOI before the image data does not make a cut file complete
    thumb = b"Exif\x00\x00" + jpeg[:200] + b"\xff\xd9"
    with_thumb = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(thumb) + 2) + thumb + jpeg[2:]
    with pytest.raises(ClipError, match="a.jpg: truncated JPEG .no end-of-image marker"):
        check_complete("a.jpg", np.frombuffer(with_thumb[:-500], np.uint8))
    with pytest.raises(ClipError, match="a.jpg: truncated JPEG .the file ends in its headers, after 10 bytes"):
        check_complete("a.jpg", data[:10])
    for other in (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, b"BM" + b"\x00" * 40, b"anything"):
        check_complete("b.png", np.frombuffer(other, np.uint8))  # only JPEG is checked before decoding
    png = cv2.imencode(".png", textured(2))[1].tobytes()
    assert diagnose(png[:-1]) == f"truncated PNG (the file ends inside its IEND chunk at byte {len(png) - 12:,}: " \
                                 f"it has {len(png) - 1:,} bytes, the chunk ends at byte {len(png):,})"
    assert diagnose(png[:-12]) == f"truncated PNG (no IEND chunk: the file ends after {len(png) - 12:,} bytes)"
    assert diagnose(png).startswith("corrupt PNG data (its structure looks complete")
    assert diagnose(jpeg).startswith("corrupt JPEG data")
    assert diagnose(b"<html>") == "not a JPEG, PNG or BMP file (it starts with 3c 68 74 6d 6c 3e)"
