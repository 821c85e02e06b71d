"""From a stored representation to a network's input, as an exportable module.

The adapter is part of every exported model, so an engine consumes the store's tensor
column as is and training, export and inference cannot disagree on preprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from fastmer.models import InputSpec
from fastmer.motion.normalize import MINMAX_EPS
from fastmer.ops.resample import area_matrix

VIEW_ORDER = ("left", "right")
"""The views of a split clip (``fastmer extract --views split``), in the order they are stacked."""


SIGNED_QUANTILE = 0.99
"""``signed`` normalisation divides a map by this quantile of its magnitude (robust to a few
outlier pixels), then clips to [-1, 1]."""
_SIGNED_REPRESENTATIONS = ("flow_onset_apex", "flow_phases", "cof", "mm_cof")
_RAW_REPRESENTATIONS = ("lbptop",)


def _representation_of_channel(channel: str) -> str | None:
    """The fastmer representation a stored channel name belongs to (view prefix and colour
    suffix ignored), or None for a name fastmer does not compute (imported features)."""
    from fastmer.motion.representations import COLOR_SUFFIXES, REPRESENTATIONS  # noqa: PLC0415

    base = channel.rpartition("/")[2]
    for name, channels in REPRESENTATIONS.items():
        if base in channels or (base[-2:-1] == "_" and base[-1:] in COLOR_SUFFIXES and base[:-2] in channels):
            return name
    return None


def channel_normalizations(normalization: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """Each channel's normalisation (``minmax``, ``signed`` or ``none``) under a spec's
    ``normalization`` (:data:`fastmer.models.NORMALIZATIONS`; ``auto`` decides per channel).

    Example:
        >>> channel_normalizations("auto", ("u", "v", "magnitude", "di", "left/di_oa_r", "xy", "c0"))
        ('signed', 'signed', 'signed', 'minmax', 'minmax', 'none', 'minmax')
    """
    if normalization != "auto":
        return (normalization,) * len(channels)
    modes = []
    for channel in channels:
        representation = _representation_of_channel(channel)
        modes.append("signed" if representation in _SIGNED_REPRESENTATIONS
                     else "none" if representation in _RAW_REPRESENTATIONS else "minmax")
    return tuple(modes)


def normalize_channels(x: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """``(N, C, H, W)`` maps normalised per sample and channel, channel ``c`` by ``modes[c]``:
    ``minmax`` to [0, 1]; ``signed`` divided by the :data:`SIGNED_QUANTILE` quantile of ``|x|``
    (zero stays zero, the sign is kept) and clipped to [-1, 1]; ``none`` unchanged. The
    quantile is the k-th largest magnitude (``torch.topk``: exportable to ONNX).

    Example:
        >>> x = torch.tensor([[[[-2.0, 0.0], [1.0, 2.0]]]])
        >>> normalize_channels(x, ("signed",)).flatten().tolist()
        [-1.0, 0.0, 0.5, 1.0]
    """
    if x.shape[1] != len(modes):
        raise ValueError(f"normalize_channels: {x.shape[1]} channels, {len(modes)} modes")
    kinds = set(modes)
    out = x
    if "minmax" in kinds:
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        minmax = (x - lo) / (hi - lo + MINMAX_EPS)
        out = minmax if kinds == {"minmax"} else torch.where(_mask(modes, "minmax", x), minmax, out)
    if "signed" in kinds:
        pixels = x.shape[2] * x.shape[3]
        k = max(1, round((1 - SIGNED_QUANTILE) * pixels))
        peak = torch.topk(x.abs().flatten(2), k, dim=2).values[:, :, k - 1 :].unsqueeze(-1)  # (N, C, 1, 1)
        signed = (x / (peak + MINMAX_EPS)).clamp(-1.0, 1.0)
        out = signed if kinds == {"signed"} else torch.where(_mask(modes, "signed", x), signed, out)
    return out


def _mask(modes: tuple[str, ...], mode: str, x: torch.Tensor) -> torch.Tensor:
    return torch.tensor([m == mode for m in modes], device=x.device).view(1, -1, 1, 1)


def parse_input(text: str) -> tuple[str, tuple[str, ...] | None]:
    """``"flow_phases:m_oa,m_ao"`` -> ``("flow_phases", ("m_oa", "m_ao"))``; ``"mesti"`` -> ``("mesti", None)``
    (every channel)."""
    name, sep, channels = str(text).strip().partition(":")
    picked = tuple(c.strip() for c in channels.split(",") if c.strip()) if sep else None
    if not name or (sep and not picked):
        raise ValueError(f"input {text!r} is not NAME or NAME:CHANNEL[,CHANNEL...] (e.g. flow_onset_apex:u,v)")
    return name, picked


def override_input(spec: InputSpec, inputs: Sequence[str], available: Mapping[str, Sequence[str]],
                   where: str = "the store") -> InputSpec:
    """``spec`` reading other stored columns: ``fastmer train --input NAME[:channels]``, repeatable
    (channels in the order given; a model with several streams splits them into its
    ``groups`` as it does its own input).

    Args:
        spec: the model's registered input.
        inputs: ``NAME`` (every channel of that representation) or ``NAME:c1,c2``.
        available: representation -> channel names (a store's, or the registry's).
        where: names ``available`` in error messages.

    Raises:
        ValueError: a representation or channel ``available`` lacks (listing what it has), a
            channel given twice or found in two of the chosen representations, representations
            of different map sizes, or a channel count the model's streams cannot split.
    """
    if not inputs:
        return spec
    names: list[str] = []
    channels: list[str] = []
    for text in inputs:
        name, picked = parse_input(text)
        if name not in available:
            raise ValueError(f"input {name!r} is not in {where} (it has {', '.join(available)})")
        have = tuple(available[name])
        missing = [c for c in picked or () if c not in have]
        if missing:
            raise ValueError(f"input {name} has no channel(s) {', '.join(missing)}; it has {', '.join(have)}")
        if name not in names:
            names.append(name)
        channels += list(picked or have)
    twice = sorted({c for c in channels if channels.count(c) > 1})
    if twice:
        raise ValueError(f"channel(s) {', '.join(twice)} chosen twice by --input")
    owners = {c: [n for n in names if c in available[n]] for c in channels}
    shared = {c: n for c, n in owners.items() if len(n) > 1}
    if shared:
        raise ValueError("channel(s) in two chosen representations, so ambiguous: "
                         + "; ".join(f"{c} in {', '.join(n)}" for c, n in shared.items()))
    try:
        return replace(spec, representation=names[0] if len(names) == 1 else tuple(names), channels=tuple(channels))
    except ValueError as exc:  # groups that do not divide the channels
        raise ValueError(f"{len(channels)} input channel(s) ({', '.join(channels)}) for a model of {spec.groups} "
                         f"input streams: {exc}") from exc


def clip_of(uid: str) -> str:
    """The clip a view's uid belongs to: ``"s/clip@left"`` -> ``"s/clip"``."""
    return uid.partition("@")[0]


