"""Explanations of trained models: Grad-CAM, MicroAttNet's stream weights, DIANet's cross-attention.

The tensor functions work on any network (an ``nn.Module`` from network input to logits):

* :func:`grad_cam` — Grad-CAM (Selvaraju et al., ICCV 2017): ``ReLU(Σ_k α_k A_k)`` with
  ``A`` a convolution's output and ``α_k`` the spatial mean of ``∂ logit_target / ∂ A_k``,
  upsampled bilinearly to the input's ``H × W`` and min–max scaled to ``[0, 1]`` per map;
* :func:`conv_layers` — the ``nn.Conv2d`` modules the input reaches, in the order they run;
* :func:`stream_layers` — for a multi-stream network, each input stream's own last
  convolution (the last one whose output depends on that stream's channels only);
* :func:`stream_weights` — MicroAttNet's fusion-attention weights of its H, V, M streams;
* :func:`cross_attention` — DIANet's cross-attention weights between its two phase streams.

:func:`explain_clip` explains one clip of a ``fastmer train`` run with the model that did
not train on it (its fold's model, :func:`clip_model`), and :func:`write_explanation` draws
it: ``crops.png`` (the key-frame crops, and the apex crop under each Grad-CAM map),
``gradcam.png`` (each network input channel, alone and under its map), ``stream_weights.png``
(MicroAttNet), ``attention.png`` (DIANet) and ``explanation.json`` (every number drawn).

Which models: every network of the registry with convolutions. Single-stream networks
(STSTNet, OFF-ApexNet, the COF/MM-COF backbones, MEGANet, LEARNet) get one map at their last
convolution; networks whose input is split into streams (``InputSpec.groups`` > 1:
MicroAttNet, FMANet, DIANet, AFN) get one map per stream at that stream's own last
convolution, drawn over that stream's channels. STSTNet's three parallel convolutions all
read the whole input; its default map is the last one's (``layer="streams.2.0"``), the
others are selectable. The LBP-TOP SVM has no convolution and is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from fastmer.models.model import MERModel
    from fastmer.store import FeatureStore

__all__ = [
    "CamMap",
    "ClipModel",
    "CrossAttentionMaps",
    "Explanation",
    "clip_model",
    "conv_layers",
    "cross_attention",
    "explain_clip",
    "grad_cam",
    "stream_layers",
    "stream_weights",
    "write_explanation",
]

EXPLANATION_JSON = "explanation.json"


# --------------------------------------------------------------------------- tensors
def _check_inputs(inputs: Any, name: str = "inputs") -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(inputs).__name__}")
    if inputs.dim() != 4 or inputs.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, C, H, W) tensor, got shape {list(inputs.shape)}")
    if not inputs.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {inputs.dtype}")
    return inputs


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm's running statistics, no dropout): each sample is explained on its own."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _conv_names(model: nn.Module) -> dict[nn.Module, str]:
    return {module: name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}


def conv_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the ``nn.Conv2d`` modules of ``model`` that ``inputs`` reaches, in the order they
    last run (one forward pass with hooks, in eval mode, no gradients).

    Args:
        model: a network, ``(N, C, H, W) -> (N, K)``.
        inputs: ``(N, C, H, W)`` network input.

    Returns:
        Module names as in ``model.named_modules()``; empty when no convolution runs.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Flatten(), nn.LazyLinear(3))
        >>> conv_layers(net, torch.zeros(1, 1, 8, 8))
        ['0', '2']
    """
    inputs = _check_inputs(inputs)
    names = _conv_names(model)
    order: list[str] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        name = names[module]
        if name in order:  # a convolution run twice counts where it last ran
            order.remove(name)
        order.append(name)

    handles = [module.register_forward_hook(hook) for module in names]
    try:
        with torch.no_grad(), _eval_mode(model):
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _targets(target: Any, logits: torch.Tensor) -> torch.Tensor:
    n, k = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    targets = torch.as_tensor(target, device=logits.device)
    if targets.is_floating_point() or targets.dim() > 1:
        raise ValueError(f"target must be a class index or one per sample, got {target!r}")
    targets = targets.long().expand(n) if targets.dim() == 0 else targets.long()
    if targets.shape != (n,):
        raise ValueError(f"target: expected one class index per sample ({n}), got {targets.numel()}")
    if bool(((targets < 0) | (targets >= k)).any()):
        raise ValueError(f"target {targets.tolist()} out of range: the model has {k} classes (0..{k - 1})")
    return targets


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    """Each ``(H, W)`` map scaled to ``[0, 1]``; a constant map becomes zeros."""
    lo = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - lo
    return torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(maps))


