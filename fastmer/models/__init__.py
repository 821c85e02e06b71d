"""Recognition networks by name: constructor, input specification and training recipe.

This module is light (no torch import) so the CLI can list models instantly. A
:class:`fastmer.models.model.MERModel` is ``InputAdapter`` (stored representation ->
network input) followed by the network; it is what is trained, saved (safetensors + JSON,
no pickle) and exported.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any

NORMALIZATIONS = ("minmax", "none")


@dataclass(frozen=True)
class InputSpec:
    """Which stored tensor a network reads and how it is prepared.

    Attributes:
        representation: store column, e.g. ``"flow_onset_apex"``.
        channels: channel names taken from it, in network order.
        size: side of the square network input (area resampling); None keeps the stored
            shape (features such as LBP-TOP histograms, which are not images).
        normalization: ``"minmax"`` rescales each channel of each sample to [0, 1];
            ``"none"`` keeps the stored values.
    """

    representation: str
    channels: tuple[str, ...]
    size: int | None
    normalization: str = "minmax"

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be a positive integer or None, got {self.size!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")

    def to_json(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_json(cls, data: dict) -> InputSpec:
        return cls(**{**data, "channels": tuple(data["channels"])})



FITTERS = ("gradient", "solver")
OPTIMIZERS = ("adam", "adamw")
LOSSES = ("ce", "focal")
CLASS_WEIGHTING = ("none", "inverse", "effective")


@dataclass(frozen=True)
class TrainRecipe:
    """Training hyper-parameters of a model; nothing in it can select on test data.

    Attributes:
        epochs: training epochs (the maximum, with ``patience``).
        lr, batch_size, weight_decay: Adam/AdamW settings.
        optimizer: one of :data:`OPTIMIZERS`.
        loss: ``"ce"`` (cross-entropy) or ``"focal"`` (softmax focal loss, ``focal_gamma``).
        class_weighting: per-class weights of the loss (CE ``weight`` / focal ``α_c``) from
            each fold's *training* labels: ``"none"``, ``"inverse"`` or ``"effective"``.
        patience: None trains exactly ``epochs`` epochs. Otherwise early stopping: the
            fold's training subjects are split by subject (``val_fraction`` of them held
            out, :func:`fastmer.train.protocols.inner_split`), the network trains on the
            rest, and the weights of the epoch with the best validation UF1 are kept;
            training stops ``patience`` epochs after the last improvement.
        val_fraction: share of the training subjects in that inner validation split.
    """

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    optimizer: str = "adam"
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weighting: str = "none"
    patience: int | None = None
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"invalid training recipe {self}: epochs, batch_size >= 1, lr > 0, weight_decay >= 0")
        for name, allowed in (("optimizer", OPTIMIZERS), ("loss", LOSSES), ("class_weighting", CLASS_WEIGHTING)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"recipe {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.focal_gamma < 0:
            raise ValueError(f"recipe focal_gamma must be >= 0, got {self.focal_gamma}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"recipe patience must be >= 1 (or None: fixed epochs), got {self.patience}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"recipe val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: constructor (``"module:Class"``), input, recipes and citation.

    ``recipe`` is fastmer's default; ``published`` the recipe of the paper or the authors'
    code, when known. ``fitter`` says how the model learns: ``"gradient"`` (the recipe's
    optimiser and loss) or ``"solver"`` (a convex problem solved exactly by the module's
    ``fit(x, y)``, e.g. the linear SVM; it has no recipe). ``options`` are the constructor's
    keyword arguments (recorded in the model's JSON).
    """

    name: str
    factory: str
    input: InputSpec
    recipe: TrainRecipe | None
    reference: str
    published: TrainRecipe | None = None
    options: dict[str, Any] = field(default_factory=dict)
    fitter: str = "gradient"

    def __post_init__(self) -> None:
        if self.fitter not in FITTERS:
            raise ValueError(f"fitter must be one of {FITTERS}, got {self.fitter!r}")
        if (self.recipe is None) != (self.fitter == "solver"):
            raise ValueError(f"{self.name}: a gradient-trained model needs a recipe, a solver has none")

    def build_class(self) -> type:
        module, _, cls = self.factory.partition(":")
        return getattr(importlib.import_module(module), cls)

    def build(self, num_classes: int, **options: Any) -> Any:
        return self.build_class()(num_classes=num_classes, **options)


MODELS: dict[str, ModelEntry] = {
    "ststnet": ModelEntry(
        name="ststnet",
        factory="fastmer.models.ststnet:STSTNet",
        input=InputSpec("flow_onset_apex", ("u", "v", "strain"), size=28, normalization="minmax"),
        # The authors' port trains 800 epochs of Adam at 5e-5 with batch 256 on ~400 clips
        # (~1,600 steps). On small corpora that is too few steps, so the default keeps
        # Adam and fixed epochs with a larger rate and smaller batches; --recipe published
        # restores the authors' values.
        recipe=TrainRecipe(epochs=100, lr=1e-3, batch_size=32),
        published=TrainRecipe(epochs=800, lr=5e-5, batch_size=256),
        reference="Liong et al., STSTNet, FG 2019; github.com/christy1206/STSTNet",
    ),
    "offapexnet": ModelEntry(
        name="offapexnet",
        factory="fastmer.models.offapexnet:OffApexNet",
        input=InputSpec("flow_onset_apex", ("u", "v"), size=28, normalization="minmax"),
        # 2.66 M parameters (mostly the two 1024-unit layers): a lower Adam rate than
        # STSTNet's default, same fixed epochs and batch. The paper's optimiser settings
        # were not verified, so no published recipe is recorded.
        recipe=TrainRecipe(epochs=100, lr=1e-4, batch_size=32),
        published=None,
        reference="Gan et al., OFF-ApexNet, Signal Process. Image Commun. 2019",
    ),
    "lbptop-svm": ModelEntry(
        name="lbptop-svm",
        factory="fastmer.models.svm:LinearSVMNet",
        # The CASME II / SMIC baselines: LBP-TOP_{4,4,4,1,1,4} on 5x5 blocks (the store's
        # lbptop column) and a linear SVM. Hellinger map of the histograms and balanced class
        # weights are fastmer's choices (options preprocess, class_weight, C).
        input=InputSpec("lbptop", ("xy", "xt", "yt"), size=None, normalization="none"),
        recipe=None,
        options={"C": 1.0, "preprocess": "hellinger", "class_weight": "balanced"},
        fitter="solver",
        reference="Zhao & Pietikainen, LBP-TOP, TPAMI 2007; Yan et al., CASME II baseline, PLoS ONE 2014",
    ),
}


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


__all__ = ["CLASS_WEIGHTING", "FITTERS", "LOSSES", "MODELS", "OPTIMIZERS", "InputSpec", "ModelEntry", "TrainRecipe", "get_entry"]