def network_channels(spec: InputSpec, views: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Stored channel names the network reads, in its order.

    Without ``views`` these are ``spec.channels``. With views stacked as channels the
    stored input holds every view's channels as ``"<view>/<channel>"``, and each of the
    spec's ``groups`` takes its channels of every view in turn.
    """
    if not views:
        return tuple(spec.channels)
    per_group = len(spec.channels) // spec.groups
    names = []
    for g in range(spec.groups):
        group = spec.channels[g * per_group : (g + 1) * per_group]
        names += [f"{view}/{channel}" for view in views for channel in group]
    return tuple(names)


def stacked_channels(channels: tuple[str, ...], views: tuple[str, ...]) -> tuple[str, ...]:
    """Channel names of views stacked as channels: every view's, view by view."""
    return tuple(f"{view}/{channel}" for view in views for channel in channels)


class InputAdapter(nn.Module):
    """Select channels, area-resample to ``spec.size`` (unless None, or already that size) and normalise.

    Args:
        spec: the network's :class:`InputSpec`.
        stored_channels: channel names of the stored input (the representations' channels,
            concatenated; with stacked views, :func:`stacked_channels`).
        stored_hw: ``(H, W)`` of the stored input.
        views: the views stacked as channels (empty: one view per sample).

    Shape:
        ``(N, len(stored_channels), H, W) -> (N, len(network channels), size, size)``
        (``size=None``: ``H, W`` kept)
    """

    def __init__(self, spec: InputSpec, stored_channels: tuple[str, ...], stored_hw: tuple[int, int],
                 views: tuple[str, ...] = ()) -> None:
        super().__init__()
        selected = network_channels(spec, tuple(views))
        missing = [c for c in selected if c not in stored_channels]
        if missing:
            raise ValueError(f"{spec.describe()} has no channel(s) {missing}; it has {list(stored_channels)}")
        self.spec = spec
        self.views = tuple(views)
        self.stored_channels = tuple(stored_channels)
        self.stored_hw = tuple(stored_hw)
        self.register_buffer("index", torch.tensor([stored_channels.index(c) for c in selected]), persistent=False)
        self.modes = channel_normalizations(spec.normalization, selected)
        self.resample = spec.size is not None and tuple(stored_hw) != (spec.size, spec.size)
        if self.resample:
            self.register_buffer("rows", area_matrix(stored_hw[0], spec.size), persistent=False)
            self.register_buffer("cols_t", area_matrix(stored_hw[1], spec.size).t().contiguous(), persistent=False)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the network input."""
        hw = self.stored_hw if self.spec.size is None else (self.spec.size, self.spec.size)
        return (len(self.index), *hw)

    @property
    def normalizations(self) -> tuple[str, ...]:
        """Each network input channel's normalisation (``auto`` resolved per channel)."""
        return channel_normalizations(self.spec.normalization, network_channels(self.spec, self.views))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().index_select(1, self.index)
        if self.resample:
            x = torch.matmul(torch.matmul(self.rows, x), self.cols_t)
        if set(self.modes) != {"none"}:
            x = normalize_channels(x, self.modes)
        return x


def check_representations(store: Any, spec: InputSpec) -> None:
    """Raise ValueError naming the representations ``spec`` reads that ``store`` lacks."""
    missing = [name for name in spec.representations if name not in store.representations]
    if missing:
        raise ValueError(f"the model needs {', '.join(map(repr, missing))}, not in store {store.path} "
                         f"(it has {', '.join(store.representations)}); extract with --representations")


def store_layout(store: Any, spec: InputSpec, view_layout: str = "stack"
                 ) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...], str | None]:
    """How ``store`` feeds a model reading ``spec``: stored channel names, stored shape,
    views stacked as channels, and the view layout (None: a store of whole frames).

    ``view_layout`` (``"stack"`` or ``"separate"``) applies to stores of split views only.
    """
    check_representations(store, spec)
    channels = tuple(c for name in spec.representations for c in store.representations[name]["channels"])
    shape = tuple(store.representations[spec.representations[0]]["shape"])
    layout = view_layout if any(v != "full" for v in store.column("view")) else None
    views = VIEW_ORDER if layout == "stack" else ()
    if views:
        channels = stacked_channels(channels, views)
    return channels, (len(channels), *shape[1:]), views, layout


