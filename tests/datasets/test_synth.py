"""The synthetic ME corpus: layout, determinism, and that its ground truth is the real motion.

References used here are independent of the generator's internals: OpenCV's Haar face
detector, OpenCV's TV-L1 optical flow, warping the apex frame with the stored flow, and the
frame-difference energy; the spreadsheet is read back with openpyxl.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from fastmer.datasets import synth
from fastmer.datasets.synth import SYNTH_EXPRESSIONS, SynthConfig, generate
from fastmer.motion.flo import read_flo

COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
EMOTION_CLASS = {"disgust": "negative", "happiness": "positive", "surprise": "surprise"}
EMOTION_AUS = {"disgust": "4", "happiness": "12", "surprise": "1+2"}
SHEET = "CASME2-coding-synthetic.xlsx"

SMALL = SynthConfig(subjects=3, clips_per_subject=3, seed=7, min_frames=12, max_frames=16)


# ------------------------------------------------------------------------------- helpers


def sheet_rows(root: Path) -> list[dict]:
    wb = openpyxl.load_workbook(root / SHEET, read_only=True)
    assert wb.sheetnames == ["Sheet1"]
    rows = list(wb["Sheet1"].iter_rows(values_only=True))
    wb.close()
    assert list(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, r)) for r in rows[1:]]


def gt_rows(root: Path) -> list[dict]:
    with (root / "ground_truth" / "clips.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def clip_dir(root: Path, row: dict) -> Path:
    return root / f"sub{row['Subject']}" / row["Filename"]


def frame_numbers(d: Path) -> list[int]:
    names = [p.name for p in d.iterdir()]
    assert all(re.fullmatch(r"img\d+\.jpg", n) for n in names), names
    return sorted(int(n[3:-4]) for n in names)


def gray(d: Path, n: int) -> np.ndarray:
    img = cv2.imread(str(d / f"img{n}.jpg"), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    return img


_CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def faces(img: np.ndarray) -> list[tuple[int, int, int, int]]:
    boxes = _CASCADE.detectMultiScale(img, scaleFactor=1.1, minNeighbors=5, minSize=(80, 80))
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])


def true_flow(root: Path, row: dict) -> np.ndarray:
    return read_flo(root / "ground_truth" / f"sub{row['Subject']}" / f"{row['Filename']}.flo")


def split_drift(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(global drift, local part): the drift is the constant flow of the untouched majority."""
    drift = np.median(flow.reshape(-1, 2), axis=0)
    return drift, flow - drift


def epe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small") / "corpus"
    summary = generate(root, SMALL, workers=2)
    assert summary.out_dir == root and summary.clips == 9 and summary.subjects == 3
    return root


@pytest.fixture(scope="module", params=["linear", "cubic"])
def strong(request, tmp_path_factory) -> Path:
    """One subject, one clip per class, with peaks large enough to measure flow on, rendered
    with each interpolation."""
    root = tmp_path_factory.mktemp(f"strong_{request.param}") / "corpus"
    cfg = SynthConfig(
        subjects=1, clips_per_subject=3, seed=3, min_frames=10, max_frames=12, min_peak_px=1.2,
        interpolation=request.param,
    )  # fmt: skip
    generate(root, cfg, workers=1)
    return root


@pytest.fixture(scope="module")
def quiet(tmp_path_factory) -> Path:
    """Noise- and drift-free clips: frame differences are the expression alone."""
    root = tmp_path_factory.mktemp("quiet") / "corpus"
    cfg = SynthConfig(
        subjects=2, clips_per_subject=3, seed=11, min_frames=14, max_frames=20, noise_std=0.0, max_drift_px=0.0
    )
    generate(root, cfg, workers=1)
    return root


# -------------------------------------------------------------------------------- layout


