"""SAMM Long Videos loader on fixture trees in the documented layout (9 text rows, header on row 10)."""

import re

import pytest

from fastmer.datasets.long import load_long
from fastmer.datasets.samm_lv import FPS, NAME
from fastmer.datasets.samm_lv import load as load_samm_lv
from fastmer.phases.intervals import Interval

HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units",
          "Notes"]
WORKBOOK = "SAMM_LongVideos_V2_Release.xlsx"


def row(subject, filename, onset, apex, offset, kind="Micro - 1/2", aus="R12", notes=None):
    return [subject, filename, 1, onset, apex, offset, None, kind, aus, notes]


ROWS = [
    row(6, "006_1_1", 10, 15, 30),  # row 11: fine
    row("006", "006_1_2", 40, -1, 60, "Macro", "4+7", "blink"),  # 12: text subject, apex -1 (not coded)
    row(6, "006_1_3", 70, 75, 0, "Macro"),  # 13: offset 0 -> the apex
    row(6, "006_1_4", 0, 85, 90, "Macro"),  # 14: onset 0 -> the apex
    row(6, "006_2_1", "25", "28", "35", "micro"),  # 15: text numbers; frames 30-32 absent
    row(7, "007_1_1", 5, 6, 7),  # 16: no folder 007_1
    row(6, "006_1_1", 10, 15, 30),  # 17: repeats row 11
    row(6, "006_1_5", 50, -1, -1, "Macro"),  # 18: offset and apex not coded: excluded
    row(6, "006_1_6", 20, 22, 18, "Macro"),  # 19: offset before onset
    row(6, "006_1_7", 5, 6, 7, "Unknown"),  # 20: unknown type
    row(6, "006_1_8", "12a", 6, 7, "Macro"),  # 21: unreadable onset
    row(6, "006_1", 5, 6, 7, "Macro"),  # 22: Filename without the expression number
    ["* Apex -1 means not coded", None, None, None, None, None, None, None, None, None],  # 23: footnote
    row(6, "006_2_2", 40, 90, 45),  # 24: apex outside
]


def frame_name(recording):
    return lambda n: f"{recording}_{n:04d}.jpg"


def make_samm_lv(root, xlsx, frames, rows=ROWS, where=None, name=WORKBOOK, preamble=9, sheet="FACS_Movement_Only",
                 other_sheets=("README",)):
    videos = root / "SAMM_longvideos"
    frames(videos / "006_1", range(1, 101), frame_name("006_1"))
    frames(videos / "006_2", [n for n in range(1, 51) if n not in (30, 31, 32)], frame_name("006_2"))
    frames(videos / "008_3", range(1, 11), frame_name("008_3"))  # coded by no row
    (videos / "006_1" / "Thumbs.db").write_bytes(b"")
    (videos / "README.txt").write_text("not a recording")
    return xlsx((where or root) / name, HEADER, rows, sheet=sheet, preamble=preamble, other_sheets=other_sheets)