def gather_stored(store: Any, spec: InputSpec) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The stored input of ``spec`` for every row of ``store``: its representations'
    tensors concatenated along channels, and their channel names.

    Raises:
        ValueError: a representation is missing from the store, or their maps differ in size.
    """
    check_representations(store, spec)
    shapes = {name: tuple(store.representations[name]["shape"][-2:]) for name in spec.representations}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"representations {shapes} of store {store.path} differ in size; they cannot be stacked")
    tensors = [store.tensor(name) for name in spec.representations]
    channels = tuple(c for name in spec.representations for c in store.representations[name]["channels"])
    return (tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)), channels


def group_views(uids: list[str], views: list[str], order: tuple[str, ...] = VIEW_ORDER
                ) -> tuple[list[str], list[list[int]], list[str]]:
    """Rows of each clip's views, for stacking them as channels.

    Returns:
        The clips having every view of ``order`` (uid without ``@view``), their rows in
        ``order``, and the clips lacking a view.
    """
    rows: dict[str, dict[str, int]] = {}
    for i, (uid, view) in enumerate(zip(uids, views, strict=True)):
        rows.setdefault(clip_of(uid), {})[view] = i
    complete = {clip: by_view for clip, by_view in rows.items() if all(v in by_view for v in order)}
    incomplete = [clip for clip in rows if clip not in complete]
    return list(complete), [[by_view[v] for v in order] for by_view in complete.values()], incomplete


def model_input(store: Any, config: dict[str, Any]) -> tuple[torch.Tensor, list[str], list[list[int]]]:
    """The stored input a saved model (its config) takes, for every sample of ``store``.

    Returns:
        ``(N, C, H, W)`` inputs, each sample's name (the uid; with views stacked, the clip)
        and its store rows.

    Raises:
        ValueError: the store lacks a representation, or its channels or shape differ
            from those the model was trained on.
    """
    spec = InputSpec.from_json(config["input"])
    stored, channels = gather_stored(store, spec)
    uids = store.column("uid")
    views = tuple(config.get("views") or ())
    if views:
        names, rows, _ = group_views(uids, store.column("view"), views)
        index = torch.as_tensor(rows, dtype=torch.long).reshape(-1, len(views)).t()
        stored = torch.cat([stored.index_select(0, r) for r in index], dim=1)
        channels = stacked_channels(channels, views)
    else:
        names, rows = list(uids), [[i] for i in range(len(uids))]
    expected = tuple(config["stored"]["channels"]), tuple(config["stored"]["shape"])
    if (channels, tuple(stored.shape[1:])) != expected:
        raise ValueError(f"store {store.path} gives {spec.describe()} channels {list(channels)} of shape "
                         f"{list(stored.shape[1:])}; the model was trained on {list(expected[0])} of shape "
                         f"{list(expected[1])}")
    return stored, names, rows
