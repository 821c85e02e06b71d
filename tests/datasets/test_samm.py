"""SAMM loader on fixture trees in the documented layout (13 text rows, header on row 14)."""

import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration", "Micro",
          "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
SHEET_NAME = "SAMM_Micro_FACS_Codes_v2.xlsx"


def row(subject, filename, onset, apex, offset, emotion, aus="R12"):
    return [subject, filename, 1, onset, apex, offset, None, "Micro - 1/2", aus, emotion, 1, None]


def frame_name(subject):
    return lambda n: f"{subject}_{n:05d}.jpg"


ROWS = [
    row(6, "006_1_2", 5562, 5563, 5564, "Anger", "R4+R7"),  # fine, integer subject
    row("007", "007_3_1", 10, -1, 12, "Other"),  # text subject, apex -1
    row(7, "007_5_3", 10, None, 12, "Happiness"),  # blank apex
    row(9, "009_2_1", "20", "30", "22", "Surprise"),  # text ints; apex outside
    row(10, "010_2_8", 5, 5, 7, "Contempt"),  # onset == apex
    row(11, "011_1_4", 1, 2, 5, "Disgust"),  # frames 4, 5 absent on disk
    row(12, "012_3_1", 1, 2, 3, "Fear"),  # folder absent
    ["See notes below the table", None, None, None, None, None, None, None, None, None, None, None],  # footnote
]


def make_samm(root, xlsx, frames, rows=ROWS, where=None, name=SHEET_NAME, header=HEADER, preamble=13,
              sheet="MICRO_ONLY"):
    frames(root / "006" / "006_1_2", [5562, 5563, 5564], frame_name("006"))
    frames(root / "007" / "007_3_1", [10, 11, 12], frame_name("007"))
    frames(root / "007" / "007_5_3", [10, 11, 12], frame_name("007"))
    frames(root / "009" / "009_2_1", [20, 21, 22], frame_name("009"))
    frames(root / "010" / "010_2_8", [5, 6, 7], frame_name("010"))
    frames(root / "011" / "011_1_4", [1, 2, 3], frame_name("011"))
    return xlsx((where or root) / name, header, rows, sheet=sheet, preamble=preamble,
                other_sheets=["FACS_Movement_Only"])


def test_rows_subjects_annotations_and_labels(tmp_path, xlsx, frames):
    make_samm(tmp_path, xlsx, frames)
    clips = load("samm", tmp_path)
    assert [c.uid for c in clips] == ["samm/006/006_1_2", "samm/007/007_3_1", "samm/007/007_5_3", "samm/009/009_2_1",
                                      "samm/010/010_2_8", "samm/011/011_1_4", "samm/012/012_3_1"]
    a, b, c, d, e, f, g = clips
    assert (a.onset, a.apex, a.offset, a.labels, a.action_units, a.fps) == (
        5562, 5563, 5564, ("anger",), "R4+R7", 200.0)
    assert a.frame_numbers == (5562, 5563, 5564) and a.frame_paths[0].endswith("006/006_1_2/006_05562.jpg")
    assert a.notes == () and a.dataset == "samm"
    assert (b.apex, b.labels) == (None, ("others",))
    assert b.notes == (Defect.SUBJECT_ID_TEXT.value, Defect.APEX_MISSING.value)
    assert c.apex is None and c.notes == (Defect.APEX_MISSING.value,)
    assert (d.onset, d.apex, d.offset, d.notes) == (20, 30, 22, (Defect.APEX_OUTSIDE.value,))
    assert e.notes == (Defect.ONSET_EQUALS_APEX.value,)
    assert f.notes == (Defect.FRAMES_MISSING.value,)
    assert g.notes == (Defect.FOLDER_MISSING.value,) and g.frame_numbers == ()
    report = clips.report
    assert report.rows == 8
    assert report.counts() == {
        "defects": {"apex_missing": 2, "apex_outside": 1, "folder_missing": 1, "frames_missing": 1,
                    "onset_equals_apex": 1, "subject_id_text": 1},
        "excluded": {"row_unusable": 1},
    }
    assert report.defects["subject_id_text"] == ["samm/007/007_3_1"]
    assert report.excluded["row_unusable"] == [f"{SHEET_NAME} row 22"]
    assert report.summary() == (
        "samm: 8 rows; defects: apex_missing 2, apex_outside 1, folder_missing 1, frames_missing 1, "
        "onset_equals_apex 1, subject_id_text 1; excluded: row_unusable 1"
    )


