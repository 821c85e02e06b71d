"""Manifest loader: CSV and Parquet tables pointing at frame folders and video files."""

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastmer.datasets import load
from fastmer.datasets.report import Defect

COLUMNS = ["subject", "path", "onset", "apex", "offset", "label", "dataset", "clip_id", "view", "fps"]


def write_csv(path, rows, columns=COLUMNS):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def make_tree(root, frames, elsewhere):
    frames(root / "frames" / "c1", [9, 10, 11, 8], "f{}.png")
    frames(root / "frames" / "c2", [1, 2, 3, 5])
    frames(elsewhere / "abs", [1, 2, 3])
    (root / "videos").mkdir()
    (root / "videos" / "v1.mp4").write_bytes(b"")
    return [
        ["s1", "frames/c1", "", "", "", "Happy", "", "", "", ""],  # blank onset/offset -> first/last frame
        ["s1", "frames/c2", 1, 2, 3, "surprise+positive", "mine", "", "", 30],  # frame 5 is beyond offset: fine
        ["s1", "frames/c2", 1, 1, 5, "surprise", "mine", "", "", 30],  # same stem: c2_2; onset == apex; 4 absent
        ["s2", str(elsewhere / "abs"), 1, 9, 3, "negative", "", "x", "left", ""],  # absolute; apex outside
        ["s2", str(elsewhere / "abs"), 1, 2, 3, "negative", "", "x", "right", ""],  # other view: same id
        ["s3", "videos/v1.mp4", 0, 4, 9, "others", "", "", "", "25"],  # video, 0-based
        ["s3", "videos/v1.mp4", "", "", "", "others", "", "", "", ""],  # video without onset/offset
        ["s3", "videos/gone.avi", 0, 1, 2, "others", "", "", "", ""],  # missing video
        ["s4", "frames/nope", "", "", "", "others", "", "", "", ""],  # missing folder
        ["", "frames/c1", 1, 2, 3, "others", "", "", "", ""],  # no subject
        ["s5", "frames/c1", 8, 9, 10, "others", "", "", "top", ""],  # bad view
    ]


def check(clips, root, elsewhere):
    assert [c.uid for c in clips] == [
        "manifest/s1/c1", "mine/s1/c2", "mine/s1/c2_2", "manifest/s2/x@left", "manifest/s2/x@right", "manifest/s3/v1",
        "manifest/s3/v1_2", "manifest/s3/gone", "manifest/s4/nope",
    ]
    c1, c2, c2b, left, right, v1, v1b, gone, nope = clips
    assert (c1.dataset, c1.subject, c1.onset, c1.apex, c1.offset, c1.labels, c1.fps) == (
        "manifest", "manifest/s1", 8, None, 11, ("happiness",), 0.0)
    assert c1.frame_numbers == (8, 9, 10, 11) and c1.source == str(root / "frames" / "c1")
    assert c1.notes == (Defect.APEX_MISSING.value,)
    assert (c2.dataset, c2.labels, c2.fps, c2.notes) == ("mine", ("surprise", "positive"), 30.0, ())
    assert c2b.notes == (Defect.ONSET_EQUALS_APEX.value, Defect.FRAMES_MISSING.value)
    assert left.source == str(elsewhere / "abs") and left.view == "left" and left.notes == (Defect.APEX_OUTSIDE.value,)
    assert right.notes == ()
    assert v1.is_video and (v1.frame_numbers, v1.frame_paths) == ((), ())
    assert (v1.onset, v1.apex, v1.offset, v1.fps, v1.notes) == (0, 4, 9, 25.0, ())
    assert (v1b.onset, v1b.offset) == (None, None)
    assert v1b.notes == (Defect.ONSET_OFFSET_INVALID.value, Defect.APEX_MISSING.value)
    assert gone.notes == (Defect.FOLDER_MISSING.value,)
    assert nope.notes == (Defect.FOLDER_MISSING.value, Defect.ONSET_OFFSET_INVALID.value, Defect.APEX_MISSING.value)
    assert clips.report.rows == 11
    assert clips.report.counts() == {
        "defects": {"apex_missing": 3, "apex_outside": 1, "folder_missing": 2, "frames_missing": 1,
                    "onset_equals_apex": 1, "onset_offset_invalid": 2},
        "excluded": {"invalid_view": 1, "row_unusable": 1},
    }


