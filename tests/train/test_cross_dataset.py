"""Cross-dataset protocols (issue 18): leave-one-dataset-out and train-on-A/test-on-B, with
per-dataset scores checked against scikit-learn on the run's saved predictions."""

import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score, recall_score

from fastmer.cli import main
from fastmer.models import MODELS
from fastmer.store.synthetic import synthetic_feature_store
from fastmer.train.protocols import PROTOCOLS, check_folds, cross_dataset, folds_manifest, inner_split, make_folds
from fastmer.train.run import train

QUICK = replace(MODELS["ststnet"].recipe, epochs=3, patience=None)
WORDS = ("happiness", "disgust", "surprise")  # megc2019-3class: positive, negative, surprise
DATASETS = ("casme2", "samm", "smic")


def _clips(datasets=DATASETS, subjects=2, per_subject=3):
    return [{"uid": f"{d}/s{s}/c{c}", "subject": f"{d}/s{s}", "dataset": d, "labels": [WORDS[(c + s) % 3]]}
            for d in datasets for s in range(subjects) for c in range(per_subject)]


@pytest.fixture(scope="module")
def composite_store(tmp_path_factory):
    """3 datasets x 2 subjects x 3 clips (one of each megc2019-3class class per subject)."""
    return synthetic_feature_store(tmp_path_factory.mktemp("composite") / "store", _clips(), size=16)


def test_leave_one_dataset_out_folds():
    clips = _clips(per_subject=2) + [{"uid": "mmew/x/c0", "subject": "x", "dataset": "mmew", "labels": []}]
    subjects = [c["subject"] for c in clips]
    datasets = [c["dataset"] for c in clips]
    folds = make_folds("cross-dataset", subjects, datasets=datasets)
    assert "cross-dataset" in PROTOCOLS
    assert [f.name for f in folds] == ["casme2", "mmew", "samm", "smic"]
    tested = np.zeros(len(clips), dtype=int)
    for fold in folds:
        assert {datasets[i] for i in fold.test} == {fold.name} == set(fold.test_datasets)
        assert {datasets[i] for i in fold.train} == set(DATASETS + ("mmew",)) - {fold.name} == set(fold.train_datasets)
        assert sorted([*fold.train, *fold.test]) == list(range(len(clips)))  # every other clip trains
        tested[fold.test] += 1
    assert (tested == 1).all()  # every clip tested exactly once
    check_folds(folds, subjects, every_clip_once=True)
    manifest = folds_manifest(folds, [c["uid"] for c in clips])
    assert manifest[1]["test"] == ["mmew/x/c0"] and manifest[1]["test_datasets"] == ["mmew"]
    assert manifest[0]["train_datasets"] == ["mmew", "samm", "smic"]
    # the dataset defaults to the subject's namespace
    assert [f.name for f in cross_dataset([c["subject"] for c in _clips()])] == list(DATASETS)


def test_train_on_a_test_on_b_folds_and_refusals():
    clips = _clips()
    subjects, datasets = [c["subject"] for c in clips], [c["dataset"] for c in clips]
    (fold,) = make_folds("cross-dataset", subjects, datasets=datasets, train_datasets="smic,casme2", test_datasets=["samm"])
    assert fold.name == "casme2+smic->samm" and fold.train_datasets == ("casme2", "smic")
    assert {datasets[i] for i in fold.train} == {"casme2", "smic"} and {datasets[i] for i in fold.test} == {"samm"}
    assert len(fold.train) == 12 and len(fold.test) == 6
    listing = r"the store's datasets: casme2, samm, smic"
    with pytest.raises(ValueError, match=r"test_datasets: unknown dataset\(s\) 'casme'; " + listing):
        cross_dataset(subjects, datasets, train_datasets=["samm"], test_datasets=["casme"])
    with pytest.raises(ValueError, match=r"train_datasets: unknown dataset\(s\) 'x', 'y'; " + listing):
        cross_dataset(subjects, datasets, train_datasets="x,y", test_datasets="samm")
    with pytest.raises(ValueError, match=r"overlap: samm in both \(" + listing):
        cross_dataset(subjects, datasets, train_datasets="samm,smic", test_datasets="samm")
    with pytest.raises(ValueError, match="give both"):
        cross_dataset(subjects, datasets, train_datasets="samm")
    with pytest.raises(ValueError, match="listed twice: samm"):
        cross_dataset(subjects, datasets, train_datasets="samm,samm", test_datasets="smic")
    with pytest.raises(ValueError, match="cross-dataset only"):
        make_folds("loso", subjects, train_datasets="samm", test_datasets="smic")
    one = [c["subject"] for c in _clips(datasets=("casme2",))]
    with pytest.raises(ValueError, match="at least two datasets; the store has 1: casme2"):
        make_folds("cross-dataset", one)


def test_inner_split_of_a_cross_dataset_fold_stays_in_the_training_datasets():
    clips = _clips(subjects=4)
    subjects, datasets = [c["subject"] for c in clips], [c["dataset"] for c in clips]
    for fold in make_folds("cross-dataset", subjects, datasets=datasets):
        fit, val = inner_split(fold.train, subjects, fraction=0.3, seed=1)
        assert {datasets[i] for i in val} <= set(fold.train_datasets)
        assert fold.name not in {datasets[i] for i in [*fit, *val]}


