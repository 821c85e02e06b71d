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

NORMALIZATIONS = ("auto", "minmax", "signed", "none")
"""How the input adapter scales each channel of each sample (:func:`fastmer.models.inputs.normalize_channels`):
``minmax`` to [0, 1]; ``signed`` divided by the 99th percentile of its magnitude and clipped
to [-1, 1], so zero motion stays 0 and a flow keeps its sign; ``none``; ``auto`` per channel by
what it holds (:func:`fastmer.models.inputs.channel_normalizations`): flows, COF, MM-COF,
magnitudes and strain ``signed``, dynamic images, MESTI and unknown channels ``minmax``,
LBP-TOP histograms ``none``."""


@dataclass(frozen=True)
class InputSpec:
    """Which stored tensor(s) a network reads and how they are prepared.

    Attributes:
        representation: store column, e.g. ``"flow_onset_apex"``, or a tuple of columns of
            the same height and width, concatenated along channels in that order (AFN's
            ``("trdi", "midi")``).
        channels: channel names taken from it, in network order.
        size: side of the square network input (area resampling); None keeps the stored
            shape (the crop size chosen at extraction, or features such as LBP-TOP
            histograms, which are not images).
        normalization: one of :data:`NORMALIZATIONS` (default ``"auto"``: signed maps keep zero
            at zero, dynamic images are min–max scaled as their papers do).
        groups: the network's input streams, equal consecutive slices of ``channels`` (3 for
            MicroAttNet's u/v/M streams). With views stacked as channels each group takes
            its channels of every view in turn (``[u_L,p1, u_L,p2, u_R,p1, u_R,p2]``).
    """

    representation: str | tuple[str, ...]
    channels: tuple[str, ...]
    size: int | None
    normalization: str = "auto"
    groups: int = 1

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be a positive integer or None, got {self.size!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.groups < 1 or len(self.channels) % self.groups:
            raise ValueError(f"groups ({self.groups}) must divide the {len(self.channels)} channels")

    @property
    def representations(self) -> tuple[str, ...]:
        return (self.representation,) if isinstance(self.representation, str) else tuple(self.representation)

    def describe(self) -> str:
        return "+".join(self.representations)

    def to_json(self) -> dict:
        data = {**asdict(self), "channels": list(self.channels)}
        if not isinstance(self.representation, str):
            data["representation"] = list(self.representation)
        return data

    @classmethod
    def from_json(cls, data: dict) -> InputSpec:
        representation = data["representation"]
        if not isinstance(representation, str):
            representation = tuple(representation)
        return cls(**{**data, "representation": representation, "channels": tuple(data["channels"])})


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
        # min-max per map, as fastmer has always fed STSTNet and OFF-ApexNet (their papers do not
        # state the scaling of the 28x28 maps; `fastmer train --normalization signed` compares).
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
        factory="fastmer.models.svm:SVMNet",
        # The CASME II / SMIC baselines: LBP-TOP_{4,4,4,1,1,4} on 5x5 blocks (the store's
        # lbptop column) and an SVM (scikit-learn). A linear SVM on the Hellinger map of the
        # histograms and balanced class weights are fastmer's choices (options kernel, preprocess,
        # class_weight, C); -O kernel=chi2 -O preprocess=none is the papers' chi-squared SVM
        # (-O kernel=rbf: RBF; -O gamma=G, default "scale": from each fold's training data).
        input=InputSpec("lbptop", ("xy", "xt", "yt"), size=None, normalization="none"),
        recipe=None,
        options={"C": 1.0, "preprocess": "hellinger", "class_weight": "balanced", "kernel": "linear"},
        fitter="solver",
        reference="Zhao & Pietikainen, LBP-TOP, TPAMI 2007; Yan et al., CASME II baseline, PLoS ONE 2014",
    ),
    # --- the seed papers' networks (SPEC.md). Their papers publish no training recipe, so
    # `recipe` is SPEC's implementable reading [D] and `published` stays None. Inputs keep the
    # store's crop size (size=None; `fastmer extract --size`, or `fastmer train --input-size`).
    "microattnet": ModelEntry(
        name="microattnet",
        factory="fastmer.models.microattnet:MicroAttNet",
        input=InputSpec("flow_phases", ("u_oa", "u_ao", "v_oa", "v_ao", "m_oa", "m_ao"), size=None, groups=3),
        recipe=TrainRecipe(epochs=100, lr=1e-3, batch_size=16, loss="focal", focal_gamma=2.0, patience=10),
        reference="Nguyen et al., Dual-View Optical Flow for 4D MER (Triple-Stream MicroAttNet), arXiv:2603.26849; "
                  "4DMR @ IJCAI 2025 winner",
    ),
    "fmanet": ModelEntry(
        name="fmanet",
        factory="fastmer.models.fmanet:FMANet",
        input=InputSpec("flow_phases", ("u_oa", "v_oa", "m_oa", "u_ao", "v_ao", "m_ao"), size=None, groups=2),
        recipe=TrainRecipe(epochs=100, lr=1e-4, batch_size=32),
        options={"encoder": "compact"},
        reference="Nguyen et al., FMANet, arXiv:2510.07810",
    ),
    "mmcof": ModelEntry(
        name="mmcof",
        factory="fastmer.models.fmanet:BackboneClassifier",
        input=InputSpec("mm_cof", ("u_mm", "v_mm", "m_cof"), size=None),
        recipe=TrainRecipe(epochs=50, lr=1e-4, batch_size=32),
        options={"encoder": "compact"},
        reference="Nguyen et al., MM-COF (FMANet paper), arXiv:2510.07810; hand-crafted input, plain CNN backbone",
    ),
    "cof": ModelEntry(
        name="cof",
        factory="fastmer.models.fmanet:BackboneClassifier",
        input=InputSpec("cof", ("u_cof", "v_cof", "m_cof"), size=None),
        recipe=TrainRecipe(epochs=50, lr=1e-4, batch_size=32),
        options={"encoder": "compact"},
        reference="Khuong et al., Combined Optical Flow, arXiv:2510.15471",
    ),
    "dianet": ModelEntry(
        name="dianet",
        factory="fastmer.models.dianet:DIANet",
        input=InputSpec("dynamic_image_phases", ("di_oa", "di_ao"), size=None, groups=2),
        recipe=TrainRecipe(epochs=50, lr=1e-4, batch_size=16),
        options={"encoder": "compact"},
        reference="Khuong et al., DIANet, 4DMR @ IJCAI 2025, arXiv:2510.12219",
    ),
    "afn": ModelEntry(
        name="afn",
        factory="fastmer.models.afn:AFN",
        input=InputSpec(("trdi", "midi"), ("trdi", "midi"), size=None, groups=2),
        recipe=TrainRecipe(epochs=50, lr=1e-4, batch_size=16),
        options={"encoder": "compact"},
        reference="Man et al., Adaptive Fusion Network with TRDI and MIDI, arXiv:2510.09730",
    ),
    "meganet": ModelEntry(
        name="meganet",
        factory="fastmer.models.meganet:MEGANet",
        input=InputSpec("mesti", ("mesti",), size=None),
        recipe=TrainRecipe(epochs=100, lr=1e-4, batch_size=16),
        reference="MESTI-MEGANet, arXiv:2509.00056",
    ),
    "meganet-di": ModelEntry(
        name="meganet-di",
        factory="fastmer.models.meganet:MEGANet",
        # MEGANet on the ordinary onset->offset dynamic image: the paper's input comparison.
        input=InputSpec("dynamic_image", ("di",), size=None),
        recipe=TrainRecipe(epochs=100, lr=1e-4, batch_size=16),
        reference="MESTI-MEGANet, arXiv:2509.00056 (dynamic-image input, for comparison with MESTI)",
    ),
    "learnet": ModelEntry(
        name="learnet",
        factory="fastmer.models.learnet:LEARNet",
        # The authors' code takes 112x112 images: `fastmer train --input-size 112`.
        input=InputSpec("dynamic_image", ("di",), size=None),
        recipe=TrainRecipe(epochs=50, lr=1e-4, batch_size=32),
        reference="Verma et al., LEARNet, IEEE TIP 2020; used by Khuong et al., dual-phase DI augmentation, "
                  "arXiv:2510.15466",
    ),
}


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def model_options(name: str) -> dict[str, Any]:
    """The constructor options of model ``name`` with their defaults (what ``options`` may set)."""
    import inspect  # noqa: PLC0415

    signature = inspect.signature(get_entry(name).build_class())
    return {key: p.default for key, p in signature.parameters.items()
            if key not in ("num_classes", "in_channels", "in_shape") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise a clear error for options model ``name`` does not take."""
    known = model_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"model {name} has no option(s) {', '.join(unknown)}; its options: "
                         + ", ".join(f"{k}={v!r}" for k, v in known.items()))


__all__ = ["CLASS_WEIGHTING", "FITTERS", "LOSSES", "MODELS", "OPTIMIZERS", "InputSpec", "ModelEntry", "TrainRecipe",
           "check_options", "get_entry", "model_options"]
