"""Row-level annotation defects of every loader that reads a table (issue 17): repeated rows,
frame-number cells, subject cells, and the row numbers the report gives for them."""

import csv
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"


def casme2(root, xlsx, frames, rows):
    """A CASME II tree: frames 1..9 of sub01/EP01, sub01/EP02 and sub02/EP01; ``rows`` in Sheet1."""
    for subject, clip in (("sub01", "EP01"), ("sub01", "EP02"), ("sub02", "EP01")):
        frames(root / subject / clip, range(1, 10), "img{}.jpg")
    return xlsx(root / CASME2_SHEET, CASME2_HEADER, rows, sheet="Sheet1")


def samm_row(subject, filename, onset, apex, offset, emotion="Happiness"):
    return [subject, filename, 1, onset, apex, offset, None, "Micro", "R12", emotion, 1, None]


def write_csv(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


# --- item 4: a repeated row is one clip, noted, never two clips with one uid ------------------------------


def test_casme2_repeated_row_is_one_clip_noted_duplicate(tmp_path, xlsx, frames):
    rows = [
        ["01", "EP01", 1, 3, 6, "4", "happiness"],
        ["01", "EP02", 2, 4, 8, "12", "surprise"],
        [1, "EP01", 1, 3, 6, "4", "happiness"],  # the same clip again (subject as an integer this time)
        ["02", "EP01", 1, 2, 9, "", "disgust"],
    ]
    path = casme2(tmp_path, xlsx, frames, rows)
    clips = load("casme2", tmp_path)
    uids = [c.uid for c in clips]
    assert uids == ["casme2/sub01/EP01", "casme2/sub01/EP02", "casme2/sub02/EP01"]
    assert len(set(uids)) == len(uids)  # a store writes each clip once: no "already in the store"
    first = clips[0]
    assert (first.onset, first.apex, first.offset, first.labels) == (1, 3, 6, ("happiness",))
    assert first.notes == (Defect.DUPLICATE_ROW.value,) and clips[1].notes == ()
    report = clips.report
    assert report.rows == 4 and report.defects["duplicate_row"] == ["casme2/sub01/EP01"]
    assert report.excluded == {}
    assert report.details == [
        f"{path}, rows 2 and 4: both describe casme2/sub01/EP01 (same Subject, Filename); row 4 skipped"]
    assert "duplicate_row 1" in report.summary()


def test_casme2_conflicting_rows_keep_the_first_and_say_where_they_differ(tmp_path, xlsx, frames):
    rows = [
        ["01", "EP01", 1, 3, 6, "4", "happiness"],
        ["01", "EP01", 1, 4, 6, "4", "disgust"],  # another apex and emotion
        ["01", "EP01", 1, 3, 6, "4", "happiness"],  # a third time
    ]
    path = casme2(tmp_path, xlsx, frames, rows)
    clips = load("casme2", tmp_path)
    (clip,) = clips
    assert (clip.apex, clip.labels, clip.notes) == (3, ("happiness",), (Defect.DUPLICATE_ROW.value,))
    report = clips.report
    assert report.defects["duplicate_row"] == ["casme2/sub01/EP01"]  # once per clip, however many repeats
    assert report.details == [
        f"{path}, rows 2 and 3: both describe casme2/sub01/EP01 (same Subject, Filename) but disagree on "
        "ApexFrame (3 vs 4), Estimated Emotion ('happiness' vs 'disgust'); row 2's annotation kept; row 3 skipped",
        f"{path}, rows 2 and 4: both describe casme2/sub01/EP01 (same Subject, Filename); row 4 skipped",
    ]


def _samm(root, xlsx, frames, rows):
    frames(root / "006" / "006_1_2", range(1, 10), "006_{:05d}.jpg")
    return xlsx(root / SAMM_SHEET, SAMM_HEADER, rows, sheet="MICRO_ONLY", preamble=13)


def _mmew(root, xlsx, frames, rows):
    frames(root / "Micro_Expression" / "happiness" / "S01_01", range(1, 10))
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
    return xlsx(root / "MMEW_Micro_Exp.xlsx", header, rows)


def _casme3(root, xlsx, frames, rows):
    frames(root / "spNO.1" / "a" / "color", range(0, 20))
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    return xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", header, rows)


def _fourdme(root, xlsx, frames, rows):
    frames(root / "S01" / "S01_01", range(1, 10))
    header = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion"]
    return xlsx(root / "4DME_Labelling_Micro_release v1.xlsx", header, rows)


# per loader: the tree builder, a row (subject, clip) of its clip with the given frame cells, the uid,
# and the names of its subject and frame columns
SHEET_LOADERS = {
    "samm": (_samm, lambda s, c, on, ap, off: samm_row(s, c, on, ap, off), 6, "006_1_2", "samm/006/006_1_2",
             ("Subject", "Onset Frame", "Apex Frame", "Offset Frame")),
    "mmew": (_mmew, lambda s, c, on, ap, off: [s, c, on, ap, off, "AU12", "happiness"], "S01", "S01_01",
             "mmew/S01/S01_01", ("Subject", "OnsetFrame", "ApexFrame", "OffsetFrame")),
    "casme3": (_casme3, lambda s, c, on, ap, off: [s, c, on, ap, off, "L1", 1, "happy"], "spNO.1", "a",
               "casme3/spNO.1/a", ("Subject", "Onset", "Apex", "Offset")),
    "4dme": (_fourdme, lambda s, c, on, ap, off: [s, c, on, ap, off, "AU4", "Positive"], "S01", "S01_01",
             "4dme/S01/S01_01", ("sub_ID", "Onset", "Apex", "Offset")),
}


@pytest.mark.parametrize("name", SHEET_LOADERS)
def test_every_sheet_loader_returns_a_repeated_row_once(tmp_path, xlsx, frames, name):
    build, row, subject, clip_id, uid, _ = SHEET_LOADERS[name]
    same = row(subject, clip_id, 2, 4, 8)
    path = build(tmp_path, xlsx, frames, [same, row(subject, clip_id, 3, 5, 9), list(same)])
    clips = load(name, tmp_path)
    # the same clip twice: kept once; the same recording, another onset..offset: another clip (suffix)
    assert [c.uid for c in clips] == [uid, f"{uid}_2"]
    assert clips[0].notes == (Defect.DUPLICATE_ROW.value,) and clips[1].notes == ()
    assert clips.report.defects == {"duplicate_row": [uid]}
    first = 15 if name == "samm" else 2  # SAMM: 13 lines of text, the header on row 14
    (detail,) = clips.report.details
    assert detail.startswith(f"{path}, rows {first} and {first + 2}: both describe {uid} (same ")
    assert detail.endswith(f"; row {first + 2} skipped")


def test_manifest_repeated_row_is_one_clip(tmp_path, frames):
    frames(tmp_path / "frames" / "c1", range(1, 10))
    path = write_csv(tmp_path / "m.csv", [
        "subject,path,onset,apex,offset,label",
        "s1,frames/c1,,3,,happy",  # blank onset/offset: frames 1 and 9
        "s1,frames/c1,1,3,9,surprise",  # the same clip (same segment once blanks are resolved), another label
        "s1,frames/c1,2,3,9,happy",  # another segment of the same folder: c1_2
    ])
    clips = load("manifest", path)
    assert [(c.uid, c.onset, c.offset, c.labels) for c in clips] == [
        ("manifest/s1/c1", 1, 9, ("happiness",)), ("manifest/s1/c1_2", 2, 9, ("happiness",))]
    assert clips.report.details == [
        f"{path}, rows 2 and 3: both describe manifest/s1/c1 (same subject, path, view, onset, offset) but disagree "
        "on label ('happiness' vs 'surprise'); row 2's annotation kept; row 3 skipped"]


# --- item 5: frame-number cells: one parser, integral floats read, the rest told, never taken as blank ------


def test_parse_frame():
    from fastmer.datasets.common import BLANK_CELLS, parse_frame

    assert [parse_frame(v) for v in (46, "46", " 46 ", 123.0, "123.0", "+7", 0, "0")] == [46, 46, 46, 123, 123, 7, 0, 0]
    assert [parse_frame(v) for v in (None, "", "  ", "/", "-", "N/A", float("nan"))] == [None] * 7
    assert parse_frame(0, allow_zero=False) is None and parse_frame(-1, minus_one_blank=True) is None
    assert "/" in BLANK_CELLS
    for value, why in (("abc", "'abc' is not a number"), (123.5, "123.5 is not a whole number"),
                       ("123.5", "'123.5' is not a whole number"), (-5, "-5 is negative"), ("-1", "'-1' is negative"),
                       (True, "True is not a frame number"), (math.inf, "inf is not a number")):
        with pytest.raises(ValueError, match=f"^{why}$"):
            parse_frame(value)
    with pytest.raises(ValueError, match="-5 is negative"):
        parse_frame(-5, minus_one_blank=True)


def test_manifest_numbers_csv(tmp_path, frames):
    frames(tmp_path / "frames" / "c1", range(100, 130))
    path = write_csv(tmp_path / "m.csv", [
        "subject,path,onset,apex,offset,label",
        "s1,frames/c1,100.0,110.0,125.0,happy",  # what pandas writes for an integer column with a blank
        "",  # a blank line: line numbers are the file's
        "s2,frames/c1,abc,110,125,happy",
        "s3,frames/c1,100,-5,125,happy",
        "s4,frames/c1,100,110,125.5,happy",
        "s5,frames/c1,-1,x,125,happy",  # two bad cells: one exclusion, both told
        "s6,frames/c1,,,,happy",  # blanks: first/last frame, apex not annotated (unchanged)
    ])
    clips = load("manifest", path)
    assert [(c.uid, c.onset, c.apex, c.offset) for c in clips] == [
        ("manifest/s1/c1", 100, 110, 125), ("manifest/s6/c1", 100, None, 129)]
    assert clips[0].notes == ()
    report = clips.report
    assert report.excluded == {"frame_number_invalid": ["m.csv row 4", "m.csv row 5", "m.csv row 6", "m.csv row 7"]}
    assert report.details == [
        f"{path}, row 4, column onset: 'abc' is not a number, not a frame number (nor blank); row skipped",
        f"{path}, row 5, column apex: '-5' is negative, not a frame number (nor blank); row skipped",
        f"{path}, row 6, column offset: '125.5' is not a whole number, not a frame number (nor blank); row skipped",
        f"{path}, row 7, column onset: '-1' is negative, not a frame number (nor blank); row skipped",
        f"{path}, row 7, column apex: 'x' is not a number, not a frame number (nor blank); row skipped",
    ]
    assert "frame_number_invalid 4" in report.summary()


def test_manifest_numbers_parquet_and_multiline_csv(tmp_path, frames):
    frames(tmp_path / "c1", range(1, 10))
    table = pa.table({"subject": ["s1", "s2", "s3"], "path": ["c1"] * 3, "onset": [1.0, 2.5, None],
                      "apex": [3.0, 4.0, float("nan")], "offset": [9.0, 9.0, None], "label": ["happy"] * 3})
    pq.write_table(table, tmp_path / "m.parquet")
    clips = load("manifest", tmp_path / "m.parquet")
    assert [(c.uid, c.onset, c.apex, c.offset) for c in clips] == [("manifest/s1/c1", 1, 3, 9), ("manifest/s3/c1", 1, None, 9)]
    assert clips.report.excluded == {"frame_number_invalid": ["m.parquet row 2"]}  # the 1-based record
    assert clips.report.details == [f"{tmp_path / 'm.parquet'}, row 2, column onset: 2.5 is not a whole number, "
                                    "not a frame number (nor blank); row skipped"]
    with (tmp_path / "m.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["subject", "path", "onset", "apex", "offset", "label"],
                                 ["s1", "c1", 1, 3, 9, "a label\nover two lines"], ["s2", "c1", 1, "?", 9, "happy"]])
    clips = load("manifest", tmp_path / "m.csv")
    assert clips.report.excluded == {"frame_number_invalid": ["m.csv row 4"]}  # the line the row starts on


