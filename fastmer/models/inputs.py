"""From a stored representation to a network's input, as an exportable module.

The adapter is part of every exported model, so an engine consumes the store's tensor
column as is and training, export and inference cannot disagree on preprocessing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fastmer.models import InputSpec
from fastmer.ops.resample import area_matrix

VIEW_ORDER = ("left", "right")
"""The views of a split clip (``fastmer extract --views split``), in the order they are stacked."""


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
        self.resample = spec.size is not None and tuple(stored_hw) != (spec.size, spec.size)
        if self.resample:
            self.register_buffer("rows", area_matrix(stored_hw[0], spec.size), persistent=False)
            self.register_buffer("cols_t", area_matrix(stored_hw[1], spec.size).t().contiguous(), persistent=False)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the network input."""
        hw = self.stored_hw if self.spec.size is None else (self.spec.size, self.spec.size)
        return (len(self.index), *hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().index_select(1, self.index)
        if self.resample:
            x = torch.matmul(torch.matmul(self.rows, x), self.cols_t)
        if self.spec.normalization == "minmax":
            lo = x.amin(dim=(2, 3), keepdim=True)
            hi = x.amax(dim=(2, 3), keepdim=True)
            x = (x - lo) / (hi - lo + 1e-8)
        return x


def _check_representations(store: Any, spec: InputSpec) -> None:
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
    _check_representations(store, spec)
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
    _check_representations(store, spec)
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
