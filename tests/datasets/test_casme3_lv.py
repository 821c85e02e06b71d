"""CAS(ME)³ Part A long-recording loader on fixture trees in the documented layout (ME and MaE workbooks)."""

import re

import pytest

from fastmer.datasets.casme3_lv import FPS, NAME
from fastmer.datasets.casme3_lv import load as load_casme3_lv
from fastmer.datasets.long import load_long
from fastmer.phases.intervals import Interval

ME_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
ME = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
ME_ROWS = [
    ["spNO.1", "a", 0, 3, 8, "L1+L2", 1, "happy"],  # row 2: frames from 0
    ["spNO.1", "b", 15, 18, 22, "4", 1, "disgust"],  # 3: frame 20 absent
    ["spNO.1", "a", 30, None, 36, "", 1, "others"],  # 4: apex not coded
    ["spNO.2", "c", 1, 2, 3, "", 1, "sad"],  # 5: no folder spNO.2/c
    ["spNO.1", None, 1, 2, 3, "", 1, "anger"],  # 6: no Filename
    ["spNO.1", "a", "x", 2, 3, "", 1, "anger"],  # 7: unreadable onset
    ["spNO.1", "a", 50, 55, None, "", 1, "surprise"],  # 8: offset blank -> the apex
]
# the MaE release's sheet and column names
MAE_HEADER = ["sub", "seq", "onset", "apex", "offset", "AU", "emotion"]
MAE = "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx"
MAE_ROWS = [
    ["spNO.1", "a", 40, 45, 60, "12", "happy"],  # row 2: a macro-expression
    ["spNO.1", "a", 0, 3, 8, "L1+L2", "happy"],  # 3: the interval of ME row 2
    ["spNO.1", "b", 30, 25, 10, "", "anger"],  # 4: offset before onset
    ["spNO.2", "c", 5, 80, 60, "", "anger"],  # 5: apex outside
]


def make_casme3_lv(root, xlsx, frames, macro=True, where=None):
    frames(root / "spNO.1" / "a" / "color", range(100))
    frames(root / "spNO.1" / "a" / "depth", range(100), "{}.png")
    frames(root / "spNO.1" / "b" / "color", [n for n in range(50) if n != 20])
    frames(root / "spNO.10" / "a" / "color", range(10))  # coded by no row
    frames(root / "spNO.2" / "x", range(5))  # no color folder: not listed unless coded
    me = xlsx((where or root) / ME, ME_HEADER, ME_ROWS, sheet="label")
    mae = xlsx((where or root) / MAE, MAE_HEADER, MAE_ROWS, sheet="Sheet1") if macro else None
    return me, mae


def test_recordings_intervals_defects_and_details(tmp_path, xlsx, frames):
    me, mae = make_casme3_lv(tmp_path, xlsx, frames)
    videos = load_casme3_lv(tmp_path)
    assert [v.uid for v in videos] == ["casme3-lv/spNO.1/a", "casme3-lv/spNO.1/b", "casme3-lv/spNO.2/c",
                                       "casme3-lv/spNO.10/a"]
    a, b, c, uncoded = videos
    assert (a.dataset, a.subject, a.video_id, a.fps) == (NAME, "casme3-lv/spNO.1", "a", 30.0)
    assert a.source == str(tmp_path / "spNO.1" / "a" / "color") and a.notes == ()
    assert a.frame_numbers == tuple(range(100)) and a.frame_paths[0] == str(tmp_path / "spNO.1" / "a" / "color" / "0.jpg")
    assert a.intervals == (Interval(0, 8, "micro", 3), Interval(30, 36, "micro", None), Interval(40, 60, "macro", 45),
                           Interval(50, 55, "micro", 55))
    assert [(x.labels, x.action_units, x.notes) for x in a.annotations] == [
        (("happiness",), "L1+L2", ("duplicate_row",)), (("others",), "", ("apex_missing",)),
        (("happiness",), "12", ()), (("surprise",), "", ("offset_missing",))]
    assert b.intervals == (Interval(15, 22, "micro", 18),) and b.annotations[0].notes == ("frames_missing",)
    assert b.annotations[0].labels == ("disgust",)
    assert (c.source, c.frame_numbers, c.notes) == (str(tmp_path / "spNO.2" / "c" / "color"), (), ("folder_missing",))
    assert c.intervals == (Interval(1, 3, "micro", 2), Interval(5, 60, "macro", None))
    assert [(x.labels, x.notes) for x in c.annotations] == [(("sadness",), ()), (("anger",), ("apex_outside",))]
    assert (uncoded.annotations, uncoded.frame_numbers, uncoded.source) == (
        (), tuple(range(10)), str(tmp_path / "spNO.10" / "a" / "color"))

    report = videos.report
    assert report.rows == 11
    assert report.counts() == {
        "defects": {"apex_missing": 1, "apex_outside": 1, "duplicate_row": 1, "folder_missing": 1, "frames_missing": 1,
                    "offset_missing": 1},
        "excluded": {"frame_number_invalid": 1, "offset_before_onset": 1, "row_unusable": 1},
    }
    assert report.excluded == {"frame_number_invalid": [f"{ME} row 7"], "offset_before_onset": [f"{MAE} row 4"],
                               "row_unusable": [f"{ME} row 6"]}
    assert report.defects["duplicate_row"] == ["casme3-lv/spNO.1/a@0-8"]
    assert report.defects["folder_missing"] == ["casme3-lv/spNO.2/c"]
    assert report.details == [
        f"{me}, row 6, column Filename: blank; row skipped",
        f"{me}, row 7, column Onset: 'x' is not a number, not a frame number (nor blank); row skipped",
        f"{me}, row 8, column Offset: blank; the apex 55 taken as the offset",
        f"{me}, row 2 and {mae}, row 3: both describe casme3-lv/spNO.1/a@0-8 (same recording, Onset and Offset) but "
        f"disagree on kind ('micro' vs 'macro'); {ME} row 2's annotation kept; {MAE} row 3 skipped",
        f"{mae}, row 4, column Offset: 10 is before the onset 30; row skipped",
        f"{mae}, row 5, column Apex: 80 is outside the interval 5..60; apex dropped",
    ]


