"""fastmer train's engine on synthetic feature stores: parallel folds, the LBP-TOP + SVM
baseline, multi-label runs with thresholds from training subjects only, augmentation of
training clips only, dual-phase dynamic images, mixed precision."""

import hashlib
import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fastmer.store as fstore
from fastmer.models import MODELS, InputSpec, ModelEntry
from fastmer.models.model import MERModel
from fastmer.train.protocols import inner_split, loso
from fastmer.train.run import train

QUICK = replace(MODELS["ststnet"].recipe, epochs=6)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_synthetic_store(synthetic_store):
    s = fstore.open(synthetic_store)
    assert s.tensor("flow_onset_apex").shape == (24, 4, 28, 28) and s.channels("lbptop") == ("xy", "xt", "yt")
    np.testing.assert_allclose(s.numpy("lbptop").sum(-1), 1.0, rtol=1e-5)  # valid histograms
    assert s.column("subject")[:7] == ["d/s0"] * 6 + ["d/s1"]


def test_parallel_folds_give_the_same_run(synthetic_store, tmp_path):
    """Worker processes change where folds train, not what they learn: same predictions, same weights."""
    one = train(synthetic_store, tmp_path / "one", recipe=QUICK, jobs=1)
    two = train(synthetic_store, tmp_path / "two", recipe=QUICK, jobs=2)
    assert two["execution"]["jobs"] == 2 and one["execution"]["jobs"] == 1
    assert pq.read_table(tmp_path / "one" / "predictions.parquet") == pq.read_table(tmp_path / "two" / "predictions.parquet")
    for row_one, row_two in zip(one["folds"], two["folds"], strict=True):
        assert _sha(tmp_path / "one" / row_one["weights"]) == _sha(tmp_path / "two" / row_two["weights"])
    assert _sha(tmp_path / "one" / "model.safetensors") == _sha(tmp_path / "two" / "model.safetensors")
    assert one["metrics"] == two["metrics"]


def test_lbptop_svm_baseline(synthetic_store, tmp_path):
    """Each fold's decision values are those of LinearSVM (NumPy, float64) fitted on the fold's
    training histograms; the saved model reproduces them; a recipe is refused."""
    from fastmer.models.svm import LinearSVM

    report = train(synthetic_store, tmp_path / "svm", model="lbptop-svm", model_options={"C": 0.5})
    assert report["recipe"] is None and report["fitter"] == "solver" and report["model_options"]["C"] == 0.5
    assert report["model_selection"].startswith("none: a convex problem")
    s = fstore.open(synthetic_store)
    features = s.numpy("lbptop").reshape(24, -1).astype(np.float64)
    classes = {"disgust": 0, "happiness": 1, "surprise": 2}  # megc2019-3class: negative, positive, surprise
    labels = np.array([classes[w[0]] for w in s.column("labels")])
    preds = {p["uid"]: p for p in pq.read_table(tmp_path / "svm" / "predictions.parquet").to_pylist()}
    uids = s.column("uid")
    for fold, row in zip(loso(s.column("subject")), report["folds"], strict=True):
        reference = LinearSVM(0.5, preprocess="hellinger").fit(features[fold.train], labels[fold.train], "balanced")
        expected = reference.decision_function(features[fold.test])
        got = np.array([preds[uids[j]]["decision_values"] for j in fold.test])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        weights = tmp_path / "svm" / row["weights"]
        model = MERModel.load(weights, weights.with_suffix(".json"))
        with torch.no_grad():
            np.testing.assert_allclose(model(s.tensor("lbptop")[fold.test]).numpy(), got, rtol=1e-5, atol=1e-5)
    assert json.loads((tmp_path / "svm" / "model.json").read_text())["options"]["kernel"] == "linear"
    with pytest.raises(ValueError, match="fitted by a solver"):
        train(synthetic_store, tmp_path / "bad", model="lbptop-svm", recipe=QUICK)
    with pytest.raises(ValueError, match="augmentation does not apply"):
        train(synthetic_store, tmp_path / "bad2", model="lbptop-svm", augment=["flip"])


