import json
import warnings

import numpy as np
import pytest

from fastmer.models.svm import LinearSVM

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import make_classification
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_sample_weight


def realistic_problem(seed=0):
    """5 imbalanced, overlapping classes (not separable), features on different scales; train/test split."""
    x, y = make_classification(
        n_samples=900, n_features=150, n_informative=30, n_redundant=20, n_classes=5, n_clusters_per_class=2,
        class_sep=1.5, flip_y=0.03, weights=[0.35, 0.25, 0.2, 0.1, 0.1], random_state=seed,
    )
    x = x * np.random.default_rng(seed).uniform(0.1, 10, x.shape[1]) + 3.0  # features on different scales
    return x[:600], y[:600], x[600:], y[600:]


def sklearn_on_same_features(model, x, y, C, sample_weight=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with tight tolerances
        return LinearSVC(C=C, max_iter=200_000, **kwargs).fit(model._transform(x), y, sample_weight=sample_weight)


def test_separable_data_is_fitted_exactly():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 20))
    y = np.repeat(np.arange(4), 50)
    x = centres[y] + rng.normal(0, 0.5, (200, 20))
    model = LinearSVM(C=1.0).fit(x, y)
    assert (model.predict(x) == y).all()
    assert model.decision_function(x).shape == (200, 4)
    # string labels work the same way
    names = np.array(["anger", "disgust", "happiness", "surprise"])[y]
    assert (LinearSVM().fit(x, names).predict(x) == names).all()


@pytest.mark.parametrize("C", [0.01, 1.0])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_agrees_with_sklearn_linearsvc(C, class_weight):
    xtr, ytr, xte, yte = realistic_problem()
    ours = LinearSVM(C=C).fit(xtr, ytr, class_weight=class_weight)
    weights = None if class_weight is None else compute_sample_weight("balanced", ytr)
    # LIBLINEAR's default (dual coordinate descent) with its default tolerance...
    theirs = sklearn_on_same_features(ours, xtr, ytr, C, sample_weight=weights)
    agree = (ours.predict(xte) == theirs.predict(ours._transform(xte))).mean()
    corr = np.corrcoef(ours.decision_function(xte).ravel(), theirs.decision_function(ours._transform(xte)).ravel())[0, 1]
    assert agree >= 0.95 and corr > 0.99
    assert (ours.predict(xte) == yte).mean() > 0.4  # a problem where the classifier means something (chance: 0.2)
    # ...and, solved tightly (primal Newton, as ours), the same optimum.
    tight = sklearn_on_same_features(ours, xtr, ytr, C, sample_weight=weights, dual=False, tol=1e-10)
    np.testing.assert_allclose(ours.coef_, tight.coef_, atol=1e-5 * np.abs(tight.coef_).max())
    np.testing.assert_allclose(ours.decision_function(xte), tight.decision_function(ours._transform(xte)), atol=1e-4)


def test_binary_problem_matches_sklearn():
    x, y = make_classification(n_samples=300, n_features=40, random_state=1)
    ours = LinearSVM(C=0.5, preprocess="none").fit(x, y)
    tight = sklearn_on_same_features(ours, x, y, 0.5, dual=False, tol=1e-10)
    scores = ours.decision_function(x)
    np.testing.assert_allclose(scores[:, 1], tight.decision_function(x), atol=1e-5)
    np.testing.assert_array_equal(scores[:, 0], -scores[:, 1])
    np.testing.assert_array_equal(ours.predict(x), tight.predict(x))


def test_hellinger_preprocessing():
    rng = np.random.default_rng(2)
    hist = rng.dirichlet(np.ones(16), size=120)
    y = (hist[:, 0] > np.median(hist[:, 0])).astype(int)
    model = LinearSVM(C=10.0, preprocess="hellinger").fit(hist, y)
    assert (model.mean_ == 0).all() and (model.scale_ == 1).all()
    np.testing.assert_allclose(model.decision_function(hist), np.sqrt(hist) @ model.coef_.T + model.intercept_)
    assert (model.predict(hist) == y).mean() > 0.9
    with pytest.raises(ValueError, match="non-negative"):
        model.predict(hist - 1.0)


def test_standardisation_uses_training_statistics_only():
    xtr, ytr, xte, _ = realistic_problem(seed=3)
    model = LinearSVM().fit(xtr, ytr)
    np.testing.assert_allclose(model.mean_, xtr.mean(axis=0))
    np.testing.assert_allclose(model.scale_, xtr.std(axis=0))
    xtr[:, 5] = 1.0  # a constant feature is divided by 1, not 0
    model = LinearSVM().fit(xtr, ytr)
    assert model.scale_[5] == 1.0 and np.isfinite(model.decision_function(xte)).all()


def test_training_is_deterministic():
    xtr, ytr, _, _ = realistic_problem(seed=4)
    a, b = LinearSVM().fit(xtr, ytr, class_weight="balanced"), LinearSVM().fit(xtr, ytr, class_weight="balanced")
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)