def test_recordings_intervals_defects_and_details(tmp_path, xlsx, frames):
    path = make_samm_lv(tmp_path, xlsx, frames)
    videos = load_samm_lv(tmp_path)
    assert [v.uid for v in videos] == ["samm-lv/006/006_1", "samm-lv/006/006_2", "samm-lv/007/007_1",
                                       "samm-lv/008/008_3"]
    first, second, missing, uncoded = videos
    folder = tmp_path / "SAMM_longvideos"
    assert (first.dataset, first.subject, first.video_id, first.fps) == (NAME, "samm-lv/006", "006_1", 200.0)
    assert first.source == str(folder / "006_1") and first.notes == ()
    assert first.frame_numbers == tuple(range(1, 101))
    assert first.frame_paths[:2] == (str(folder / "006_1" / "006_1_0001.jpg"), str(folder / "006_1" / "006_1_0002.jpg"))
    assert first.intervals == (Interval(10, 30, "micro", 15), Interval(40, 60, "macro", None),
                               Interval(70, 75, "macro", 75), Interval(85, 90, "macro", 85))
    assert [(a.labels, a.action_units, a.notes) for a in first.annotations] == [
        ((), "R12", ("duplicate_row",)), ((), "4+7", ("apex_missing",)), ((), "R12", ("offset_missing",)),
        ((), "R12", ("onset_missing",))]
    assert second.intervals == (Interval(25, 35, "micro", 28), Interval(40, 45, "micro", None))
    assert [a.notes for a in second.annotations] == [("frames_missing",), ("apex_outside",)]
    assert (missing.source, missing.frame_numbers, missing.notes) == (str(folder / "007_1"), (), ("folder_missing",))
    assert missing.intervals == (Interval(5, 7, "micro", 6),) and missing.annotations[0].notes == ()
    assert (uncoded.annotations, uncoded.frame_numbers, uncoded.notes) == ((), tuple(range(1, 11)), ())

    report = videos.report
    assert report.rows == 14
    assert report.counts() == {
        "defects": {"apex_missing": 1, "apex_outside": 1, "duplicate_row": 1, "folder_missing": 1, "frames_missing": 1,
                    "offset_missing": 1, "onset_missing": 1},
        "excluded": {"frame_number_invalid": 1, "offset_before_onset": 1, "offset_missing": 1, "row_unusable": 2,
                     "type_unknown": 1},
    }
    assert report.defects["apex_outside"] == ["samm-lv/006/006_2@40-45"]
    assert report.defects["duplicate_row"] == ["samm-lv/006/006_1@10-30"]
    assert report.excluded["row_unusable"] == [f"{WORKBOOK} row 22", f"{WORKBOOK} row 23"]
    assert report.details == [
        f"{path}, row 13, column Offset: 0 (not coded); the apex 75 taken as the offset",
        f"{path}, row 14, column Onset: 0 (not coded); the apex 85 taken as the onset",
        f"{path}, rows 11 and 17: both describe samm-lv/006/006_1@10-30 (same recording, Onset and Offset); "
        "row 17 skipped",
        f"{path}, row 18, column Offset: -1 (not coded), and no apex to take in its place; row skipped",
        f"{path}, row 19, column Offset: 18 is before the onset 20; row skipped",
        f"{path}, row 20, column Type: 'Unknown' is neither a micro- nor a macro-expression; row skipped",
        f"{path}, row 21, column Onset: '12a' is not a number, not a frame number (nor blank); row skipped",
        f"{path}, row 22, column Filename: '006_1' does not read <subject>_<recording>_<expression> (006_1_2); "
        "row skipped",
        f"{path}, row 23, column Subject: '* Apex -1 means not coded' is not a subject number; row skipped",
        f"{path}, row 24, column Apex: 90 is outside the interval 40..45; apex dropped",
    ]


def test_clip_of_an_interval_and_the_registry(tmp_path, xlsx, frames):
    make_samm_lv(tmp_path, xlsx, frames)
    videos = load_long("samm-lv", tmp_path)
    assert [v.uid for v in videos] == [v.uid for v in load_samm_lv(tmp_path)]
    first, second = videos[:2]
    clip = first.clip(first.intervals[2])
    assert clip.frame_numbers == tuple(range(70, 76)) and (clip.onset, clip.apex, clip.offset, clip.fps) == (
        70, 75, 75, FPS)
    assert clip.frame_paths[0] == str(tmp_path / "SAMM_longvideos" / "006_1" / "006_1_0070.jpg")
    assert second.clip(second.intervals[0]).frame_numbers == (25, 26, 27, 28, 29, 33, 34, 35)


def test_root_is_the_frames_folder_header_found_or_given_and_sheet(tmp_path, xlsx, frames):
    rows = [row(6, "006_1_1", 10, 15, 30), row(6, "006_2_1", 1, 2, 3, "Macro")]
    make_samm_lv(tmp_path, xlsx, frames, rows, name="SAMM_LongVideos_V1_Release.xlsx", preamble=4, sheet="Sheet1",
                 other_sheets=())
    videos = load_samm_lv(tmp_path / "SAMM_longvideos", uncoded=False)  # the workbook beside ROOT, the first sheet
    assert [(v.uid, v.intervals) for v in videos] == [("samm-lv/006/006_1", (Interval(10, 30, "micro", 15),)),
                                                      ("samm-lv/006/006_2", (Interval(1, 3, "macro", 2),))]
    assert videos.report.rows == 2 and videos.report.details == []
    # the V3 release is preferred; header row given; the sheet named
    make_samm_lv(tmp_path, xlsx, frames, rows[:1], name="SAMM_LongVideos_V3_Release.xlsx", preamble=2)
    assert len(load_samm_lv(tmp_path, header_row=3, uncoded=False)) == 1
    assert len(load_samm_lv(tmp_path, sheet="FACS_Movement_Only", uncoded=False)) == 1
    with pytest.raises(ValueError, match=r"V3_Release\.xlsx \(sheet FACS_Movement_Only, header row 2\): missing "
                                         r"column\(s\) Subject, Filename, Onset, Apex, Offset, Type"):
        load_samm_lv(tmp_path, header_row=2)
    with pytest.raises(ValueError, match=r"V3_Release\.xlsx: no sheet 'FACS' \(sheets: README, FACS_Movement_Only\)"):
        load_samm_lv(tmp_path, sheet="FACS")


