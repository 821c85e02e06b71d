"""CASME II loader on hand-built fixture trees in the documented layout."""

import pytest
from openpyxl import Workbook

from fastmer.datasets import LABEL_PROTOCOLS, get_protocol, load
from fastmer.decode import open_clip_frames
from fastmer.errors import ClipError

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def make_tree(root, rows, frames, name="CASME2-coding-20140508.xlsx", header=HEADER, sheet="Sheet1"):
    """rows: spreadsheet rows; frames: {(subject_folder, clip): [frame numbers]} (empty files)."""
    for (subject, clip), numbers in frames.items():
        folder = root / subject / clip
        folder.mkdir(parents=True)
        for n in numbers:
            (folder / f"img{n}.jpg").write_bytes(b"")
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.save(root / name)


def test_reads_rows_in_sheet_order_with_namespaced_subjects(tmp_path):
    make_tree(
        tmp_path,
        [["01", "EP02_01f", 46, 59, 86, "12", "happiness"], [17, "EP01_06", 3, "/", 40, "4+7", "Disgust "]],
        {("sub01", "EP02_01f"): range(46, 87), ("sub17", "EP01_06"): range(1, 45)},
    )
    a, b = load("casme2", tmp_path)
    assert (a.subject, a.clip_id, a.onset, a.apex, a.offset, a.labels) == ("casme2/sub01", "EP02_01f", 46, 59, 86, ("happiness",))
    assert a.uid == "casme2/sub01/EP02_01f" and a.fps == 200.0
    assert a.frame_numbers == tuple(range(46, 87))
    # Integer subject, '/' apex (not annotated), emotion normalised to lower case.
    assert (b.subject, b.apex, b.labels, b.action_units) == ("casme2/sub17", None, ("disgust",), "4+7")


def test_frames_sorted_numerically_and_provider_crops_accepted(tmp_path):
    make_tree(tmp_path, [["02", "EP09_01", 8, 9, 11, "", "surprise"]], {})
    folder = tmp_path / "sub02" / "EP09_01"
    folder.mkdir(parents=True)
    for n in (11, 9, 10, 8):
        (folder / f"reg_img{n}.jpg").write_bytes(b"")
    (folder / "Thumbs.db").write_bytes(b"")
    (clip,) = load("casme2", tmp_path)
    assert clip.frame_numbers == (8, 9, 10, 11)
    assert clip.frame_paths[1:3] == (str(folder / "reg_img9.jpg"), str(folder / "reg_img10.jpg"))


def test_missing_frames_are_named(tmp_path):
    make_tree(tmp_path, [["01", "EP01", 1, 3, 6, "", "surprise"]], {("sub01", "EP01"): [1, 2, 3, 5, 6]})
    (clip,) = load("casme2", tmp_path)
    with pytest.raises(ClipError, match=r"frame\(s\) 4 missing in .*EP01") as err:
        open_clip_frames(clip, engine="opencv").read(range(1, 7))
    assert err.value.stage == "decode"


def test_missing_clip_folder_is_reported_at_extraction_not_load(tmp_path):
    make_tree(tmp_path, [["01", "EP404", 1, 3, 6, "", "surprise"]], {})
    (clip,) = load("casme2", tmp_path)
    with pytest.raises(ClipError, match="EP404") as err:
        open_clip_frames(clip, engine="opencv").read(range(1, 7))
    assert err.value.stage == "decode"


@pytest.mark.parametrize(
    "onset, apex, offset, message",
    [(10, 12, 10, "onset 10 is not before offset 10"), ("/", 5, 9, "onset/offset not annotated")],
)
def test_bad_annotations(tmp_path, onset, apex, offset, message):
    make_tree(tmp_path, [["01", "EP01", onset, apex, offset, "", "surprise"]], {("sub01", "EP01"): range(1, 30)})
    (clip,) = load("casme2", tmp_path)
    with pytest.raises(ClipError, match=message) as err:
        clip.validate_annotation()
    assert err.value.stage == "annotation"


def test_apex_outside_is_left_to_spotting(tmp_path):
    make_tree(tmp_path, [["01", "EP01", 10, 5, 20, "", "surprise"]], {("sub01", "EP01"): range(1, 30)})
    (clip,) = load("casme2", tmp_path)
    assert clip.notes == ("apex_outside",) and clip.validate_annotation() == (10, None, 20)


def test_spreadsheet_found_beside_root_or_given(tmp_path):
    root = tmp_path / "CASME2_RAW_selected"
    root.mkdir()
    make_tree(tmp_path, [["01", "EP01", 1, 2, 3, "", "others"]], {})
    assert len(load("casme2", root)) == 1
    other = tmp_path / "elsewhere.xlsx"
    (tmp_path / "CASME2-coding-20140508.xlsx").rename(other)
    with pytest.raises(FileNotFoundError, match="CASME2-coding"):
        load("casme2", root)
    assert len(load("casme2", root, spreadsheet=other)) == 1


def test_missing_column_names_file_and_column(tmp_path):
    make_tree(tmp_path, [["01", "EP01", 1, 2, 3, "", "others"]], {}, header=HEADER[:-1] + ["Emotion"])
    with pytest.raises(ValueError, match="missing column\\(s\\) Estimated Emotion"):
        load("casme2", tmp_path)


def test_unknown_dataset_and_root():
    with pytest.raises(ValueError, match="unknown dataset 'smic2'"):
        load("smic2", ".")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load("casme2", "/nonexistent/root")


def test_label_protocols():
    megc = get_protocol("megc2019-3class")
    assert megc.classes == ("negative", "positive", "surprise")
    assert [megc.map(e) for e in ("Disgust", "repression", "happiness", "surprise", "others")] == [
        "negative", "negative", "positive", "surprise", None]
    five = LABEL_PROTOCOLS["casme2-5class"]
    assert five.index("others") == 4 and five.map("fear") is None
    with pytest.raises(ValueError, match="known: "):
        get_protocol("nope")