def test_lbptop_chi2_svm_baseline(synthetic_store, tmp_path):
    """-O kernel=chi2: each fold's decision values are those of KernelSVM (sklearn's SVC on the
    chi-squared kernel) fitted on the fold's training histograms; the saved fold models (support
    vectors sized by the file) reproduce them."""
    from fastmer.models.svm import KernelSVM

    options = {"C": 2.0, "kernel": "chi2", "preprocess": "none"}
    report = train(synthetic_store, tmp_path / "chi2", model="lbptop-svm", model_options=options, jobs=1)
    assert report["fitter"] == "solver" and report["model_options"]["kernel"] == "chi2"
    s = fstore.open(synthetic_store)
    features = s.numpy("lbptop").reshape(24, -1).astype(np.float64)
    classes = {"disgust": 0, "happiness": 1, "surprise": 2}
    labels = np.array([classes[w[0]] for w in s.column("labels")])
    preds = {p["uid"]: p for p in pq.read_table(tmp_path / "chi2" / "predictions.parquet").to_pylist()}
    uids = s.column("uid")
    for fold, row in zip(loso(s.column("subject")), report["folds"], strict=True):
        reference = KernelSVM(2.0, kernel="chi2").fit(features[fold.train], labels[fold.train], "balanced")
        got = np.array([preds[uids[j]]["decision_values"] for j in fold.test])
        np.testing.assert_allclose(got, reference.decision_function(features[fold.test]), rtol=1e-4, atol=1e-4)
        weights = tmp_path / "chi2" / row["weights"]
        model = MERModel.load(weights, weights.with_suffix(".json"))
        assert model.net.support.shape == (len(reference.support_), 1200)
        with torch.no_grad():
            np.testing.assert_allclose(model(s.tensor("lbptop")[fold.test]).numpy(), got, rtol=1e-5, atol=1e-5)


def test_multilabel_thresholds_come_from_training_subjects(synthetic_multilabel_store, tmp_path):
    """4dme-multilabel: one sigmoid per class; each fold's thresholds are the ones tuned on the
    predictions for its inner validation subjects (training subjects), and the pooled
    macro-UF1 is the one of the thresholded test predictions."""
    from fastmer.train.metrics import apply_thresholds, multilabel_scores, tune_thresholds

    recipe = replace(QUICK, epochs=25, loss="focal", val_fraction=0.25)
    report = train(synthetic_multilabel_store, tmp_path / "ml", labels="4dme-multilabel", recipe=recipe, seed=3)
    classes = report["classes"]
    assert report["multilabel"] and "thresholds tuned on an inner split" in report["model_selection"]
    s = fstore.open(synthetic_multilabel_store)
    subjects, uids = s.column("subject"), s.column("uid")
    truth = np.array([[int(c in lab) for c in classes] for lab in s.column("labels")])
    preds = {p["uid"]: p for p in pq.read_table(tmp_path / "ml" / "predictions.parquet").to_pylist()}
    all_pred = np.zeros_like(truth)
    for i, (fold, row) in enumerate(zip(loso(subjects), report["folds"], strict=True)):
        fit_idx, val_idx = inner_split(fold.train, subjects, fraction=0.25, seed=3 * 1000 + i)
        assert not {subjects[j] for j in val_idx} & {subjects[j] for j in fold.test}
        weights = tmp_path / "ml" / row["weights"]
        model = MERModel.load(weights, weights.with_suffix(".json"))
        with torch.no_grad():
            val_probs = torch.sigmoid(model(s.tensor("flow_onset_apex")[val_idx])).numpy()
            test_probs = torch.sigmoid(model(s.tensor("flow_onset_apex")[fold.test])).numpy()
        expected = tune_thresholds(truth[val_idx], val_probs, classes)["thresholds"]
        assert row["thresholds"] == expected == json.loads(weights.with_suffix(".json").read_text())["thresholds"]
        np.testing.assert_allclose([preds[uids[j]]["probabilities"] for j in fold.test], test_probs, atol=1e-5)
        all_pred[fold.test] = apply_thresholds(test_probs, expected)
        for j in fold.test:
            assert preds[uids[j]]["predicted"] == [c for c, p in zip(classes, all_pred[j], strict=True) if p]
    expected = multilabel_scores(truth, all_pred, classes)
    pooled = report["metrics"]["pooled"]
    assert pooled["macro_uf1"] == pytest.approx(expected["macro_uf1"]) == pooled["uf1"]
    assert pooled["macro_uf1"] > 0.5  # learns: chance macro-F1 here is ~0.3
    assert "thresholds" in report["final_model"]


