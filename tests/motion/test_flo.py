"""Middlebury .flo I/O against byte-level references and the real RubberWhale ground truth."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from fastmer.motion.flo import read_flo, write_flo


def _reference_bytes(flow: np.ndarray) -> bytes:
    """The format spelled out with struct, independently of the module under test."""
    h, w, _ = flow.shape
    values = [float(x) for x in flow.reshape(-1)]  # row-major, (u, v) interleaved
    return b"PIEH" + struct.pack("<ii", w, h) + struct.pack(f"<{len(values)}f", *values)


def test_magic_is_pieh():
    assert struct.pack("<f", 202021.25) == b"PIEH"


def test_write_matches_reference_bytes(tmp_path):
    flow = np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2) * 0.25 - 3.0
    path = tmp_path / "ref.flo"
    write_flo(path, flow)
    assert path.read_bytes() == _reference_bytes(flow)


def test_read_reference_file(tmp_path):
    # u = x, v = -y at pixel (y, x) of a 4 x 7 field (H x W): catches a swapped W/H or u/v.
    h, w = 4, 7
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    expected = np.stack([xs, -ys], axis=-1)
    path = tmp_path / "xy.flo"
    path.write_bytes(_reference_bytes(expected))
    flow = read_flo(path)
    assert flow.shape == (h, w, 2) and flow.dtype == np.float32
    np.testing.assert_array_equal(flow, expected)
    assert flow.flags.writeable


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 30, size=(37, 53, 2)).astype(np.float32)
    flow[0, 0] = [1e10, 1e10]  # Middlebury "unknown" marker survives
    flow[1, 2, 0] = np.float32(1e-40)  # subnormal survives bit-exactly
    path = tmp_path / "rt.flo"
    write_flo(path, flow)
    back = read_flo(path)
    assert back.tobytes() == flow.tobytes()


def test_write_accepts_other_real_dtypes_and_overwrites(tmp_path):
    path = tmp_path / "f.flo"
    write_flo(path, np.ones((2, 3, 2), np.float32))
    write_flo(path, np.full((4, 1, 2), 2, dtype=np.int64))  # replaces the old file
    np.testing.assert_array_equal(read_flo(path), np.full((4, 1, 2), 2, np.float32))
    write_flo(path, np.full((1, 1, 2), 0.1, dtype=np.float64))
    assert read_flo(path)[0, 0, 0] == np.float32(0.1)


def test_write_leaves_no_temp_files_and_normal_permissions(tmp_path):
    write_flo(tmp_path / "a.flo", np.zeros((2, 2, 2), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["a.flo"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.flo").stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.flo"
    write_flo(path, np.ones((2, 2, 2), np.float32))
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_flo(path, np.zeros((5, 5, 2), np.float32))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.flo"]


@pytest.mark.parametrize(
    "shape, hint",
    [
        ((2, 4, 5), "channels-first"),
        ((4, 5), r"\(H, W, 2\)"),
        ((4, 5, 3), r"\(H, W, 2\)"),
        ((1, 4, 5, 2), r"\(H, W, 2\)"),
    ],
)
def test_write_rejects_wrong_shapes(tmp_path, shape, hint):
    path = tmp_path / "bad.flo"
    with pytest.raises(ValueError, match=hint):
        write_flo(path, np.zeros(shape, np.float32))
    assert not path.exists()


def test_write_rejects_complex_and_empty(tmp_path):
    with pytest.raises(ValueError, match="real"):
        write_flo(tmp_path / "c.flo", np.zeros((2, 2, 2), np.complex64))
    with pytest.raises(ValueError, match="width 0"):
        write_flo(tmp_path / "e.flo", np.zeros((2, 0, 2), np.float32))


def test_bad_magic(tmp_path):
    path = tmp_path / "bad_magic.flo"
    path.write_bytes(b"PIEX" + struct.pack("<ii", 1, 1) + struct.pack("<2f", 0, 0))
    with pytest.raises(ValueError, match="bad_magic.flo.*magic"):
        read_flo(path)


def test_png_is_not_flo(tmp_path):
    path = tmp_path / "image.flo"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match="image.flo"):
        read_flo(path)


@pytest.mark.parametrize("cut", [1, 8, 12 + 8 * 6 - 1])
def test_truncated(tmp_path, cut):
    full = _reference_bytes(np.zeros((2, 3, 2), np.float32))
    path = tmp_path / "short.flo"
    path.write_bytes(full[:-cut])
    with pytest.raises(ValueError, match="short.flo"):
        read_flo(path)


def test_truncated_body_says_truncated(tmp_path):
    path = tmp_path / "t.flo"
    path.write_bytes(_reference_bytes(np.zeros((2, 3, 2), np.float32))[:-4])
    with pytest.raises(ValueError, match="truncated"):
        read_flo(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long.flo"
    path.write_bytes(_reference_bytes(np.zeros((2, 3, 2), np.float32)) + b"\0\0\0\0")
    with pytest.raises(ValueError, match="long.flo.*trailing"):
        read_flo(path)


@pytest.mark.parametrize("w, h", [(0, 5), (5, 0), (-1, 5), (100_000, 1), (1, 2**31 - 1)])
def test_absurd_sizes(tmp_path, w, h):
    path = tmp_path / "huge.flo"
    path.write_bytes(b"PIEH" + struct.pack("<ii", w, h) + bytes(16))
    with pytest.raises(ValueError, match="huge.flo"):
        read_flo(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.flo"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.flo"):
        read_flo(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_flo(tmp_path / "nope.flo")


def test_real_middlebury_rubberwhale(tmp_path, shared_dir):
    rubberwhale = shared_dir / "data" / "flow" / "middlebury" / "RubberWhale.flo"
    flow = read_flo(rubberwhale)
    assert flow.shape == (388, 584, 2) and flow.dtype == np.float32
    unknown = (np.abs(flow) >= 1e9).any(axis=-1)
    assert 0.014 < unknown.mean() < 0.018  # ~1.6 % occluded/unknown pixels
    known = flow[~unknown]
    assert np.isfinite(known).all()
    assert 1.0 < np.hypot(known[:, 0], known[:, 1]).max() < 10.0  # RubberWhale moves a few px
    # Writing it back reproduces the original file byte for byte.
    write_flo(tmp_path / "rw.flo", flow)
    assert (tmp_path / "rw.flo").read_bytes() == rubberwhale.read_bytes()
