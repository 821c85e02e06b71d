"""CAS(ME)² long-video loader on fixture trees in the documented layout (three sheets, no header rows)."""

import re

import pytest

from fastmer.datasets.casme2_lv import FPS, NAME
from fastmer.datasets.casme2_lv import load as load_casme2_lv
from fastmer.datasets.long import load_long
from fastmer.phases.intervals import Interval

WORKBOOK = "CAS(ME)^2code_final(Updated).xlsx"


def code(participant, expression, onset, apex, offset, kind="micro-expression", emotion="negative", aus=""):
    return [participant, expression, onset, apex, offset, aus, emotion, kind, "disgust"]


CODING = [
    code(1, "disgust1_1", 5, 8, 12, aus="4+7"),  # row 1: fine
    code(1, "disgust1_2", 20, 25, 0, "macro-expression", "positive", "12"),  # 2: offset 0 -> the apex
    code(1, "disgust1_3", 30, None, 0, "macro-expression", "others"),  # 3: offset 0, no apex: excluded
    code(1, "disgust2_1", 10, 15, 14, "Micro-expression", "surprise", "L10"),  # 4: apex outside; img12 absent
    code(1, "disgust1_4", 5, 9, 12, aus="4"),  # 5: repeats row 1 (same recording, onset, offset)
    code(2, "anger1_1", 3, 4, 6),  # 6: s16's anger1 recording has no folder
    code(3, "disgust1_1", 1, 2, 3),  # 7: participant 3 not in naming rule1
    code(1, "happy9_1", 1, 2, 3),  # 8: video happy9 not in naming rule2
    code(1, "disgust1_5", 40, 41, 35),  # 9: offset before onset
    code(1, "disgust1_6", 2, 3, 4, "expression"),  # 10: unknown type
    code(1, "disgust1_7", "abc", 3, 12.5),  # 11: unreadable frame numbers
    code("x1", "disgust1_8", 1, 2, 3),  # 12: participant not a number
    [],  # 13: blank
    code(1, "disgust1_9", 0, 33, 36, "macro-expression"),  # 14: onset 0 -> the apex
    code(1, None, 1, 2, 3),  # 15: no expression name
]
RULE1 = [["zhang", 15, 1], ["li", 16, 2]]  # the release's order: B subject code, C participant number
RULE2 = [[101, "disgust1"], ["0102", "disgust2"], [401, "anger1"]]


def make_casme2_lv(root, xlsx_sheets, frames, coding=CODING, rule1=RULE1, rule2=RULE2, workbook=None):
    rawpic = root / "rawpic"
    frames(rawpic / "s15" / "15_0101disgustingteeth", range(1, 41), "img{}.jpg")
    frames(rawpic / "s15" / "15_0102eatingworms", [n for n in range(1, 31) if n != 12], "img{}.jpg")
    frames(rawpic / "s16" / "16_0101disgustingteeth", range(1, 21), "img{}.jpg")  # coded by no row
    (rawpic / "s15" / "15_0101disgustingteeth" / "Thumbs.db").write_bytes(b"")
    (rawpic / "s15" / "readme").mkdir()  # not a recording folder
    return xlsx_sheets(workbook or root / WORKBOOK,
                       {"CASFEcode_final": coding, "naming rule1": rule1, "naming rule2": rule2})


