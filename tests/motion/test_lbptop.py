import subprocess
import sys

import numpy as np
import pytest

from fastmer.motion import lbptop
from fastmer.motion.lbptop import lbp_top, lbp_top_batch, lbp_top_reference

pytest.importorskip("numba")


def random_volume(shape, seed, dtype=np.uint8, high=256):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


@pytest.mark.parametrize(
    "shape, blocks",
    [((9, 10, 10), (5, 5)), ((12, 37, 23), (5, 5)), ((20, 64, 48), (5, 5)), ((10, 17, 29), (3, 4)), ((9, 3, 3), (1, 1))],
)
def test_numba_equals_reference(shape, blocks):
    volume = random_volume(shape, seed=sum(shape))
    ours = lbp_top(volume, blocks=blocks)
    ref = lbp_top_reference(volume, blocks=blocks)
    assert ours.shape == ref.shape == (3, blocks[0] * blocks[1], 16) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("points", [3, 6, 8])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_numba_equals_reference_off_grid(points, interpolation):
    """Neighbours between pixels (bilinear weights in float64): the same codes in both."""
    volume = random_volume((11, 21, 26), seed=points)
    kwargs = dict(radii=(2, 1, 3), points=points, blocks=(2, 3), interpolation=interpolation)
    np.testing.assert_allclose(lbp_top(volume, **kwargs), lbp_top_reference(volume, **kwargs), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_other_dtypes_match_reference_and_uint8(dtype):
    volume = random_volume((10, 20, 20), seed=3)
    expected = lbp_top(volume)
    np.testing.assert_array_equal(lbp_top(volume.astype(dtype)), expected)
    np.testing.assert_array_equal(lbp_top_reference(volume.astype(dtype)), expected)
    smooth = np.random.default_rng(4).random((10, 20, 20)).astype(dtype) if dtype in (np.float32, np.float64) else None
    if smooth is not None:
        np.testing.assert_allclose(lbp_top(smooth, points=8), lbp_top_reference(smooth, points=8), rtol=0, atol=1e-6)


def test_constant_volume_is_all_ones_code():
    out = lbp_top(np.full((9, 15, 15), 77, np.uint8))
    expected = np.zeros((3, 25, 16), np.float32)
    expected[..., 15] = 1.0  # s(0) = 1: every neighbour counts as >= the centre
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(lbp_top_reference(np.full((9, 15, 15), 77, np.uint8)), expected)


def test_hand_checked_patterns():
    """A horizontal ramp (x increases): in XY, right (bit 0) >= c, up/down equal (bits 1, 3), left
    smaller -> 0b1011 = 11; in XT: right (0), later (1), earlier (3) -> 11; in YT every neighbour
    equals the centre -> 15."""
    ramp = np.broadcast_to(np.arange(12, dtype=np.uint8) * 10, (9, 12, 12)).copy()
    out = lbp_top(ramp, blocks=(1, 1))
    assert out[0, 0, 11] == out[1, 0, 11] == out[2, 0, 15] == 1.0
    # A brightening clip (t increases): XY flat -> 15; XT: right, left equal, later >= c, earlier < c
    # -> bits 0, 1, 2 = 7; YT: later (bit 0), up (1), down (3) -> 0b1011 = 11.
    fade = np.broadcast_to((np.arange(9, dtype=np.uint8) * 20)[:, None, None], (9, 8, 8)).copy()
    out = lbp_top(fade, blocks=(2, 2))
    assert (out[0, :, 15] == 1).all() and (out[1, :, 7] == 1).all() and (out[2, :, 11] == 1).all()
    np.testing.assert_array_equal(out, lbp_top_reference(fade, blocks=(2, 2)))


def test_single_voxel_codes_and_blocks():
    """One bright voxel among zeros, at the only valid time (R_T = 4): on every plane its own code
    is 0 (all neighbours darker) and every other centre's is 15 (its neighbours are >= it)."""
    volume = np.zeros((9, 6, 6), np.uint8)
    volume[4, 2, 3] = 200
    out = lbp_top_reference(volume, blocks=(1, 1))
    for plane in range(3):  # 4x4 valid centres in (y, x)
        counts = np.rint(out[plane, 0] * 16).astype(int)
        assert counts[0] == 1 and counts[15] == 15 and counts.sum() == 16
    np.testing.assert_array_equal(lbp_top(volume, blocks=(1, 1)), out)
    # The 2x2 grid of a 6x6 image has edges at 0, 3, 6: the bright voxel (y=2, x=3) is in block 1.
    out = lbp_top(volume, blocks=(2, 2))
    assert out[0, 1, 0] == 0.25 and out[0, 0, 0] == out[0, 2, 0] == out[0, 3, 0] == 0


def test_dark_voxel_sets_one_bit_per_neighbour():
    volume = np.full((9, 5, 5), 100, np.uint8)
    volume[4, 2, 2] = 10
    xy = lbp_top_reference(volume, blocks=(1, 1))[0, 0] * 9  # 3x3 valid centres
    # the right neighbour (x=3) sees the dark pixel on its left (bit 2): 15 - 4 = 11; the one above
    # (y=1) sees it below (bit 3): 7; the left one, on its right (bit 0): 14; the one below, up (bit 1): 13.
    assert np.allclose(xy[[11, 7, 14, 13, 15]], [1, 1, 1, 1, 5])


def test_xy_plane_matches_skimage():
    from skimage.feature import local_binary_pattern

    volume = random_volume((9, 19, 23), seed=5)
    rt, ry, rx = 4, 1, 1
    # skimage: neighbour p at (r − R sin(2πp/P), c + R cos(2πp/P)), bit p — our XY convention.
    codes = np.stack([local_binary_pattern(frame, P=4, R=1, method="default") for frame in volume[rt:-rt]])
    codes = codes[:, ry:-ry, rx:-rx].astype(np.int64)
    expected = np.bincount(codes.ravel(), minlength=16) / codes.size
    np.testing.assert_allclose(lbp_top(volume, blocks=(1, 1))[0, 0], expected, rtol=0, atol=1e-6)
    # and per block: rows/columns 0..18 / 0..22 cut at floor(k*19/5), floor(k*23/5)
    out = lbp_top(volume)
    rows = lbptop._block_index(19, 5)[ry:-ry]
    cols = lbptop._block_index(23, 5)[rx:-rx]
    for by in range(5):
        for bx in range(5):
            block = codes[:, rows == by][:, :, cols == bx]
            hist = np.bincount(block.ravel(), minlength=16) / block.size
            np.testing.assert_allclose(out[0, by * 5 + bx], hist, rtol=0, atol=1e-6)


def test_xy_plane_matches_skimage_with_interpolation():
    """P = 8, R = 1: skimage's bilinear interpolation and ours give the same XY codes."""
    from skimage.feature import local_binary_pattern

    volume = random_volume((9, 16, 16), seed=6)
    codes = np.stack([local_binary_pattern(f, P=8, R=1, method="default") for f in volume[4:-4]])[:, 1:-1, 1:-1]
    expected = np.bincount(codes.astype(np.int64).ravel(), minlength=256) / codes.size
    np.testing.assert_allclose(lbp_top(volume, points=8, blocks=(1, 1))[0, 0], expected, rtol=0, atol=1e-6)


def test_adding_a_constant_changes_nothing():
    volume = random_volume((12, 30, 30), seed=7, high=200)
    base = lbp_top(volume)
    np.testing.assert_array_equal(lbp_top(volume + np.uint8(55)), base)
    np.testing.assert_array_equal(lbp_top(volume.astype(np.float64) - 1000.0), base)
    np.testing.assert_array_equal(lbp_top_reference(volume.astype(np.int32) + 12345), base)


def test_histograms_sum_to_one_and_default_size():
    out = lbp_top(random_volume((30, 64, 64), seed=8))
    assert out.shape == (3, 25, 16)
    assert out.reshape(-1).size == 1200
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-6)
    assert (out >= 0).all()