def test_errors_name_the_file(tmp_path, xlsx, frames):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_long("samm-lv", tmp_path / "missing")
    (tmp_path / "SAMM_longvideos").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(
            "no SAMM Long Videos workbook (SAMM_LongVideos_V3_Release.xlsx or SAMM_LongVideos_V2_Release.xlsx or "
            f"SAMM_LongVideos*.xlsx) in {tmp_path / 'SAMM_longvideos'} or {tmp_path}")):
        load_samm_lv(tmp_path / "SAMM_longvideos")
    with pytest.raises(FileNotFoundError, match="nothere.xlsx"):
        load_samm_lv(tmp_path, spreadsheet=tmp_path / "nothere.xlsx")
    path = xlsx(tmp_path / WORKBOOK, ["nothing", "here"], [], sheet="FACS_Movement_Only")
    with pytest.raises(ValueError, match=re.escape(f"{path} (sheet FACS_Movement_Only): no header row with Subject, "
                                                   "Filename, Onset, Apex, Offset, Type in its first 40 rows")):
        load_samm_lv(tmp_path)
    path.write_text("not a workbook")
    with pytest.raises(ValueError, match=f"cannot read the annotation spreadsheet .*{WORKBOOK}"):
        load_samm_lv(tmp_path)


def test_uncoded_bounds_and_repeats(tmp_path, xlsx, frames):
    path = make_samm_lv(tmp_path, xlsx, frames, rows=[
        row(6, "006_1_1", 70, 75, 75, "Macro"),  # row 11
        row(6, "006_1_2", 70, 75, 0, "Macro"),  # 12: offset 0 -> 75: repeats row 11, told once, as a repeat
        row(6, "006_1_3", 0, 95, 90, "Macro"),  # 13: onset 0, the apex after the offset
        row(6, "006_1_4", 20, 10, None, "Macro"),  # 14: offset blank, the apex before the onset
        row(6, "006_1_5", None, 5, "/", "Macro"),  # 15: neither onset nor offset
        row(6, "006_1_6", 1, 5, 4, "Macro"),  # 16: apex outside
        row(6, "006_1_7", 1, 3, 4, "Macro"),  # 17: repeats row 16
    ])
    videos = load_samm_lv(tmp_path, uncoded=False)
    (video,) = videos
    assert video.intervals == (Interval(1, 4, "macro", None), Interval(70, 75, "macro", 75))
    assert [a.notes for a in video.annotations] == [("apex_outside", "duplicate_row"), ("duplicate_row",)]
    assert video.annotations[1].notes == ("duplicate_row",)  # row 11's annotation, not row 12's offset_missing
    assert videos.report.counts() == {"defects": {"apex_outside": 1, "duplicate_row": 2},
                                       "excluded": {"offset_missing": 1, "onset_missing": 2}}
    assert videos.report.details == [
        f"{path}, rows 11 and 12: both describe samm-lv/006/006_1@70-75 (same recording, Onset and Offset); "
        "row 12 skipped",
        f"{path}, row 13, column Onset: 0 (not coded), and the apex 95 is after the offset 90; row skipped",
        f"{path}, row 14, column Offset: blank, and the apex 10 is before the onset 20; row skipped",
        f"{path}, row 15, column Onset: blank, and the offset is not coded either; row skipped",
        f"{path}, row 16, column Apex: 5 is outside the interval 1..4; apex dropped",
        f"{path}, rows 16 and 17: both describe samm-lv/006/006_1@1-4 (same recording, Onset and Offset) but disagree "
        "on Apex (blank vs 3); row 16's annotation kept; row 17 skipped",
    ]