def grad_cam(model: nn.Module, inputs: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None,
             layer: str | None = None) -> torch.Tensor:
    """Grad-CAM maps of ``model`` for ``inputs``, at the input's resolution.

    ``A = layer(...)`` ``(N, K, h, w)``; ``α_k = mean_{i,j} ∂ logit_target / ∂ A_k[i, j]``;
    ``map = ReLU(Σ_k α_k A_k)``, upsampled bilinearly (half-pixel centres, as
    ``F.interpolate(align_corners=False)``) to ``H × W`` and min–max scaled to ``[0, 1]`` per
    map (a map with no positive evidence is all zeros). The model runs in eval mode (restored
    after), so the samples do not interact through BatchNorm.

    Args:
        model: a network, ``(N, C, H, W) -> (N, num_classes)`` logits.
        inputs: ``(N, C, H, W)`` network input (floating point).
        target: the class explained: one index for every sample, one per sample, or None
            for each sample's predicted class (largest logit).
        layer: name (``model.named_modules()``) of the ``nn.Conv2d`` to explain at; default
            the last convolution the input reaches (:func:`conv_layers`).

    Returns:
        ``(N, H, W)`` maps in ``[0, 1]``, of the input's dtype and device (no gradient).

    Raises:
        ValueError: no convolution is reached, ``layer`` is not one of those reached (the
            message lists them), or ``target`` is out of range.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                     nn.Linear(4, 2))
        >>> grad_cam(net, torch.randn(2, 1, 16, 16), layer="0").shape
        torch.Size([2, 16, 16])
    """
    inputs = _check_inputs(inputs)
    reached = conv_layers(model, inputs)
    if not reached:
        raise ValueError(f"{type(model).__name__} has no convolution (nn.Conv2d) that its input reaches; "
                         "Grad-CAM explains convolutional networks only")
    if layer is None:
        layer = reached[-1]
    elif layer not in reached:
        raise ValueError(f"layer {layer!r} is not a convolution that the input of {type(model).__name__} reaches; "
                         f"valid layers: {', '.join(reached)}")
    module = dict(model.named_modules())[layer]
    captured: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        captured.append(output)
        # Downstream in-place ops (ReLU(inplace=True)) then change the copy, not the activation
        # kept here; the gradient still flows to it through the copy.
        return output.clone()

    # The input requires gradients so that the activation does even when the weights are frozen.
    x = inputs.detach().requires_grad_(True)
    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad(), _eval_mode(model):
            logits = model(x)
    finally:
        handle.remove()
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"{type(model).__name__} should return (N, num_classes) logits, got {list(logits.shape)}")
    targets = _targets(target, logits)
    activation = captured[-1]
    # Samples are independent in eval mode: one backward pass of the summed target logits
    # gives every sample's own gradient.
    (gradient,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), activation)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    return _minmax(cam).detach()


def _channel_slices(channels: int, groups: int) -> list[range]:
    if groups < 1 or channels % groups:
        raise ValueError(f"groups ({groups}) must divide the input's {channels} channels")
    per = channels // groups
    return [range(g * per, (g + 1) * per) for g in range(groups)]


def _conv_streams(model: nn.Module, inputs: torch.Tensor, slices: list[range]) -> tuple[list[str], dict[str, set[int]]]:
    """The convolutions the input reaches (run order) and, for each, the streams (channel slices) it depends on."""
    names = _conv_names(model)
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        name = names[module]
        outputs[name] = output
        if name in order:
            order.remove(name)
        order.append(name)
        return output.clone()  # in-place ops downstream change the copy (see grad_cam)

    x = inputs.detach().requires_grad_(True)
    handles = [module.register_forward_hook(hook) for module in names]
    try:
        with torch.enable_grad(), _eval_mode(model):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    generator = torch.Generator().manual_seed(0)
    streams_of: dict[str, set[int]] = {}
    for name in order:
        output = outputs[name]
        probe = torch.randn(output.shape, generator=generator, dtype=output.dtype).to(output.device)
        (gradient,) = torch.autograd.grad((output * probe).sum(), x, retain_graph=True, allow_unused=True)
        if gradient is None:
            continue
        used = gradient.abs().sum(dim=(0, 2, 3))
        streams_of[name] = {g for g, part in enumerate(slices) if float(used[part.start:part.stop].sum()) > 0}
    return order, streams_of


def stream_layers(model: nn.Module, inputs: torch.Tensor, groups: int) -> list[str]:
    """Each input stream's own last convolution.

    Stream ``g`` is the ``g``-th of ``groups`` equal consecutive slices of the input channels
    (:attr:`fastmer.models.InputSpec.groups`). Its own last convolution is the last one to run
    whose output depends on that stream's channels only: a convolution depends on the
    channels where the gradient of a random projection of its output is not exactly zero
    (channels a network never reads get exact zeros).

    Args:
        model: a network; inputs: ``(N, C, H, W)`` its input; groups: how many streams.

    Returns:
        One module name per stream.

    Raises:
        ValueError: ``groups`` does not divide the channels, or a stream has no convolution of
            its own (its channels are mixed with others' before any convolution).

    Example:
        >>> from fastmer.models.microattnet import MicroAttNet
        >>> stream_layers(MicroAttNet(3, in_channels=6), torch.rand(1, 6, 32, 32), 3)
        ['encoders.0.layers.8', 'encoders.1.layers.8', 'encoders.2.layers.8']
    """
    inputs = _check_inputs(inputs)
    slices = _channel_slices(inputs.shape[1], groups)
    order, streams_of = _conv_streams(model, inputs, slices)
    layers = []
    for g, part in enumerate(slices):
        own = [name for name in order if streams_of.get(name) == {g}]
        if not own:
            raise ValueError(f"stream {g} (input channels {part.start}..{part.stop - 1}) of {type(model).__name__} has "
                             "no convolution of its own: its channels are mixed with other streams' first")
        layers.append(own[-1])
    return layers


