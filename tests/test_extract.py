"""Extraction on a synthetic corpus: real features, and bad clips become error rows."""

import csv
import shutil

import numpy as np
import pytest
from openpyxl import load_workbook

import fastmer.store as fstore
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.extract import extract
from fastmer.motion.flo import read_flo
from fastmer.ops import flow_magnitude_reference, optical_strain_reference


def test_store_rows_match_the_corpus(tiny_corpus, tiny_store):
    store = fstore.open(tiny_store)
    clips = load("casme2", tiny_corpus)
    assert store.complete and len(store) == len(clips) == 9
    assert store.column("uid") == [c.uid for c in clips]  # corpus order is kept
    assert set(store.column("subject")) == {"casme2/sub01", "casme2/sub02", "casme2/sub03"}
    assert store.column("apex_source") == ["annotation"] * 9
    assert store.channels("flow_onset_apex") == ("u", "v", "magnitude", "strain")
    features = store.tensor("flow_onset_apex")
    assert features.shape == (9, 4, 128, 128)
    # magnitude and strain are those of the stored flow
    flow = features[:, :2].double()
    np.testing.assert_allclose(features[:, 2:3].double(), flow_magnitude_reference(flow), atol=1e-5)
    np.testing.assert_allclose(features[:, 3:4].double(), optical_strain_reference(flow), atol=1e-5)
    for box in store.column("face_box"):
        assert box[2] == box[3] and box[2] >= 128  # square crop of the full-resolution face


def test_flow_agrees_with_ground_truth(tiny_corpus, tiny_store):
    """The stored flow, scaled back to frame pixels, points like the true apex displacement."""
    store = fstore.open(tiny_store)
    truth = {("sub" + r["subject"], r["filename"]): r for r in csv.DictReader(open(tiny_corpus / "ground_truth" / "clips.csv"))}
    features = store.tensor("flow_onset_apex").numpy()
    checked = 0
    for i, (subject, clip_id, box) in enumerate(zip(store.column("subject"), store.column("clip_id"), store.column("face_box"))):
        folder = subject.split("/")[1]
        gt = read_flo(tiny_corpus / "ground_truth" / folder / f"{clip_id}.flo")  # (H, W, 2), frame pixels
        x, y, side, _ = box
        scale = 128 / side
        gt_crop = gt[y : y + side, x : x + side]
        import cv2

        gt_small = cv2.resize(gt_crop, (128, 128), interpolation=cv2.INTER_AREA) * scale
        moving = np.hypot(gt_small[..., 0], gt_small[..., 1]) > 0.25 * scale * float(truth[(folder, clip_id)]["peak_px"])
        if moving.sum() < 20:
            continue
        est = features[i, :2].transpose(1, 2, 0)[moving]
        ref = gt_small[moving]
        epe = np.linalg.norm(est - ref, axis=1).mean()
        epe_zero = np.linalg.norm(ref, axis=1).mean()
        assert epe < 0.8 * epe_zero, (subject, clip_id, epe, epe_zero)
        checked += 1
    assert checked >= 6


def test_bad_clips_become_error_rows_and_the_rest_is_unchanged(tiny_corpus, tiny_store, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    clips = {c.clip_id + "@" + c.subject: c for c in load("casme2", corpus)}
    victims = list(clips.values())
    missing, unreadable, faceless, bad_annotation = victims[0], victims[4], victims[5], victims[8]
    # 1: a frame in the middle is missing
    middle = missing.frame_numbers[len(missing.frame_numbers) // 2]
    (corpus / missing.source / f"img{middle}.jpg").unlink()
    # 2: a frame is not an image
    (corpus / unreadable.source / f"img{unreadable.offset}.jpg").write_bytes(b"not a jpeg")
    # 3: the onset frame shows no face
    import cv2

    cv2.imwrite(str(corpus / faceless.source / f"img{faceless.onset}.jpg"), np.full((480, 640), 90, np.uint8))
    # 4: the annotation puts the apex after the offset
    book_path = next(corpus.glob("CASME2-coding-*.xlsx"))
    book = load_workbook(book_path)
    sheet = book["Sheet1"]
    header = [c.value for c in sheet[1]]
    for r in sheet.iter_rows(min_row=2):
        if r[header.index("Filename")].value == bad_annotation.clip_id and \
                f"casme2/sub{int(r[header.index('Subject')].value):02d}" == bad_annotation.subject:
            r[header.index("ApexFrame")].value = bad_annotation.offset + 5
    book.save(book_path)

    lines = []
    summary = extract(load("casme2", corpus), tmp_path / "store", ExtractConfig(), log=lines.append)
    assert (summary.n_ok, summary.n_failed) == (5, 4)
    store = fstore.open(tmp_path / "store")
    errors = {u: (s, e) for u, s, e in zip(store.errors.column("uid").to_pylist(), store.errors.column("stage").to_pylist(),
                                            store.errors.column("error").to_pylist())}
    assert errors[missing.uid][0] == "decode" and f"between {missing.onset} and {missing.offset}: {middle}" in errors[missing.uid][1]
    assert errors[unreadable.uid] == ("decode", errors[unreadable.uid][1]) and f"img{unreadable.offset}.jpg" in errors[unreadable.uid][1]
    assert errors[faceless.uid][0] == "face" and f"img{faceless.onset}.jpg" in errors[faceless.uid][1]
    assert errors[bad_annotation.uid][0] == "annotation" and "apex" in errors[bad_annotation.uid][1]
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    # The good clips are stored exactly as in a clean run.
    clean = fstore.open(tiny_store)
    clean_rows = dict(zip(clean.column("uid"), clean.tensor("flow_onset_apex")))
    for uid, features in zip(store.column("uid"), store.tensor("flow_onset_apex")):
        np.testing.assert_array_equal(features.numpy(), clean_rows[uid].numpy())


def test_float16_store_and_config_validation(tiny_corpus, tmp_path):
    clips = load("casme2", tiny_corpus)[:2]
    extract(clips, tmp_path / "s16", ExtractConfig(dtype="float16", size=64, workers=1))
    store = fstore.open(tmp_path / "s16")
    assert store.numpy("flow_onset_apex").dtype == np.float16 and store.numpy("flow_onset_apex").shape == (2, 4, 64, 64)
    for bad in ({"size": 8}, {"dtype": "int8"}, {"face_scale": 9.0}, {"flow_backend": "magic"}, {"workers": 0},
                {"flow_preset": "raft"}, {"device": "tpu"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ExtractConfig(**bad)
