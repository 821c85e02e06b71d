"""The 4DME path end to end from the command line: a corpus in 4DME's layout (two views side by
side in every frame, multi-label coding), `fastmer extract --dataset 4dme --views split`, then
`fastmer train --model microattnet --labels 4dme-multilabel` in both view layouts."""

import json
import os

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.datasets import load

# MEGC class of the synthetic clip -> a 4DME emotion cell (some clips carry two labels)
EMOTIONS = {"happiness": "Positive", "surprise": "Surprise+Positive", "disgust": "Negative",
            "repression": "Repression", "others": "Others"}


@pytest.fixture(scope="module")
def fourdme_corpus(tiny_corpus, tmp_path_factory):
    from openpyxl import Workbook

    root = tmp_path_factory.mktemp("fourdme") / "4DME"
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion"])
    for clip in load("casme2", tiny_corpus):
        subject = clip.subject.rsplit("/", 1)[-1]
        folder = root / subject / clip.clip_id
        folder.mkdir(parents=True)
        for number, path in zip(clip.frame_numbers, clip.frame_paths, strict=True):
            frame = cv2.imread(str(path))
            assert cv2.imwrite(str(folder / f"{number}.jpg"), np.concatenate([frame, frame[:, ::-1]], axis=1))
        emotion = EMOTIONS.get(clip.labels[0], "Others")
        sheet.append([subject, clip.clip_id, clip.onset, clip.apex, clip.offset, "AU1", emotion])
    workbook.save(root / "4DME_Labelling_Micro_release v1.0.xlsx")
    return root


@pytest.mark.slow
def test_4dme_split_views_extract_and_train(fourdme_corpus, tmp_path):
    runner = CliRunner()
    store_path = tmp_path / "store"
    result = runner.invoke(main, ["extract", str(fourdme_corpus), "--face-detector", "haar", "-d", "4dme", "--views", "split", "--apex", "spot",
                                  "-r", "flow_phases", "--size", "48", "-o", str(store_path)])
    assert result.exit_code == 0, result.output
    store = fstore.open(store_path)
    uids, views, apexes = store.column("uid"), store.column("view"), store.column("apex")
    assert len(uids) == 18 and views == ["left", "right"] * 9
    for i in range(0, 18, 2):
        assert uids[i].removesuffix("@left") == uids[i + 1].removesuffix("@right")
        assert apexes[i] == apexes[i + 1]  # one apex per clip, spotted on both views' curves
    assert set(store.column("apex_source")) == {"spotted:" + store.meta["params"]["apex_estimator"]}

    for layout in ("stack", "separate"):
        out = tmp_path / layout
        result = runner.invoke(main, ["train", str(store_path), "-m", "microattnet", "--labels", "4dme-multilabel",
                                      "--epochs", "3", "--patience", "2", "--view-layout", layout, "-j", "1",
                                      "-o", str(out)])
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        assert report["multilabel"] and report["n_folds"] == 3 and report["n_clips"] == report["n_tested"] == 9
        assert report["input"]["view_layout"] == layout
        assert report["n_samples"] == (9 if layout == "stack" else 18)
        assert "macro_uf1" in report["metrics"]["pooled"] and "thresholds" in report["folds"][0]
        assert "inner split of each fold's training subjects" in report["model_selection"]
        predictions = pq.read_table(out / "predictions.parquet").to_pydict()
        assert sorted(predictions["uid"]) == sorted({u.partition("@")[0] for u in uids})
        for fold in json.loads((out / "folds.json").read_text()):
            test_subjects = {u.split("/")[1] for u in fold["test"]}
            assert not test_subjects & {u.split("/")[1] for u in fold["train"]}
    assert os.path.exists(tmp_path / "stack" / "model.safetensors")