def test_augmentation_sees_training_clips_only(synthetic_store, tmp_path, monkeypatch):
    """Every augmented batch is made of training clips of its fold (in physical units, before
    min-max normalisation); test clips are predicted from the plain stored tensors."""
    from fastmer.models.inputs import InputAdapter
    from fastmer.train import augment as aug

    s = fstore.open(synthetic_store)
    spec = replace(MODELS["ststnet"].input, normalization="none")
    raw = InputAdapter(spec, s.channels("flow_onset_apex"), (28, 28))(s.tensor("flow_onset_apex"))
    seen = []
    original = aug.Augment.__call__

    def spy(self, x):
        seen.append(x.clone())
        return original(self, x)

    monkeypatch.setattr(aug.Augment, "__call__", spy)
    report = train(synthetic_store, tmp_path / "aug", recipe=replace(QUICK, epochs=2), augment=["flip", "affine"])
    assert report["augment"] == ["flip", "affine"] and seen
    folds = loso(s.column("subject"))
    per_fold = len(seen) // (len(folds) + 1)  # same number of batches for every fold and the final model
    for k, fold in enumerate(folds):
        rows = torch.cat(seen[k * per_fold : (k + 1) * per_fold])
        match = torch.cdist(rows.flatten(1), raw.flatten(1)).argmin(1)
        assert torch.allclose(rows, raw[match]) and set(match.tolist()) <= set(fold.train.tolist())
    preds = {p["uid"]: p for p in pq.read_table(tmp_path / "aug" / "predictions.parquet").to_pylist()}
    weights = tmp_path / "aug" / report["folds"][0]["weights"]
    model = MERModel.load(weights, weights.with_suffix(".json"))
    with torch.no_grad():
        probs = torch.softmax(model(s.tensor("flow_onset_apex")[folds[0].test]), 1)
    expected = [preds[s.column("uid")[j]]["probabilities"] for j in folds[0].test]
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-5)


def test_dual_phase_dynamic_images(synthetic_store, tmp_path, monkeypatch):
    """--augment dual-phase-di: a fold trains on its clips' whole DIs and both phase DIs (three
    samples per training clip, labels repeated), never on a test clip's."""
    import fastmer.train.run as run

    monkeypatch.setitem(MODELS, "di-ststnet", ModelEntry("di-ststnet", "fastmer.models.ststnet:STSTNet",
                                                         InputSpec("dynamic_image", ("di",), 28), QUICK, "test"))
    s = fstore.open(synthetic_store)
    adapter = MERModel.create("di-ststnet", ("negative", "positive", "surprise"), ("di",), (1, 28, 28)).adapter
    with torch.no_grad():
        candidates = [adapter(s.tensor("dynamic_image")), adapter(s.tensor("dynamic_image_phases")[:, :1]),
                      adapter(s.tensor("dynamic_image_phases")[:, 1:])]
    calls = []
    original = run.fit

    def spy(net, x, y, *args, **kwargs):
        calls.append((x.clone(), y.clone()))
        return original(net, x, y, *args, **kwargs)

    monkeypatch.setattr(run, "fit", spy)
    train(synthetic_store, tmp_path / "dp", model="di-ststnet", recipe=replace(QUICK, epochs=1), augment=["dual-phase-di"])
    folds = loso(s.column("subject"))
    labels = run._targets(s, run.get_protocol("megc2019-3class"))[1]
    for fold, (x, y) in zip(folds, calls, strict=False):
        assert len(x) == 3 * len(fold.train)
        for block, source in enumerate(candidates):
            part = x[block * len(fold.train) : (block + 1) * len(fold.train)]
            torch.testing.assert_close(part, source[fold.train])
            assert y[block * len(fold.train) : (block + 1) * len(fold.train)].tolist() == \
                [labels[j] for j in fold.train]
    with pytest.raises(ValueError, match="needs a model reading dynamic_image"):
        train(synthetic_store, tmp_path / "bad", recipe=QUICK, augment=["dual-phase-di"])


