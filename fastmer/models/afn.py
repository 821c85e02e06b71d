"""AFN: Adaptive Fusion Network on temporal-ranked and motion-intensity dynamic images.

T. B. P. Man et al., "Adaptive Fusion Network with Temporal-Ranked and Motion-Intensity
Dynamic Images for Micro-expression Recognition", arXiv:2510.09730.
"""

from __future__ import annotations

import torch
from torch import nn

from fastmer.models.blocks import check_input, make_encoder

GATES = ("vector", "scalar")


class AFN(nn.Module):
    """Two CNN streams (TRDI, MIDI) whose pooled features are combined by a learned gate.

    ``vector`` gate (SPEC §7.3 [D]): ``g = σ(W_g [f_T; f_M] + b_g)`` (one weight per feature),
    ``f = g ⊙ f_T + (1 − g) ⊙ f_M``; ``scalar``: ``[w_T, w_M] = softmax(MLP([f_T; f_M]))``,
    ``f = w_T f_T + w_M f_M``. Then Dropout → Linear.

    Confirmed by the paper's abstract: the two inputs (temporal-ranked and motion-intensity
    dynamic images) and a network that learns how to combine them. Readings (options here):
    the stream encoder (compact CNN; ``resnet18`` for torchvision's ResNet-18 architecture
    from scratch), feature-level gating and its form.

    Args:
        num_classes: outputs.
        in_channels: 2 (``trdi``, ``midi``).
        encoder: one of :data:`~fastmer.models.blocks.ENCODERS`.
        gate: one of :data:`GATES`.
        dropout: before the output layer.

    Shape:
        ``(N, 2, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> AFN(3)(torch.zeros(2, 2, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 2, encoder: str = "compact", gate: str = "vector",
                 dropout: float = 0.5) -> None:
        super().__init__()
        if in_channels != 2:
            raise ValueError(f"AFN takes two dynamic images (TRDI, MIDI), got in_channels={in_channels}")
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        self.encoders = nn.ModuleList(make_encoder(encoder, 1) for _ in range(2))
        dim = self.encoders[0].out_channels
        self.gate_kind = gate
        if gate == "vector":
            self.gate = nn.Linear(2 * dim, dim)
        else:
            self.gate = nn.Sequential(nn.Linear(2 * dim, dim // 2), nn.ReLU(inplace=True), nn.Linear(dim // 2, 2))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def gates(self, f_t: torch.Tensor, f_m: torch.Tensor) -> torch.Tensor:
        """The TRDI stream's weight: ``(N, D)`` (vector) or ``(N, 1)`` (scalar); MIDI gets ``1 − g``."""
        both = torch.cat([f_t, f_m], dim=1)
        if self.gate_kind == "vector":
            return torch.sigmoid(self.gate(both))
        return torch.softmax(self.gate(both), dim=1)[:, :1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("AFN", x, 2)
        f_t = self.encoders[0](x[:, :1]).mean(dim=(2, 3))
        f_m = self.encoders[1](x[:, 1:]).mean(dim=(2, 3))
        g = self.gates(f_t, f_m)
        return self.head(g * f_t + (1 - g) * f_m)
