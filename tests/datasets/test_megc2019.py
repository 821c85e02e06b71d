"""MEGC 2019 composite: membership equals the official list, whatever the user's copies hold."""

import csv
import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from fastmer.datasets import get_protocol, load
from fastmer.datasets.megc2019 import (
    membership_diff,
    membership_matches_official,
    official_members,
)

OFFICIAL_CSV = Path(__file__).resolve().parents[2] / "fastmer" / "datasets" / "data" / "megc2019_composite.csv"
CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
CASME2_EMOTIONS = ("happiness", "disgust", "repression", "surprise")
SAMM_EMOTIONS = ("Anger", "Contempt", "Happiness", "Surprise", "Disgust", "Fear", "Sadness")
SMIC_EMOTIONS = {"ne": "negative", "po": "positive", "sur": "surprise"}
# Clips of the user's copies that are not in the composite, and why.
CASME2_EXTRA = [
    ("sub01", "EP01_others", 1, 2, 3, "others"),  # label: others
    ("sub02", "EP02_others", 1, 2, 3, "others"),
    ("sub04", "EP12_01f", 1, "/", 3, "disgust"),  # apex missing: left out by the challenge
    ("sub05", "EP09_05f", 1, 1, 3, "repression"),  # onset == apex: left out by the challenge
    ("sub09", "EP18_03", 1, 2, 3, "fear"),  # maps to negative, not in the list
]
SAMM_EXTRA = [("006", "006_9_9", "Other"), ("011", "011_9_9", "Other"), ("037", "037_9_9", "Other")]
# The official 3-class mapping, written out.
THREE_CLASS = {
    "repression": "negative", "anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
    "sadness": "negative", "negative": "negative", "happiness": "positive", "positive": "positive",
    "surprise": "surprise",
}
MISSING_FOLDER = "samm/006/006_1_2"  # official, listed in the spreadsheet, frames absent


def official_rows():
    with OFFICIAL_CSV.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def build(root, xlsx, frames, *, drop=(), relabel=None):
    """The three corpora under root (SMIC/HS, CASME2_RAW_selected, SAMM) holding the official
    clips (less ``drop``, with ``relabel``: uid -> emotion) and the extra ones."""
    relabel = relabel or {}
    casme2_rows, samm_rows = [], []
    for i, r in enumerate(official_rows()):
        uid = f"{r['dataset']}/{r['subject']}/{r['clip_id']}"
        if uid in drop:
            continue
        if r["dataset"] == "smic":
            emotion = relabel.get(uid, SMIC_EMOTIONS[r["clip_id"].split("_")[1]])
            frames(root / "SMIC" / "HS" / r["subject"] / "micro" / emotion / r["clip_id"], [1, 2, 3], "image{:06d}.bmp")
        elif r["dataset"] == "casme2":
            subject = r["subject"][3:] if uid == "casme2/sub01/EP02_01f" else int(r["subject"][3:])  # one text id
            casme2_rows.append([subject, r["clip_id"], 1, 2, 3, "4", relabel.get(uid, CASME2_EMOTIONS[i % 4])])
            frames(root / "CASME2_RAW_selected" / r["subject"] / r["clip_id"], [1, 2, 3], "img{}.jpg")
        else:
            subject = r["subject"] if uid == MISSING_FOLDER else int(r["subject"])  # one text id
            emotion = relabel.get(uid, SAMM_EMOTIONS[i % 7])
            samm_rows.append([subject, r["clip_id"], 1, 1, 2, 3, 3, "Micro", "R12", emotion, 1, None])
            if uid != MISSING_FOLDER:
                name = f"{r['subject']}_{{:05d}}.jpg"
                frames(root / "SAMM" / r["subject"] / r["clip_id"], [1, 2, 3], name)
    for subject, clip, onset, apex, offset, emotion in CASME2_EXTRA:
        casme2_rows.append([int(subject[3:]), clip, onset, apex, offset, "", emotion])
        frames(root / "CASME2_RAW_selected" / subject / clip, [1, 2, 3], "img{}.jpg")
    for subject, clip, emotion in SAMM_EXTRA:
        samm_rows.append([int(subject), clip, 1, 1, 2, 3, 3, "Micro", "", emotion, 7, None])
        frames(root / "SAMM" / subject / clip, [1, 2, 3], f"{subject}_{{:05d}}.jpg")
    xlsx(root / "CASME2-coding-20140508.xlsx", CASME2_HEADER, casme2_rows, sheet="Sheet1")
    xlsx(root / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_HEADER, samm_rows, sheet="MICRO_ONLY", preamble=13)
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, xlsx, frames):
    return build(tmp_path_factory.mktemp("megc") / "corpora", xlsx, frames)


def test_official_list():
    members = official_members()
    assert len(members) == len(set(members)) == 442
    assert Counter(u.split("/")[0] for u in members) == {"smic": 164, "casme2": 145, "samm": 133}