def test_frames_in_numeric_order(tmp_path, xlsx, frames):
    make_samm(tmp_path, xlsx, frames, rows=[row(13, "013_1_8", 998, 999, 1000, "Happiness")])
    frames(tmp_path / "013" / "013_1_8", [1000, 998, 999], lambda n: f"013_{n}.jpg")
    (tmp_path / "013" / "013_1_8" / "Thumbs.db").write_bytes(b"")
    (clip,) = load("samm", tmp_path)
    assert clip.frame_numbers == (998, 999, 1000)
    assert [p.rsplit("/", 1)[1] for p in clip.frame_paths] == ["013_998.jpg", "013_999.jpg", "013_1000.jpg"]
    assert clip.notes == ()


def test_protocol_filters_and_counts(tmp_path, xlsx, frames):
    make_samm(tmp_path, xlsx, frames)
    clips = load("samm", tmp_path, protocol="samm-5class")
    assert [c.labels[0] for c in clips] == ["anger", "others", "happiness", "surprise", "contempt"]
    assert clips.report.excluded["label_not_in_samm-5class"] == ["samm/011/011_1_4", "samm/012/012_3_1"]
    megc = load("samm", tmp_path, protocol="megc2019-3class")
    assert len(megc) == 6 and megc.report.excluded["label_not_in_megc2019-3class"] == ["samm/007/007_3_1"]


def test_spreadsheet_search(tmp_path, xlsx, frames):
    root = tmp_path / "SAMM"
    make_samm(root, xlsx, frames, where=tmp_path, name="SAMM_Micro_FACS_Codes.xlsx")  # beside ROOT, other version
    assert len(load("samm", root)) == 7
    moved = (tmp_path / "SAMM_Micro_FACS_Codes.xlsx").rename(tmp_path / "codes.xlsx")
    with pytest.raises(FileNotFoundError, match=r"SAMM_Micro_FACS_Codes_v2\.xlsx or SAMM\*_Micro_FACS_Codes\*\.xlsx"):
        load("samm", root)
    assert len(load("samm", root, spreadsheet=moved)) == 7
    with pytest.raises(FileNotFoundError, match="nothere.xlsx"):
        load("samm", root, spreadsheet=tmp_path / "nothere.xlsx")


def test_header_row_elsewhere_is_found(tmp_path, xlsx, frames):
    make_samm(tmp_path, xlsx, frames, preamble=10)
    assert len(load("samm", tmp_path)) == 7
    make_samm(tmp_path / "short", xlsx, frames, preamble=0, rows=ROWS[:2])  # fewer than 14 rows in all
    assert len(load("samm", tmp_path / "short")) == 2
    xlsx(tmp_path / "empty" / SHEET_NAME, ["nothing", "here"], [], sheet="MICRO_ONLY")
    with pytest.raises(ValueError, match=f"{SHEET_NAME} \\(sheet MICRO_ONLY\\): no header row with Subject"):
        load("samm", tmp_path / "empty")


def test_without_micro_only_sheet_the_first_sheet_is_read(tmp_path, xlsx, frames):
    path = make_samm(tmp_path, xlsx, frames, sheet="Sheet1")
    from openpyxl import load_workbook

    workbook = load_workbook(path)
    del workbook["FACS_Movement_Only"]
    workbook.save(path)
    assert len(load("samm", tmp_path)) == 7


def test_errors_name_the_file(tmp_path, xlsx, frames):
    make_samm(tmp_path, xlsx, frames, header=[h if h != "Apex Frame" else "Apex" for h in HEADER])
    message = rf"{SHEET_NAME} \(sheet MICRO_ONLY, header row 14\): missing column\(s\) Apex Frame"
    with pytest.raises(ValueError, match=message):
        load("samm", tmp_path)
    with pytest.raises(ValueError, match=rf"{SHEET_NAME}: no sheet 'FACS' \(sheets: FACS_Movement_Only, MICRO_ONLY\)"):
        load("samm", tmp_path, sheet="FACS")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / SHEET_NAME).write_text("not a workbook")
    with pytest.raises(ValueError, match=f"cannot read the annotation spreadsheet .*{SHEET_NAME}"):
        load("samm", tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load("samm", tmp_path / "missing")