def stream_weights(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """MicroAttNet's fusion-attention weights of its horizontal, vertical and magnitude streams.

    Args:
        model: a :class:`~fastmer.models.microattnet.MicroAttNet` (or any network with a
            ``stream_weights(x)`` method); inputs: ``(N, C, H, W)`` its input.

    Returns:
        ``(N, S)`` weights, each row summing to 1 (eval mode, no gradient).

    Raises:
        ValueError: the network has no stream weights (another model, or a MicroAttNet
            built without fusion attention).

    Example:
        >>> from fastmer.models.microattnet import MicroAttNet
        >>> stream_weights(MicroAttNet(3, in_channels=6), torch.rand(2, 6, 32, 32)).shape
        torch.Size([2, 3])
    """
    inputs = _check_inputs(inputs)
    method = getattr(model, "stream_weights", None)
    if not callable(method):
        raise ValueError(f"{type(model).__name__} has no stream weights (MicroAttNet's fusion attention has)")
    with torch.no_grad(), _eval_mode(model):
        return method(inputs)


@dataclass
class CrossAttentionMaps:
    """DIANet's cross-attention: each stream's tokens attending to the other stream's.

    Attributes:
        weights: two ``(N, heads, L, L)`` tensors: ``weights[i][n, h, q, k]`` is how much
            token ``q`` of stream ``i`` attends to token ``k`` of the other stream (rows sum to 1).
        grid: ``(h, w)`` of the encoders' feature maps: token ``t`` is at row ``t // w``, column ``t % w``.
    """

    weights: list[torch.Tensor]
    grid: tuple[int, int]

    def received(self, i: int) -> torch.Tensor:
        """``(N, h, w)``: the attention the *other* stream's tokens receive from stream ``i``'s
        tokens, averaged over heads and queries (each map sums to 1)."""
        return self.weights[i].mean(dim=(1, 2)).reshape(-1, *self.grid)


def cross_attention(model: nn.Module, inputs: torch.Tensor) -> CrossAttentionMaps:
    """The attention weights of DIANet's bidirectional cross-attention for ``inputs``.

    DIANet runs its attention with ``need_weights=False``; the inputs of each
    ``nn.MultiheadAttention`` are captured in a forward pass and the same module is run again
    on them with ``need_weights=True`` (per head).

    Args:
        model: a :class:`~fastmer.models.dianet.DIANet` with ``fusion="cross-attention"``.
        inputs: ``(N, 2, H, W)`` its input.

    Returns:
        :class:`CrossAttentionMaps`.

    Raises:
        ValueError: the network has no cross-attention.

    Example:
        >>> from fastmer.models.dianet import DIANet
        >>> maps = cross_attention(DIANet(3, in_shape=(2, 32, 32)), torch.rand(1, 2, 32, 32))
        >>> maps.weights[0].shape, maps.grid
        (torch.Size([1, 4, 16, 16]), (4, 4))
    """
    from fastmer.models.dianet import CrossAttention  # noqa: PLC0415

    inputs = _check_inputs(inputs)
    cross = getattr(model, "cross", None)
    if not isinstance(cross, nn.ModuleList) or not all(isinstance(c, CrossAttention) for c in cross):
        raise ValueError(f"{type(model).__name__} has no cross-attention (DIANet with fusion='cross-attention' has)")
    captured: dict[int, tuple[torch.Tensor, ...]] = {}
    shapes: list[tuple[int, int]] = []
    handles = [c.attention.register_forward_hook(lambda m, args, out, i=i: captured.__setitem__(i, args))
               for i, c in enumerate(cross)]
    handles += [e.register_forward_hook(lambda m, args, out: shapes.append(tuple(out.shape[-2:])))
                for e in model.encoders]
    try:
        with torch.no_grad(), _eval_mode(model):
            model(inputs)
            weights = [cross[i].attention(*captured[i][:3], need_weights=True, average_attn_weights=False)[1]
                       for i in range(len(cross))]
    finally:
        for handle in handles:
            handle.remove()
    return CrossAttentionMaps(weights, shapes[0])


# --------------------------------------------------------------------------- a run's clip
@dataclass
class ClipModel:
    """The model of a run chosen to explain a clip, and why.

    Attributes:
        model: the loaded :class:`~fastmer.models.model.MERModel` (eval mode).
        weights, config: its files, relative to the run directory.
        fold: the fold whose model it is (None: the final model).
        trained_on_clip: whether this model was trained on the clip.
        reason: one sentence for the researcher.
    """

    model: MERModel
    weights: str
    config: str
    fold: str | None
    trained_on_clip: bool
    reason: str


def _check_run(run: str | Path) -> Path:
    run = Path(run)
    if not (run / "model.json").is_file():
        seeds = sorted(p.name for p in run.glob("seed-*") if (p / "model.json").is_file())
        hint = f" (a multi-seed run: explain one of its runs, {', '.join(seeds)})" if seeds else ""
        raise FileNotFoundError(f"{run} is not a fastmer training run: model.json is missing{hint}")
    return run


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def clip_model(run: str | Path, sample: str) -> ClipModel:
    """The model of ``run`` to explain ``sample`` with: one that did not train on it.

    A run keeps every fold's model (``folds/fold-NNN.safetensors`` + ``.json``) and
    ``folds.json`` lists each fold's test clips. The model of the fold testing ``sample``
    never saw it (nor its subject): that one is used. A clip no fold tests (a training clip
    of a hold-out run, or a clip the label protocol excluded) gets the final model
    (``model.safetensors``), and :attr:`ClipModel.trained_on_clip` says whether it saw the clip.

    Args:
        run: a ``fastmer train`` run directory.
        sample: the clip's uid (with views stacked as channels, the clip without ``@view``).

    Raises:
        FileNotFoundError: ``run`` is not a run directory (no ``model.json``), or a fold's files are missing.
        ValueError: a file does not match the run (weights hash, fold name).
    """
    from fastmer.models.model import MERModel  # noqa: PLC0415

    run = _check_run(run)
    manifest = _read_json(run / "folds.json") if (run / "folds.json").is_file() else []
    trained_by = [entry["name"] for entry in manifest if sample in entry.get("train", ())]
    for i, entry in enumerate(manifest):
        if sample not in entry.get("test", ()):
            continue
        weights, config = Path("folds") / f"fold-{i:03d}.safetensors", Path("folds") / f"fold-{i:03d}.json"
        for path in (weights, config):
            if not (run / path).is_file():
                raise FileNotFoundError(f"{run / path} is missing: the model of fold {entry['name']} (which tests "
                                        f"{sample}) was not kept")
        saved = _read_json(run / config)
        if saved.get("fold") not in (None, entry["name"]):
            raise ValueError(f"{run / config} is the model of fold {saved.get('fold')!r}, but folds.json names fold "
                             f"{i} {entry['name']!r}")
        model = MERModel.load(run / weights, run / config)
        return ClipModel(model, str(weights), str(config), entry["name"], False,
                         f"the model of fold {entry['name']}, whose test set holds {sample}: it never trained on this "
                         "clip nor on its subject")
    model = MERModel.load(run / "model.safetensors", run / "model.json")
    if trained_by:
        reason = (f"no fold tests {sample} (it trained fold(s) {', '.join(trained_by)}); the final model, trained on "
                  "every clip including this one, is used: it explains a clip the model has seen")
    else:
        reason = (f"{sample} was in no fold of the run (its label is outside the run's label protocol, or a view "
                  "was missing); the final model, which never trained on it, is used")
    return ClipModel(model, "model.safetensors", "model.json", None, bool(trained_by), reason)


def run_store_path(run: str | Path) -> Path:
    """The feature store a run was trained on, as recorded in its ``report.json`` (or ``model.json``)."""
    run = Path(run)
    for name in ("report.json", "model.json"):
        if (run / name).is_file():
            data = _read_json(run / name)
            recorded = data.get("store") or (data.get("trained_on") or {}).get("store")
            if recorded:
                return Path(recorded)
    raise ValueError(f"{run} records no feature store (report.json 'store', model.json 'trained_on')")


def _row_tensor(store: FeatureStore, name: str, row: int) -> np.ndarray:
    chunks = [c for c in store.table.slice(row, 1).column(name).chunks if len(c)]
    return chunks[0].to_numpy_ndarray()[0]


def _sample_rows(store: FeatureStore, clip: str, views: tuple[str, ...]) -> tuple[str, list[int]]:
    """The sample ``clip`` names (uid, or the clip of stacked views) and its store rows (one per view)."""
    from fastmer.models.inputs import clip_of  # noqa: PLC0415
    from fastmer.viz import find_clip  # noqa: PLC0415

    uids = store.column("uid")
    if views and f"{clip}@{views[0]}" in uids:
        sample = clip
    else:
        row = find_clip(store, clip)  # LookupError with close matches
        if not views:
            return uids[row], [row]
        sample = clip_of(uids[row])
    missing = [v for v in views if f"{sample}@{v}" not in uids]
    if missing:
        raise LookupError(f"clip {sample!r} lacks view(s) {', '.join(missing)} in {store.path}; the model stacks the "
                          f"views {', '.join(views)} as channels")
    return sample, [uids.index(f"{sample}@{v}") for v in views]


def _stored_input(store: FeatureStore, config: dict[str, Any], rows: list[int]) -> torch.Tensor:
    """``(1, C, H, W)``: the stored input of one sample, read row by row (as ``model_input`` builds it)."""
    from fastmer.models import InputSpec  # noqa: PLC0415
    from fastmer.models.inputs import check_representations, stacked_channels  # noqa: PLC0415

    spec = InputSpec.from_json(config["input"])
    check_representations(store, spec)
    views = tuple(config.get("views") or ())
    parts = [np.asarray(_row_tensor(store, name, row), dtype=np.float32) for row in rows for name in spec.representations]
    channels = tuple(c for name in spec.representations for c in store.representations[name]["channels"])
    if views:
        channels = stacked_channels(channels, views)
    stored = torch.from_numpy(np.concatenate(parts, axis=0))[None]
    expected = tuple(config["stored"]["channels"]), tuple(config["stored"]["shape"])
    if (channels, tuple(stored.shape[1:])) != expected:
        raise ValueError(f"store {store.path} gives {spec.describe()} channels {list(channels)} of shape "
                         f"{list(stored.shape[1:])}; the model was trained on {list(expected[0])} of shape "
                         f"{list(expected[1])}")
    return stored


@dataclass
class CamMap:
    """One Grad-CAM map of an explanation.

    Attributes:
        stream: the stream's name (None: the whole input).
        layer: the convolution explained at.
        channels: the network input channels the map is drawn over (its stream's).
        map: ``(H, W)`` in ``[0, 1]``, at the network input's resolution.
    """

    stream: str | None
    layer: str
    channels: list[str]
    map: np.ndarray


@dataclass
class Explanation:
    """Everything :func:`explain_clip` computed for one clip (drawn by :func:`write_explanation`).

    Attributes:
        sample: the clip's uid (or clip name, views stacked); rows: its store rows.
        metadata: the clip's store metadata (uid, subject, labels, onset/apex/offset...).
        model: the model used and why (:class:`ClipModel` without the module).
        classes, logits, scores: the model's classes, its ``(K,)`` logits and scores
            (softmax, or sigmoid for a multi-label run); score_kind names them.
        predicted, target: class names (the target is what the maps explain).
        channels: network input channel names; network_input: ``(C, H, W)`` that input.
        cams: the Grad-CAM maps (one per stream for multi-stream networks).
        stream_weights: ``{stream name: weight}`` (MicroAttNet), else None.
        attention: DIANet's received-attention maps (``(h, w)`` per direction) and raw weights, else None.
        keyframes: uint8 crops ``(h, w)`` or ``(h, w, 3)`` by name (onset, apex, offset); None: the store has none.
        notes: what was not computed, and why.
    """

    sample: str
    rows: list[int]
    metadata: dict[str, Any]
    model: dict[str, Any]
    classes: list[str]
    logits: np.ndarray
    scores: np.ndarray
    score_kind: str
    predicted: str
    target: str
    channels: list[str]
    network_input: np.ndarray
    cams: list[CamMap]
    stream_weights: dict[str, float] | None = None
    attention: dict[str, Any] | None = None
    keyframes: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


def _stream_names(net: nn.Module, channels: Sequence[str], groups: int) -> list[str]:
    from fastmer.models.microattnet import STREAMS, MicroAttNet  # noqa: PLC0415

    slices = _channel_slices(len(channels), groups)
    if isinstance(net, MicroAttNet) and groups == len(STREAMS):
        return list(STREAMS)
    return ["+".join(channels[i] for i in part) for part in slices]


def explain_clip(run: str | Path, clip: str, *, target: str | None = None, layer: str | None = None,
                 store: str | Path | None = None) -> Explanation:
    """Explain one clip of a training run with the model that did not train on it.

    Args:
        run: a ``fastmer train`` run directory.
        clip: the clip's uid or clip_id (:func:`fastmer.viz.find_clip`); with views stacked as
            channels, the clip's uid without ``@view`` or any of its views' uids.
        target: class name to explain (default: the predicted class).
        layer: explain at this convolution only (one map over all channels) instead of the
            default (the last convolution; one per stream for multi-stream networks).
        store: the feature store, when it is no longer where the run recorded it (it must be
            the same extraction: its params hash is checked).

    Returns:
        :class:`Explanation`.

    Raises:
        FileNotFoundError: not a run, or the run's store is missing.
        LookupError: ``clip`` is not in the store (close matches are suggested).
        ValueError: unknown ``target`` or ``layer``, a store of other parameters, or a model
            without convolutions.

    Example:
        >>> e = explain_clip("runs/microattnet", "casme2/sub01/EP02_01")  # doctest: +SKIP
        >>> e.stream_weights, [c.layer for c in e.cams]  # doctest: +SKIP
    """
    import fastmer.store as fstore  # noqa: PLC0415
    from fastmer.models import InputSpec  # noqa: PLC0415
    from fastmer.models.inputs import network_channels  # noqa: PLC0415
    from fastmer.viz import clip_metadata  # noqa: PLC0415

    run = _check_run(run)
    final_config = _read_json(run / "model.json")
    store_path = Path(store) if store is not None else run_store_path(run)
    if not store_path.is_dir():
        raise FileNotFoundError(f"the feature store of run {run} is missing: {store_path} (recorded in the run) does not "
                                "exist; pass the store where it is now (--store)")
    feature_store = fstore.open(store_path)
    expected_hash = (final_config.get("trained_on") or {}).get("params_hash")
    if expected_hash is not None and feature_store.meta.get("params_hash") != expected_hash:
        raise ValueError(f"store {store_path} was extracted with other parameters (params hash "
                         f"{feature_store.meta.get('params_hash')}) than the store run {run} was trained on ({expected_hash})")
    views = tuple(final_config.get("views") or ())
    sample, rows = _sample_rows(feature_store, clip, views)
    chosen = clip_model(run, sample)
    model = chosen.model
    net = model.net
    if not any(isinstance(m, nn.Conv2d) for m in net.modules()):
        raise ValueError(f"model {model.config['model']} of run {run} has no convolution (nn.Conv2d): Grad-CAM explains "
                         "convolutional networks only")
    classes = list(model.classes)
    stored = _stored_input(feature_store, model.config, rows)
    with torch.no_grad():
        x = model.adapter(stored)
        logits = net.eval()(x)[0]
    multilabel = bool(final_config.get("multilabel")) or _run_multilabel(run)
    scores = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=0)
    predicted = int(logits.argmax())
    if target is None:
        target_index = predicted
    elif target in classes:
        target_index = classes.index(target)
    else:
        raise ValueError(f"unknown target class {target!r}; the run's classes: {', '.join(classes)}")
    spec = InputSpec.from_json(model.config["input"])
    channels = list(network_channels(spec, views))
    cams: list[CamMap] = []
    notes: list[str] = []
    groups = spec.groups
    if layer is None and groups > 1:
        try:
            layers = stream_layers(net, x, groups)
        except ValueError as exc:
            notes.append(f"one map for the whole input: {exc}")
        else:
            names = _stream_names(net, channels, groups)
            for name, part, stream_layer in zip(names, _channel_slices(len(channels), groups), layers, strict=True):
                cam = grad_cam(net, x, target_index, stream_layer)[0].numpy()
                cams.append(CamMap(name, stream_layer, [channels[i] for i in part], cam))
    if not cams:
        reached = conv_layers(net, x)
        chosen_layer = layer if layer is not None else (reached[-1] if reached else None)
        cam = grad_cam(net, x, target_index, chosen_layer)[0].numpy()
        stream, drawn = None, channels
        if groups > 1:  # a layer inside one stream is drawn over that stream's channels only
            slices = _channel_slices(len(channels), groups)
            used = _conv_streams(net, x, slices)[1].get(chosen_layer, set())
            if len(used) == 1:
                (g,) = used
                stream, drawn = _stream_names(net, channels, groups)[g], [channels[i] for i in slices[g]]
        cams.append(CamMap(stream, chosen_layer, drawn, cam))
    weights = None
    if callable(getattr(net, "stream_weights", None)):
        try:
            values = stream_weights(net, x)[0].tolist()
        except ValueError as exc:
            notes.append(f"no stream weights: {exc}")
        else:
            weights = dict(zip(_stream_names(net, channels, groups), values, strict=True))
    attention = None
    if hasattr(net, "cross") and hasattr(net, "encoders"):
        try:
            maps = cross_attention(net, x)
        except ValueError as exc:
            notes.append(f"no attention maps: {exc}")
        else:
            names = _stream_names(net, channels, groups)
            attention = {"grid": list(maps.grid), "directions": [
                {"queries": names[i], "keys": names[1 - i], "received": maps.received(i)[0].numpy(),
                 "weights": maps.weights[i][0].numpy()} for i in range(2)]}
    metadata = clip_metadata(feature_store, rows[0])
    keyframes = _keyframes(feature_store, rows[0])
    if keyframes is None:
        notes.append(f"no key-frame crops: store {store_path} has no keyframes column (format before v4, or synthetic)")
    return Explanation(
        sample=sample, rows=rows, metadata=metadata,
        model={"name": model.config["model"], "weights": chosen.weights, "config": chosen.config, "fold": chosen.fold,
               "trained_on_clip": chosen.trained_on_clip, "choice": chosen.reason},
        classes=classes, logits=logits.numpy(), scores=scores.numpy(),
        score_kind="sigmoid" if multilabel else "softmax", predicted=classes[predicted], target=classes[target_index],
        channels=channels, network_input=x[0].numpy(), cams=cams, stream_weights=weights, attention=attention,
        keyframes=keyframes, notes=notes)


