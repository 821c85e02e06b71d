import json
from dataclasses import replace

import pyarrow.parquet as pq
import pytest
import torch

import fastmer.store as fstore
from fastmer.models import MODELS
from fastmer.models.model import MERModel
from fastmer.train.protocols import loso, make_folds
from fastmer.train.run import train


def test_loso_partitions_subjects():
    subjects = ["b", "a", "b", "c", "a", "a"]
    folds = loso(subjects)
    assert [f.name for f in folds] == ["a", "b", "c"]
    for fold in folds:
        assert sorted(fold.train.tolist() + fold.test.tolist()) == list(range(6))
        assert {subjects[i] for i in fold.test} == {fold.name}
        assert fold.name not in {subjects[i] for i in fold.train}
    with pytest.raises(ValueError, match="at least two subjects"):
        make_folds("loso", ["a", "a"])


def test_run_outputs(tiny_store, tiny_run):
    report = json.loads((tiny_run / "report.json").read_text())
    pooled = report["metrics"]["pooled"]
    assert report["n_clips"] == 9 and report["n_folds"] == 3 and report["classes"] == ["negative", "positive", "surprise"]
    assert sum(sum(r) for r in pooled["confusion_matrix"]) == 9
    assert sum(f["n_test"] for f in report["folds"]) == 9
    assert report["model_selection"].startswith("none")
    # folds.json: every clip tested exactly once, never trained on its own subject
    folds = json.loads((tiny_run / "folds.json").read_text())
    tested = [u for f in folds for u in f["test"]]
    assert sorted(tested) == sorted(fstore.open(tiny_store).column("uid"))
    for f in folds:
        subject = lambda uid: uid.rsplit("/", 1)[0]  # noqa: E731
        assert {subject(u) for u in f["test"]} == {f["fold"]}
        assert f["fold"] not in {subject(u) for u in f["train"]}
    preds = pq.read_table(tiny_run / "predictions.parquet").to_pylist()
    assert len(preds) == 9 and all(abs(sum(p["probabilities"]) - 1) < 1e-5 for p in preds)
    correct = sum(p["true"] == p["predicted"] for p in preds)
    assert pooled["accuracy"] == pytest.approx(correct / 9)


