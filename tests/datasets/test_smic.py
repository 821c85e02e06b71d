"""SMIC-HS loader on fixture trees in the documented layout (folders only, no spreadsheet)."""

import cv2
import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

IMG = "image{:06d}.bmp"


def make_smic(root, frames):
    frames(root / "s1" / "micro" / "negative" / "s1_ne_01", [69140, 69141, 69142], IMG, image=True)
    frames(root / "s1" / "micro" / "negative" / "s1_ne_02", [5, 6, 8], IMG)  # frame 7 absent
    frames(root / "s1" / "micro" / "positive" / "s1_po_01", [998, 999, 1000], "image{}.bmp")  # unpadded
    (root / "s1" / "micro" / "surprise" / "s1_sur_01").mkdir(parents=True)  # empty clip folder
    frames(root / "s1" / "non_micro" / "s1_nm_01", [1, 2, 3], IMG)  # ignored
    frames(root / "s10" / "micro" / "surprise" / "s10_sur_01", [1, 2, 3], IMG)
    frames(root / "s2" / "micro" / "positive" / "s2_po_10", [1, 2, 3], IMG)
    frames(root / "s2" / "micro" / "positive" / "s2_po_2", [1, 2, 3], IMG)
    (root / "readme.txt").write_text("not a subject")


def test_clips_from_folders(tmp_path, frames):
    make_smic(tmp_path, frames)
    clips = load("smic", tmp_path)
    assert [c.uid for c in clips] == [
        "smic/s1/s1_ne_01", "smic/s1/s1_ne_02", "smic/s1/s1_po_01", "smic/s1/s1_sur_01",
        "smic/s2/s2_po_2", "smic/s2/s2_po_10", "smic/s10/s10_sur_01",
    ]
    a, b, c, d = clips[:4]
    assert (a.dataset, a.subject, a.onset, a.apex, a.offset, a.labels, a.fps) == (
        "smic", "smic/s1", 69140, None, 69142, ("negative",), 100.0)
    assert cv2.imread(a.frame_paths[0]).shape == (8, 8, 3)
    assert a.notes == (Defect.APEX_MISSING.value,)
    assert (b.onset, b.offset, b.frame_numbers) == (5, 8, (5, 6, 8))
    assert b.notes == (Defect.APEX_MISSING.value, Defect.FRAMES_MISSING.value)
    assert c.frame_numbers == (998, 999, 1000) and c.frame_paths[-1].endswith("image1000.bmp")
    assert c.labels == ("positive",)
    assert (d.onset, d.offset, d.labels) == (None, None, ("surprise",))
    assert d.notes == (Defect.FOLDER_MISSING.value, Defect.ONSET_OFFSET_INVALID.value, Defect.APEX_MISSING.value)
    assert clips.report.rows == 7
    assert clips.report.counts() == {
        "defects": {"apex_missing": 7, "folder_missing": 1, "frames_missing": 1, "onset_offset_invalid": 1},
        "excluded": {},
    }
    assert clips.report.summary() == (
        "smic: 7 rows; defects: apex_missing 7, folder_missing 1, frames_missing 1, onset_offset_invalid 1")


def test_apex_is_left_to_spotting(tmp_path, frames):
    make_smic(tmp_path, frames)
    clip = load("smic", tmp_path)[0]
    assert clip.validate_annotation() == (69140, None, 69142)


def test_nested_hs_folder_and_protocol(tmp_path, frames):
    make_smic(tmp_path / "SMIC_all_raw" / "HS", frames)
    clips = load("smic", tmp_path / "SMIC_all_raw", protocol="megc2019-3class")
    assert len(clips) == 7 and clips.report.excluded == {}
    five = load("smic", tmp_path / "SMIC_all_raw" / "HS", protocol="samm-5class")
    assert [c.uid for c in five] == ["smic/s1/s1_sur_01", "smic/s10/s10_sur_01"]
    assert len(five.report.excluded["label_not_in_samm-5class"]) == 5


def test_bad_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SMIC-HS subject folders"):
        load("smic", tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load("smic", tmp_path / "missing")