def test_recordings_intervals_defects_and_details(tmp_path, xlsx_sheets, frames):
    path = make_casme2_lv(tmp_path, xlsx_sheets, frames)
    videos = load_casme2_lv(tmp_path)
    assert [v.uid for v in videos] == ["casme2-lv/s15/15_0101disgustingteeth", "casme2-lv/s15/15_0102eatingworms",
                                       "casme2-lv/s16/16_0401", "casme2-lv/s16/16_0101disgustingteeth"]
    teeth, worms, anger, uncoded = videos
    rawpic = tmp_path / "rawpic"
    assert (teeth.dataset, teeth.subject, teeth.video_id, teeth.fps) == (NAME, "casme2-lv/s15", "15_0101disgustingteeth",
                                                                          30.0)
    assert teeth.source == str(rawpic / "s15" / "15_0101disgustingteeth") and not teeth.is_video
    assert teeth.frame_numbers == tuple(range(1, 41)) and teeth.notes == ()
    assert teeth.frame_paths[0] == str(rawpic / "s15" / "15_0101disgustingteeth" / "img1.jpg")
    assert teeth.frame_paths[-1].endswith("img40.jpg")
    assert teeth.intervals == (Interval(5, 12, "micro", 8), Interval(20, 25, "macro", 25), Interval(33, 36, "macro", 33))
    first, offset_missing, onset_missing = teeth.annotations
    assert (first.labels, first.action_units, first.notes) == (("negative",), "4+7", ("duplicate_row",))
    assert (offset_missing.labels, offset_missing.action_units, offset_missing.notes) == (("positive",), "12",
                                                                                          ("offset_missing",))
    assert onset_missing.notes == ("onset_missing",)
    assert worms.frame_numbers == tuple(n for n in range(1, 31) if n != 12)
    (outside,) = worms.annotations
    assert outside.interval == Interval(10, 14, "micro", None)
    assert (outside.labels, outside.action_units, outside.notes) == (("surprise",), "L10", ("apex_outside", "frames_missing"))
    assert anger.source == str(rawpic / "s16" / "16_0401") and anger.frame_numbers == anger.frame_paths == ()
    assert anger.notes == ("folder_missing",) and anger.intervals == (Interval(3, 6, "micro", 4),)
    assert anger.annotations[0].notes == ()
    assert uncoded.annotations == () and uncoded.frame_numbers == tuple(range(1, 21)) and uncoded.notes == ()

    report = videos.report
    assert report.rows == 14 and report.dataset == NAME
    assert report.counts() == {
        "defects": {"apex_outside": 1, "duplicate_row": 1, "folder_missing": 1, "frames_missing": 1,
                    "offset_missing": 1, "onset_missing": 1},
        "excluded": {"frame_number_invalid": 1, "offset_before_onset": 1, "offset_missing": 1,
                     "recording_unknown": 2, "row_unusable": 2, "type_unknown": 1},
    }
    assert report.defects["offset_missing"] == ["casme2-lv/s15/15_0101disgustingteeth@20-25"]
    assert report.defects["folder_missing"] == ["casme2-lv/s16/16_0401"]
    assert report.defects["frames_missing"] == ["casme2-lv/s15/15_0102eatingworms@10-14"]
    assert report.excluded["recording_unknown"] == [f"{WORKBOOK} row 7", f"{WORKBOOK} row 8"]
    assert report.excluded["row_unusable"] == [f"{WORKBOOK} row 12", f"{WORKBOOK} row 15"]
    assert report.details == [
        f"{path}, row 2, column E (offset): 0 (not coded); the apex 25 taken as the offset",
        f"{path}, row 3, column E (offset): 0 (not coded), and no apex to take in its place; row skipped",
        f"{path}, row 4, column D (apex): 15 is outside the interval 10..14; apex dropped",
        f"{path}, rows 1 and 5: both describe casme2-lv/s15/15_0101disgustingteeth@5-12 (same recording, C (onset) "
        "and E (offset)) but disagree on D (apex) (8 vs 9), F (action units) ('4+7' vs '4'); row 1's annotation kept; "
        "row 5 skipped",
        f"{path}, row 7, column A (participant): participant 3 is not in sheet 'naming rule1'; row skipped",
        f"{path}, row 8, column B (expression): video 'happy9' is not in sheet 'naming rule2'; row skipped",
        f"{path}, row 9, column E (offset): 35 is before the onset 40; row skipped",
        f"{path}, row 10, column H (type): 'expression' is neither a micro- nor a macro-expression; row skipped",
        f"{path}, row 11, column C (onset): 'abc' is not a number, not a frame number (nor blank); row skipped",
        f"{path}, row 11, column E (offset): 12.5 is not a whole number, not a frame number (nor blank); row skipped",
        f"{path}, row 12, column A (participant): 'x1' is not a participant number; row skipped",
        f"{path}, row 14, column C (onset): 0 (not coded); the apex 33 taken as the onset",
        f"{path}, row 15, column B (expression): blank; row skipped",
    ]


def test_clip_of_an_interval_and_the_registry(tmp_path, xlsx_sheets, frames):
    make_casme2_lv(tmp_path, xlsx_sheets, frames)
    videos = load_long("casme2-lv", tmp_path)
    assert [v.uid for v in videos] == [v.uid for v in load_casme2_lv(tmp_path)]
    teeth = videos[0]
    clip = teeth.clip(teeth.intervals[0])
    assert clip.frame_numbers == tuple(range(5, 13)) and (clip.onset, clip.apex, clip.offset) == (5, 8, 12)
    assert clip.frame_paths == tuple(str(tmp_path / "rawpic" / "s15" / "15_0101disgustingteeth" / f"img{n}.jpg")
                                     for n in range(5, 13))
    assert (clip.uid, clip.fps) == ("casme2-lv/s15/15_0101disgustingteeth@5-12", FPS)
    worms = videos[1]
    assert worms.clip(worms.intervals[0]).frame_numbers == (10, 11, 13, 14)  # img12 absent


def test_uncoded_recordings_can_be_left_out(tmp_path, xlsx_sheets, frames):
    make_casme2_lv(tmp_path, xlsx_sheets, frames)
    assert [v.video_id for v in load_casme2_lv(tmp_path, uncoded=False)] == [
        "15_0101disgustingteeth", "15_0102eatingworms", "16_0401"]


