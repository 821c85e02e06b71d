"""fastmer.models.svm: the scikit-learn SVMs of the LBP-TOP baseline (linear, chi-squared, RBF),
checked against an independent float64 optimum, against sklearn's own SVC, as a torch module,
through safetensors files and through ONNX Runtime."""

import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.datasets import make_classification
from sklearn.metrics.pairwise import chi2_kernel
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight

from fastmer.models.svm import ABSENT_CLASS_SCORE, KernelSVM, LinearSVM, SVMNet


def realistic_problem(seed=0):
    """5 imbalanced, overlapping classes (not separable), features on different scales; train/test split."""
    x, y = make_classification(
        n_samples=900, n_features=150, n_informative=30, n_redundant=20, n_classes=5, n_clusters_per_class=2,
        class_sep=1.5, flip_y=0.03, weights=[0.35, 0.25, 0.2, 0.1, 0.1], random_state=seed,
    )
    x = x * np.random.default_rng(seed).uniform(0.1, 10, x.shape[1]) + 3.0  # features on different scales
    return x[:600], y[:600], x[600:], y[600:]


def histograms(n=90, k=3, blocks=12, bins=16, seed=0, sparse=False):
    """LBP-TOP-like features: ``blocks`` L1-normalised histograms per sample, class-dependent."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    alpha = 0.5 + rng.uniform(0, 2, (k, blocks, bins))
    if sparse:  # empty bins, some empty in every sample: chi2 terms with x + y = 0
        alpha[:, :, :4] = 0.02
    h = np.stack([np.stack([rng.dirichlet(alpha[c, b]) for b in range(blocks)]) for c in y])
    if sparse:
        h[:, :, :2] = 0.0
        h /= h.sum(-1, keepdims=True)
    return h.reshape(n, -1), y


def primal_objective(w, xa, s, cost):
    """½‖w‖² + Σ cost_i max(0, 1 − s_i xa_i·w)² and its gradient (float64)."""
    margin = np.maximum(0.0, 1.0 - s * (xa @ w))
    return 0.5 * w @ w + cost @ margin**2, w - 2.0 * xa.T @ (cost * s * margin)


def reference_optimum(z, labels, C, sample_weight, intercept_scaling=1.0):
    """One-vs-rest squared-hinge optima by scipy's L-BFGS (float64): ``(K or 1, d + 1)`` rows ``[w, bias weight]``."""
    xa = np.concatenate([z, np.full((len(z), 1), intercept_scaling)], axis=1)
    k = labels.max() + 1
    rows = []
    for positive in [1] if k == 2 else range(k):
        s = np.where(labels == positive, 1.0, -1.0)
        result = minimize(primal_objective, np.zeros(xa.shape[1]), args=(xa, s, C * sample_weight), jac=True,
                          method="L-BFGS-B", options={"maxiter": 20_000, "gtol": 1e-12, "ftol": 1e-16})
        rows.append((result.x, s))
    return xa, rows


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


@pytest.mark.parametrize("C", [0.01, 1.0, 10.0])
@pytest.mark.parametrize("class_weight", [None, "balanced", {1: 3.0}])
@pytest.mark.parametrize("problem", ["realistic", "histograms"])
def test_linear_svm_reaches_the_primal_optimum(problem, C, class_weight):
    """LinearSVC's weights minimise the squared-hinge L2 primal of every one-vs-rest problem: their
    objective is no higher than that of an independent L-BFGS optimum (1e-6 relative), and the
    decision values agree with it."""
    if problem == "realistic":
        xtr, ytr, xte, yte = realistic_problem()
        model = LinearSVM(C=C).fit(xtr, ytr, class_weight=class_weight)
        assert (model.predict(xte) == yte).mean() > 0.4  # a problem where the classifier means something
    else:
        xtr, ytr = histograms(n=150, k=4, seed=1)
        xte, _ = histograms(n=40, k=4, seed=2)
        model = LinearSVM(C=C, preprocess="hellinger").fit(xtr, ytr, class_weight=class_weight)
    labels = np.unique(ytr, return_inverse=True)[1]
    sample_weight = model.class_weights_[labels]
    if class_weight == "balanced":
        np.testing.assert_allclose(sample_weight, compute_sample_weight("balanced", ytr))
    xa, rows = reference_optimum(model._transform(xtr), labels, C, sample_weight)
    fitted = np.concatenate([model.coef_, model.intercept_[:, None]], axis=1)
    for k, (reference, s) in enumerate(rows):
        ours, theirs = (primal_objective(w, xa, s, C * sample_weight)[0] for w in (fitted[k], reference))
        assert ours <= theirs * (1 + 1e-6), (k, ours, theirs)
    reference_scores = model._transform(xte) @ np.stack([w[:-1] for w, _ in rows]).T + np.array([w[-1] for w, _ in rows])
    scores = model.decision_function(xte)
    np.testing.assert_allclose(scores, reference_scores, atol=1e-4 * np.abs(reference_scores).max())


