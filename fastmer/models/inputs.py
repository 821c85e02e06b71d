"""From a stored representation to a network's input, as an exportable module.

The adapter is part of every exported model, so an engine consumes the store's tensor
column as is and training, export and inference cannot disagree on preprocessing.
"""

from __future__ import annotations

import torch
from torch import nn

from fastmer.models import InputSpec
from fastmer.ops.resample import area_matrix


class InputAdapter(nn.Module):
    """Select channels, area-resample to ``spec.size`` (unless None, or already that size) and normalise.

    Args:
        spec: the network's :class:`InputSpec`.
        stored_channels: channel names of the stored representation.
        stored_hw: ``(H, W)`` of the stored representation.

    Shape:
        ``(N, len(stored_channels), H, W) -> (N, len(spec.channels), size, size)``
        (``size=None``: ``H, W`` kept)
    """

    def __init__(self, spec: InputSpec, stored_channels: tuple[str, ...], stored_hw: tuple[int, int]) -> None:
        super().__init__()
        missing = [c for c in spec.channels if c not in stored_channels]
        if missing:
            raise ValueError(f"{spec.representation} has no channel(s) {missing}; it has {list(stored_channels)}")
        self.spec = spec
        self.stored_channels = tuple(stored_channels)
        self.stored_hw = tuple(stored_hw)
        self.register_buffer("index", torch.tensor([stored_channels.index(c) for c in spec.channels]), persistent=False)
        self.resample = spec.size is not None and tuple(stored_hw) != (spec.size, spec.size)
        if self.resample:
            self.register_buffer("rows", area_matrix(stored_hw[0], spec.size), persistent=False)
            self.register_buffer("cols_t", area_matrix(stored_hw[1], spec.size).t().contiguous(), persistent=False)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the network input."""
        hw = self.stored_hw if self.spec.size is None else (self.spec.size, self.spec.size)
        return (len(self.spec.channels), *hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().index_select(1, self.index)
        if self.resample:
            x = torch.matmul(torch.matmul(self.rows, x), self.cols_t)
        if self.spec.normalization == "minmax":
            lo = x.amin(dim=(2, 3), keepdim=True)
            hi = x.amax(dim=(2, 3), keepdim=True)
            x = (x - lo) / (hi - lo + 1e-8)
        return x