def test_root_is_rawpic_with_the_workbook_beside_it_and_other_column_orders(tmp_path, xlsx_sheets, frames):
    coding = [["participant", "expression", "onset", "apex", "offset", "AU", "emotion", "type", "self"], *CODING[:2]]
    rule1 = [["number", "subject", "participant"], [1, "s15", 1], [2, "s16", 2]]  # 's' prefix: the subject column
    rule2 = [["name", "code"], ["disgust1", "0101"], ["disgust2", 102], ["anger1", "0401"]]
    make_casme2_lv(tmp_path, xlsx_sheets, frames, coding, rule1, rule2, workbook=tmp_path / "code_final.xlsx")
    videos = load_long("casme2-lv", tmp_path / "rawpic")
    assert videos.report.rows == 2 and videos.report.details == [
        f"{tmp_path / 'code_final.xlsx'}, row 3, column E (offset): 0 (not coded); the apex 25 taken as the offset"]
    assert [(v.uid, v.intervals) for v in videos] == [
        ("casme2-lv/s15/15_0101disgustingteeth", (Interval(5, 12, "micro", 8), Interval(20, 25, "macro", 25))),
        ("casme2-lv/s15/15_0102eatingworms", ()),
        ("casme2-lv/s16/16_0101disgustingteeth", ()),
    ]


def test_naming_columns_detected_from_the_folders_or_given(tmp_path, xlsx_sheets, frames):
    coding = [code(31, "disgust1_1", 5, 8, 12), code(32, "disgust2_1", 1, 2, 3)]
    rule1 = [[31, 15], [32, 16]]  # participant numbers larger than the subject codes: the sNN folders tell them apart
    make_casme2_lv(tmp_path, xlsx_sheets, frames, coding, rule1)
    assert [v.uid for v in load_casme2_lv(tmp_path, uncoded=False)] == ["casme2-lv/s15/15_0101disgustingteeth",
                                                                        "casme2-lv/s16/16_0102"]
    bare = tmp_path / "bare"  # no folders: the larger numbers are taken for the subject codes, wrongly here
    path = xlsx_sheets(bare / WORKBOOK, {"CASFEcode_final": coding, "naming rule1": rule1, "naming rule2": RULE2})
    videos = load_casme2_lv(bare)
    assert list(videos) == [] and videos.report.excluded == {"recording_unknown": [f"{WORKBOOK} row 1",
                                                                                   f"{WORKBOOK} row 2"]}
    assert videos.report.details[0] == (f"{path}, row 1, column A (participant): participant 31 is not in sheet "
                                        "'naming rule1'; row skipped")
    given = load_casme2_lv(bare, rule1_columns=("A", "B"), rule2_columns=("a", "b"))
    assert [(v.uid, v.source, v.notes) for v in given] == [
        ("casme2-lv/s15/15_0101", str(bare / "s15" / "15_0101"), ("folder_missing",)),
        ("casme2-lv/s16/16_0102", str(bare / "s16" / "16_0102"), ("folder_missing",)),
    ]
    with pytest.raises(ValueError, match=re.escape(f"{path}, sheet 'naming rule1': rule1_columns=('A', 'C') must "
                                                   "name two of its columns (A, B)")):
        load_casme2_lv(bare, rule1_columns=("A", "C"))


def test_unreadable_naming_sheets_and_missing_files(tmp_path, xlsx_sheets, frames):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_long("casme2-lv", tmp_path / "missing")
    (tmp_path / "rawpic").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)2 coding workbook \(CAS\(ME\)\^2code_final\(Updated\)\.xlsx "
                                                r"or .* or \*code_final\*\.xlsx\) in .*rawpic or "):
        load_long("casme2-lv", tmp_path / "rawpic")
    with pytest.raises(FileNotFoundError, match="nothere.xlsx"):
        load_casme2_lv(tmp_path, spreadsheet=tmp_path / "nothere.xlsx")
    path = make_casme2_lv(tmp_path, xlsx_sheets, frames, rule2=[["disgust1", "anger1"]])
    with pytest.raises(ValueError, match=re.escape(f"{path}, sheet 'naming rule2': no column of video codes")):
        load_casme2_lv(tmp_path)
    xlsx_sheets(path, {"CASFEcode_final": CODING})
    with pytest.raises(ValueError, match=r"needs the coding sheet and the sheets 'naming rule1' and 'naming rule2' "
                                         r"\(sheets: CASFEcode_final\)"):
        load_casme2_lv(tmp_path)
    path.write_text("not a workbook")
    with pytest.raises(ValueError, match="cannot read the annotation spreadsheet"):
        load_casme2_lv(tmp_path)