def test_clip_of_an_interval_and_the_registry(tmp_path, xlsx, frames):
    make_casme3_lv(tmp_path, xlsx, frames)
    videos = load_long("casme3-lv", tmp_path)
    assert [v.uid for v in videos] == [v.uid for v in load_casme3_lv(tmp_path)]
    a = videos[0]
    clip = a.clip(a.intervals[0])
    assert clip.frame_numbers == tuple(range(9)) and (clip.onset, clip.apex, clip.offset, clip.fps) == (0, 3, 8, FPS)
    assert clip.frame_paths[-1] == str(tmp_path / "spNO.1" / "a" / "color" / "8.jpg")
    assert videos[1].clip(videos[1].intervals[0]).frame_numbers == (15, 16, 17, 18, 19, 21, 22)


def test_without_the_mae_workbook_only_micro_expressions(tmp_path, xlsx, frames):
    root = tmp_path / "part_A"
    me, _ = make_casme3_lv(root, xlsx, frames, macro=False, where=tmp_path)
    videos = load_casme3_lv(root, uncoded=False)
    assert [v.uid for v in videos] == ["casme3-lv/spNO.1/a", "casme3-lv/spNO.1/b", "casme3-lv/spNO.2/c"]
    assert {i.kind for v in videos for i in v.intervals} == {"micro"}
    assert videos[0].annotations[0].notes == () and videos.report.rows == 7
    assert videos.report.details[0] == (
        f"no CAS(ME)3 part A MaE label spreadsheet (*part_A*MaE*label*.xlsx) in {root} or {tmp_path}: "
        "macro-expressions not loaded, only micro-expressions are scored")
    assert len(videos.report.details) == 4
    with pytest.raises(FileNotFoundError, match="CAS\\(ME\\)3 MaE spreadsheet .*nothere.xlsx not found"):
        load_casme3_lv(root, macro_spreadsheet=tmp_path / "nothere.xlsx")
    elsewhere = xlsx(tmp_path / "labels" / "macro.xlsx", MAE_HEADER, MAE_ROWS[:1])
    videos = load_casme3_lv(root, macro_spreadsheet=elsewhere, uncoded=False)
    assert videos[0].intervals[2] == Interval(40, 60, "macro", 45) and videos.report.rows == 8


def test_errors_name_the_file(tmp_path, xlsx, frames):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_long("casme3-lv", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"\*part_A\*ME\*label\*\.xlsx or cas\(me\)3\*\.xlsx"):
        load_casme3_lv(tmp_path)
    xlsx(tmp_path / MAE, MAE_HEADER, MAE_ROWS)  # the MaE workbook is not taken for the ME one
    with pytest.raises(FileNotFoundError, match=r"\*part_A\*ME\*label\*\.xlsx"):
        load_casme3_lv(tmp_path)
    me = xlsx(tmp_path / ME, ME_HEADER, ME_ROWS, sheet="label")
    xlsx(tmp_path / MAE, ["sub", "seq", "onset", "apex"], MAE_ROWS)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / MAE}: missing column(s) Offset")):
        load_casme3_lv(tmp_path)
    me.write_text("not a workbook")
    with pytest.raises(ValueError, match=f"cannot read the annotation spreadsheet .*{re.escape(ME)}"):
        load_casme3_lv(tmp_path)
