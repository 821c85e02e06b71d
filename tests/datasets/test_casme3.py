"""CAS(ME)³ Part A loader on fixture trees in the documented layout."""

import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
ROWS = [
    ["spNO.1", "a", 0, 1, 2, "L1+L2", 1, "happy"],  # frames numbered from 0
    ["spNO.1", "a", 5, 7, 9, "R12", 1, "surprise"],  # same recording: a_2
    ["spNO.1", "b", 1, 1, 3, "4", 1, "disgust"],  # onset == apex
    ["spNO.1", "a", 10, None, 11, "4", 1, "Others"],  # a_3, blank apex, frame 11 absent
    ["spNO.2", "a", "3", "/", "5", "15", 1, "sad"],  # another subject: plain 'a'; '/' apex
    ["spNO.2", "c", 1, 5, 3, "", 1, "fear"],  # apex outside; no color/ folder
    ["spNO.3", "a", 1, 2, 3, "", 1, "anger"],  # folder missing
    ["spNO.3", None, 1, 2, 3, "", 1, "anger"],  # no Filename
]


def make_casme3(root, xlsx, frames, name=SHEET, sheet_dir=None, header=HEADER):
    frames(root / "spNO.1" / "a" / "color", range(11))
    frames(root / "spNO.1" / "a" / "depth", range(11), "{}.png")
    frames(root / "spNO.1" / "b" / "color", [1, 2, 3])
    frames(root / "spNO.2" / "a" / "color", [3, 4, 5])
    frames(root / "spNO.2" / "c", [1, 2, 3])
    return xlsx((sheet_dir or root) / name, header, ROWS)


def test_rows_clip_ids_and_defects(tmp_path, xlsx, frames):
    make_casme3(tmp_path, xlsx, frames)
    clips = load("casme3", tmp_path)
    assert [c.uid for c in clips] == ["casme3/spNO.1/a", "casme3/spNO.1/a_2", "casme3/spNO.1/b", "casme3/spNO.1/a_3",
                                      "casme3/spNO.2/a", "casme3/spNO.2/c", "casme3/spNO.3/a"]
    a, a2, b, a3, a_other, c, missing = clips
    color = str(tmp_path / "spNO.1" / "a" / "color")
    assert a.source == a2.source == a3.source == color
    assert a.frame_numbers == tuple(range(11)) and a.frame_paths[10].endswith("color/10.jpg")
    assert (a.onset, a.apex, a.offset, a.labels, a.action_units, a.fps) == (0, 1, 2, ("happiness",), "L1+L2", 30.0)
    assert a.notes == () and a2.notes == () and (a2.onset, a2.apex, a2.offset, a2.labels) == (5, 7, 9, ("surprise",))
    assert b.notes == (Defect.ONSET_EQUALS_APEX.value,)
    assert (a3.apex, a3.labels) == (None, ("others",))
    assert a3.notes == (Defect.APEX_MISSING.value, Defect.FRAMES_MISSING.value)
    assert (a_other.onset, a_other.apex, a_other.offset, a_other.labels) == (3, None, 5, ("sadness",))
    assert c.source == str(tmp_path / "spNO.2" / "c") and c.notes == (Defect.APEX_OUTSIDE.value,)
    assert missing.notes == (Defect.FOLDER_MISSING.value,)
    assert clips.report.counts() == {
        "defects": {"apex_missing": 2, "apex_outside": 1, "folder_missing": 1, "frames_missing": 1,
                    "onset_equals_apex": 1},
        "excluded": {"row_unusable": 1},
    }
    assert clips.report.summary() == (
        "casme3: 8 rows; defects: apex_missing 2, apex_outside 1, folder_missing 1, frames_missing 1, "
        "onset_equals_apex 1; excluded: row_unusable 1")


def test_label_sheet_preferred_and_macro_labels_skipped(tmp_path, xlsx, frames):
    root = tmp_path / "part_A"
    frames(root / "spNO.1" / "a" / "color", range(3))
    row = ["spNO.1", "a", 0, 1, 2, "", 1, "happy"]
    xlsx(tmp_path / "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx", HEADER, [row] * 3)  # macro-expressions
    variant = ["SUBJECT", "filename", "onset", "apex", "offset", "AU", "Objective class", "Emotion"]
    xlsx(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", variant, [row], sheet="label", other_sheets=["readme"])
    (clip,) = load("casme3", root)
    assert (clip.uid, clip.onset, clip.apex, clip.offset, clip.labels) == ("casme3/spNO.1/a", 0, 1, 2, ("happiness",))


def test_spreadsheet_names_and_protocol(tmp_path, xlsx, frames):
    root = tmp_path / "part_A"
    make_casme3(root, xlsx, frames, name="CAS(ME)3_labels.xlsx", sheet_dir=tmp_path)
    clips = load("casme3", root, protocol="casme3-7class")
    assert len(clips) == 7 and "label_not_in_casme3-7class" not in clips.report.excluded
    megc = load("casme3", root, protocol="megc2019-3class")
    assert len(megc) == 6 and megc.report.excluded["label_not_in_megc2019-3class"] == ["casme3/spNO.1/a_3"]


def test_errors(tmp_path, xlsx, frames):
    with pytest.raises(FileNotFoundError, match=r"\*part_A\*ME\*label\*\.xlsx or cas\(me\)3\*\.xlsx"):
        load("casme3", tmp_path)
    make_casme3(tmp_path, xlsx, frames, header=[h.replace("emotion", "Emotion class") for h in HEADER])
    with pytest.raises(ValueError, match=r"JpgIndex_v2\.xlsx: missing column\(s\) emotion"):
        load("casme3", tmp_path)