def test_spreadsheet_frame_cells_share_the_parser(tmp_path, xlsx, frames):
    rows = [
        ["01", "EP01", "1.0", "/", 6.0, "4", "happiness"],  # '/' apex: not annotated, as always; 1.0, '1.0': 1
        ["01", "EP02", 2, "abc", 8, "12", "surprise"],  # not a number: told, row skipped (no longer a silent blank)
        ["02", "EP01", 1, 2.5, 9, "", "disgust"],
    ]
    path = casme2(tmp_path, xlsx, frames, rows)
    clips = load("casme2", tmp_path)
    assert [(c.uid, c.onset, c.apex, c.offset, c.notes) for c in clips] == [
        ("casme2/sub01/EP01", 1, None, 6, (Defect.APEX_MISSING.value,))]
    assert clips.report.excluded == {"frame_number_invalid": [f"{CASME2_SHEET} row 3", f"{CASME2_SHEET} row 4"]}
    assert clips.report.details == [
        f"{path}, row 3, column ApexFrame: 'abc' is not a number, not a frame number (nor blank); row skipped",
        f"{path}, row 4, column ApexFrame: 2.5 is not a whole number, not a frame number (nor blank); row skipped",
    ]


@pytest.mark.parametrize("name", SHEET_LOADERS)
def test_every_sheet_loader_tells_unreadable_frame_cells(tmp_path, xlsx, frames, name):
    build, row, subject, clip_id, uid, (_, onset, apex, _) = SHEET_LOADERS[name]
    path = build(tmp_path, xlsx, frames, [row(subject, clip_id, "2.0", -1, 8), row(subject, clip_id, 3, "x", 9)])
    clips = load(name, tmp_path)
    assert [(c.uid, c.onset, c.apex, c.offset) for c in clips] == [(uid, 2, None, 8)]  # -1: not annotated
    row_number = 16 if name == "samm" else 3
    assert clips.report.excluded == {"frame_number_invalid": [f"{path.name} row {row_number}"]}
    assert clips.report.details == [
        f"{path}, row {row_number}, column {apex}: 'x' is not a number, not a frame number (nor blank); row skipped"]