def test_mixed_precision_and_devices(synthetic_store, tmp_path):
    """amp=True trains under bfloat16 autocast (the GPU default; here its CPU twin) and still
    learns; asking for CUDA without one is a clear error."""
    report = train(synthetic_store, tmp_path / "amp", recipe=replace(QUICK, epochs=30), amp=True)
    assert report["execution"] == {"device": "cpu", "jobs": 1, "fold_batch": 1, "threads": 1, "amp": True}
    for row in report["folds"]:
        assert row["train_loss"][-1] < row["train_loss"][0]
    assert report["metrics"]["pooled"]["uf1"] > 0.5
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device cuda asked for, but torch sees no CUDA GPU"):
            train(synthetic_store, tmp_path / "cuda", device="cuda")


@pytest.mark.parametrize(("loss", "weighting", "optimizer", "patience"),
                         [("ce", "none", "adam", None), ("focal", "inverse", "adamw", None), ("ce", "inverse", "adam", 2)])
def test_stacked_folds_train_as_each_fold_alone(loss, weighting, optimizer, patience):
    """fit_folds (the GPU path; its CPU twin here): folds of different sizes trained as one
    stacked model end with the weights, batch-norm statistics, losses and kept epochs that
    fit() gives each of them alone (dropout off: its masks come from other streams)."""
    from fastmer.models.ststnet import STSTNet
    from fastmer.train.batched import fit_folds
    from fastmer.train.trainer import fit

    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 3, 28, 28, generator=g)
    y = torch.randint(0, 3, (60,), generator=g)
    x[y == 1, 0] += 0.3  # something to learn, so early stopping has a best epoch
    trains = [torch.arange(0, 50), torch.arange(10, 60), torch.arange(5, 40)]
    vals = [(x[50:], y[50:]), (x[:10], y[:10]), (x[40:], y[40:])]
    recipe = replace(QUICK, epochs=6, batch_size=16, loss=loss, class_weighting=weighting, optimizer=optimizer,
                     weight_decay=0.01, patience=patience, lr=3e-3)
    alone = []
    for f, t in enumerate(trains):
        torch.manual_seed(f)
        net = STSTNet(3, dropout=0.0)
        alone.append((net, fit(net, x[t], y[t], recipe, 100 + f, num_classes=3, val=vals[f])))
    nets = []
    for f in range(3):
        torch.manual_seed(f)
        nets.append(STSTNet(3, dropout=0.0))
    histories = fit_folds(nets, x, y, trains, recipe, [100, 101, 102], num_classes=3, val=vals)
    for (net, history), stacked, stacked_history in zip(alone, nets, histories, strict=True):
        for name, value in net.state_dict().items():
            torch.testing.assert_close(stacked.state_dict()[name], value, atol=2e-6, rtol=1e-5, msg=name)
        assert stacked_history.train_loss == pytest.approx(history.train_loss, rel=1e-5)
        assert stacked_history.best_epoch == history.best_epoch
        assert stacked_history.val_uf1 == pytest.approx(history.val_uf1)


def test_fold_batch_in_a_run(synthetic_store, tmp_path):
    """train(fold_batch=...) stacks folds (and the final model) and, without dropout, predicts
    what fold-by-fold training predicts."""
    options = {"model_options": {"dropout": 0.0}, "recipe": QUICK}
    one = train(synthetic_store, tmp_path / "one", **options)
    stacked = train(synthetic_store, tmp_path / "stacked", fold_batch=3, **options)
    assert stacked["execution"]["fold_batch"] == 3 and one["execution"]["fold_batch"] == 1
    a = pq.read_table(tmp_path / "one" / "predictions.parquet").to_pylist()
    b = pq.read_table(tmp_path / "stacked" / "predictions.parquet").to_pylist()
    assert [r["uid"] for r in a] == [r["uid"] for r in b]
    np.testing.assert_allclose([r["probabilities"] for r in a], [r["probabilities"] for r in b], atol=1e-4)
    assert stacked["metrics"] == one["metrics"]
    # a model solved exactly (like a multi-label run) trains fold by fold, and the report says so
    ml = train(synthetic_store, tmp_path / "svm", model="lbptop-svm", fold_batch=3)
    assert ml["execution"]["fold_batch"] == 1