def test_membership_equals_the_official_list(corpora):
    clips = load("megc2019", corpora)
    assert len(clips) == 442
    assert Counter(c.dataset for c in clips) == {"smic": 164, "casme2": 145, "samm": 133}
    by_corpus = {ds: {c.subject for c in clips if c.dataset == ds} for ds in ("smic", "casme2", "samm")}
    assert {ds: len(s) for ds, s in by_corpus.items()} == {"smic": 16, "casme2": 24, "samm": 28}
    assert len({c.subject for c in clips}) == 68
    assert {"smic/s1", "casme2/sub01", "samm/006"} <= {c.subject for c in clips}
    assert [c.uid for c in clips] == list(official_members())  # in the official list's order
    ok, message = membership_matches_official(clips)
    assert ok and message == "442 clips (164 smic, 145 casme2, 133 samm) from 68 subjects = the official list"
    assert membership_matches_official(clips.report) == (True, "all 442 official clips loaded")
    assert membership_diff(clips) == ([], [])
    report = clips.report
    assert report.dataset == "megc2019" and report.rows == 164 + 150 + 136
    assert report.excluded == {
        "label_not_in_megc2019-3class": ["casme2/sub01/EP01_others", "casme2/sub02/EP02_others", "samm/006/006_9_9",
                                         "samm/011/011_9_9", "samm/037/037_9_9"],
        "not_in_official_composite": ["casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f", "casme2/sub09/EP18_03"],
    }
    # Defects of the members only: SMIC has no apex; the SAMM clip whose frames are absent is kept.
    assert report.counts()["defects"] == {"apex_missing": 164, "folder_missing": 1, "subject_id_text": 2}
    assert report.defects["folder_missing"] == [MISSING_FOLDER]
    assert report.defects["subject_id_text"] == ["casme2/sub01/EP02_01f", MISSING_FOLDER]
    missing = next(c for c in clips if c.uid == MISSING_FOLDER)
    assert missing.notes == ("subject_id_text", "folder_missing") and missing.fps == 200.0
    assert report.summary() == (
        "megc2019: 450 rows; defects: apex_missing 164, folder_missing 1, subject_id_text 2; "
        "excluded: label_not_in_megc2019-3class 5, not_in_official_composite 3")


def test_protocol_and_explicit_corpora(corpora):
    clips = load("megc2019", corpora, protocol="megc2019-3class")
    assert len(clips) == 442 and "label_not_in_megc2019-3class" in clips.report.excluded
    assert {c.labels[0] for c in clips} == {"negative", "positive", "surprise", "happiness", "disgust", "repression",
                                            "anger", "contempt", "fear", "sadness"}  # annotated words, not classes
    protocol = get_protocol("megc2019-3class")
    assert all(protocol.classes_of(c.labels) == (THREE_CLASS[c.labels[0]],) for c in clips)
    smic = Counter(protocol.classes_of(c.labels)[0] for c in clips if c.dataset == "smic")
    assert smic == {"negative": 70, "positive": 51, "surprise": 43}  # SMIC-HS's own 3 classes
    five = load("megc2019", corpora, protocol="casme2-5class")  # a further protocol filters the members
    assert {c.labels[0] for c in five} == {"happiness", "disgust", "repression", "surprise"}
    assert len(five) + len(five.report.excluded["label_not_in_casme2-5class"]) == 442
    clips = load("megc2019", None, smic_root=corpora / "SMIC", casme2_root=corpora / "CASME2_RAW_selected",
                 samm_root=corpora / "SAMM")
    assert membership_matches_official(clips)


def test_a_copy_lacking_an_official_clip_is_reported(tmp_path, xlsx, frames):
    lacking, relabelled = "casme2/sub02/EP01_11f", "smic/s2/s2_po_01"
    build(tmp_path, xlsx, frames, drop={lacking}, relabel={relabelled: "others"})
    clips = load("megc2019", tmp_path)
    assert len(clips) == 440
    assert not membership_matches_official(clips) and not membership_matches_official(clips.report)
    ok, message = membership_matches_official(clips)
    assert not ok and message == (
        f"not the official MEGC 2019 composite: 440 clips, 442 official; 2 official clip(s) missing: {lacking}, "
        f"{relabelled}")
    assert membership_matches_official(clips.report).message == f"2 official clip(s) missing: {lacking}, {relabelled}"
    assert membership_diff(clips) == ([lacking, relabelled], [])  # in the official list's order (CASME II first)
    assert clips.report.excluded["official_clip_missing"] == [lacking, relabelled]
    assert relabelled in clips.report.excluded["label_not_in_megc2019-3class"]
    assert "official_clip_missing 2" in clips.report.summary()


def test_extra_or_duplicate_clips_break_the_match(corpora):
    clips = load("megc2019", corpora)
    stranger = dataclasses.replace(clips[0], subject="casme2/sub99")
    assert membership_diff([*clips, stranger]) == ([], ["casme2/sub99/EP02_01f"])
    assert not membership_matches_official([*clips, stranger])
    assert membership_matches_official([*clips, stranger]).message.endswith(
        "1 clip(s) not in the official list: casme2/sub99/EP02_01f")
    assert membership_matches_official([*clips, clips[0]]) == (
        False, f"not the official MEGC 2019 composite: 443 clips, 442 official; 1 clip(s) listed twice: {clips[0].uid}")
    assert not membership_matches_official(clips[1:])
    assert not membership_matches_official(iter(clips[1:]))
    assert membership_matches_official(iter(clips))  # any iterable
    assert not membership_matches_official(load("samm", corpora / "SAMM").report)  # not a megc2019 report


def test_corpus_folders_are_searched_by_name(tmp_path):
    (tmp_path / "smic").mkdir()
    with pytest.raises(FileNotFoundError, match="no casme2 folder in .*casme2, CASME_II, CASME2_RAW_selected"):
        load("megc2019", tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load("megc2019", tmp_path / "missing")
    with pytest.raises(ValueError, match="give root, or all of smic_root=, casme2_root= and samm_root="):
        load("megc2019", None, smic_root=tmp_path)


def test_documented_folder_names(corpora, tmp_path):
    for name, target in (("smic", "SMIC"), ("casme2", "CASME2_RAW_selected"), ("samm", "SAMM"),
                         ("CASME2-coding-20140508.xlsx", "CASME2-coding-20140508.xlsx")):
        (tmp_path / name).symlink_to(corpora / target)
    clips = load("megc2019", tmp_path)
    assert len(clips) == 442 and membership_matches_official(clips)
    assert all(c.source.startswith(str(tmp_path / c.dataset)) for c in clips)