# --- item 6 (issue item 10): a bad subject cell skips its row, told with the row number the user sees ------


def test_casme2_bad_subject_skips_the_row_with_its_real_number(tmp_path, xlsx, frames):
    rows = [
        ["01", "EP01", 1, 3, 6, "4", "happiness"],
        [],  # blank rows: not rows of the sheet for the loader, but they count in its row numbers
        [None, None, None],
        ["x1", "EP02", 2, 4, 8, "12", "surprise"],
        [None, "EP02", 2, 4, 8, "12", "surprise"],
        [1.5, "EP02", 2, 4, 8, "12", "surprise"],
        ["sub02", "EP01", 1, 2, 9, "", "disgust"],
        ["01", None, 1, 2, 9, "", "disgust"],
    ]
    path = casme2(tmp_path, xlsx, frames, rows)
    clips = load("casme2", tmp_path)  # used to raise ValueError: one bad cell aborted the whole load
    assert [c.uid for c in clips] == ["casme2/sub01/EP01", "casme2/sub02/EP01"]
    report = clips.report
    assert report.rows == 6
    assert report.excluded == {"row_unusable": [f"{CASME2_SHEET} row {n}" for n in (5, 6, 7, 9)]}
    assert report.details == [
        f"{path}, row 5, column Subject: 'x1' is not a subject number; row skipped",
        f"{path}, row 6, column Subject: blank, not a subject number; row skipped",
        f"{path}, row 7, column Subject: 1.5 is not a subject number; row skipped",
        f"{path}, row 9, column Filename: blank; row skipped",
    ]
    assert report.defects["subject_id_text"] == ["casme2/sub01/EP01", "casme2/sub02/EP01"]


