"""Facial regions of a crop and their motion, against hand-placed regions and a float64 numpy
oracle of ``region_motion``'s docstring (head motion = the nose's median flow, subtracted;
per region mean u, v, mean magnitude and MDMD's main-directional magnitude)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastmer.face.crop import FaceBox
from fastmer.phases.regions import (
    EXPRESSION_REGIONS,
    EYE_REGIONS,
    MOTION_STATS,
    REFERENCE_REGION,
    REGIONS,
    face_regions,
    region_motion,
)

# ------------------------------------------------------------------------------- helpers


def centre(region: tuple[slice, slice]) -> tuple[float, float]:
    """(x, y) centre of a ``(rows, cols)`` region, pixel units (half-open slices)."""
    rows, cols = region
    return (cols.start + cols.stop) / 2, (rows.start + rows.stop) / 2


def size(region: tuple[slice, slice]) -> tuple[int, int]:
    """(width, height) of a region."""
    rows, cols = region
    return cols.stop - cols.start, rows.stop - rows.start


def oracle_motion(flow: np.ndarray, regions: dict[str, tuple[slice, slice]]) -> np.ndarray:
    """``region_motion``'s docstring in float64 numpy, one pair and region at a time.

    The head motion is the nose region's per-component median; for an even count the lower
    of the two middle values (``torch.median``'s definition of the median).
    """
    flow = np.asarray(flow, np.float64)
    out = np.zeros((len(flow), len(REGIONS), len(MOTION_STATS)))
    for n in range(len(flow)):
        rows, cols = regions[REFERENCE_REGION]
        head = []
        for c in range(2):
            values = np.sort(flow[n, c, rows, cols].ravel())
            head.append(values[(len(values) - 1) // 2])
        for r, name in enumerate(REGIONS):
            rows, cols = regions[name]
            u = flow[n, 0, rows, cols].ravel() - head[0]
            v = flow[n, 1, rows, cols].ravel() - head[1]
            mag = np.hypot(u, v)
            angle = np.arctan2(v, u) + math.pi  # [0, 2 pi]
            sector = np.minimum((angle // (math.pi / 4)).astype(int), 7)
            counts = np.bincount(sector, minlength=8)
            main = int(np.flatnonzero(counts == counts.max())[0])  # ties: the lowest sector
            in_main = np.sort(mag[sector == main])[::-1]
            top = max(1, math.ceil(len(in_main) / 3))
            out[n, r] = (u.mean(), v.mean(), mag.mean(), in_main[:top].mean())
    return out


def tiny_regions() -> dict[str, tuple[slice, slice]]:
    """Hand-made regions of an 8 x 8 crop: left_brow rows 0-1 x cols 0-2 (6 vectors), nose
    rows 6-7 x cols 6-7, the rest elsewhere (non-overlapping)."""
    return {
        "left_brow": (slice(0, 2), slice(0, 3)),
        "right_brow": (slice(0, 2), slice(4, 7)),
        "left_mouth": (slice(3, 5), slice(0, 2)),
        "right_mouth": (slice(3, 5), slice(2, 4)),
        "left_eye": (slice(3, 5), slice(4, 6)),
        "right_eye": (slice(6, 8), slice(0, 2)),
        "nose": (slice(6, 8), slice(6, 8)),
    }


def polar(angle_deg: float, magnitude: float) -> tuple[float, float]:
    a = math.radians(angle_deg)
    return magnitude * math.cos(a), magnitude * math.sin(a)


# ------------------------------------------------------------------------------- face_regions


@pytest.mark.parametrize("side", [48, 64, 96, 112])
def test_canonical_regions_sit_where_the_face_parts_are(side):
    box = FaceBox(0, 0, 100, 100)
    regions = face_regions(box, crop=box, size=side)
    assert set(regions) == set(REGIONS)
    for name, (rows, cols) in regions.items():
        assert 0 <= rows.start < rows.stop <= side and 0 <= cols.start < cols.stop <= side, name
        assert rows.stop - rows.start >= 2 and cols.stop - cols.start >= 2, name
    c = {name: centre(region) for name, region in regions.items()}
    for side_name in ("left", "right"):
        brow, eye, mouth = c[f"{side_name}_brow"], c[f"{side_name}_eye"], c[f"{side_name}_mouth"]
        assert brow[1] < eye[1] < c["nose"][1] < mouth[1]  # brows above eyes; mouth below the nose
        assert abs(brow[0] - eye[0]) <= 1.0  # each brow over its eye
    # image-left parts on the left of the centre, mirrored about it (within a pixel of rounding)
    for part in ("brow", "eye", "mouth"):
        left, right = c[f"left_{part}"], c[f"right_{part}"]
        assert left[0] < side / 2 < right[0], part
        assert abs((left[0] + right[0]) / 2 - side / 2) <= 1.0, part
        assert abs(left[1] - right[1]) <= 1.0, part
        assert abs(size(regions[f"left_{part}"])[0] - size(regions[f"right_{part}"])[0]) <= 1, part
    assert abs(c["nose"][0] - side / 2) <= 1.0
    # the brows and eyes do not reach into the nose, nor the nose into the mouth corners
    for name in (*EYE_REGIONS, "left_brow", "right_brow", "left_mouth", "right_mouth"):
        rows, cols = regions[name]
        nrows, ncols = regions["nose"]
        overlap_rows = min(rows.stop, nrows.stop) > max(rows.start, nrows.start)
        overlap_cols = min(cols.stop, ncols.stop) > max(cols.start, ncols.start)
        assert not (overlap_rows and overlap_cols), name


def test_canonical_regions_follow_the_box_inside_a_larger_crop():
    # box 100 px at (150, 80) inside the crop square (100, 30, 200, 200), resized to 100 px:
    # canonical eyes at box + (0.30, 0.38) * 100 = (180, 118) and (220, 118) -> crop (40, 44), (60, 44)
    regions = face_regions(FaceBox(150, 80, 100, 100), crop=FaceBox(100, 30, 200, 200), size=100)
    # eyes 20 px apart; eye region 0.5 x 0.28 of it = 10 x 5.6: (35..45, 41.2..46.8) -> rounded
    assert regions["left_eye"] == (slice(41, 47), slice(35, 45))
    assert regions["right_eye"] == (slice(41, 47), slice(55, 65))


def test_landmark_regions_are_centred_on_the_landmarks_mapped_into_the_crop():
    # image landmarks; crop square (50, 30, 200, 200) resized to 100 px: p_crop = (p - (50, 30)) / 2
    landmarks = np.array([[110.0, 110.0], [190.0, 110.0], [150.0, 160.0], [120.0, 200.0], [180.0, 200.0]])
    # the detector's box is ignored when landmarks are given
    regions = face_regions(FaceBox(0, 0, 10, 10), crop=FaceBox(50, 30, 200, 200), size=100, landmarks=landmarks)
    # crop landmarks: eyes (30, 40), (70, 40) -> 40 px apart; nose (50, 65); mouth (35, 85), (65, 85)
    # eye: 0.5 x 0.28 eyes = 20 x 11.2 px around the eye -> x 20..40, y 34.4..45.6
    assert regions["left_eye"] == (slice(34, 46), slice(20, 40))
    assert regions["right_eye"] == (slice(34, 46), slice(60, 80))
    # brow: 0.38 eyes = 15.2 px above the eye, 26 x 14 px -> x 17..43, y 17.8..31.8
    assert regions["left_brow"] == (slice(18, 32), slice(17, 43))
    # nose: 0.12 eyes = 4.8 px above the nose tip, 14 x 14 -> x 43..57, y 53.2..67.2
    assert regions["nose"] == (slice(53, 67), slice(43, 57))
    # mouth corner: 18 x 16 px -> x 26..44, y 77..93
    assert regions["left_mouth"] == (slice(77, 93), slice(26, 44))
    assert regions["right_mouth"] == (slice(77, 93), slice(56, 74))


def test_regions_are_clamped_into_the_crop_and_at_least_two_pixels():
    # a face whose right half is outside the crop, and a tiny face (eyes 1 px apart)
    for landmarks, side in (
        (np.array([[80.0, 5.0], [130.0, 5.0], [105.0, 40.0], [85.0, 60.0], [125.0, 60.0]]), 64),
        (np.array([[10.0, 10.0], [11.0, 10.0], [10.5, 11.0], [10.2, 12.0], [10.8, 12.0]]), 32),
    ):
        regions = face_regions(FaceBox(0, 0, 1, 1), crop=FaceBox(0, 0, 100, 100), size=side, landmarks=landmarks)
        for name, (rows, cols) in regions.items():
            assert rows.start >= 0 and rows.stop <= side and cols.start >= 0 and cols.stop <= side, name
            assert rows.stop - rows.start >= 2 and cols.stop - cols.start >= 2, name


def test_coincident_eyes_raise():
    landmarks = np.array([[50.0, 40.0], [50.0, 40.0], [50.0, 60.0], [40.0, 80.0], [60.0, 80.0]])
    with pytest.raises(ValueError, match="eye landmarks coincide"):
        face_regions(FaceBox(0, 0, 100, 100), crop=FaceBox(0, 0, 100, 100), size=64, landmarks=landmarks)
    landmarks[1, 0] = np.nan
    with pytest.raises(ValueError, match="eye landmarks coincide"):
        face_regions(FaceBox(0, 0, 100, 100), crop=FaceBox(0, 0, 100, 100), size=64, landmarks=landmarks)


# ------------------------------------------------------------------------------- region_motion


def test_region_motion_matches_the_float64_oracle(device):
    rng = np.random.default_rng(3)
    regions = face_regions(FaceBox(10, 10, 90, 90), crop=FaceBox(0, 0, 110, 110), size=64)
    # a head translation plus per-pixel motion, some of it concentrated in one direction
    flow = rng.normal(0.0, 1.0, (5, 2, 64, 64)) + rng.normal(0.0, 2.0, (5, 2, 1, 1))
    flow[1, 0] += 1.5  # pair 1: everything moves right, so one sector dominates
    flow = flow.astype(np.float32)
    got = region_motion(torch.from_numpy(flow).to(device), regions)
    assert got.shape == (5, len(REGIONS), len(MOTION_STATS)) and got.dtype == torch.float32
    assert got.device.type == torch.device(device).type
    np.testing.assert_allclose(got.cpu().numpy(), oracle_motion(flow, regions), atol=1e-5, rtol=1e-5)


def test_region_motion_on_hand_computed_vectors():
    regions = tiny_regions()
    flow = np.zeros((2, 2, 8, 8))
    # pair 0, left brow: three vectors at 22.5 deg (sector 4) of 1, 2, 3 px and three at
    # -157.5 deg (sector 0) of 4, 5, 6 px: a 3 - 3 tie goes to sector 0, whose largest third
    # (one vector) is 6 px. Pair 1: four at 22.5 deg (1..4 px) and two at -157.5 deg (10 px):
    # sector 4 holds most, its largest third (two vectors) averages (4 + 3) / 2.
    cases = [[(22.5, 1), (22.5, 2), (22.5, 3), (-157.5, 4), (-157.5, 5), (-157.5, 6)],
             [(22.5, 1), (22.5, 2), (22.5, 3), (22.5, 4), (-157.5, 10), (-157.5, 10)]]
    for n, vectors in enumerate(cases):
        for p, (angle, magnitude) in enumerate(vectors):
            flow[n, :, p // 3, p % 3] = polar(angle, magnitude)
    head = np.array([0.5, -0.25])  # the whole face also moves: the nose measures it
    flow += head[None, :, None, None]
    got = region_motion(torch.from_numpy(flow).float(), regions).numpy()
    cos, sin = math.cos(math.radians(22.5)), math.sin(math.radians(22.5))
    brow = REGIONS.index("left_brow")
    np.testing.assert_allclose(got[0, brow], [cos * (6 - 15) / 6, sin * (6 - 15) / 6, 21 / 6, 6.0], atol=1e-5)
    np.testing.assert_allclose(got[1, brow], [cos * (10 - 20) / 6, sin * (10 - 20) / 6, 30 / 6, 3.5], atol=1e-5)
    others = [r for r, name in enumerate(REGIONS) if name != "left_brow"]
    np.testing.assert_allclose(got[:, others], 0.0, atol=1e-6)  # the head's motion is gone everywhere else


def test_a_pure_translation_moves_no_region():
    regions = face_regions(FaceBox(0, 0, 100, 100), crop=FaceBox(0, 0, 100, 100), size=64)
    flow = torch.zeros(3, 2, 64, 64)
    flow[0, 0], flow[0, 1] = 2.5, -1.0
    flow[1, 0], flow[1, 1] = -0.7, 3.2
    got = region_motion(flow, regions)  # pair 2: no motion at all
    np.testing.assert_allclose(got.numpy(), 0.0, atol=1e-6)


def test_motion_inside_the_left_brow_shows_there_only():
    regions = face_regions(FaceBox(0, 0, 100, 100), crop=FaceBox(0, 0, 100, 100), size=64)
    rows, cols = regions["left_brow"]
    flow = torch.zeros(1, 2, 64, 64)
    flow[0, 0] = 0.3  # a head translation everywhere
    flow[0, 1, rows, cols] = 2.0  # the left brow moves 2 px down on top of it
    got = region_motion(flow, regions)[0].numpy()
    brow = REGIONS.index("left_brow")
    np.testing.assert_allclose(got[brow], [0.0, 2.0, 2.0, 2.0], atol=1e-5)
    for name in (*EXPRESSION_REGIONS, *EYE_REGIONS, REFERENCE_REGION):
        if name != "left_brow":
            np.testing.assert_allclose(got[REGIONS.index(name)], 0.0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("shape", [(2, 64, 64), (1, 3, 64, 64), (1, 1, 64, 64), (1, 2, 1, 64, 64)])
def test_region_motion_rejects_other_shapes(shape):
    regions = face_regions(FaceBox(0, 0, 100, 100), crop=FaceBox(0, 0, 100, 100), size=64)
    with pytest.raises(ValueError, match=r"expected \(N, 2, S, S\) flow"):
        region_motion(torch.zeros(shape), regions)