def test_binary_problem_is_one_problem_with_opposite_scores():
    x, y = make_classification(n_samples=300, n_features=40, random_state=1)
    model = LinearSVM(C=0.5, preprocess="none").fit(x, y)
    xa, [(reference, s)] = reference_optimum(x, y, 0.5, np.ones(len(y)))
    scores = model.decision_function(x)
    np.testing.assert_allclose(scores[:, 1], xa @ reference, atol=1e-5)
    np.testing.assert_array_equal(scores[:, 0], -scores[:, 1])
    np.testing.assert_array_equal(model.predict(x), (scores[:, 1] > 0).astype(int))


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
    h, y = histograms()
    a, b = KernelSVM().fit(h, y, "balanced"), KernelSVM().fit(h, y, "balanced")
    np.testing.assert_array_equal(a.dual_coef_, b.dual_coef_)


def test_class_weights():
    y = np.array([0] * 30 + [1] * 10 + [2] * 20)
    x = np.random.default_rng(5).normal(size=(60, 3))
    np.testing.assert_allclose(LinearSVM().fit(x, y, class_weight="balanced").class_weights_, [60 / 90, 60 / 30, 60 / 60])
    np.testing.assert_allclose(LinearSVM().fit(x, y, class_weight={1: 3.0}).class_weights_, [1, 3, 1])
    with pytest.raises(ValueError, match="not in y"):
        LinearSVM().fit(x, y, class_weight={7: 2.0})
    with pytest.raises(ValueError, match="balanced"):
        LinearSVM().fit(x, y, class_weight="auto")


# ------------------------------------------------------------------------------------------------
# kernel SVMs


def sklearn_one_vs_rest(kernel, xtr, ytr, xte, C, sample_weight, **kwargs):
    """sklearn's SVC fitted per class against the rest on the same features: ``(n_test, K)`` (K = 2: one problem)."""
    classes = np.unique(ytr)
    problems = classes[1:] if len(classes) == 2 else classes
    scores = np.stack([SVC(kernel=kernel, C=C, tol=1e-8, **kwargs).fit(xtr, np.where(ytr == c, 1, -1), sample_weight)
                       .decision_function(xte) for c in problems], axis=1)
    return np.concatenate([-scores, scores], axis=1) if len(classes) == 2 else scores


@pytest.mark.parametrize("class_weight", [None, "balanced"])
@pytest.mark.parametrize("k", [2, 4])
def test_chi2_svm_is_sklearns_svc(k, class_weight):
    """One-vs-rest SVC with sklearn's chi2_kernel (gamma: 1 / mean chi2 distance of training pairs),
    histograms with empty bins (0/0 terms) included."""
    xtr, ytr = histograms(n=80, k=k, seed=3, sparse=True)
    xte, _ = histograms(n=30, k=k, seed=4, sparse=True)
    model = KernelSVM(C=2.0, kernel="chi2").fit(xtr, ytr, class_weight)
    d = np.array([[((a - b) ** 2 / np.where(a + b > 0, a + b, 1)).sum() for b in xtr] for a in xtr])
    assert model.gamma_ == pytest.approx(1 / d[~np.eye(len(xtr), dtype=bool)].mean(), rel=1e-12)
    weights = None if class_weight is None else compute_sample_weight("balanced", ytr)
    expected = sklearn_one_vs_rest(lambda a, b: chi2_kernel(a, b, gamma=model.gamma_), xtr, ytr, xte, 2.0, weights)
    np.testing.assert_allclose(model.decision_function(xte), expected, atol=1e-6)
    assert model.decision_function(xte).shape == (30, k) and (model.predict(xtr) == ytr).mean() > 0.8
    assert model.support_.shape == (len(model.dual_coef_), xtr.shape[1]) and len(model.support_) <= len(xtr)


