"""SVMs for hand-crafted features (the LBP-TOP baseline, :mod:`fastmer.motion.lbptop`), fitted by scikit-learn.

:class:`LinearSVM` is LIBLINEAR's ``LinearSVC`` model, fitted by ``sklearn.svm.LinearSVC``: one-vs-rest,
L2-regularised, squared hinge loss, the bias regularised as the weight of a constant feature
``intercept_scaling`` (1 by default). For class ``k`` against the rest (``s_i = ±1``)::

    min_w  ½‖w‖² + Σ_i C_i · max(0, 1 − s_i · w·[x_i, intercept_scaling])²,   C_i = C · weight(y_i)

The objective is strictly convex; it is solved in the primal (``dual=False``: LIBLINEAR's
trust-region Newton method) to a tight tolerance, which involves no randomness, so training is
deterministic.

:class:`KernelSVM` is the kernel SVM of the LBP-TOP papers: one-vs-rest binary ``sklearn.svm.SVC``
(libsvm, hinge loss) on a precomputed χ² kernel ``exp(−γ Σ_j (x_j − y_j)² / (x_j + y_j))`` (terms
with ``x_j + y_j = 0`` left out, as ``sklearn.metrics.pairwise.chi2_kernel``) or RBF kernel
``exp(−γ ‖x − y‖²)``, with the same class weights, so its decision values are ``(n, K)`` like the
linear model's: ``K(x, SV) @ A + b`` with ``SV`` the union of the problems' support vectors and
``A`` the ``(n_SV, K)`` dual coefficients (``y_i α_i``; 0 where a vector does not support a class).
``gamma="scale"``: for χ², one over the mean χ² distance between training samples (Zhang et al.,
IJCV 2007); for RBF, ``1 / (n_features · Var(x))`` (scikit-learn's ``"scale"``).

**Features.** ``preprocess="standardize"`` (the linear model's default) subtracts the training mean
and divides by the training standard deviation (features constant in training: divided by 1); the
statistics come from the training data only and are stored with the weights. ``"hellinger"`` takes
``sqrt`` of non-negative features (for L1-normalised histograms such as LBP-TOP's, a linear kernel
on them is the Hellinger/Bhattacharyya kernel, close to the χ² kernel); ``"none"`` (the kernel
model's default) uses them as given. The χ² kernel needs non-negative features: standardising is
refused with it.

**Class weights.** ``class_weight="balanced"`` weighs every sample of class ``c`` by
``n / (K · n_c)`` in *every* one-vs-rest problem (sklearn's ``compute_sample_weight("balanced")``
passed as ``sample_weight``). Note that LIBLINEAR's own ``class_weight`` differs: it only rescales
``C`` of the positive class of each one-vs-rest problem.

**Two classes** are one binary problem (positive: ``classes_[1]``, as LIBLINEAR); its scores
``f`` become ``(−f, f)`` so that :meth:`decision_function` is always ``(n, K)`` and :meth:`predict`
its argmax (ties go to the first class).

**Files.** :meth:`save` writes the fitted arrays as safetensors (float64) and the configuration as
JSON, never pickle; :meth:`load` checks the one against the other and raises ``ValueError`` on any
mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

__all__ = ["KernelSVM", "LinearSVM", "SVMNet"]

FORMAT = 1
PREPROCESSING = ("standardize", "hellinger", "none")
KERNELS = ("linear", "chi2", "rbf")


class _OneVsRestSVM:
    """What both SVMs share: preprocessing, class weights, checks, files. Subclasses set
    ``MODEL``/``TENSORS`` and implement ``_solve``, ``_scores``, ``_config`` and ``_shapes``."""

    MODEL: ClassVar[str]
    TENSORS: ClassVar[tuple[str, ...]]

    def __init__(self, C: float, *, preprocess: str, tol: float) -> None:
        if not (np.isfinite(C) and C > 0):
            raise ValueError(f"C must be a positive number, got {C!r}")
        if preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
        if not (np.isfinite(tol) and tol > 0):
            raise ValueError(f"tol must be > 0, got {tol!r}")
        self.C = float(C)
        self.preprocess = preprocess
        self.tol = float(tol)
        self.classes_: np.ndarray | None = None
        self.n_features_ = 0

    # ----------------------------------------------------------------------------------------
    # training and inference

    def fit(self, x: np.ndarray, y: np.ndarray, class_weight: str | dict | None = None) -> _OneVsRestSVM:
        """Train on ``x (n, d)`` and labels ``y (n,)`` (ints or strings, at least two classes).

        ``class_weight``: ``None`` (all 1), ``"balanced"`` or ``{label: weight}``.
        """
        x = self._check_x(x, fitted=False)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"y must be (n,) with n = {len(x)} samples, got shape {y.shape}")
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes, got {classes.tolist()}")
        weights = self._class_weights(classes, labels, class_weight)
        if self.preprocess == "standardize":
            mean, scale = x.mean(axis=0), x.std(axis=0)
            scale[scale == 0] = 1.0
        else:
            mean, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.mean_, self.scale_ = mean, scale
        self._solve(self._transform(x), labels, weights[labels])
        self.classes_, self.class_weights_, self.n_features_ = classes, weights, x.shape[1]
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` float64 scores of the classes."""
        return self._scores(self._transform(self._check_x(x, fitted=True)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(n,)`` labels: the class of the highest score."""
        return self.classes_[np.argmax(self.decision_function(x), axis=1)]

    def _solve(self, z: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray) -> None:
        raise NotImplementedError

    def _scores(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------
    # files

    def config(self) -> dict[str, Any]:
        """The JSON configuration written beside the weights."""
        self._require_fitted()
        return {
            "model": self.MODEL,
            "format": FORMAT,
            **self._config(),
            "C": self.C,
            "preprocess": self.preprocess,
            "tol": self.tol,
            "classes": self.classes_.tolist(),
            "class_weights": self.class_weights_.tolist(),
            "n_features": int(self.n_features_),
        }

    def save(self, weights: Path | str, config_path: Path | str, extra: dict[str, Any] | None = None) -> None:
        """Weights as safetensors, the configuration as JSON (``extra`` keys added to it); never pickle."""
        from safetensors.numpy import save  # noqa: PLC0415

        from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

        config = self.config()
        tensors = {name: np.ascontiguousarray(getattr(self, f"{name}_"), dtype=np.float64) for name in self.TENSORS}
        atomic_write_bytes(Path(weights), save(tensors, metadata={"fastmer_model": self.MODEL}))
        atomic_write_bytes(Path(config_path), (json.dumps({**config, **(extra or {})}, indent=2) + "\n").encode())

    @classmethod
    def load(cls, weights: Path | str, config_path: Path | str) -> Any:
        """The model :meth:`save` wrote; ``ValueError`` when the files do not match."""
        from safetensors.numpy import load_file  # noqa: PLC0415

        config = json.loads(Path(config_path).read_text())
        if not isinstance(config, dict) or config.get("model") != cls.MODEL:
            raise ValueError(f"{config_path}: not a {cls.MODEL} configuration (model = {config.get('model')!r})")
        if config.get("format") != FORMAT:
            raise ValueError(f"{config_path}: unsupported {cls.MODEL} format {config.get('format')!r} (expected {FORMAT})")
        try:
            model = cls._from_config(config)
            classes, class_weights, d = np.asarray(config["classes"]), config["class_weights"], config["n_features"]
            k = len(classes)
            expected = cls._shapes(config, k, d)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{config_path}: incomplete {cls.MODEL} configuration ({exc!r})") from exc
        if classes.ndim != 1 or k < 2 or len(np.unique(classes)) != k or len(class_weights) != k:
            raise ValueError(f"{config_path}: classes must be >= 2 distinct labels with one weight each")
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"{config_path}: n_features must be a positive integer, got {d!r}")

        tensors = load_file(str(weights))
        if set(tensors) != set(cls.TENSORS):
            raise ValueError(f"{weights}: tensors {sorted(tensors)} are not the expected {sorted(cls.TENSORS)}")
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
        model.classes_, model.n_features_ = classes, d
        model.class_weights_ = np.asarray(class_weights, dtype=np.float64)
        for name in cls.TENSORS:
            setattr(model, f"{name}_", tensors[name])
        return model

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> _OneVsRestSVM:
        raise NotImplementedError

    @classmethod
    def _shapes(cls, config: dict[str, Any], k: int, d: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------
    # helpers

    def _require_fitted(self) -> None:
        if self.classes_ is None:
            name = type(self).__name__
            raise RuntimeError(f"{name} is not fitted: call fit() or {name}.load() first")

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
        if fitted and x.shape[1] != self.n_features_:
            raise ValueError(f"x has {x.shape[1]} features, the model was trained on {self.n_features_}")
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


class LinearSVM(_OneVsRestSVM):
    """One-vs-rest L2-regularised squared-hinge linear SVM (``sklearn.svm.LinearSVC``, primal).

    Args:
        C: inverse regularisation strength (> 0).
        preprocess: ``"standardize"``, ``"hellinger"`` or ``"none"`` (module docstring).
        intercept_scaling: value of the constant feature whose weight is the bias (regularised).
        tol: LIBLINEAR's stopping tolerance of the primal Newton method (relative gradient norm).
        max_iter: Newton iterations per one-vs-rest problem.

    Attributes (after :meth:`fit` or :meth:`load`):
        classes_: ``(K,)`` sorted labels; coef_: ``(K, d)``; intercept_: ``(K,)``;
        mean_, scale_: ``(d,)`` feature preprocessing (zeros/ones unless standardising);
        class_weights_: ``(K,)`` weights used in training; n_iter_: Newton iterations (the most
        of any problem; after :meth:`fit` only).
    """

    MODEL = "linear_svm"
    TENSORS = ("coef", "intercept", "mean", "scale")

    def __init__(
        self, C: float = 1.0, *, preprocess: str = "standardize", intercept_scaling: float = 1.0, tol: float = 1e-10,
        max_iter: int = 1000,
    ) -> None:
        super().__init__(C, preprocess=preprocess, tol=tol)
        if not (np.isfinite(intercept_scaling) and intercept_scaling > 0):
            raise ValueError(f"intercept_scaling must be positive, got {intercept_scaling!r}")
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
        self.intercept_scaling = float(intercept_scaling)
        self.max_iter = int(max_iter)

    def _solve(self, z: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray) -> None:
        from sklearn.svm import LinearSVC  # noqa: PLC0415

        svc = LinearSVC(
            C=self.C, loss="squared_hinge", penalty="l2", dual=False, multi_class="ovr", fit_intercept=True,
            intercept_scaling=self.intercept_scaling, tol=self.tol, max_iter=self.max_iter, random_state=0,
        )
        svc.fit(z, labels, sample_weight=sample_weight)
        coef, intercept = svc.coef_, svc.intercept_
        if len(svc.classes_) == 2:
            coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept_ = np.ascontiguousarray(intercept, dtype=np.float64)
        self.n_iter_ = int(svc.n_iter_)

    def _scores(self, z: np.ndarray) -> np.ndarray:
        return z @ self.coef_.T + self.intercept_

    def _config(self) -> dict[str, Any]:
        return {"loss": "squared_hinge", "penalty": "l2", "multi_class": "ovr",
                "intercept_scaling": self.intercept_scaling, "max_iter": self.max_iter}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> LinearSVM:
        return cls(config["C"], preprocess=config["preprocess"], intercept_scaling=config["intercept_scaling"],
                   tol=config["tol"], max_iter=config["max_iter"])

    @classmethod
    def _shapes(cls, config: dict[str, Any], k: int, d: int) -> dict[str, tuple[int, ...]]:
        return {"coef": (k, d), "intercept": (k,), "mean": (d,), "scale": (d,)}


def _check_gamma(gamma: Any) -> float | str:
    if gamma == "scale":
        return "scale"
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be 'scale' or a positive number, got {gamma!r}")
    return float(gamma)


class KernelSVM(_OneVsRestSVM):
    """One-vs-rest χ² or RBF kernel SVMs (``sklearn.svm.SVC`` on a precomputed kernel).

    Args:
        C: inverse regularisation strength (> 0).
        kernel: ``"chi2"`` or ``"rbf"`` (module docstring).
        gamma: ``"scale"`` (from the training data; module docstring) or a positive number.
        preprocess: ``"none"``, ``"hellinger"``, or (RBF only) ``"standardize"``.
        tol: libsvm's stopping tolerance (KKT violation).

    Attributes (after :meth:`fit` or :meth:`load`):
        classes_: ``(K,)`` sorted labels; support_: ``(n_SV, d)`` the support vectors
        (preprocessed); dual_coef_: ``(n_SV, K)``; intercept_: ``(K,)``; gamma_: the ``γ`` used;
        mean_, scale_: ``(d,)`` feature preprocessing; class_weights_: ``(K,)``;
        n_iter_: libsvm iterations per problem (after :meth:`fit` only).
    """

    MODEL = "kernel_svm"
    TENSORS = ("support", "dual_coef", "intercept", "mean", "scale")

    def __init__(self, C: float = 1.0, *, kernel: str = "chi2", gamma: float | str = "scale", preprocess: str = "none",
                 tol: float = 1e-8) -> None:
        super().__init__(C, preprocess=preprocess, tol=tol)
        if kernel not in KERNELS[1:]:
            raise ValueError(f"kernel must be one of {KERNELS[1:]}, got {kernel!r}")
        if kernel == "chi2" and preprocess == "standardize":
            raise ValueError("the chi2 kernel needs non-negative features: preprocess 'none' or 'hellinger'")
        self.kernel = kernel
        self.gamma = _check_gamma(gamma)

    def kernel_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``K(a, b)`` of preprocessed features with the fitted ``γ`` (scikit-learn's kernels)."""
        from sklearn.metrics.pairwise import chi2_kernel, rbf_kernel  # noqa: PLC0415

        kernel = chi2_kernel if self.kernel == "chi2" else rbf_kernel
        return kernel(a, b, gamma=self.gamma_)

    def _solve(self, z: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray) -> None:
        from sklearn.svm import SVC  # noqa: PLC0415

        self.gamma_ = self._scale(z) if self.gamma == "scale" else self.gamma
        gram = self.kernel_matrix(z, z)
        k = int(labels.max()) + 1
        problems = [1] if k == 2 else range(k)
        coef = np.zeros((len(z), len(problems)))
        intercept, self.n_iter_ = np.zeros(len(problems)), []
        for column, positive in enumerate(problems):
            svc = SVC(C=self.C, kernel="precomputed", tol=self.tol, shrinking=True)
            svc.fit(gram, np.where(labels == positive, 1, -1), sample_weight=sample_weight)
            coef[svc.support_, column] = svc.dual_coef_[0]  # decision = K(x, x_sv) @ dual_coef + intercept
            intercept[column] = svc.intercept_[0]
            self.n_iter_.append(int(svc.n_iter_[0]))
        if k == 2:
            coef, intercept = np.concatenate([-coef, coef], axis=1), np.concatenate([-intercept, intercept])
        support = np.flatnonzero(np.any(coef != 0, axis=1))
        self.support_ = np.ascontiguousarray(z[support])
        self.dual_coef_ = np.ascontiguousarray(coef[support])
        self.intercept_ = intercept

    def _scale(self, z: np.ndarray) -> float:
        """``gamma="scale"``: 1 / mean χ² distance of distinct training samples, or sklearn's RBF "scale"."""
        if self.kernel == "rbf":
            var = float(z.var())
            return 1.0 / (z.shape[1] * var) if var > 0 else 1.0
        from sklearn.metrics.pairwise import additive_chi2_kernel  # noqa: PLC0415

        n = len(z)
        mean = -float(additive_chi2_kernel(z).sum()) / (n * (n - 1)) if n > 1 else 0.0  # the diagonal is 0
        return 1.0 / mean if mean > 0 else 1.0

    def _scores(self, z: np.ndarray) -> np.ndarray:
        return self.kernel_matrix(z, self.support_) @ self.dual_coef_ + self.intercept_

    def _check_x(self, x: np.ndarray, *, fitted: bool) -> np.ndarray:
        x = super()._check_x(x, fitted=fitted)
        if self.kernel == "chi2" and (x < 0).any():
            raise ValueError("the chi2 kernel needs non-negative features (histograms)")
        return x

    def _config(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "gamma": self.gamma, "gamma_value": self.gamma_, "loss": "hinge",
                "multi_class": "ovr", "n_support": len(self.support_)}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> KernelSVM:
        model = cls(config["C"], kernel=config["kernel"], gamma=config["gamma"], preprocess=config["preprocess"],
                    tol=config["tol"])
        model.gamma_ = float(_check_gamma(config["gamma_value"]))
        return model

    @classmethod
    def _shapes(cls, config: dict[str, Any], k: int, d: int) -> dict[str, tuple[int, ...]]:
        n = config["n_support"]
        if not isinstance(n, int) or n < 1:
            raise TypeError(f"n_support must be a positive integer, got {n!r}")
        return {"support": (n, d), "dual_coef": (n, k), "intercept": (k,), "mean": (d,), "scale": (d,)}


# ------------------------------------------------------------------------------------------------
# As a network of the registry (``lbptop-svm``): what fastmer train fits, saves and exports.

ABSENT_CLASS_SCORE = -1e9
"""Score of a class that had no training sample in a fold (never predicted)."""


class SVMNet(torch.nn.Module):
    """A fitted :class:`LinearSVM` or :class:`KernelSVM` as a module: ``(N, *in_shape) -> (N, num_classes)`` decision values.

    Registered as ``lbptop-svm`` (the LBP-TOP + SVM baseline). It is not trained by gradient
    descent: :meth:`fit` solves the SVM (scikit-learn, deterministic) on the flattened inputs and
    copies the solution into float32 buffers, so the module saves as safetensors like any network
    and exports to ONNX: flatten, preprocessing, then one matmul (linear), or the kernel against
    the stored support vectors and one matmul (χ², RBF).

    Args:
        num_classes: ``K``; classes are the indices ``0..K-1``.
        in_channels: leading input dimension (with ``in_shape``'s others: the features).
        in_shape: ``(C, H, W)`` of one input (for LBP-TOP ``(3, 25, 16)``: 1200 features).
        C, preprocess: of the SVM (default: Hellinger map of the histograms; the papers' χ² SVM
            is ``kernel="chi2", preprocess="none"``).
        class_weight: ``"balanced"`` (default: the MER classes are very unequal) or ``"none"``.
        kernel: ``"linear"`` (:class:`LinearSVM`), ``"chi2"`` or ``"rbf"`` (:class:`KernelSVM`).
        gamma: of the χ² and RBF kernels (``"scale"``: from each fold's training data).

    Negative inputs (not histograms) are clamped at 0 before the Hellinger map and the χ² kernel.

    Example:
        >>> net = SVMNet(3, 3, (3, 25, 16))
        >>> net.fit(torch.rand(30, 3, 25, 16), torch.arange(30) % 3)(torch.rand(2, 3, 25, 16)).shape
        torch.Size([2, 3])
    """

    SV_BLOCK = 64  # support vectors per kernel block in forward (memory N x 64 x features)

    def __init__(self, num_classes: int, in_channels: int, in_shape: tuple[int, ...], *, C: float = 1.0,
                 preprocess: str = "hellinger", class_weight: str = "balanced", kernel: str = "linear",
                 gamma: float | str = "scale") -> None:
        super().__init__()
        if class_weight not in ("balanced", "none"):
            raise ValueError(f"class_weight must be 'balanced' or 'none', got {class_weight!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.class_weight, self.kernel = class_weight, kernel
        d = int(np.prod(in_shape))
        if kernel == "linear":
            if gamma != "scale":
                raise ValueError(f"gamma applies to the chi2 and rbf kernels, not to kernel='linear' (got {gamma!r})")
            self.svm: _OneVsRestSVM = LinearSVM(C, preprocess=preprocess)  # validates C and preprocess
            self.learned_buffers: tuple[str, ...] = ("coef", "intercept")  # what fit() solves for
            self.register_buffer("coef", torch.zeros(num_classes, d))
        else:
            self.svm = KernelSVM(C, kernel=kernel, gamma=gamma, preprocess=preprocess)
            self.learned_buffers = ("support", "dual_coef", "intercept")
            # Their first axis (support vectors) is sized by fit(), or by the weights loaded.
            self.register_buffer("support", torch.zeros(0, d))
            self.register_buffer("dual_coef", torch.zeros(0, num_classes))
            self.register_buffer("gamma", torch.ones(()))
        self.register_buffer("intercept", torch.zeros(num_classes))
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> SVMNet:
        """Solve the SVM on ``x (N, *in_shape)`` and class indices ``y (N,)``; returns self."""
        features = x.detach().flatten(1).double().cpu().numpy()
        labels = y.detach().cpu().numpy()
        svm = self.svm.fit(features, labels, None if self.class_weight == "none" else "balanced")
        rows = torch.as_tensor(svm.classes_.astype(np.int64))
        device = self.intercept.device
        intercept = torch.full_like(self.intercept, ABSENT_CLASS_SCORE, dtype=torch.float64)
        intercept[rows] = torch.from_numpy(svm.intercept_).to(device)
        fitted = {"intercept": intercept, "mean": torch.from_numpy(svm.mean_), "scale": torch.from_numpy(svm.scale_)}
        if isinstance(svm, LinearSVM):
            coef = torch.zeros_like(self.coef, dtype=torch.float64)
            coef[rows] = torch.from_numpy(svm.coef_).to(device)
            fitted["coef"] = coef
        else:
            dual = torch.zeros(len(svm.support_), len(self.intercept), dtype=torch.float64, device=device)
            dual[:, rows] = torch.from_numpy(svm.dual_coef_).to(device)
            fitted.update(support=torch.from_numpy(svm.support_), dual_coef=dual,
                          gamma=torch.tensor(svm.gamma_, dtype=torch.float64))
        for name, value in fitted.items():
            setattr(self, name, value.to(device=device, dtype=torch.float32))  # a buffer: replaced, shape and all
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).float()
        if self.svm.preprocess == "hellinger":
            z = torch.sqrt(z.clamp(min=0))
        z = (z - self.mean) / self.scale
        if self.kernel == "linear":
            return z @ self.coef.t() + self.intercept
        if self.kernel == "chi2":
            z = z.clamp(min=0)
        # Exact per-feature terms (no |x|^2 + |y|^2 - 2xy cancellation), a block of support vectors
        # at a time so memory is (N, block, d), not (N, n_SV, d); the loop unrolls into the ONNX graph.
        distances = []
        for start in range(0, self.support.shape[0], self.SV_BLOCK):
            support = self.support[start : start + self.SV_BLOCK][None]
            diff = z[:, None, :] - support
            terms = diff * diff
            if self.kernel == "chi2":
                total = z[:, None, :] + support
                terms = terms / torch.where(total > 0, total, torch.ones_like(total))  # 0/0 terms: 0, as sklearn
            distances.append(terms.sum(-1))
        distance = torch.cat(distances, dim=1) if len(distances) != 1 else distances[0]
        return torch.exp(-self.gamma * distance) @ self.dual_coef + self.intercept

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
        """Size the support vectors and dual coefficients to the weights being loaded (one per
        support vector); the other dimensions are checked by the load itself."""
        if self.kernel != "linear":
            support, dual = state_dict.get(prefix + "support"), state_dict.get(prefix + "dual_coef")
            if support is not None and dual is not None and support.ndim == 2 and dual.ndim == 2 \
                    and len(support) == len(dual):
                for name, value in (("support", support), ("dual_coef", dual)):
                    own = getattr(self, name)
                    setattr(self, name, own.new_zeros((len(value), own.shape[1])))
        super()._load_from_state_dict(state_dict, prefix, *args)