def _sklearn_scores(rows, classes):
    true = [r["true"] for r in rows]
    pred = [r["predicted"] for r in rows]
    return (f1_score(true, pred, labels=list(classes), average="macro", zero_division=0),
            recall_score(true, pred, labels=list(classes), average="macro", zero_division=0))


def test_leave_one_dataset_out_run_scores_match_sklearn(composite_store, tmp_path):
    report = train(composite_store, tmp_path / "lodo", protocol="cross-dataset", recipe=QUICK, jobs=1, seed=2)
    classes = report["classes"]
    assert report["protocol_options"] == {"mode": "leave-one-dataset-out", "datasets": list(DATASETS)}
    assert [r["fold"] for r in report["folds"]] == list(DATASETS)
    manifest = json.loads((tmp_path / "lodo" / "folds.json").read_text())
    for entry in manifest:
        assert entry["test_datasets"] == [entry["name"]]
        assert {u.split("/")[0] for u in entry["test"]} == {entry["name"]}
        assert {u.split("/")[0] for u in entry["train"]} == set(entry["train_datasets"]) == set(DATASETS) - {entry["name"]}
    rows = pq.read_table(tmp_path / "lodo" / "predictions.parquet").to_pylist()
    assert sorted(r["uid"] for r in rows) == sorted(c["uid"] for c in _clips())  # every clip tested once
    assert all(r["fold"] == r["dataset"] for r in rows)
    uf1, uar = _sklearn_scores(rows, classes)
    pooled = report["metrics"]["pooled"]
    assert pooled["uf1"] == pytest.approx(uf1) and pooled["uar"] == pytest.approx(uar)
    per_dataset = report["metrics"]["per_dataset"]
    assert sorted(per_dataset) == list(DATASETS)
    for d in DATASETS:
        uf1, uar = _sklearn_scores([r for r in rows if r["dataset"] == d], classes)
        assert per_dataset[d]["uf1"] == pytest.approx(uf1) and per_dataset[d]["uar"] == pytest.approx(uar)
        assert per_dataset[d]["n"] == 6


def test_train_on_a_test_on_b_run(composite_store, tmp_path):
    recipe = replace(QUICK, patience=2, val_fraction=0.5)
    report = train(composite_store, tmp_path / "ab", protocol="cross-dataset", train_datasets="casme2,smic",
                   test_datasets="samm", recipe=recipe, jobs=1)
    assert report["protocol_options"] == {"mode": "train-test", "train_datasets": ["casme2", "smic"],
                                          "test_datasets": ["samm"]}
    assert "only from the subjects of each fold's training datasets" in report["model_selection"]
    (row,) = report["folds"]
    assert row["train_datasets"] == ["casme2", "smic"] and row["test_datasets"] == ["samm"] and row["n_train"] == 12
    rows = pq.read_table(tmp_path / "ab" / "predictions.parquet").to_pylist()
    assert {r["dataset"] for r in rows} == {"samm"} and len(rows) == 6 == report["n_tested"]
    uf1, uar = _sklearn_scores(rows, report["classes"])
    assert report["metrics"]["per_dataset"]["samm"]["uf1"] == pytest.approx(uf1) == report["metrics"]["pooled"]["uf1"]
    assert report["metrics"]["per_dataset"]["samm"]["uar"] == pytest.approx(uar)
    # the final model is a model of the training datasets: it never saw the test dataset
    assert report["final_model"]["trained_on"] == {"datasets": ["casme2", "smic"], "clips": 12}
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) 'casme'; the store's datasets: casme2, samm, smic"):
        train(composite_store, tmp_path / "bad", protocol="cross-dataset", train_datasets="casme",
              test_datasets="samm", recipe=QUICK)
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_cross_dataset_refuses_a_single_dataset_store(tmp_path):
    store = synthetic_feature_store(tmp_path / "one", _clips(datasets=("casme2",)), size=16)
    with pytest.raises(ValueError, match="at least two datasets; the store has 1: casme2"):
        train(store, tmp_path / "run", protocol="cross-dataset", recipe=QUICK)


def test_cli_cross_dataset(composite_store, tmp_path):
    def run(*args):
        return CliRunner().invoke(main, ["train", str(composite_store), "-o", str(tmp_path / "cli"), "-j", "1",
                                         "--epochs", "2", "--device", "cpu", "--protocol", "cross-dataset", *args])

    result = run("--train-datasets", "samm", "--test-datasets", "samm")
    assert result.exit_code != 0 and "overlap: samm in both" in result.output
    result = run("--train-datasets", "samm")
    assert result.exit_code != 0 and "give both --train-datasets and --test-datasets" in result.output
    result = run("--train-datasets", "samm", "--test-datasets", "nope")
    assert result.exit_code != 0 and "the store's datasets: casme2, samm, smic" in result.output
    result = CliRunner().invoke(main, ["train", str(composite_store), "-o", str(tmp_path / "x"),
                                       "--train-datasets", "samm", "--test-datasets", "smic"])
    assert result.exit_code != 0 and "apply to --protocol cross-dataset" in result.output
    result = run("--train-datasets", "samm,casme2", "--test-datasets", "smic")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert report["protocol"] == "cross-dataset" and report["n_tested"] == 6
    assert sorted(report["metrics"]["per_dataset"]) == ["smic"]
    (entry,) = json.loads((tmp_path / "cli" / "folds.json").read_text())
    assert entry["train_datasets"] == ["casme2", "samm"] and entry["test_datasets"] == ["smic"]