def test_csv(tmp_path, frames):
    root, elsewhere = tmp_path / "m", tmp_path / "elsewhere"
    rows = make_tree(root, frames, elsewhere)
    clips = load("manifest", write_csv(root / "clips.csv", rows))
    check(clips, root, elsewhere)
    assert clips.report.summary() == (
        "manifest: 11 rows; defects: apex_missing 3, apex_outside 1, folder_missing 2, frames_missing 1, "
        "onset_equals_apex 1, onset_offset_invalid 2; excluded: invalid_view 1, row_unusable 1")
    assert clips.report.excluded["row_unusable"] == ["clips.csv row 11"]


def test_parquet_with_nulls(tmp_path, frames):
    root, elsewhere = tmp_path / "m", tmp_path / "elsewhere"
    rows = make_tree(root, frames, elsewhere)

    def column(i):
        values = [r[i] if r[i] != "" else None for r in rows]
        if COLUMNS[i] == "apex":  # missing as NaN, as pandas writes it
            return pa.array([float("nan") if v is None else float(v) for v in values], pa.float64())
        if COLUMNS[i] in ("onset", "offset", "fps"):
            return pa.array([None if v is None else float(v) for v in values], pa.float64())
        return pa.array([None if v is None else str(v) for v in values], pa.string())

    table = pa.table({name: column(i) for i, name in enumerate(COLUMNS)})
    pq.write_table(table, root / "clips.parquet")
    check(load("manifest", root / "clips.parquet"), root, elsewhere)


def test_required_columns_only_and_protocol(tmp_path, frames):
    frames(tmp_path / "a", [1, 2, 3])
    frames(tmp_path / "b", [1, 2, 3])
    header = ["Subject", "Path", "Onset", "Apex", "Offset", "Label"]  # names matched ignoring case
    path = write_csv(tmp_path / "m.csv", [["S1", "a", "", "", "", "disgust"], ["S1", "b", 1, 2, 3, "others"]], header)
    clips = load("manifest", path, protocol="megc2019-3class")
    assert [(c.uid, c.onset, c.offset, c.labels) for c in clips] == [("manifest/S1/a", 1, 3, ("disgust",))]
    assert clips.report.excluded == {"label_not_in_megc2019-3class": ["manifest/S1/b"]}


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest .*none.csv not found"):
        load("manifest", tmp_path / "none.csv")
    path = write_csv(tmp_path / "m.csv", [["s1", "a", 1, 3]], ["subject", "path", "onset", "offset"])
    with pytest.raises(ValueError, match=r"m\.csv: missing column\(s\) apex, label$"):
        load("manifest", path)
    empty = write_csv(tmp_path / "e.csv", [], ["subject", "label"])
    with pytest.raises(ValueError, match=r"e\.csv: missing column\(s\) path, onset, apex, offset$"):
        load("manifest", empty)
    pq.write_table(pa.table({"subject": ["s1"], "path": ["a"], "label": ["happy"]}), tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=r"p\.parquet: missing column\(s\) onset, apex, offset$"):
        load("manifest", tmp_path / "p.parquet")
    header_only = write_csv(tmp_path / "h.csv", [], ["subject", "path", "onset", "apex", "offset", "label"])
    assert len(load("manifest", header_only)) == 0
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported format '.json'"):
        load("manifest", tmp_path / "m.json")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="cannot read the manifest .*bad.parquet"):
        load("manifest", tmp_path / "bad.parquet")


def test_subject_already_namespaced_and_tsv(tmp_path, frames):
    frames(tmp_path / "clips" / "a", [0, 1, 2])
    path = tmp_path / "m.tsv"
    path.write_text("subject\tpath\tlabel\tdataset\tonset\tapex\toffset\n"
                    "mine/s1\tclips/a\tHappy+surprise\tmine\t\t0\t\n")
    (clip,) = load("manifest", path)
    assert (clip.uid, clip.onset, clip.apex, clip.offset) == ("mine/s1/a", 0, 0, 2)
    assert clip.labels == ("happiness", "surprise")
    assert clip.notes == ("onset_equals_apex",)
