"""A linear SVM for hand-crafted features (the LBP-TOP baseline, :mod:`fastmer.motion.lbptop`).

:class:`LinearSVM` is the model of LIBLINEAR's default ``LinearSVC`` (Fan et al., JMLR 2008):
one-vs-rest, L2-regularised, squared hinge loss, the bias regularised as the weight of a constant
feature ``intercept_scaling`` (1 by default). For class ``k`` against the rest (``s_i = ±1``)::

    min_w  ½‖w‖² + Σ_i C_i · max(0, 1 − s_i · w·[x_i, intercept_scaling])²,   C_i = C · weight(y_i)

The objective is strictly convex and differentiable, so it is solved to a tight tolerance by a
primal Newton method (conjugate gradient on the generalised Hessian
``I + 2 X_Aᵀ diag(C_A) X_A`` over the active samples ``A``, Armijo backtracking; Keerthi &
DeCoste, JMLR 2005) in float64 NumPy: no randomness, no sample order, so training is
deterministic, and the optimum is LIBLINEAR's (``sklearn.svm.LinearSVC`` with the same ``C``,
``tol`` small) up to the tolerances.

**Features.** ``preprocess="standardize"`` (default) subtracts the training mean and divides by
the training standard deviation (features constant in training: divided by 1); the statistics come
from the training data only and are stored with the weights. ``"hellinger"`` takes ``sqrt`` of
non-negative features (for L1-normalised histograms such as LBP-TOP's, a linear kernel on them is
the Hellinger/Bhattacharyya kernel, close to the χ² kernel of the MER baselines); ``"none"`` uses
them as given.

**Class weights.** ``class_weight="balanced"`` weighs every sample of class ``c`` by
``n / (K · n_c)`` in *every* one-vs-rest problem (sklearn's ``compute_sample_weight("balanced")``
passed as ``sample_weight``). Note that LIBLINEAR's own ``class_weight`` differs: it only rescales
``C`` of the positive class of each one-vs-rest problem.

**Two classes** are one binary problem (positive: ``classes_[1]``, as LIBLINEAR); ``coef_`` then
holds ``-w`` and ``w`` so that :meth:`decision_function` is always ``(n, K)`` and :meth:`predict`
its argmax (ties go to the first class).

**Files.** :meth:`save` writes the weights as safetensors (``coef``, ``intercept``, ``mean``,
``scale``, float64) and the configuration as JSON, never pickle; :meth:`load` checks the one
against the other and raises ``ValueError`` on any mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["LinearSVM", "LinearSVMNet"]

MODEL = "linear_svm"
FORMAT = 1
PREPROCESSING = ("standardize", "hellinger", "none")
TENSORS = ("coef", "intercept", "mean", "scale")


class LinearSVM:
    """One-vs-rest L2-regularised squared-hinge linear SVM (LIBLINEAR's ``LinearSVC`` model).

    Args:
        C: inverse regularisation strength (> 0).
        preprocess: ``"standardize"``, ``"hellinger"`` or ``"none"`` (module docstring).
        intercept_scaling: value of the constant feature whose weight is the bias (regularised).
        tol: stop when ``‖∇f‖ ≤ tol · ‖∇f(0)‖`` for every one-vs-rest problem.
        max_iter: Newton iterations per problem (each: one CG solve and a line search).

    Attributes (after :meth:`fit` or :meth:`load`):
        classes_: ``(K,)`` sorted labels; coef_: ``(K, d)``; intercept_: ``(K,)``;
        mean_, scale_: ``(d,)`` feature preprocessing (zeros/ones unless standardising);
        class_weights_: ``(K,)`` weights used in training; n_iter_: Newton iterations per problem.
    """

    def __init__(
        self, C: float = 1.0, *, preprocess: str = "standardize", intercept_scaling: float = 1.0, tol: float = 1e-8,
        max_iter: int = 100,
    ) -> None:
        if not (np.isfinite(C) and C > 0):
            raise ValueError(f"C must be a positive number, got {C!r}")
        if preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
        if not (np.isfinite(intercept_scaling) and intercept_scaling > 0):
            raise ValueError(f"intercept_scaling must be positive, got {intercept_scaling!r}")
        if not tol > 0 or int(max_iter) < 1:
            raise ValueError(f"tol must be > 0 and max_iter >= 1, got tol={tol!r}, max_iter={max_iter!r}")
        self.C = float(C)
        self.preprocess = preprocess
        self.intercept_scaling = float(intercept_scaling)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.classes_: np.ndarray | None = None

    # ----------------------------------------------------------------------------------------
    # training and inference

    def fit(self, x: np.ndarray, y: np.ndarray, class_weight: str | dict | None = None) -> LinearSVM:
        """Train on ``x (n, d)`` and labels ``y (n,)`` (ints or strings, at least two classes).

        ``class_weight``: ``None`` (all 1), ``"balanced"`` or ``{label: weight}``.
        """
        x = self._check_x(x, fitted=False)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"y must be (n,) with n = {len(x)} samples, got shape {y.shape}")
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"LinearSVM needs at least 2 classes, got {classes.tolist()}")
        weights = self._class_weights(classes, labels, class_weight)

        if self.preprocess == "standardize":
            mean, scale = x.mean(axis=0), x.std(axis=0)
            scale[scale == 0] = 1.0
        else:
            mean, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.mean_, self.scale_ = mean, scale
        xa = np.concatenate([self._transform(x), np.full((len(x), 1), self.intercept_scaling)], axis=1)
        cost = self.C * weights[labels]

        problems = [1] if len(classes) == 2 else range(len(classes))
        solutions, self.n_iter_ = [], []
        for k in problems:
            w, iters = _newton_squared_hinge(xa, np.where(labels == k, 1.0, -1.0), cost, self.tol, self.max_iter)
            solutions.append(w)
            self.n_iter_.append(iters)
        w = np.stack(solutions)
        if len(classes) == 2:
            w = np.concatenate([-w, w])
        self.coef_ = np.ascontiguousarray(w[:, :-1])
        self.intercept_ = np.ascontiguousarray(w[:, -1] * self.intercept_scaling)
        self.classes_, self.class_weights_ = classes, weights
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` float64 scores ``w_k·φ(x) + b_k`` (φ: the preprocessing)."""
        x = self._check_x(x, fitted=True)
        return self._transform(x) @ self.coef_.T + self.intercept_

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` labels: the class of the highest score."""
        return self.classes_[np.argmax(self.decision_function(x), axis=1)]

    # ----------------------------------------------------------------------------------------
    # files

    def config(self) -> dict[str, Any]:
        """The JSON configuration written beside the weights."""
        self._require_fitted()
        return {
            "model": MODEL,
            "format": FORMAT,
            "loss": "squared_hinge",
            "penalty": "l2",
            "multi_class": "ovr",
            "C": self.C,
            "preprocess": self.preprocess,
            "intercept_scaling": self.intercept_scaling,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "classes": self.classes_.tolist(),
            "class_weights": self.class_weights_.tolist(),
            "n_features": int(self.coef_.shape[1]),
        }

    def save(self, weights: Path | str, config_path: Path | str, extra: dict[str, Any] | None = None) -> None:
        """Weights as safetensors, the configuration as JSON (``extra`` keys added to it); never pickle."""
        from safetensors.numpy import save  # noqa: PLC0415

        from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

        config = self.config()
        tensors = {name: np.ascontiguousarray(getattr(self, f"{name}_"), dtype=np.float64) for name in TENSORS}
        atomic_write_bytes(Path(weights), save(tensors, metadata={"fastmer_model": MODEL}))
        atomic_write_bytes(Path(config_path), (json.dumps({**config, **(extra or {})}, indent=2) + "\n").encode())

    @classmethod
    def load(cls, weights: Path | str, config_path: Path | str) -> LinearSVM:
        """The model :meth:`save` wrote; ``ValueError`` when the files do not match."""
        from safetensors.numpy import load_file  # noqa: PLC0415

        config = json.loads(Path(config_path).read_text())
        if not isinstance(config, dict) or config.get("model") != MODEL:
            raise ValueError(f"{config_path}: not a {MODEL} configuration (model = {config.get('model')!r})")
        if config.get("format") != FORMAT:
            raise ValueError(f"{config_path}: unsupported {MODEL} format {config.get('format')!r} (expected {FORMAT})")
        try:
            model = cls(
                config["C"], preprocess=config["preprocess"], intercept_scaling=config["intercept_scaling"],
                tol=config["tol"], max_iter=config["max_iter"],
            )
            classes, class_weights, d = np.asarray(config["classes"]), config["class_weights"], config["n_features"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{config_path}: incomplete {MODEL} configuration ({exc!r})") from exc
        k = len(classes)
        if classes.ndim != 1 or k < 2 or len(np.unique(classes)) != k or len(class_weights) != k:
            raise ValueError(f"{config_path}: classes must be >= 2 distinct labels with one weight each")
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"{config_path}: n_features must be a positive integer, got {d!r}")

        tensors = load_file(str(weights))
        if set(tensors) != set(TENSORS):
            raise ValueError(f"{weights}: tensors {sorted(tensors)} are not the expected {sorted(TENSORS)}")
        expected = {"coef": (k, d), "intercept": (k,), "mean": (d,), "scale": (d,)}
        for name, shape in expected.items():
            tensor = tensors[name]
            if tensor.shape != shape or tensor.dtype != np.float64:
                raise ValueError(
                    f"{weights}: {name} is {tensor.dtype}{list(tensor.shape)}, but {config_path} "
                    f"({k} classes, {d} features) needs float64{list(shape)}"
                )
            if not np.isfinite(tensor).all():
                raise ValueError(f"{weights}: {name} has non-finite values")
        if not (tensors["scale"] > 0).all():
            raise ValueError(f"{weights}: scale must be positive")
        model.classes_ = classes
        model.class_weights_ = np.asarray(class_weights, dtype=np.float64)
        model.coef_, model.intercept_ = tensors["coef"], tensors["intercept"]
        model.mean_, model.scale_ = tensors["mean"], tensors["scale"]
        return model

    # ----------------------------------------------------------------------------------------
    # helpers

    def _require_fitted(self) -> None:
        if self.classes_ is None:
            raise RuntimeError("LinearSVM is not fitted: call fit() or LinearSVM.load() first")

    def _check_x(self, x: np.ndarray, *, fitted: bool) -> np.ndarray:
        if fitted:
            self._require_fitted()
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x must be (n_samples, n_features), got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"x must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise ValueError("x has NaN or infinite values")
        if fitted and x.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"x has {x.shape[1]} features, the model was trained on {self.coef_.shape[1]}")
        if self.preprocess == "hellinger" and (x < 0).any():
            raise ValueError("preprocess='hellinger' needs non-negative features (histograms)")
        return x

    def _transform(self, x: np.ndarray) -> np.ndarray:
        if self.preprocess == "hellinger":
            x = np.sqrt(x)
        return (x - self.mean_) / self.scale_

    @staticmethod
    def _class_weights(classes: np.ndarray, labels: np.ndarray, class_weight: str | dict | None) -> np.ndarray:
        if class_weight is None:
            return np.ones(len(classes))
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")
            return len(labels) / (len(classes) * np.bincount(labels, minlength=len(classes)).astype(np.float64))
        if isinstance(class_weight, dict):
            unknown = set(class_weight) - set(classes.tolist())
            if unknown:
                raise ValueError(f"class_weight names labels not in y: {sorted(map(str, unknown))}")
            weights = np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])
            if not (np.isfinite(weights).all() and (weights > 0).all()):
                raise ValueError(f"class weights must be positive, got {class_weight}")
            return weights
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {type(class_weight).__name__}")


def _newton_squared_hinge(xa: np.ndarray, s: np.ndarray, cost: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """``argmin_w ½‖w‖² + Σ cost_i max(0, 1 − s_i x_i·w)²`` by Newton-CG with Armijo backtracking."""
    n, d = xa.shape
    w, z = np.zeros(d), np.zeros(n)

    def objective(w: np.ndarray, z: np.ndarray) -> float:
        margin = np.maximum(0.0, 1.0 - s * z)
        return 0.5 * float(w @ w) + float(cost @ (margin * margin))

    f = objective(w, z)
    g0 = None
    for iteration in range(max_iter):
        active = s * z < 1.0
        xa_active, c_active = xa[active], cost[active]
        grad = w + 2.0 * (xa_active.T @ (c_active * (z[active] - s[active])))
        gnorm = float(np.linalg.norm(grad))
        if g0 is None:
            g0 = gnorm
        if gnorm <= tol * g0 or gnorm == 0.0:
            return w, iteration
        # CG on (I + 2 X_Aᵀ C_A X_A) step = −grad, to a forcing tolerance that tightens near the optimum.
        step = _conjugate_gradient(xa_active, 2.0 * c_active, -grad, min(0.1, np.sqrt(gnorm / g0)) * gnorm, 2 * d)
        zstep = xa @ step
        slope = float(grad @ step)
        alpha = 1.0
        while True:
            w_new, z_new = w + alpha * step, z + alpha * zstep
            f_new = objective(w_new, z_new)
            if f_new <= f + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
            if alpha < 1e-12:  # no decrease left at float64 precision: this is the optimum
                return w, iteration
        w, z, f = w_new, z_new, f_new
    return w, max_iter


def _conjugate_gradient(xa: np.ndarray, c: np.ndarray, b: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Solve ``(I + Xᵀ diag(c) X) v = b`` (symmetric positive definite) to ``‖residual‖ ≤ tol``."""
    v = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    for _ in range(max_iter):
        if np.sqrt(rr) <= tol:
            break
        hp = p + xa.T @ (c * (xa @ p))
        alpha = rr / float(p @ hp)
        v += alpha * p
        r -= alpha * hp
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return v


# ------------------------------------------------------------------------------------------------
# As a network of the registry (``lbptop-svm``): what fastmer train fits, saves and exports.

ABSENT_CLASS_SCORE = -1e9
"""Score of a class that had no training sample in a fold (never predicted)."""


class LinearSVMNet(torch.nn.Module):
    """A fitted :class:`LinearSVM` as a module: ``(N, *in_shape) -> (N, num_classes)`` decision values.

    Registered as ``lbptop-svm`` (the LBP-TOP + linear SVM baseline). It is not trained by
    gradient descent: :meth:`fit` solves the SVM (:class:`LinearSVM`, deterministic) on the
    flattened inputs and copies the solution into float32 buffers, so the module saves as
    safetensors like any network and exports to ONNX (flatten, preprocessing, one matmul).

    Args:
        num_classes: ``K``; classes are the indices ``0..K-1``.
        in_channels: leading input dimension (with ``in_shape``'s others: the features).
        in_shape: ``(C, H, W)`` of one input (for LBP-TOP ``(3, 25, 16)``: 1200 features).
        C, preprocess: of :class:`LinearSVM` (default: Hellinger map of the histograms).
        class_weight: ``"balanced"`` (default: the MER classes are very unequal) or ``"none"``.

    Example:
        >>> net = LinearSVMNet(3, 3, (3, 25, 16))
        >>> net.fit(torch.rand(30, 3, 25, 16), torch.arange(30) % 3)(torch.rand(2, 3, 25, 16)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int, in_channels: int, in_shape: tuple[int, ...], *, C: float = 1.0,
                 preprocess: str = "hellinger", class_weight: str = "balanced") -> None:
        super().__init__()
        if class_weight not in ("balanced", "none"):
            raise ValueError(f"class_weight must be 'balanced' or 'none', got {class_weight!r}")
        self.svm = LinearSVM(C, preprocess=preprocess)  # validates C and preprocess
        self.class_weight = class_weight
        d = int(np.prod(in_shape))
        self.learned_buffers = ("coef", "intercept")  # what fit() solves for (mean/scale: standardisation)
        self.register_buffer("coef", torch.zeros(num_classes, d))
        self.register_buffer("intercept", torch.zeros(num_classes))
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> LinearSVMNet:
        """Solve the SVM on ``x (N, *in_shape)`` and class indices ``y (N,)``; returns self."""
        features = x.detach().flatten(1).double().cpu().numpy()
        labels = y.detach().cpu().numpy()
        svm = self.svm.fit(features, labels, None if self.class_weight == "none" else "balanced")
        coef = torch.zeros_like(self.coef, dtype=torch.float64)
        intercept = torch.full_like(self.intercept, ABSENT_CLASS_SCORE, dtype=torch.float64)
        rows = torch.as_tensor(svm.classes_.astype(np.int64))
        coef[rows] = torch.from_numpy(svm.coef_)
        intercept[rows] = torch.from_numpy(svm.intercept_)
        for name, value in (("coef", coef), ("intercept", intercept), ("mean", torch.from_numpy(svm.mean_)),
                            ("scale", torch.from_numpy(svm.scale_))):
            getattr(self, name).copy_(value.to(torch.float32))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).float()
        if self.svm.preprocess == "hellinger":
            z = torch.sqrt(z.clamp(min=0))
        return ((z - self.mean) / self.scale) @ self.coef.t() + self.intercept