def test_layout_and_spreadsheet(small):
    names = sorted(p.name for p in small.iterdir())
    assert names == ["CASME2-coding-synthetic.xlsx", "README.txt", "ground_truth", "sub01", "sub02", "sub03"]
    readme = (small / "README.txt").read_text().lower()
    assert "synthetic" in readme and "astronaut" in readme and "public domain" in readme
    assert not list(small.parent.glob(".corpus.*")), "temporary directories left behind"

    rows = sheet_rows(small)
    assert len(rows) == 9
    listed = set()
    for r in rows:
        assert isinstance(r["Subject"], str) and re.fullmatch(r"\d{2}", r["Subject"])
        assert re.fullmatch(r"EP\d{2}_\d{2}", r["Filename"])
        assert r["Action Units"] == EMOTION_AUS[r["Estimated Emotion"]]
        on, ap, off = r["OnsetFrame"], r["ApexFrame"], r["OffsetFrame"]
        assert all(isinstance(v, int) for v in (on, ap, off))
        d = clip_dir(small, r)
        assert d.is_dir(), d
        listed.add(d)
        nums = frame_numbers(d)
        first, last = nums[0], nums[-1]
        assert nums == list(range(first, last + 1)), "frame numbers must be consecutive"
        assert SMALL.min_frames <= len(nums) <= SMALL.max_frames
        assert first < on < ap < off < last
        assert on - first <= 10 and last - off <= 10
        img = cv2.imread(str(d / f"img{on}.jpg"), cv2.IMREAD_UNCHANGED)
        assert img.shape == (480, 640, 3) and img.dtype == np.uint8
        assert (d / f"img{first}.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG SOI
    on_disk = {d for s in small.glob("sub*") for d in s.iterdir()}
    assert on_disk == listed

    # Classes cycle per subject: with 3 clips each subject has one clip of each class.
    per_subject = Counter((r["Subject"], r["Estimated Emotion"]) for r in rows)
    assert set(per_subject.values()) == {1} and len(per_subject) == 9


def test_ground_truth_table_matches_spreadsheet(small):
    rows, gts = sheet_rows(small), gt_rows(small)
    assert [(r["Subject"], r["Filename"]) for r in rows] == [(g["subject"], g["filename"]) for g in gts]
    for r, g in zip(rows, gts):
        assert EMOTION_CLASS[r["Estimated Emotion"]] == g["class"]
        frames = (int(g["onset"]), int(g["apex"]), int(g["offset"]))
        assert frames == (r["OnsetFrame"], r["ApexFrame"], r["OffsetFrame"])
        nums = frame_numbers(clip_dir(small, r))
        assert (int(g["first_frame"]), int(g["last_frame"])) == (nums[0], nums[-1])
        assert 0.3 <= float(g["peak_px"]) <= 2.0 and 0.0 <= float(g["drift_px"]) <= 0.5
        assert true_flow(small, r).shape == (480, 640, 2)


def test_renders_the_scikit_image_astronaut():
    from skimage import data

    expected = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    np.testing.assert_array_equal(synth._photo_bgr(), expected.astype(np.float32))


def test_class_table_is_one_module_level_table():
    assert [e.label for e in SYNTH_EXPRESSIONS] == ["negative", "positive", "surprise"]
    assert {e.emotion: e.action_units for e in SYNTH_EXPRESSIONS} == EMOTION_AUS


# ------------------------------------------------------------------------- determinism


def test_deterministic_whatever_the_workers(small, tmp_path):
    again = tmp_path / "again"
    generate(again, SMALL, workers=1)
    assert sheet_rows(again) == sheet_rows(small)
    files = sorted(p.relative_to(small) for p in small.rglob("*") if p.is_file() and p.suffix != ".xlsx")
    assert sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file() and p.suffix != ".xlsx") == files
    assert len(files) > 100
    for rel in files:
        assert (small / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_thread_workers_give_the_same_corpus(small, tmp_path, monkeypatch):
    """Where spawned processes cannot re-run the caller (a script read from stdin), threads
    render the clips instead, and the corpus is byte-identical."""
    import fastmer.datasets.synth as synth

    monkeypatch.setattr(synth, "_main_is_reimportable", lambda: False)
    threaded = tmp_path / "threaded"
    assert generate(threaded, SMALL, workers=2).workers == 2
    files = sorted(p.relative_to(small) for p in small.rglob("*") if p.is_file() and p.suffix != ".xlsx")
    for rel in files:
        assert (small / rel).read_bytes() == (threaded / rel).read_bytes(), rel
    assert sheet_rows(threaded) == sheet_rows(small)


def test_different_seed_differs(small, tmp_path):
    other = tmp_path / "other"
    generate(other, replace(SMALL, seed=8, subjects=1, clips_per_subject=1), workers=1)
    a, b = sheet_rows(small)[0], sheet_rows(other)[0]
    assert (a["Filename"], a["OnsetFrame"], a["ApexFrame"]) != (b["Filename"], b["OnsetFrame"], b["ApexFrame"])
    img_a = cv2.imread(str(clip_dir(small, a) / f"img{a['OnsetFrame']}.jpg"))
    img_b = cv2.imread(str(clip_dir(other, b) / f"img{b['OnsetFrame']}.jpg"))
    assert np.abs(img_a.astype(int) - img_b.astype(int)).mean() > 5  # another appearance


# ------------------------------------------------------------------------ ground truth


def test_true_flow_magnitude_region_and_direction(small):
    for r in sheet_rows(small):
        cls = EMOTION_CLASS[r["Estimated Emotion"]]
        flow = true_flow(small, r)
        drift, local = split_drift(flow)
        assert np.hypot(*drift) <= 0.5 + 1e-3
        mag = np.hypot(local[..., 0], local[..., 1])
        assert 0.3 - 0.02 <= mag.max() <= 2.0 + 0.02, (r, mag.max())
        assert (mag > 1e-2).mean() < 0.15, "the expression must be spatially local"

        box = faces(gray(clip_dir(small, r), r["OnsetFrame"]))[0]
        x, y, w, h = box
        py, px = np.unravel_index(mag.argmax(), mag.shape)
        assert x <= px < x + w, (r, box, (px, py))
        upper = py < y + h / 2
        assert upper == (cls != "positive"), (r, box, (px, py))

        # Direction, averaged over where the motion is strong.
        strong = mag > 0.5 * mag.max()
        u, v = local[..., 0][strong], local[..., 1][strong]
        side = (np.nonzero(strong)[1] - (x + w / 2)) / w  # <0 image-left, >0 image-right
        if cls == "surprise":  # brows and forehead up
            assert v.mean() < -0.8 * mag[strong].mean() and abs(u.mean()) < 0.2 * abs(v.mean())
        elif cls == "negative":  # brows down and toward the midline
            assert v.mean() > 0.8 * mag[strong].mean()
            assert (u * np.sign(side) < 0).mean() > 0.8
        else:  # mouth corners up and outward
            assert v.mean() < -0.3 * mag[strong].mean()
            assert (u * np.sign(side) > 0).mean() > 0.8


def test_tvl1_recovers_the_true_flow(strong):
    """TV-L1 (an independent estimator) on the rendered onset/apex frames agrees with the .flo."""
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    ratios = {}
    for r in sheet_rows(strong):
        d = clip_dir(strong, r)
        onset, apex = gray(d, r["OnsetFrame"]), gray(d, r["ApexFrame"])
        x, y, w, h = faces(onset)[0]
        m = w // 10  # the face box, a little context around it
        sl = (slice(max(0, y - m), y + h + m), slice(max(0, x - m), x + w + m))
        est = tvl1.calc(onset[sl], apex[sl], None)
        gt = true_flow(strong, r)[sl]
        region = np.hypot(gt[..., 0], gt[..., 1]) > 0.3
        assert region.sum() > 500
        e_tvl1 = epe(est, gt)[region].mean()
        e_zero = np.hypot(gt[..., 0], gt[..., 1])[region].mean()
        ratios[r["Estimated Emotion"]] = (round(float(e_tvl1), 3), round(float(e_zero), 3))
        assert e_tvl1 < 0.6 * e_zero, ratios
    print("TV-L1 EPE vs zero-flow EPE:", ratios)


def test_apex_frame_warped_by_true_flow_matches_onset(quiet):
    """I_apex(p + F(p)) == I_onset(p): the stored flow explains the rendered motion."""
    for r in sheet_rows(quiet):
        d = clip_dir(quiet, r)
        onset = gray(d, r["OnsetFrame"]).astype(np.float32)
        apex = gray(d, r["ApexFrame"]).astype(np.float32)
        flow = true_flow(quiet, r)
        gy, gx = np.mgrid[0 : onset.shape[0], 0 : onset.shape[1]].astype(np.float32)
        warped = cv2.remap(apex, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_CUBIC)
        region = np.hypot(flow[..., 0], flow[..., 1]) > 0.3
        residual = np.abs(warped - onset)[region].mean()
        raw = np.abs(apex - onset)[region].mean()
        assert residual < 0.5 * raw and residual < 2.0, (r, residual, raw)
        # With the sign flipped the flow must explain the motion far worse.
        wrong = cv2.remap(apex, gx - flow[..., 0], gy - flow[..., 1], cv2.INTER_CUBIC)
        assert np.abs(wrong - onset)[region].mean() > 1.5 * raw


def test_apex_is_where_the_expression_peaks(quiet):
    for r in sheet_rows(quiet):
        d = clip_dir(quiet, r)
        nums = frame_numbers(d)
        onset = gray(d, r["OnsetFrame"]).astype(np.float32)
        x, y, w, h = faces(onset.astype(np.uint8))[0]
        energy = {n: np.abs(gray(d, n).astype(np.float32) - onset)[y : y + h, x : x + w].mean() for n in nums}
        peak = max(energy, key=energy.get)
        assert abs(peak - r["ApexFrame"]) <= 1, (r, energy)
        # Neutral outside [onset, offset]: no drift and no noise leaves those frames unchanged.
        assert energy[nums[0]] < 0.05 * energy[peak] and energy[nums[-1]] < 0.05 * energy[peak]


# -------------------------------------------------------------- face detection, default size


@pytest.mark.slow
def test_default_corpus_speed_and_haar_on_every_onset(tmp_path):
    t0 = time.perf_counter()
    summary = generate(tmp_path / "default", SynthConfig())
    seconds = time.perf_counter() - t0
    print(f"default corpus: {summary.clips} clips, {summary.frames} frames, {seconds:.1f} s, {summary.workers} workers")
    assert summary.clips == 48 and 48 * 30 <= summary.frames <= 48 * 60
    # ~12 s on 2 idle cores (the target is < 30 s); only a gross regression should fail here,
    # not a CI box that is busy with other jobs.
    assert seconds < 180

    root = summary.out_dir
    rows = sheet_rows(root)
    classes = Counter(EMOTION_CLASS[r["Estimated Emotion"]] for r in rows)
    assert classes == {"negative": 16, "positive": 16, "surprise": 16}
    for r in rows:
        assert Counter(rr["Estimated Emotion"] for rr in rows if rr["Subject"] == r["Subject"]) == {
            "disgust": 2,
            "happiness": 2,
            "surprise": 2,
        }
        found = faces(gray(clip_dir(root, r), r["OnsetFrame"]))
        assert len(found) == 1, (r, found)
        x, y, w, h = found[0]
        assert 150 <= w <= 300, (r, found)
        # The detected face is the real one: it contains the moving facial feature.
        _, local = split_drift(true_flow(root, r))
        mag = np.hypot(local[..., 0], local[..., 1])
        py, px = np.unravel_index(mag.argmax(), mag.shape)
        assert x <= px < x + w and y <= py < y + h, (r, found, (px, py))


# ------------------------------------------------------------------------ errors, safety

TINY = SynthConfig(subjects=1, clips_per_subject=1, min_frames=9, max_frames=9)


def test_non_empty_out_dir_needs_overwrite(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="busy"):
        generate(out, TINY, workers=1)
    # overwrite=True still refuses to delete a directory that is not a synthetic corpus.
    with pytest.raises(FileExistsError, match="busy"):
        generate(out, TINY, workers=1, overwrite=True)
    assert (out / "something.txt").read_text() == "keep me"


def test_empty_out_dir_is_fine_and_overwrite_replaces_a_corpus(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    generate(out, TINY, workers=1)
    first = sheet_rows(out)
    with pytest.raises(FileExistsError, match="corpus"):
        generate(out, TINY, workers=1)
    generate(out, replace(TINY, seed=5), workers=1, overwrite=True)
    assert sheet_rows(out) != first
    assert len(list(out.glob("sub*/*"))) == 1  # the old clip is gone, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_crash_leaves_no_corpus(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(synth, "_write_spreadsheet", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate(tmp_path / "c", TINY, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_progress_bar(tmp_path, capsys):
    summary = generate(tmp_path / "p", TINY, workers=1, progress=True)
    assert summary.frames == 9 and summary.workers == 1
    assert "synth clips" in capsys.readouterr().err


def test_out_dir_is_a_file(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FileExistsError, match="a_file.*not a directory"):
        generate(tmp_path / "a_file", TINY, workers=1, overwrite=True)


@pytest.mark.parametrize(
    "field, value",
    [
        ("subjects", 0),
        ("subjects", 2.5),
        ("subjects", True),
        ("clips_per_subject", 0),
        ("seed", -1),
        ("width", 16),
        ("height", 0),
        ("min_frames", 1),
        ("max_frames", 20),  # < min_frames (30)
        ("min_peak_px", 0.0),
        ("min_peak_px", float("nan")),
        ("max_peak_px", 0.1),  # < min_peak_px
        ("max_peak_px", 50.0),
        ("jpeg_quality", 0),
        ("jpeg_quality", 101),
        ("max_drift_px", -0.1),
        ("noise_std", -1.0),
        ("min_face_px", 60.0),  # the frame would sample outside the photograph
        ("max_face_px", 400.0),  # the face would not fit in 480 px
        ("max_rotation_deg", 45.0),
        ("interpolation", "nearest"),
    ],
)
def test_bad_config_names_the_argument(field, value):
    with pytest.raises(ValueError, match=field):
        SynthConfig(**{field: value})


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"width": 128, "height": 128}, "min_face_px"),  # no face size fits
        ({"width": 1280, "height": 960}, "min_face_px"),  # 170 px would sample outside the photo
        ({"min_face_px": 124.0, "max_peak_px": 3.9}, "max_peak_px"),  # would fold the image
    ],
)
def test_inconsistent_config_names_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SynthConfig(**kwargs)


def test_other_frame_sizes_are_valid():
    SynthConfig(width=1280, height=960, min_face_px=250.0, max_face_px=400.0)
    SynthConfig(width=320, height=240, min_face_px=100.0, max_face_px=140.0, max_peak_px=2.0)


def test_bad_workers(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        generate(tmp_path / "w", TINY, workers=0)
    assert not (tmp_path / "w").exists()


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        SynthConfig().subjects = 3  # type: ignore[misc]