def test_weights_are_safetensors_not_pickle(tiny_run):
    raw = (tiny_run / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert "fc.weight" in header and header["__metadata__"]["fastmer_model"] == "ststnet"
    assert b"\x80\x04" not in raw[:2]  # not a pickle stream
    model = MERModel.load(tiny_run / "model.safetensors", tiny_run / "model.json")
    assert model(torch.zeros(2, 4, 128, 128)).shape == (2, 3)


def test_same_seed_same_results_and_excluded_labels(tiny_store, tiny_run, tmp_path):
    recipe = replace(MODELS["ststnet"].recipe, epochs=15)
    again = train(tiny_store, tmp_path / "again", recipe=recipe)
    first = json.loads((tiny_run / "report.json").read_text())
    assert again["metrics"] == first["metrics"]
    # casme2-5class keeps happiness/disgust/surprise, so nothing is excluded...
    five = train(tiny_store, tmp_path / "five", labels="casme2-5class", recipe=replace(recipe, epochs=1))
    assert five["excluded_clips"] == [] and five["classes"][0] == "happiness"


def test_refuses_non_empty_run_dir(tiny_store, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(FileExistsError, match="not empty"):
        train(tiny_store, tmp_path / "x")


def test_kfold_and_holdout_runs(tiny_store, tmp_path):
    """Other protocols: every fold split by subject, fold lists written, hold-out scores only its test clips."""
    recipe = replace(MODELS["ststnet"].recipe, epochs=2)
    store = fstore.open(tiny_store)
    subject_of = dict(zip(store.column("uid"), store.column("subject"), strict=True))
    report = train(tiny_store, tmp_path / "kfold", protocol="kfold", k=3, recipe=recipe, seed=4)
    assert report["n_folds"] == 3 and report["n_tested"] == 9 and report["protocol_options"] == {"k": 3}
    averaged = report["metrics"]["fold_averaged"]
    assert averaged["n_folds"] == 3 and "uf1_fold_mean" in averaged and "uf1" not in averaged  # labelled apart
    assert "per_dataset" not in report["metrics"]  # one corpus
    report = train(tiny_store, tmp_path / "holdout", protocol="holdout", test_fraction=0.34, recipe=recipe, seed=4)
    (fold,) = json.loads((tmp_path / "holdout" / "folds.json").read_text())
    test_subjects = {subject_of[u] for u in fold["test"]}
    assert len(test_subjects) == 1 and not test_subjects & {subject_of[u] for u in fold["train"]}
    assert report["n_tested"] == len(fold["test"]) == 3 and report["metrics"]["pooled"]["n"] == 3
    assert "fold_averaged" not in report["metrics"]
    preds = pq.read_table(tmp_path / "holdout" / "predictions.parquet").column("uid").to_pylist()
    assert sorted(preds) == sorted(fold["test"])


def test_early_stopping_keeps_the_best_validation_epoch():
    """fit() with a validation set restores the epoch with the best validation UF1 and stops
    `patience` epochs after it; class weights come from the training labels only."""
    import torch.nn.functional as F

    from fastmer.train.metrics import confusion_matrix, scores
    from fastmer.train.trainer import fit, make_loss, predict

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = (x[:, 0] + 0.8 * torch.randn(120, generator=g) > 0).long() + (x[:, 1] > 1.2).long()
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    recipe = replace(MODELS["ststnet"].recipe, epochs=60, lr=3e-2, batch_size=16, patience=5, class_weighting="inverse")
    history = fit(net, x[:80], y[:80], recipe, seed=1, num_classes=3, val=(x[80:], y[80:]))
    best = history.best_epoch
    assert len(history.val_uf1) == len(history.train_loss) <= 60
    assert history.val_uf1[best - 1] == max(history.val_uf1)
    assert len(history.train_loss) == 60 or len(history.train_loss) == best + 5  # stopped by patience
    uf1 = scores(confusion_matrix(y[80:].tolist(), predict(net, x[80:]).argmax(1).tolist(), 3), ["a", "b", "c"])["uf1"]
    assert uf1 == pytest.approx(history.val_uf1[best - 1])  # the kept weights are the best epoch's
    counts = torch.bincount(y[:80], minlength=3).double()
    weights = (1 / counts) / (1 / counts).mean()
    logits = torch.randn(10, 3, generator=g)
    target = torch.randint(0, 3, (10,), generator=g)
    expected = F.cross_entropy(logits.double(), target, weight=weights)
    assert make_loss(recipe, y[:80], 3)(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_run_with_early_stopping_records_it(tiny_store, tmp_path):
    recipe = replace(MODELS["ststnet"].recipe, epochs=4, patience=2, val_fraction=0.5, loss="focal")
    report = train(tiny_store, tmp_path / "es", recipe=recipe)
    assert report["model_selection"].startswith("early stopping (patience 2)")
    for row in report["folds"]:
        assert 1 <= row["best_epoch"] <= row["epochs_run"] <= 4 and len(row["val_uf1"]) == row["epochs_run"]
    assert report["recipe"]["loss"] == "focal"


def test_fold_weights_and_figures(tiny_run):
    """Each fold's model is saved (safetensors + JSON naming its fold) and predicts its test
    clips as predictions.parquet says; the figures are written."""
    import cv2

    report = json.loads((tiny_run / "report.json").read_text())
    store = fstore.open(report["store"])
    preds = {p["uid"]: p for p in pq.read_table(tiny_run / "predictions.parquet").to_pylist()}
    uids = store.column("uid")
    for row in report["folds"]:
        weights = tiny_run / row["weights"]
        model = MERModel.load(weights, weights.with_suffix(".json"))
        assert json.loads(weights.with_suffix(".json").read_text())["fold"] == row["fold"]
        test = [i for i, u in enumerate(uids) if preds[u]["fold"] == row["fold"]]
        with torch.no_grad():
            probs = torch.softmax(model(store.tensor("flow_onset_apex")[test]), dim=1)
        expected = torch.tensor([preds[uids[i]]["probabilities"] for i in test])
        torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
    # matplotlib figures at 150 dpi (their content: tests/test_figures.py)
    for name in ("confusion.png", "curves.png"):
        assert (tiny_run / name).read_bytes().startswith(b"\x89PNG")
        image = cv2.imread(str(tiny_run / name))
        assert image is not None and min(image.shape[:2]) >= 300


def test_loading_refuses_mismatched_weights(tiny_run, tmp_path):
    """A config paired with other weights (hash), or weights that do not fit its network, are refused."""
    report = json.loads((tiny_run / "report.json").read_text())
    first, second = (tiny_run / row["weights"] for row in report["folds"][:2])
    with pytest.raises(ValueError, match="sha256 differs"):
        MERModel.load(second, first.with_suffix(".json"))
    config = json.loads(first.with_suffix(".json").read_text())
    config.pop("weights_sha256")
    config.update(model="offapexnet", input={**config["input"], "channels": ["u", "v"]})
    (tmp_path / "other.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not fit the offapexnet network"):
        MERModel.load(first, tmp_path / "other.json")