def _keyframes(store: FeatureStore, row: int) -> dict[str, np.ndarray] | None:
    """The clip's key-frame crops by name (onset, apex, offset), uint8 ``(H, W)`` or ``(H, W, 3)``."""
    from fastmer.viz import KEYFRAME_NAMES, KEYFRAMES, column_channels, to_uint8  # noqa: PLC0415

    if KEYFRAMES not in store.table.column_names:
        return None
    frames = _row_tensor(store, KEYFRAMES, row)
    frames = frames[None] if frames.ndim == 2 else frames
    names = column_channels(store, KEYFRAMES) or KEYFRAME_NAMES[: len(frames)]
    if len(names) != len(frames):
        names = tuple(f"frame{i}" for i in range(len(frames)))
    order = [names.index(n) for n in KEYFRAME_NAMES if n in names] or list(range(len(frames)))
    crops = {}
    for i in order:
        image = frames[i]
        if image.ndim == 3:  # (C, H, W) colour crops
            image = np.moveaxis(image, 0, -1)
            image = image[..., 0] if image.shape[-1] == 1 else image
        crops[names[i]] = image if image.dtype == np.uint8 else to_uint8(image)
    return crops


def _run_multilabel(run: Path) -> bool:
    report = run / "report.json"
    return bool(_read_json(report).get("multilabel")) if report.is_file() else False