def test_class_weights():
    y = np.array([0] * 30 + [1] * 10 + [2] * 20)
    x = np.random.default_rng(5).normal(size=(60, 3))
    np.testing.assert_allclose(LinearSVM().fit(x, y, class_weight="balanced").class_weights_, [60 / 90, 60 / 30, 60 / 60])
    np.testing.assert_allclose(LinearSVM().fit(x, y, class_weight={1: 3.0}).class_weights_, [1, 3, 1])
    with pytest.raises(ValueError, match="not in y"):
        LinearSVM().fit(x, y, class_weight={7: 2.0})
    with pytest.raises(ValueError, match="balanced"):
        LinearSVM().fit(x, y, class_weight="auto")


def test_save_load_round_trip(tmp_path):
    xtr, ytr, xte, _ = realistic_problem(seed=6)
    labels = np.array(["a", "b", "c", "d", "e"])
    model = LinearSVM(C=0.3).fit(xtr, labels[ytr], class_weight="balanced")
    model.save(tmp_path / "svm.safetensors", tmp_path / "svm.json", extra={"features": "lbp_top"})
    loaded = LinearSVM.load(tmp_path / "svm.safetensors", tmp_path / "svm.json")
    for name in ("coef_", "intercept_", "mean_", "scale_", "class_weights_", "classes_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    np.testing.assert_array_equal(loaded.decision_function(xte), model.decision_function(xte))
    np.testing.assert_array_equal(loaded.predict(xte), model.predict(xte))
    assert loaded.C == 0.3 and json.loads((tmp_path / "svm.json").read_text())["features"] == "lbp_top"
    assert (tmp_path / "svm.safetensors").read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    # integer labels come back as integers
    model = LinearSVM().fit(xtr, ytr)
    model.save(tmp_path / "int.safetensors", tmp_path / "int.json")
    assert LinearSVM.load(tmp_path / "int.safetensors", tmp_path / "int.json").predict(xte[:3]).dtype.kind == "i"


@pytest.mark.parametrize(
    "tamper, match",
    [
        (lambda c: c.update(classes=c["classes"][:-1], class_weights=c["class_weights"][:-1]), "coef is float64"),
        (lambda c: c.update(n_features=c["n_features"] + 1), "coef is float64"),
        (lambda c: c.update(model="ststnet"), "not a linear_svm"),
        (lambda c: c.update(format=99), "unsupported"),
        (lambda c: c.pop("preprocess"), "incomplete"),
        (lambda c: c.update(preprocess="pca"), "preprocess"),
        (lambda c: c.update(classes=["a", "a", "b"], class_weights=[1, 1, 1]), "distinct"),
    ],
)
def test_tampered_config_is_rejected(tmp_path, tamper, match):
    x, y = make_classification(n_samples=100, n_features=8, n_classes=3, n_informative=4, random_state=7)
    LinearSVM().fit(x, y).save(tmp_path / "w.safetensors", tmp_path / "c.json")
    config = json.loads((tmp_path / "c.json").read_text())
    tamper(config)
    (tmp_path / "c.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        LinearSVM.load(tmp_path / "w.safetensors", tmp_path / "c.json")


def test_mismatched_weights_are_rejected(tmp_path):
    from safetensors.numpy import load_file, save_file

    x, y = make_classification(n_samples=100, n_features=8, n_classes=3, n_informative=4, random_state=8)
    LinearSVM().fit(x, y).save(tmp_path / "w.safetensors", tmp_path / "c.json")
    tensors = load_file(str(tmp_path / "w.safetensors"))
    save_file({**tensors, "coef": tensors["coef"][:, :-1].copy()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="coef"):
        LinearSVM.load(tmp_path / "bad.safetensors", tmp_path / "c.json")
    save_file({k: v for k, v in tensors.items() if k != "scale"}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="expected"):
        LinearSVM.load(tmp_path / "bad.safetensors", tmp_path / "c.json")
    save_file({**tensors, "intercept": tensors["intercept"].astype(np.float32)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="intercept"):
        LinearSVM.load(tmp_path / "bad.safetensors", tmp_path / "c.json")


def test_invalid_use():
    x, y = make_classification(n_samples=50, n_features=5, random_state=9)
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearSVM().predict(x)
    with pytest.raises(ValueError, match="2 classes"):
        LinearSVM().fit(x, np.zeros(50))
    with pytest.raises(ValueError, match=r"\(n,\)"):
        LinearSVM().fit(x, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        LinearSVM().fit(np.full_like(x, np.nan), y)
    with pytest.raises(ValueError, match="features"):
        LinearSVM().fit(x, y).predict(x[:, :4])
    with pytest.raises(ValueError, match="C must be"):
        LinearSVM(C=0)
    with pytest.raises(ValueError, match="preprocess"):
        LinearSVM(preprocess="pca")