def test_batch_of_different_lengths():
    clips = [random_volume((t, 40, 36), seed=t) for t in (9, 15, 30)]
    out = lbp_top_batch(clips)
    assert out.shape == (3, 3, 25, 16)
    for clip, hist in zip(clips, out):
        np.testing.assert_array_equal(hist, lbp_top(clip))
    stacked = np.stack([random_volume((10, 20, 20), seed=s) for s in range(2)])
    np.testing.assert_array_equal(lbp_top_batch(stacked)[1], lbp_top(stacked[1]))
    with pytest.raises(ValueError, match="volume 1: .*9 frames"):
        lbp_top_batch([clips[0], clips[0][:5]])
    with pytest.raises(ValueError, match="at least one"):
        lbp_top_batch([])
    with pytest.raises(ValueError, match=r"\(N, T, H, W\)"):
        lbp_top_batch(np.zeros((10, 20, 20), np.uint8))


@pytest.mark.parametrize(
    "volume, kwargs, match",
    [
        (np.zeros((10, 20), np.uint8), {}, "T, H, W"),
        (np.zeros((2, 10, 20, 20), np.uint8), {}, "T, H, W"),
        (np.zeros((10, 20, 20), bool), {}, "dtype"),
        (np.zeros((10, 20, 20), np.complex64), {}, "dtype"),
        (np.full((10, 20, 20), np.nan), {}, "NaN"),
        (np.zeros((8, 20, 20), np.uint8), {}, "at least 9 frames"),
        (np.zeros((10, 20, 20), np.uint8), {"radii": (1, 1, 5)}, "at least 11 frames"),
        (np.zeros((10, 2, 20), np.uint8), {}, "too small"),
        (np.zeros((10, 4, 20), np.uint8), {}, "larger than"),
        (np.zeros((10, 6, 20), np.uint8), {}, "too fine"),
        (np.zeros((10, 20, 20), np.uint8), {"radii": (1, 1)}, "radii"),
        (np.zeros((10, 20, 20), np.uint8), {"radii": (1, 0, 4)}, "radii"),
        (np.zeros((10, 20, 20), np.uint8), {"radii": (1.5, 1, 4)}, "radii"),
        (np.zeros((10, 20, 20), np.uint8), {"points": 0}, "points"),
        (np.zeros((10, 20, 20), np.uint8), {"points": 17}, "points"),
        (np.zeros((10, 20, 20), np.uint8), {"blocks": (0, 5)}, "blocks"),
        (np.zeros((10, 20, 20), np.uint8), {"interpolation": "cubic"}, "interpolation"),
    ],
)
def test_invalid_inputs(volume, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lbp_top(volume, **kwargs)
    with pytest.raises(ValueError, match=match):
        lbp_top_reference(volume, **kwargs)


def test_missing_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(lbptop, "numba", None)
    with pytest.raises(RuntimeError, match="pip install numba"):
        lbp_top(np.zeros((9, 10, 10), np.uint8))
    assert lbp_top_reference(np.zeros((9, 10, 10), np.uint8)).shape == (3, 25, 16)


def test_import_compiles_nothing():
    code = (
        "import fastmer.motion.lbptop as m\n"
        "assert not m._kernel_grid.signatures and not m._kernel_bilinear.signatures, 'compiled at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
