"""Extraction on a synthetic corpus: real features, and bad clips become error rows."""

import csv
import os
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
    assert store.column("face_angle") == [0.0] * 9 and store.column("view") == ["full"] * 9
    assert set(store.column("decoder")) <= {"dali-cpu", "opencv"}
    assert store.meta["params"]["face_detector"] == "opencv-haar:haarcascade_frontalface_default"
    assert store.meta["params"]["apex"] == "auto" and store.meta["params"]["apex_estimator"] == "pca"
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


def set_annotation(corpus, clip, column, value):
    """Change one cell of the synthetic corpus's coding spreadsheet."""
    book_path = next(corpus.glob("CASME2-coding-*.xlsx"))
    book = load_workbook(book_path)
    sheet = book["Sheet1"]
    header = [c.value for c in sheet[1]]
    for r in sheet.iter_rows(min_row=2):
        if r[header.index("Filename")].value == clip.clip_id and \
                f"casme2/sub{int(r[header.index('Subject')].value):02d}" == clip.subject:
            r[header.index(column)].value = value
    book.save(book_path)


def test_bad_clips_become_error_rows_and_the_rest_is_unchanged(tiny_corpus, tiny_store, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    clips = {c.clip_id + "@" + c.subject: c for c in load("casme2", corpus)}
    victims = list(clips.values())
    missing, unreadable, faceless, bad_annotation, bad_apex = victims[0], victims[4], victims[5], victims[8], victims[2]
    # 1: a frame in the middle is missing
    middle = missing.frame_numbers[len(missing.frame_numbers) // 2]
    (corpus / missing.source / f"img{middle}.jpg").unlink()
    # 2: a frame is not an image
    (corpus / unreadable.source / f"img{unreadable.offset}.jpg").write_bytes(b"not a jpeg")
    # 3: the clip shows no face (every frame: one blank frame among faces is a jump, refused before the face)
    import cv2

    for number in faceless.frame_numbers:
        cv2.imwrite(str(corpus / faceless.source / f"img{number}.jpg"), np.full((480, 640), 90, np.uint8))
    # 4: the annotation puts the offset before the onset: unusable
    set_annotation(corpus, bad_annotation, "OffsetFrame", bad_annotation.onset - 1)
    # 5: the apex is after the offset: spotted instead (--apex auto), the clip is kept
    set_annotation(corpus, bad_apex, "ApexFrame", bad_apex.offset + 5)

    lines = []
    loaded = load("casme2", corpus)
    assert bad_apex.uid in loaded.report.defects["apex_outside"]
    summary = extract(loaded, tmp_path / "store", ExtractConfig(face_detector="haar"), log=lines.append)
    assert (summary.n_ok, summary.n_failed) == (5, 4)
    store = fstore.open(tmp_path / "store")
    errors = {u: (s, e) for u, s, e in zip(store.errors.column("uid").to_pylist(), store.errors.column("stage").to_pylist(),
                                            store.errors.column("error").to_pylist())}
    assert errors[missing.uid][0] == "decode" and f"frame(s) {middle} missing in {corpus / missing.source}" in errors[missing.uid][1]
    assert errors[unreadable.uid] == ("decode", errors[unreadable.uid][1]) and f"img{unreadable.offset}.jpg" in errors[unreadable.uid][1]
    assert errors[faceless.uid][0] == "face" and f"img{faceless.onset}.jpg" in errors[faceless.uid][1]
    assert errors[bad_annotation.uid][0] == "annotation" and "is not before offset" in errors[bad_annotation.uid][1]
    errors_logged = [line for line in lines if line.startswith("error: ")]
    assert len(errors_logged) == 4
    assert any(line.startswith("face detector: opencv-haar") for line in lines)
    assert any(line.startswith("decoder: ") for line in lines)
    assert any("apex_outside 2" in line for line in lines if line.startswith("annotations: "))
    # The spotted apex of the clip with the bad one is recorded as such, near the truth.
    row = store.column("uid").index(bad_apex.uid)
    assert store.column("apex_source")[row] == "spotted:pca"
    assert abs(store.column("apex")[row] - bad_apex.apex) <= 2  # bad_apex.apex: the original annotation
    # The other good clips are stored exactly as in a clean run.
    clean = fstore.open(tiny_store)
    clean_rows = dict(zip(clean.column("uid"), clean.tensor("flow_onset_apex")))
    for uid, features in zip(store.column("uid"), store.tensor("flow_onset_apex")):
        if uid != bad_apex.uid:
            np.testing.assert_array_equal(features.numpy(), clean_rows[uid].numpy())


def test_apex_policies(tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    clips = list(load("casme2", corpus))
    set_annotation(corpus, clips[3], "ApexFrame", "/")
    loaded = load("casme2", corpus)
    strict = extract(loaded, tmp_path / "strict", ExtractConfig(face_detector="haar", apex="annotation", size=64))
    assert strict.n_failed == 1 and strict.failures[0]["uid"] == clips[3].uid
    assert "no valid apex annotated" in strict.failures[0]["error"]
    spotted = extract(loaded, tmp_path / "spot", ExtractConfig(face_detector="haar", apex="spot", apex_estimator="regions", size=64))
    store = fstore.open(tmp_path / "spot")
    assert spotted.n_failed == 0 and store.column("apex_source") == ["spotted:regions"] * 9
    # the estimator draws every stored motion curve, annotated apex or not: it is a feature parameter
    assert fstore.open(tmp_path / "strict").meta["params"]["apex_estimator"] == "pca"
    for apex, onset, curve in zip(store.column("apex"), store.column("onset"), store.column("motion_curve"), strict=True):
        assert apex - onset == 1 + int(np.argmax(curve[1:]))  # spotted on the stored curve
    # the synthetic annotation is the true apex
    errors = [abs(a - c.apex) for a, c in zip(store.column("apex"), clips, strict=True)]
    assert sum(e <= 2 for e in errors) >= 8, errors


def side_by_side_corpus(tiny_corpus, root, clips):
    """The tiny corpus with every frame placed twice side by side (a mirrored copy on the right)."""
    import cv2

    shutil.copytree(tiny_corpus, root)
    for clip in clips:
        for path in clip.frame_paths:
            target = root / os.path.relpath(path, tiny_corpus)
            frame = cv2.imread(str(path))
            cv2.imwrite(str(target), np.concatenate([frame, frame[:, ::-1]], axis=1))
    return root


def test_views_split_crops_each_half(tiny_corpus, tiny_store, tmp_path):
    clips = list(load("casme2", tiny_corpus))[:3]
    corpus = side_by_side_corpus(tiny_corpus, tmp_path / "corpus", clips)
    wide = [c for c in load("casme2", corpus) if c.uid in {k.uid for k in clips}]
    # The ipol flow: OpenCV's TV-L1 (the default preset) is not mirror-equivariant — its
    # pyramid is anchored at the top-left corner and its warps read zeros past the border —,
    # so mirrored views would not give mirrored flows whatever the view splitting does.
    config = ExtractConfig(face_detector="haar", views="split", apex="spot", flow_preset="ipol")
    summary = extract(wide, tmp_path / "store", config)
    assert (summary.n_ok, summary.n_rows, summary.n_failed) == (3, 6, 0)
    store = fstore.open(tmp_path / "store")
    assert store.column("uid") == [f"{c.uid}@{v}" for c in clips for v in ("left", "right")]
    assert store.column("view") == ["left", "right"] * 3
    boxes, apexes = store.column("face_box"), store.column("apex")
    features = store.tensor("flow_onset_apex").numpy()
    for i in range(0, 6, 2):
        left, right = boxes[i], boxes[i + 1]
        # each half is cropped on its own: boxes are in half-frame coordinates and mirror each other
        assert abs(left[2] - right[2]) <= 6 and abs((left[0] + left[2] / 2) + (right[0] + right[2] / 2) - 640) <= 8
        assert apexes[i] == apexes[i + 1]  # one apex per clip from the summed curves
        u_left, u_right = features[i, 0], features[i + 1, 0]
        # the right view is the mirrored left: the same motion, mirrored (u negated)
        assert np.corrcoef(u_left.ravel(), -u_right[:, ::-1].ravel())[0, 1] > 0.3
        magnitude_left, magnitude_right = features[i, 2], features[i + 1, 2][:, ::-1]
        assert np.corrcoef(magnitude_left.ravel(), magnitude_right.ravel())[0, 1] > 0.8
        assert 0.9 < magnitude_left.mean() / magnitude_right.mean() < 1.1
    clean = fstore.open(tiny_store)
    assert apexes[::2] == clean.column("apex")[:3] or all(
        abs(a - b) <= 2 for a, b in zip(apexes[::2], clean.column("apex")[:3], strict=True))


def test_float16_store_and_config_validation(tiny_corpus, tmp_path):
    clips = load("casme2", tiny_corpus)[:2]
    extract(clips, tmp_path / "s16", ExtractConfig(face_detector="haar", dtype="float16", size=64, workers=1))
    store = fstore.open(tmp_path / "s16")
    assert store.numpy("flow_onset_apex").dtype == np.float16 and store.numpy("flow_onset_apex").shape == (2, 4, 64, 64)
    for bad in ({"size": 8}, {"dtype": "int8"}, {"face_scale": 9.0}, {"flow_backend": "magic"}, {"workers": 0},
                {"flow_preset": "raft"}, {"device": "tpu"}, {"decoder": "ffmpeg"}, {"face_detector": "dlib"},
                {"face_box": "each"}, {"views": "quad"}, {"apex": "guess"}, {"apex_estimator": "magic"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ExtractConfig(**bad)


def test_every_representation_is_stored_and_wired_to_the_right_frames(tiny_corpus, tiny_store):
    """Each stored tensor equals its function applied to the clip's own crops (decoded again
    with OpenCV and cut with the stored box) or to the stored flows."""
    import torch

    from fastmer.config import DEFAULT_REPRESENTATIONS, REPRESENTATION_NAMES
    from fastmer.decode import open_clip_frames
    from fastmer.face import FaceBox, crop_clip
    from fastmer.motion.representations import (
        REPRESENTATIONS,
        cof,
        dynamic_images,
        mesti,
        mm_cof,
        motion_intensity_dynamic_images,
        phase_dynamic_images,
    )
    from fastmer.phases.spotting import principal_curve

    assert tuple(REPRESENTATIONS) == REPRESENTATION_NAMES  # one list of names, checked
    store = fstore.open(tiny_store)
    assert set(store.representations) == {*DEFAULT_REPRESENTATIONS, "keyframes"}
    assert set(REPRESENTATION_NAMES) - set(DEFAULT_REPRESENTATIONS) == {"lbptop", "apex_frame", "onset_frame"}  # by name
    assert store.channels("keyframes") == ("onset", "apex", "offset") and store.numpy("keyframes").dtype == np.uint8
    clips = {c.uid: c for c in load("casme2", tiny_corpus)}
    oa, phases = store.tensor("flow_onset_apex"), store.tensor("flow_phases")
    np.testing.assert_array_equal(phases[:, :4].numpy(), oa.numpy())  # the same onset->apex flow
    flow_ao = phases[:, 4:6].double()  # the apex->offset phase carries its own magnitude and strain
    np.testing.assert_allclose(phases[:, 6:7].double(), flow_magnitude_reference(flow_ao), atol=1e-5)
    np.testing.assert_allclose(phases[:, 7:8].double(), optical_strain_reference(flow_ao), atol=1e-5)
    flow_oa, flow_ao = phases[:, 0:2].double(), phases[:, 4:6].double()
    np.testing.assert_allclose(store.tensor("cof").numpy(), cof(flow_oa, flow_ao).numpy(), atol=1e-5)
    np.testing.assert_allclose(store.tensor("mm_cof").numpy(), mm_cof(flow_oa, flow_ao).numpy(), atol=1e-5)
    for i, uid in enumerate(store.column("uid")[:3]):
        clip, (x, y, w, h) = clips[uid], store.column("face_box")[i]
        with open_clip_frames(clip, engine="opencv") as source:
            frames = source.read(range(clip.onset, clip.offset + 1))
        crops_u8 = crop_clip(frames, FaceBox(x, y, w, h), 128)
        crops = torch.from_numpy(crops_u8).float()
        apex = store.column("apex")[i] - clip.onset
        np.testing.assert_array_equal(store.numpy("keyframes")[i], crops_u8[[0, apex, -1]])
        curve = store.column("motion_curve")[i]
        assert len(curve) == len(crops_u8)
        np.testing.assert_allclose(curve, principal_curve(crops_u8).numpy(), rtol=1e-5, atol=1e-5 * max(curve))
        for name, expected in (("dynamic_image", dynamic_images([crops])),
                               ("dynamic_image_phases", phase_dynamic_images([crops], [apex])),
                               ("midi", motion_intensity_dynamic_images([crops])),
                               ("mesti", mesti([crops], [apex]))):
            np.testing.assert_allclose(store.tensor(name)[i].numpy(), expected[0].numpy(), atol=1e-5, err_msg=name)


def test_a_subset_of_representations(tiny_corpus, tmp_path):
    clips = load("casme2", tiny_corpus)[:2]
    extract(clips, tmp_path / "di", ExtractConfig(face_detector="haar", representations=("dynamic_image", "mesti"), size=64))
    store = fstore.open(tmp_path / "di")
    assert set(store.representations) == {"dynamic_image", "mesti", "keyframes"}
    assert store.tensor("mesti").shape == (2, 1, 64, 64)
    assert "tvl1" not in store.meta["params"] and "flow_backend" not in store.meta["params"]  # no flow computed
    with pytest.raises(ValueError, match="representations must be distinct names"):
        ExtractConfig(representations=("dynamic_image", "optical_flux"))


def test_lbptop_representation(tiny_corpus, tmp_path):
    """--representations lbptop: the stored histograms are the NumPy reference's on the clip's
    crops onset..offset (decoded again); a clip shorter than 9 frames is an error row, not a crash."""
    import dataclasses

    from fastmer.decode import open_clip_frames
    from fastmer.face import FaceBox, crop_clip
    from fastmer.motion.lbptop import lbp_top_reference

    clips = load("casme2", tiny_corpus)
    long = clips[:2]
    assert all(c.offset - c.onset + 1 >= 9 for c in long)
    short = [dataclasses.replace(clips[2], apex=clips[2].onset + 3, offset=clips[2].onset + 7)]  # 8 frames
    summary = extract(long + short, tmp_path / "lbp", ExtractConfig(face_detector="haar", representations=("lbptop",), size=64))
    assert summary.n_failed == 1 and "LBP-TOP (lbptop, R_T = 4) needs at least 9" in summary.failures[0]["error"]
    store = fstore.open(tmp_path / "lbp")
    assert store.channels("lbptop") == ("xy", "xt", "yt") and store.tensor("lbptop").shape == (2, 3, 25, 16)
    assert store.meta["params"]["lbptop"] == {"radii": [1, 1, 4], "points": 4, "blocks": [5, 5],
                                              "interpolation": "bilinear"}
    for i, clip in enumerate(long):
        x, y, w, h = store.column("face_box")[i]
        with open_clip_frames(clip, engine="opencv") as source:
            crops = crop_clip(source.read(range(clip.onset, clip.offset + 1)), FaceBox(x, y, w, h), 64)
        np.testing.assert_allclose(store.numpy("lbptop")[i], lbp_top_reference(crops), atol=1e-6)


def test_stage_times_pairs_and_a_failing_write(tiny_corpus, tmp_path, monkeypatch):
    """The summary times every stage and counts the flow pairs; a write that fails on the
    writer thread stops the run with that error, and the next run resumes from what was
    committed."""
    from fastmer.extract import STAGES
    from fastmer.store.writer import StoreWriter

    clips = load("casme2", tiny_corpus)
    lines = []
    config = ExtractConfig(face_detector="haar", size=64, batch_size=2, shard_size=2)
    summary = extract(clips[:4], tmp_path / "ok", config, log=lines.append)
    assert summary.n_pairs == 8 and summary.pairs_per_s > 0  # onset->apex and apex->offset per clip
    assert list(summary.stages) == list(STAGES) and all(summary.stages[s] > 0 for s in STAGES)
    assert sum(summary.stages[s] for s in ("flow", "representations")) < summary.seconds
    assert any(line.startswith("stages: wall") for line in lines)

    original, calls = StoreWriter.add, []

    def add(self, row, tensors):
        calls.append(row["uid"])
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        original(self, row, tensors)

    monkeypatch.setattr(StoreWriter, "add", add)
    with pytest.raises(OSError, match="No space left"):
        extract(clips, tmp_path / "full", config, log=lambda line: None)
    monkeypatch.setattr(StoreWriter, "add", original)
    partial = fstore.open(tmp_path / "full")
    assert not partial.complete and partial.column("uid") == [c.uid for c in clips[:4]]  # two shards committed
    resumed = extract(clips, tmp_path / "full", config, log=lambda line: None)
    assert resumed.n_skipped == 4 and resumed.n_ok == 5
    assert fstore.open(tmp_path / "full").column("uid") == [c.uid for c in clips]


def test_a_duplicated_sheet_row_is_extracted_once_and_reported(tiny_corpus, tmp_path):
    """Issue 17: a repeated row of a CASME II sheet made every run stop at that clip ("already in the store")."""
    from pathlib import Path

    from click.testing import CliRunner

    from fastmer.cli import main
    from fastmer.datasets.synth import SPREADSHEET_NAME

    corpus = Path(shutil.copytree(tiny_corpus, tmp_path / "corpus"))
    book = load_workbook(corpus / SPREADSHEET_NAME)
    sheet = book.active
    sheet.append([cell.value for cell in sheet[3]])  # the second clip's row again, at the end
    book.save(corpus / SPREADSHEET_NAME)
    result = CliRunner().invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(tmp_path / "store"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "9 of 9 clips extracted" in result.stdout
    assert f"rows 3 and {sheet.max_row}: both describe" in result.stderr and "duplicate_row 1" in result.stderr
    store = fstore.open(tmp_path / "store")
    assert len(store) == 9 and len(set(store.column("uid"))) == 9


def test_a_truncated_frame_is_an_error_row_naming_the_file(tiny_corpus, tmp_path):
    """Issue 17, item 2: with the OpenCV decoder a half JPEG was decoded grey and its clip extracted."""
    from pathlib import Path

    corpus = Path(shutil.copytree(tiny_corpus, tmp_path / "corpus"))
    clips = load("casme2", corpus)
    victim = clips[4]
    frame = corpus / victim.source / f"img{victim.apex}.jpg"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    summary = extract(load("casme2", corpus), tmp_path / "store", ExtractConfig(face_detector="haar", decoder="opencv"), log=lambda line: None)
    assert (summary.n_ok, summary.n_failed) == (8, 1)
    store = fstore.open(tmp_path / "store")
    row = store.errors.to_pylist()[0]
    assert row["uid"] == victim.uid and row["stage"] == "decode"
    assert frame.name in row["error"] and "truncated JPEG" in row["error"]