# --------------------------------------------------------------------------- drawing
def _overlay(base: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``base`` (grey ``(H, W)`` or RGB uint8) under the JET-coloured ``cam`` (``[0, 1]``, same ``H × W``)."""
    from fastmer.viz import colorize_magnitude  # noqa: PLC0415

    rgb = base if base.ndim == 3 else np.repeat(base[..., None], 3, axis=2)
    heat = colorize_magnitude(cam, vmax=1.0, colormap=_jet())
    return np.rint((1 - alpha) * rgb.astype(np.float64) + alpha * heat).astype(np.uint8)


def _jet() -> int:
    import cv2  # noqa: PLC0415

    return cv2.COLORMAP_JET


def _resize(cam: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centres, as the maps themselves) to ``hw``, kept in ``[0, 1]``."""
    if tuple(cam.shape) == tuple(hw):
        return cam
    tensor = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=tuple(hw), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()


def file_safe(name: str) -> str:
    """``name`` (e.g. a clip's uid) as a file name: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def write_explanation(explanation: Explanation, out_dir: str | Path, *, scale: int = 1,
                      format: str = "png") -> list[Path]:  # noqa: A002 (the CLI option's name)
    """Draw an :class:`Explanation` into ``out_dir`` (created; files of the same names are replaced).

    Figures (:mod:`fastmer.figures`, as ``format``: png, pdf or svg): ``crops`` (when the
    store has key-frame crops: onset, apex, offset, then the apex crop under each map, resized
    bilinearly to the crop), ``gradcam`` (a row per map: each of its channels min–max scaled,
    the same under the map, the map alone with a colour bar), ``stream_weights``
    (MicroAttNet's fusion weights as bars), ``attention`` (DIANet: each stream's input under
    the attention its tokens receive from the other stream, and that attention per token with
    a colour bar of its values); and ``explanation.json`` (the numbers: scores, model choice,
    maps at the network input's resolution rounded to 6 decimals, stream weights, attention,
    and each figure's panels with their ``box`` in PNG pixels, as in ``fastmer viz``'s index).

    An overlay (a map blended on a crop or channel) is an array (:func:`_overlay`) shown as
    a panel, so the PNG holds its pixels exactly.

    Args:
        explanation: from :func:`explain_clip`.
        out_dir: the folder.
        scale: enlarge the image panels by this integer factor (nearest neighbour).
        format: ``"png"``, ``"pdf"`` or ``"svg"``.

    Returns:
        The paths written, ``explanation.json`` last.

    Example:
        >>> write_explanation(explain_clip("runs/ststnet", "casme2/sub01/EP02_01"), "out", format="pdf")  # doctest: +SKIP
        [PosixPath('out/crops.pdf'), PosixPath('out/gradcam.pdf'), PosixPath('out/explanation.json')]
    """
    from fastmer.figures import (  # noqa: PLC0415
        Panel,
        bars_figure,
        check_format,
        image_grid_figure,
        panel_boxes,
        save_figure,
    )
    from fastmer.viz import to_uint8  # noqa: PLC0415

    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    fmt = check_format(format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e = explanation
    uid = e.sample
    title = (f"{uid}  target {e.target} ({e.score_kind} {_fmt(float(e.scores[e.classes.index(e.target)]))}), "
             f"predicted {e.predicted}; {'fold ' + e.model['fold'] if e.model['fold'] else 'final model'}")
    written: list[Path] = []
    files: list[dict[str, Any]] = []

    def emit(name: str, kind: str, rows: Sequence[Sequence[Panel]], heading: str) -> None:
        fig = image_grid_figure(rows, heading, scale=scale)
        info = {p.name: p.info for row in rows for p in row}
        boxes = [{**box, **info[box["name"]]} for box in panel_boxes(fig)]
        written.append(save_figure(fig, out / f"{name}.{fmt}", fmt))
        files.append({"file": written[-1].name, "kind": kind, "size": [int(v) for v in fig.bbox.size], "panels": boxes})

    def label(cam: CamMap) -> str:
        return cam.stream or "input"

    if e.keyframes:
        crops = [Panel(name, image, (f"{name} {e.metadata[name]}" if e.metadata.get(name) is not None else name,),
                       {"source": "keyframes", "channel": name, "frame": e.metadata.get(name)})
                 for name, image in e.keyframes.items()]
        apex = e.keyframes.get("apex", next(iter(e.keyframes.values())))
        cam_panels = [Panel(f"apex/{label(c)}", _overlay(apex, _resize(c.map, apex.shape[:2])),
                            (f"apex + CAM {label(c)}", c.layer), {"stream": c.stream, "layer": c.layer})
                      for c in e.cams]
        emit("crops", "crops", [crops, cam_panels], title)
    index = {name: i for i, name in enumerate(e.channels)}
    rows = []
    for c in e.cams:
        row = []
        for name in c.channels:
            values = e.network_input[index[name]]
            channel = to_uint8(values)
            row.append(Panel(f"{label(c)}/{name}", channel, (name, f"{_fmt(float(values.min()))}..{_fmt(float(values.max()))}"),
                             {"channel": name}))
            row.append(Panel(f"{label(c)}/{name}+cam", _overlay(channel, c.map), (f"{name} + CAM",),
                             {"channel": name, "layer": c.layer}))
        row.append(Panel(f"{label(c)}/cam", c.map.astype(np.float64), (f"CAM {label(c)}", c.layer),
                         {"layer": c.layer, "stream": c.stream}, cmap="jet", vmin=0.0, vmax=1.0, colorbar=True))
        rows.append(row)
    emit("gradcam", "grad-cam", rows, title)
    if e.stream_weights is not None:
        fig = bars_figure(list(e.stream_weights), list(e.stream_weights.values()), ylabel="weight", ylim=(0.0, 1.0),
                          title=f"{uid}  MicroAttNet fusion-attention weights")
        written.append(save_figure(fig, out / f"stream_weights.{fmt}", fmt))
        files.append({"file": written[-1].name, "kind": "stream-weights", "size": [int(v) for v in fig.bbox.size],
                      "bars": dict(e.stream_weights)})
    if e.attention is not None:
        rows = []
        for direction in e.attention["directions"]:
            key_channels = [ch for ch in e.channels if ch in direction["keys"].split("+")]
            received = np.asarray(direction["received"], dtype=np.float64)
            # Min-max per map: attention over few tokens is often near uniform; the colour bar gives the values.
            shown = _minmax(torch.from_numpy(received)[None])[0].numpy()
            lo, hi, uniform = float(received.min()), float(received.max()), 1.0 / received.size
            row = []
            for name in key_channels:
                channel = to_uint8(e.network_input[index[name]])
                info = {"channel": name, "queries": direction["queries"], "received_range": [lo, hi]}
                row.append(Panel(f"{direction['queries']}->{name}", _overlay(channel, _resize(shown, channel.shape)),
                                 (f"{name} + attention", f"from {direction['queries']} tokens"), info))
            row.append(Panel(f"{direction['queries']}->{direction['keys']}/tokens", received,
                             (f"received per token ({received.shape[0]}x{received.shape[1]})", f"uniform {_fmt(uniform)}"),
                             {"queries": direction["queries"], "keys": direction["keys"], "received_range": [lo, hi]},
                             cmap="jet", vmin=lo, vmax=hi if hi > lo else None, colorbar=True))
            rows.append(row)
        emit("attention", "attention", rows, f"{uid}  DIANet cross-attention each stream's tokens receive "
                                             "(mean over heads and queries)")
    data = {
        "sample": e.sample, "rows": e.rows, "clip": _jsonable(e.metadata), "model": e.model, "classes": e.classes,
        "logits": e.logits.tolist(), "scores": e.scores.tolist(), "score_kind": e.score_kind,
        "predicted": e.predicted, "target": e.target,
        "network_input": {"channels": e.channels, "shape": list(e.network_input.shape)},
        "grad_cam": [{"stream": c.stream, "layer": c.layer, "channels": c.channels,
                      "map": np.round(c.map.astype(np.float64), 6).tolist()} for c in e.cams],
        "stream_weights": e.stream_weights,
        "attention": None if e.attention is None else {
            "grid": e.attention["grid"],
            "directions": [{"queries": d["queries"], "keys": d["keys"],
                            "received": np.round(d["received"].astype(np.float64), 6).tolist(),
                            "weights": np.round(d["weights"].astype(np.float64), 6).tolist()}
                           for d in e.attention["directions"]]},
        "files": files, "notes": e.notes,
    }
    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

    path = out / EXPLANATION_JSON
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    written.append(path)
    return written


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))
