"""4DME loader on fixture trees in the documented layout (side-by-side views, multi-label)."""

import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

HEADER = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion"]
ROWS = [
    ["S01", "S01_01", 12, 13, 14, "AU1+AU2", "Surprise+Positive"],
    ["S01", "S01_02", 1, -1, 3, "AU4", "Negative"],  # apex -1
    ["S02", "S02_01", 0, 0, 2, "AU12", "positive"],  # numbered from 0; onset == apex
    ["S02", "S02_02", "1", "7", "3", "AU14", "Repression+Others"],  # text ints; apex outside
    [3, "003_01", 1, 2, 5, "AU9", "Negative+Fear"],  # integer sub_ID; frames 4-5 absent; fear not a 4DME class
    ["S04", "S04_01", 1, 2, 3, "AU4", "Others"],  # folder missing
]


def make_fourdme(root, xlsx, frames, name="4DME_Labelling_Micro_release v1.0.xlsx", header=HEADER):
    frames(root / "S01" / "S01_01", [12, 13, 14, 100], "frame_{:04d}.jpg")
    frames(root / "S01" / "S01_02", [1, 2, 3], "{}.jpg", image=True)
    frames(root / "S02" / "S02_01", [0, 1, 2], "{}.jpg")
    frames(root / "S02" / "S02_02", [1, 2, 3], "{}.jpg")
    frames(root / "3" / "003_01", [1, 2, 3], "img{}.jpg")
    return xlsx(root / name, header, ROWS)


def test_rows_labels_views_and_defects(tmp_path, xlsx, frames):
    make_fourdme(tmp_path, xlsx, frames)
    clips = load("4dme", tmp_path)
    assert [c.uid for c in clips] == ["4dme/S01/S01_01", "4dme/S01/S01_02", "4dme/S02/S02_01", "4dme/S02/S02_02",
                                      "4dme/3/003_01", "4dme/S04/S04_01"]
    a, b, c, d, e, f = clips
    assert (a.dataset, a.onset, a.apex, a.offset, a.labels, a.action_units, a.fps, a.view) == (
        "4dme", 12, 13, 14, ("surprise", "positive"), "AU1+AU2", 60.0, "full")
    assert a.frame_numbers == (12, 13, 14, 100) and a.notes == ()
    assert (b.apex, b.labels, b.notes) == (None, ("negative",), (Defect.APEX_MISSING.value,))
    assert (c.onset, c.apex, c.offset, c.notes) == (0, 0, 2, (Defect.ONSET_EQUALS_APEX.value,))
    assert (d.onset, d.apex, d.offset, d.labels) == (1, 7, 3, ("repression", "others"))
    assert d.notes == (Defect.APEX_OUTSIDE.value,)
    assert (e.subject, e.labels, e.notes) == ("4dme/3", ("negative", "fear"), (Defect.FRAMES_MISSING.value,))
    assert f.notes == (Defect.FOLDER_MISSING.value,)
    assert clips.report.counts() == {
        "defects": {"apex_missing": 1, "apex_outside": 1, "folder_missing": 1, "frames_missing": 1,
                    "onset_equals_apex": 1},
        "excluded": {},
    }
    assert clips.report.summary() == (
        "4dme: 6 rows; defects: apex_missing 1, apex_outside 1, folder_missing 1, frames_missing 1, "
        "onset_equals_apex 1")
    left, right = a.with_view("left"), a.with_view("right")
    assert (left.uid, right.uid) == ("4dme/S01/S01_01@left", "4dme/S01/S01_01@right")


def test_frame_zero_is_unannotated_when_numbering_starts_at_one(tmp_path, xlsx, frames):
    frames(tmp_path / "S01" / "S01_01", [1, 2, 3])
    xlsx(tmp_path / "4dme_labels.xlsx", HEADER, [["S01", "S01_01", 0, 2, 3, "", "Positive"]])
    (clip,) = load("4dme", tmp_path)
    assert clip.onset is None and Defect.ONSET_OFFSET_INVALID.value in clip.notes


def test_header_variants(tmp_path, xlsx, frames):
    frames(tmp_path / "gray_micro" / "S01" / "S01_01", [1, 2, 3])
    header = ["sub_ID'", "fold_name'", "fold", "eye blink", "Onset", "Apex", "Offset", "AUs", "Emotion", "Total"]
    row = ["S01", "S01_01", 1, 0, 1, 2, 3, "AU4", "Negative", 1]
    xlsx(tmp_path / "4DME_Labelling_Micro_release v1.xlsx", header, [row])
    (clip,) = load("4dme", tmp_path / "gray_micro")
    assert (clip.uid, clip.onset, clip.apex, clip.offset, clip.labels, clip.notes) == (
        "4dme/S01/S01_01", 1, 2, 3, ("negative",), ())


def test_multilabel_protocol(tmp_path, xlsx, frames):
    make_fourdme(tmp_path, xlsx, frames)
    clips = load("4dme", tmp_path, protocol="4dme-multilabel")
    assert len(clips) == 5 and clips.report.excluded == {"label_not_in_4dme-multilabel": ["4dme/3/003_01"]}


def test_errors(tmp_path, xlsx, frames):
    with pytest.raises(FileNotFoundError, match=r"\*4DME\*\.xlsx"):
        load("4dme", tmp_path)
    make_fourdme(tmp_path, xlsx, frames, header=[h.replace("Emotion", "Label") for h in HEADER])
    with pytest.raises(ValueError, match=r"release v1\.0\.xlsx: missing column\(s\) Emotion"):
        load("4dme", tmp_path)


def test_video_clips(tmp_path, xlsx, frames):
    (tmp_path / "S01").mkdir()
    (tmp_path / "S01" / "S01_01.mp4").write_bytes(b"")  # found beside a missing folder
    (tmp_path / "S01" / "S01_02.avi").write_bytes(b"")  # named with its extension in the sheet
    frames(tmp_path / "S01" / "S01_03", [1, 2, 3])  # a frame folder wins over a video of the same name
    (tmp_path / "S01" / "S01_03.mp4").write_bytes(b"")
    rows = [
        ["S01", "S01_01", 0, 4, 9, "AU4", "Negative"],  # 0-based indices: frame 0 is a frame
        ["S01", "S01_02.avi", 3, 3, 8, "AU12", "Positive"],  # onset == apex
        ["S01", "S01_03", 1, 2, 3, "AU1", "Surprise"],
        ["S01", "S01_04.mp4", 0, 1, 2, "AU1", "Surprise"],  # video absent
    ]
    xlsx(tmp_path / "4DME_Labelling_Micro_release v1.xlsx", HEADER, rows)
    clips = load("4dme", tmp_path)
    assert [c.uid for c in clips] == ["4dme/S01/S01_01", "4dme/S01/S01_02", "4dme/S01/S01_03", "4dme/S01/S01_04"]
    a, b, c, d = clips
    assert a.is_video and a.source == str(tmp_path / "S01" / "S01_01.mp4")
    assert (a.frame_numbers, a.frame_paths, a.onset, a.apex, a.offset, a.notes) == ((), (), 0, 4, 9, ())
    assert b.is_video and b.source.endswith("S01_02.avi") and b.notes == (Defect.ONSET_EQUALS_APEX.value,)
    assert not c.is_video and c.frame_numbers == (1, 2, 3) and c.notes == ()
    assert d.is_video and d.notes == (Defect.FOLDER_MISSING.value,)
    assert clips.report.counts()["defects"] == {"folder_missing": 1, "onset_equals_apex": 1}