def test_rbf_svm_is_sklearns_svc():
    xtr, ytr, xte, _ = realistic_problem(seed=5)
    xtr, ytr = xtr[:200], ytr[:200]
    model = KernelSVM(C=1.0, kernel="rbf", preprocess="standardize").fit(xtr, ytr, "balanced")
    z = model._transform
    expected = sklearn_one_vs_rest("rbf", z(xtr), ytr, z(xte), 1.0, compute_sample_weight("balanced", ytr),
                                   gamma="scale")
    np.testing.assert_allclose(model.decision_function(xte), expected, atol=1e-6)
    fixed = KernelSVM(C=1.0, kernel="rbf", gamma=0.01, preprocess="standardize").fit(xtr, ytr)
    assert fixed.gamma_ == 0.01
    expected = sklearn_one_vs_rest("rbf", z(xtr), ytr, z(xte), 1.0, None, gamma=0.01)
    np.testing.assert_allclose(fixed.decision_function(xte), expected, atol=1e-6)


def test_kernel_svm_save_load_round_trip(tmp_path):
    xtr, ytr = histograms(seed=6)
    xte, _ = histograms(n=20, seed=7)
    labels = np.array(["a", "b", "c"])
    model = KernelSVM(C=0.7, kernel="chi2", preprocess="hellinger").fit(xtr, labels[ytr], "balanced")
    model.save(tmp_path / "k.safetensors", tmp_path / "k.json")
    loaded = KernelSVM.load(tmp_path / "k.safetensors", tmp_path / "k.json")
    for name in ("support_", "dual_coef_", "intercept_", "mean_", "scale_", "class_weights_", "classes_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.gamma_ == model.gamma_ and loaded.kernel == "chi2" and loaded.gamma == "scale"
    np.testing.assert_array_equal(loaded.decision_function(xte), model.decision_function(xte))
    config = json.loads((tmp_path / "k.json").read_text())
    config["n_support"] += 1
    (tmp_path / "k.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="support is float64"):
        KernelSVM.load(tmp_path / "k.safetensors", tmp_path / "k.json")
    with pytest.raises(ValueError, match="not a linear_svm"):
        LinearSVM.load(tmp_path / "k.safetensors", tmp_path / "k.json")


def test_kernel_svm_invalid_use():
    x, y = histograms(n=30)
    with pytest.raises(ValueError, match="non-negative"):
        KernelSVM(kernel="chi2", preprocess="standardize")
    with pytest.raises(ValueError, match="non-negative"):
        KernelSVM(kernel="chi2").fit(x - 0.5, y)
    with pytest.raises(ValueError, match="kernel must be"):
        KernelSVM(kernel="poly")
    with pytest.raises(ValueError, match="gamma"):
        KernelSVM(gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        KernelSVM(gamma="auto")
    with pytest.raises(RuntimeError, match="not fitted"):
        KernelSVM().predict(x)
    with pytest.raises(ValueError, match="features"):
        KernelSVM().fit(x, y).predict(x[:, :4])


# ------------------------------------------------------------------------------------------------
# files


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


# ------------------------------------------------------------------------------------------------
# SVMNet: the registry's lbptop-svm, saved with MERModel and exported to ONNX

SHAPE = (3, 4, 16)  # 12 histograms of 16 bins, as histograms(blocks=12)
KINDS = [("linear", "hellinger"), ("chi2", "none"), ("rbf", "hellinger")]


def _net_inputs(seed, n):
    h, y = histograms(n=n, seed=seed, sparse=True)
    return torch.tensor(h, dtype=torch.float32).reshape(n, *SHAPE), torch.tensor(y)


@pytest.mark.parametrize("block", [64, 7])
@pytest.mark.parametrize(("kernel", "preprocess"), KINDS)
def test_svmnet_computes_the_svms_decision_values(kernel, preprocess, block, monkeypatch):
    monkeypatch.setattr(SVMNet, "SV_BLOCK", block)  # 7: the kernel is summed over several blocks
    x, y = _net_inputs(8, 90)
    xte, _ = _net_inputs(9, 25)
    net = SVMNet(3, 3, SHAPE, C=2.0, kernel=kernel, preprocess=preprocess).fit(x, y)
    assert isinstance(net.svm, LinearSVM if kernel == "linear" else KernelSVM)
    assert kernel == "linear" or net.support.shape[0] > 2 * block or block == 64
    expected = net.svm.decision_function(xte.flatten(1).double().numpy())
    with torch.no_grad():
        got = net(xte).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    # a class without training samples in a fold is never predicted
    three = SVMNet(4, 3, SHAPE, C=2.0, kernel=kernel, preprocess=preprocess).fit(x, y)
    with torch.no_grad():
        scores = three(xte)
    assert (scores[:, 3] == ABSENT_CLASS_SCORE).all()
    np.testing.assert_allclose(scores[:, :3].double().numpy(), expected, atol=1e-5, rtol=0)


def test_svmnet_options_are_checked():
    with pytest.raises(ValueError, match="kernel must be"):
        SVMNet(3, 3, SHAPE, kernel="poly")
    with pytest.raises(ValueError, match="gamma applies"):
        SVMNet(3, 3, SHAPE, gamma=0.5)
    with pytest.raises(ValueError, match="non-negative"):
        SVMNet(3, 3, SHAPE, kernel="chi2", preprocess="standardize")
    with pytest.raises(ValueError, match="class_weight"):
        SVMNet(3, 3, SHAPE, class_weight="inverse")
    assert SVMNet(3, 3, SHAPE, kernel="rbf", gamma=2).svm.gamma == 2.0


def _mer_model(kernel, preprocess, **options):
    from fastmer.models.model import MERModel

    model = MERModel.create("lbptop-svm", ("a", "b", "c"), ("xy", "xt", "yt"), SHAPE, kernel=kernel,
                            preprocess=preprocess, **options)
    x, y = _net_inputs(10, 60)
    model.net.fit(x, y)
    return model.eval()


@pytest.mark.parametrize(("kernel", "preprocess"), KINDS)
def test_svmnet_saves_as_safetensors_and_loads(tmp_path, kernel, preprocess):
    from fastmer.models.model import MERModel

    model = _mer_model(kernel, preprocess)
    model.save(tmp_path / "m.safetensors", tmp_path / "m.json")
    config = json.loads((tmp_path / "m.json").read_text())
    assert config["options"]["kernel"] == kernel and config["options"]["gamma"] == "scale"
    loaded = MERModel.load(tmp_path / "m.safetensors", tmp_path / "m.json")  # support vectors: sized by the file
    x, _ = _net_inputs(11, 15)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    if kernel != "linear":
        assert loaded.net.support.shape == model.net.support.shape and len(model.net.support) > 0
        assert model.parameter_count() == model.net.support.numel() + model.net.dual_coef.numel() + 3


def test_kernel_weights_with_mismatched_support_are_refused(tmp_path):
    from safetensors.torch import save_file

    from fastmer.models.model import MERModel

    model = _mer_model("chi2", "none")
    state = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    save_file({**state, "dual_coef": state["dual_coef"][:-1].contiguous()}, str(tmp_path / "bad.safetensors"))
    (tmp_path / "bad.json").write_text(json.dumps(model.config))
    with pytest.raises(ValueError, match="does not fit"):
        MERModel.load(tmp_path / "bad.safetensors", tmp_path / "bad.json")


@pytest.mark.parametrize(("kernel", "preprocess"), KINDS)
def test_onnx_export_matches_torch_and_sklearn(kernel, preprocess, monkeypatch):
    """The module exports like any network (MatMul + Add; the kernel against the stored support
    vectors, in blocks); ONNX Runtime gives the SVM's own decision values."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(SVMNet, "SV_BLOCK", 5)
    from fastmer.engine.onnx import OnnxEngine, model_to_onnx

    model = _mer_model(kernel, preprocess)
    probe, _ = _net_inputs(12, 7)
    proto, diff = model_to_onnx(model, probe=probe, tolerance=1e-5)
    assert diff <= 1e-5
    ops = {node.op_type for node in proto.graph.node}
    assert "MatMul" in ops or "Gemm" in ops
    if kernel != "linear":
        assert "Exp" in ops
    got = OnnxEngine.from_proto(proto).run(probe.numpy()[:3])  # another batch size than the export's
    np.testing.assert_allclose(got, model.net.svm.decision_function(probe[:3].flatten(1).double().numpy()),
                               atol=1e-5, rtol=0)
