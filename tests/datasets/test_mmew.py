"""MMEW loader on fixture trees in the documented layout."""

import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
          "remarks"]
ROWS = [
    ["S01", "S01_01", 1, 2, 3, "AU12", "happiness", None],
    [" S01 ", "S01_02", "1", "/", "3", "AU1+AU2", "Surprise", "apex not marked"],  # stripped subject, '/' apex
    ["S02", "S02_01", 2, 2, 4, "AU4", "others", None],  # onset == apex; folder 'Others'
    ["S02", "S02_02", 1, 9, 3, "AU9", "disgust", None],  # apex outside; filed under 'fear' on disk
    ["S03", "S03_01", 1, 2, 5, "AU4", "anger", None],  # frames 4-5 absent
    ["S03", "S03_02", 1, 2, 3, "AU15", "sadness", None],  # no folder anywhere
    [None, None, None, None, None, None, None, "a remark on its own row"],
]


def make_mmew(root, xlsx, frames, *, nested=True, sheet_dir=None, name="MMEW_Micro_Exp.xlsx", header=HEADER):
    base = root / "Micro_Expression" if nested else root
    frames(base / "happiness" / "S01_01", [3, 1, 2, 10])
    frames(base / "surprise" / "S01_02", [1, 2, 3])
    frames(base / "Others" / "S02_01", [2, 3, 4])
    frames(base / "fear" / "S02_02", [1, 2, 3])
    frames(base / "anger" / "S03_01", [1, 2, 3])
    (base / "sadness").mkdir()
    return xlsx((sheet_dir or root) / name, header, ROWS)


def test_rows_folders_and_defects(tmp_path, xlsx, frames):
    make_mmew(tmp_path, xlsx, frames)
    clips = load("mmew", tmp_path)
    assert [c.uid for c in clips] == ["mmew/S01/S01_01", "mmew/S01/S01_02", "mmew/S02/S02_01", "mmew/S02/S02_02",
                                      "mmew/S03/S03_01", "mmew/S03/S03_02"]
    a, b, c, d, e, f = clips
    base = tmp_path / "Micro_Expression"
    assert (a.onset, a.apex, a.offset, a.labels, a.action_units, a.fps) == (1, 2, 3, ("happiness",), "AU12", 90.0)
    assert a.frame_numbers == (1, 2, 3, 10) and a.source == str(base / "happiness" / "S01_01") and a.notes == ()
    assert (b.subject, b.onset, b.apex, b.offset, b.labels) == ("mmew/S01", 1, None, 3, ("surprise",))
    assert b.notes == (Defect.APEX_MISSING.value,)
    assert c.source == str(base / "Others" / "S02_01") and c.notes == (Defect.ONSET_EQUALS_APEX.value,)
    assert d.source == str(base / "fear" / "S02_02") and d.notes == (Defect.APEX_OUTSIDE.value,)
    assert e.notes == (Defect.FRAMES_MISSING.value,)
    assert f.source == str(base / "sadness" / "S03_02") and f.notes == (Defect.FOLDER_MISSING.value,)
    assert clips.report.counts() == {
        "defects": {"apex_missing": 1, "apex_outside": 1, "folder_missing": 1, "frames_missing": 1,
                    "onset_equals_apex": 1},
        "excluded": {"row_unusable": 1},
    }
    assert clips.report.summary().startswith("mmew: 7 rows; defects: apex_missing 1, ")


def test_emotion_folders_in_root_and_sheet_beside_it(tmp_path, xlsx, frames):
    root = tmp_path / "Micro_Expression"
    make_mmew(root, xlsx, frames, nested=False, sheet_dir=tmp_path, name="MMEW_Micro_Exp_v2.xlsx")
    clips = load("mmew", root)
    assert clips[0].source == str(root / "happiness" / "S01_01") and clips[0].notes == ()


def test_protocol(tmp_path, xlsx, frames):
    make_mmew(tmp_path, xlsx, frames)
    clips = load("mmew", tmp_path, protocol="mmew-6class")
    assert len(clips) == 5 and clips.report.excluded["label_not_in_mmew-6class"] == ["mmew/S03/S03_01"]


def test_errors(tmp_path, xlsx, frames):
    with pytest.raises(FileNotFoundError, match=r"MMEW_Micro_Exp\.xlsx or MMEW\*Micro\*\.xlsx"):
        load("mmew", tmp_path)
    make_mmew(tmp_path, xlsx, frames, header=[h.replace("ApexFrame", "Apex") for h in HEADER])
    with pytest.raises(ValueError, match=r"MMEW_Micro_Exp\.xlsx: missing column\(s\) ApexFrame"):
        load("mmew", tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load("mmew", tmp_path / "missing")