def test_samm_bad_subject_row_number_counts_blank_rows(tmp_path, xlsx, frames):
    rows = [samm_row(6, "006_1_2", 1, 3, 8), [], [], ["See notes below the table"]]
    path = _samm(tmp_path, xlsx, frames, rows)
    clips = load("samm", tmp_path)
    assert [c.uid for c in clips] == ["samm/006/006_1_2"]
    assert clips.report.excluded == {"row_unusable": [f"{SAMM_SHEET} row 18"]}  # header 14, rows 15, 16, 17, 18
    assert clips.report.details == [
        f"{path}, row 18, column Subject: 'See notes below the table' is not a subject number; row skipped"]


@pytest.mark.parametrize("name", ["mmew", "casme3", "4dme"])
def test_text_subject_loaders_number_rows_as_the_sheet_does(tmp_path, xlsx, frames, name):
    build, row, subject, clip_id, uid, (subject_column, *_) = SHEET_LOADERS[name]
    path = build(tmp_path, xlsx, frames, [[], row(subject, clip_id, 2, 4, 8), [None], row(None, clip_id, 2, 4, 8)])
    clips = load(name, tmp_path)
    assert [c.uid for c in clips] == [uid]
    assert clips.report.excluded == {"row_unusable": [f"{path.name} row 5"]}
    assert clips.report.details == [f"{path}, row 5, column {subject_column}: blank; row skipped"]


def test_manifest_rows_are_file_lines(tmp_path, frames):
    frames(tmp_path / "c1", range(1, 10))
    path = write_csv(tmp_path / "m.csv", [
        "subject,path,onset,apex,offset,label,view", "", "s1,c1,1,3,9,happy,", "", ",c1,1,3,9,happy,",
        "s2,c1,1,3,9,happy,top"])
    clips = load("manifest", path)
    assert [c.uid for c in clips] == ["manifest/s1/c1"]
    assert clips.report.excluded == {"row_unusable": ["m.csv row 5"], "invalid_view": ["m.csv row 6"]}
    assert clips.report.details == [f"{path}, row 5, column subject: blank; row skipped",
                                    f"{path}, row 6, column view: 'top' is not one of full, left, right; row skipped"]


def test_megc2019_keeps_the_corpus_details(tmp_path, xlsx, frames):
    """A casme2 row of the composite with a bad subject no longer aborts the composite's load."""
    from fastmer.datasets import megc2019

    casme2(tmp_path / "casme2", xlsx, frames, [["x1", "EP01", 1, 2, 3, "", "happiness"]])
    frames(tmp_path / "smic" / "s1" / "micro" / "positive" / "s1_po_01", [1, 2, 3])
    _samm(tmp_path / "samm", xlsx, frames, [samm_row(6, "006_1_2", 1, 3, 8)])
    clips = megc2019.load(tmp_path)
    assert clips.report.excluded["row_unusable"] == [f"{CASME2_SHEET} row 2"]
    assert clips.report.details == [
        f"{tmp_path / 'casme2' / CASME2_SHEET}, row 2, column Subject: 'x1' is not a subject number; row skipped"]
