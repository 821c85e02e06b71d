"""MEGC metrics beyond the pooled scores: majority baseline, fold averages, per-dataset
breakdown, multi-label macro-UF1 and per-class thresholds."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score, precision_score, recall_score

from fastmer.train.metrics import (
    apply_thresholds,
    confusion_matrix,
    fold_averaged,
    multilabel_scores,
    per_group_scores,
    scores,
    tune_thresholds,
)
from fastmer.train.protocols import inner_split, make_folds

CLASSES = ("negative", "positive", "surprise")


def test_majority_class_gets_the_megc_uf1():
    # supports 10 / 5 / 5, always predicting class 0:
    # F1_0 = 2*10 / (2*10 + 10 + 0) = 2/3, F1_1 = F1_2 = 0 -> UF1 = 2/9; recalls 1, 0, 0 -> UAR = 1/3
    y_true = [0] * 10 + [1] * 5 + [2] * 5
    s = scores(confusion_matrix(y_true, [0] * 20, 3), CLASSES)
    assert s["per_class"]["negative"]["f1"] == pytest.approx(0.6667, abs=1e-4)
    assert s["uf1"] == pytest.approx(0.2222, abs=1e-4)
    assert s["uf1"] == pytest.approx(2 / 9)
    assert s["uar"] == pytest.approx(1 / 3)
    assert s["accuracy"] == pytest.approx(0.5)


def test_majority_class_pooled_over_loso_folds_is_the_same():
    # the same 20 clips over 4 subjects; pooling per-fold TP/FP/FN must give 2/9 again
    y_true = np.array([0] * 10 + [1] * 5 + [2] * 5)
    subjects = np.array(["a", "b", "c", "d"] * 5)
    cms = [confusion_matrix(y_true[f.test], np.zeros(len(f.test), int), 3) for f in make_folds("loso", subjects)]
    assert scores(sum(cms), CLASSES)["uf1"] == pytest.approx(2 / 9)


def test_fold_averaged_hand_computed():
    # fold A: true n n p, pred n p p -> F1_n = 2/3, F1_p = 2/3 (surprise absent, not predicted)
    #   UF1_A = 2/3, UAR_A = (1/2 + 1) / 2 = 3/4, acc 2/3
    # fold B: true s s, pred s n -> F1_s = 2/(2+0+1) = 2/3, F1_n = 0 (predicted, absent)
    #   UF1_B = (0 + 2/3) / 2 = 1/3, UAR_B = recall_s = 1/2, acc 1/2
    a = confusion_matrix([0, 0, 1], [0, 1, 1], 3)
    b = confusion_matrix([2, 2], [2, 0], 3)
    out = fold_averaged([a, b], CLASSES, names=["A", "B"])
    assert out["uf1_fold_mean"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert out["uar_fold_mean"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert out["accuracy_fold_mean"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    rows = {r["fold"]: r for r in out["per_fold"]}
    assert rows["A"]["classes_absent"] == ["surprise"] and rows["A"]["uf1_classes"] == ["negative", "positive"]
    assert rows["B"]["classes_absent"] == ["negative", "positive"]
    assert rows["B"]["uf1_classes"] == ["negative", "surprise"] and rows["B"]["uar_classes"] == ["surprise"]
    assert "pooled" in out["convention"] and "uf1" not in out  # labelled, never confused with the pooled UF1
    # differs from the pooled MEGC score on the same predictions
    assert scores(a + b, CLASSES)["uf1"] != pytest.approx(out["uf1_fold_mean"])


@pytest.mark.parametrize("seed", range(4))
def test_fold_averaged_matches_scikit_learn_per_fold(seed):
    rng = np.random.default_rng(seed)
    folds = []
    for n in rng.integers(2, 15, 8):
        t = rng.choice(3, n, p=rng.dirichlet([1, 1, 1]))
        folds.append((t, np.where(rng.random(n) < 0.5, t, rng.integers(0, 3, n))))
    out = fold_averaged([confusion_matrix(t, p, 3) for t, p in folds], CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        f1s = [f1_score(t, p, average="macro", zero_division=0) for t, p in folds]
        uars = [recall_score(t, p, average="macro", labels=sorted(set(t.tolist()))) for t, p in folds]
    assert out["uf1_fold_mean"] == pytest.approx(np.mean(f1s))
    assert out["uar_fold_mean"] == pytest.approx(np.mean(uars))


def test_fold_averaged_errors():
    with pytest.raises(ValueError, match="no folds"):
        fold_averaged([], CLASSES)
    with pytest.raises(ValueError, match="no test clips"):
        fold_averaged([np.zeros((3, 3))], CLASSES)
    with pytest.raises(ValueError, match="shape"):
        fold_averaged([np.ones((2, 2))], CLASSES)


def test_per_group_scores_is_scores_per_corpus():
    rng = np.random.default_rng(0)
    groups = rng.choice(["smic", "casme2", "samm"], 120)
    y_true = rng.integers(0, 3, 120)
    y_pred = np.where(rng.random(120) < 0.6, y_true, rng.integers(0, 3, 120))
    out = per_group_scores(y_true, y_pred, groups, CLASSES)
    assert list(out) == ["casme2", "samm", "smic"]
    for g, s in out.items():
        m = groups == g
        assert s["n"] == m.sum()
        assert s["uf1"] == pytest.approx(f1_score(y_true[m], y_pred[m], average="macro", labels=[0, 1, 2], zero_division=0))
        assert s["uar"] == pytest.approx(recall_score(y_true[m], y_pred[m], average="macro", labels=[0, 1, 2], zero_division=0))
    # an absent class is counted (as 0) and reported, not dropped
    out = per_group_scores([0, 1, 0], [0, 1, 0], ["x", "x", "y"], CLASSES)
    assert out["y"]["uf1"] == pytest.approx(1 / 3) and out["y"]["classes_without_samples"] == ["positive", "surprise"]


def test_multilabel_hand_computed():
    # class 0: TP 1, FP 1, FN 0 -> F1 = 2/3; class 1: TP 1, FN 1 -> F1 = 2/3; class 2: never present/predicted -> 0
    y_true = [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    y_pred = [[1, 1, 0], [1, 0, 0], [0, 0, 0]]
    s = multilabel_scores(np.array(y_true), np.array(y_pred), CLASSES)
    assert s["per_class"]["negative"] == {"f1": pytest.approx(2 / 3), "precision": 0.5, "recall": 1.0, "support": 1,
                                          "predicted": 2}
    assert s["per_class"]["positive"]["f1"] == pytest.approx(2 / 3)
    assert s["macro_uf1"] == pytest.approx(4 / 9)
    assert s["classes_without_positives"] == ["surprise"]
    assert s["exact_match"] == pytest.approx(2 / 3) and s["n"] == 3


@pytest.mark.parametrize("seed", range(4))
def test_multilabel_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = (rng.random((60, 5)) < [0.5, 0.3, 0.1, 0.05, 0.0]).astype(int)
    y_pred = np.where(rng.random((60, 5)) < 0.7, y_true, rng.integers(0, 2, (60, 5)))
    y_pred[:, 4] = 0  # a class neither present nor predicted
    s = multilabel_scores(y_true, y_pred, [f"c{i}" for i in range(5)])
    assert s["macro_uf1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    per_f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
    per_p = precision_score(y_true, y_pred, average=None, zero_division=0)
    per_r = recall_score(y_true, y_pred, average=None, zero_division=0)
    for i in range(5):
        c = s["per_class"][f"c{i}"]
        assert (c["f1"], c["precision"], c["recall"]) == pytest.approx((per_f1[i], per_p[i], per_r[i]))


def test_multilabel_rejects_bad_input():
    with pytest.raises(ValueError, match="0 and 1"):
        multilabel_scores(np.array([[2, 0, 0]]), np.array([[1, 0, 0]]), CLASSES)
    with pytest.raises(ValueError, match="columns"):
        multilabel_scores(np.zeros((2, 2)), np.zeros((2, 2)), CLASSES)


def test_separable_class_gets_a_threshold_between_the_score_ranges():
    rng = np.random.default_rng(0)
    y = np.array([1] * 20 + [0] * 30)
    probs = np.stack([
        np.where(y == 1, rng.uniform(0.6, 0.95, 50), rng.uniform(0.05, 0.3, 50)),  # gap contains 0.5
        np.where(y == 1, rng.uniform(0.75, 1.0, 50), rng.uniform(0.0, 0.7, 50)),  # gap above 0.5
        rng.random(50),  # a class without positives
    ], axis=1)
    y_true = np.stack([y, y, np.zeros(50, int)], axis=1)
    out = tune_thresholds(y_true, probs, CLASSES)
    t0, t1, t2 = out["thresholds"]
    assert probs[y == 0, 0].max() < t0 <= probs[y == 1, 0].min() and t0 == 0.5  # ties -> closest to 0.5
    assert probs[y == 0, 1].max() < t1 <= probs[y == 1, 1].min()
    assert t1 == pytest.approx(np.ceil(probs[y == 0, 1].max() * 100 + 1e-9) / 100)  # the grid value nearest 0.5
    assert out["per_class"]["negative"]["f1"] == 1.0 and out["per_class"]["positive"]["f1"] == 1.0
    assert t2 == 0.5 and out["classes_without_positives"] == ["surprise"]
    pred = apply_thresholds(probs, out)
    assert multilabel_scores(y_true[:, :2], pred[:, :2], CLASSES[:2])["macro_uf1"] == 1.0


def test_tuned_threshold_maximises_f1_on_the_grid():
    rng = np.random.default_rng(1)
    y = (rng.random((80, 2)) < 0.4).astype(int)
    probs = np.clip(0.35 * y + rng.random((80, 2)) * 0.65, 0, 1)
    out = tune_thresholds(y, probs, ("a", "b"), grid=np.linspace(0.05, 0.95, 19))
    for c in range(2):
        best = max(f1_score(y[:, c], probs[:, c] >= g) for g in np.linspace(0.05, 0.95, 19))
        assert out["per_class"][("a", "b")[c]]["f1"] == pytest.approx(best)
        assert f1_score(y[:, c], probs[:, c] >= out["thresholds"][c]) == pytest.approx(best)


def test_thresholds_come_from_training_subjects_only():
    # the workflow: tune on an inner validation split of the fold's training subjects; the
    # test subject's data is never passed, so changing it cannot change the thresholds
    rng = np.random.default_rng(2)
    subjects = np.repeat([f"s{i}" for i in range(8)], 10)
    y = (rng.random((80, 3)) < 0.3).astype(int)
    probs = np.clip(0.4 * y + 0.6 * rng.random((80, 3)), 0, 1)
    fold = make_folds("loso", subjects)[0]
    _, val = inner_split(fold.train, subjects, seed=0)
    assert not set(subjects[val]) & set(subjects[fold.test])
    before = tune_thresholds(y[val], probs[val], CLASSES)["thresholds"]
    probs[fold.test] = 1 - probs[fold.test]
    y[fold.test] = 1 - y[fold.test]
    assert tune_thresholds(y[val], probs[val], CLASSES)["thresholds"] == before


def test_apply_thresholds_checks_shapes():
    assert apply_thresholds(np.array([[0.2, 0.7], [0.5, 0.1]]), [0.5, 0.5]).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="one threshold per column"):
        apply_thresholds(np.zeros((2, 3)), [0.5, 0.5])
