import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from fastmer.train.metrics import confusion_matrix, scores

CLASSES = ("negative", "positive", "surprise")


def test_hand_computed_example():
    # true:  n n n p p s ; pred: n p n p s s
    cm = confusion_matrix([0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2], 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    s = scores(cm, CLASSES)
    f1 = [2 * 2 / (4 + 0 + 1), 2 * 1 / (2 + 1 + 1), 2 * 1 / (2 + 1 + 0)]
    recall = [2 / 3, 1 / 2, 1 / 1]
    assert s["uf1"] == pytest.approx(np.mean(f1))
    assert s["uar"] == pytest.approx(np.mean(recall))
    assert s["accuracy"] == pytest.approx(4 / 6)


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn_on_pooled_predictions(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 3, 200))
    s = scores(confusion_matrix(y_true, y_pred, 3), CLASSES)
    assert s["uf1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2]))
    assert s["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro", labels=[0, 1, 2]))
    assert s["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))


def test_pooling_sums_counts_over_folds():
    rng = np.random.default_rng(1)
    folds = [(rng.integers(0, 3, n), rng.integers(0, 3, n)) for n in (5, 9, 2, 14)]
    pooled = sum(confusion_matrix(t, p, 3) for t, p in folds)
    y_true = np.concatenate([t for t, _ in folds])
    y_pred = np.concatenate([p for _, p in folds])
    assert scores(pooled, CLASSES)["uf1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2]))


def test_absent_class_counts_as_zero_and_is_reported():
    s = scores(confusion_matrix([0, 0, 1], [0, 0, 1], 3), CLASSES)
    assert s["uf1"] == pytest.approx(2 / 3) and s["classes_without_samples"] == ["surprise"]


def test_rejects_bad_labels():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="2 labels but y_pred 1"):
        confusion_matrix([0, 1], [0], 3)
