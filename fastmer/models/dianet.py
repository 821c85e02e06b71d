"""DIANet: phase-aware dual-stream network on dynamic images.

V. T. A. Khuong et al., "DIANet: A Phase-Aware Dual-Stream Network for Micro-Expression
Recognition via Dynamic Images", 4DMR @ IJCAI 2025 (CEUR-WS Vol-4115), arXiv:2510.12219.
"""

from __future__ import annotations

import torch
from torch import nn

from fastmer.models.blocks import check_input, make_encoder

DIANET_FUSIONS = ("cross-attention", "concat")


class CrossAttention(nn.Module):
    """Tokens of one stream attend to the other's: ``T' = LN(T + MHA(T, T_other, T_other))``.

    Shape:
        ``(N, L, d), (N, L', d) -> (N, L, d)``
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(tokens, other, other, need_weights=False)
        return self.norm(tokens + attended)


class DIANet(nn.Module):
    """Two CNN streams with separate weights, one per phase dynamic image (onset→apex,
    apex→offset), fused by bidirectional cross-attention, then a classifier.

    Each stream's feature map ``(C, h, w)`` becomes ``h·w`` tokens, projected to ``d``
    (``T W_p``) with a learned positional embedding; ``T_a' = LN(T_a + MHA(T_a, T_b, T_b))``
    and symmetrically for ``T_b``; each is mean-pooled over its tokens, the two vectors
    concatenated (``2d``) → Dropout → Linear.

    Confirmed by the paper's abstract: the two phase-aware dynamic images, one dedicated CNN
    per phase, a cross-attention fusion module, a classifier on the fused feature. Readings
    (SPEC §6.3 [D], options here): the encoder (compact CNN by default; ``resnet18`` for
    torchvision's ResNet-18 architecture, trained from scratch, instead of the SPEC's
    ImageNet-pretrained one, which cannot be downloaded here), ``d`` = 128, 4 heads, the
    bidirectional direction, residual + LayerNorm, mean pooling. ``fusion="concat"`` is the
    ablation without attention.

    Args:
        num_classes: outputs.
        in_channels: 2 (the onset→apex and apex→offset dynamic images).
        in_shape: ``(C, H, W)`` of the input, for the positional embedding's token count.
        encoder: one of :data:`~fastmer.models.blocks.ENCODERS`.
        dim, heads: ``d`` and the attention heads.
        fusion: ``"cross-attention"`` or ``"concat"``.
        dropout: before the output layer.

    Shape:
        ``(N, 2, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> DIANet(3, in_shape=(2, 64, 64))(torch.zeros(2, 2, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 2, in_shape: tuple[int, int, int] = (2, 64, 64),
                 encoder: str = "compact", dim: int = 128, heads: int = 4, fusion: str = "cross-attention",
                 dropout: float = 0.5) -> None:
        super().__init__()
        if in_channels != 2:
            raise ValueError(f"DIANet takes the two phase dynamic images, got in_channels={in_channels}")
        if fusion not in DIANET_FUSIONS:
            raise ValueError(f"fusion must be one of {DIANET_FUSIONS}, got {fusion!r}")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.encoders = nn.ModuleList(make_encoder(encoder, 1) for _ in range(2))
        with torch.no_grad():
            h, w = self.encoders[0].eval()(torch.zeros(1, 1, *in_shape[-2:])).shape[-2:]
        self.encoders.train()
        channels = self.encoders[0].out_channels
        self.projections = nn.ModuleList(nn.Linear(channels, dim) for _ in range(2))
        self.positions = nn.Parameter(torch.zeros(2, h * w, dim))
        nn.init.trunc_normal_(self.positions, std=0.02)
        self.fusion = fusion
        self.cross = nn.ModuleList(CrossAttention(dim, heads) for _ in range(2)) if fusion == "cross-attention" else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("DIANet", x, 2)
        tokens = []
        for i in range(2):
            features = self.encoders[i](x[:, i : i + 1])  # (N, C, h, w)
            tokens.append(self.projections[i](features.flatten(2).transpose(1, 2)) + self.positions[i])
        if self.cross is not None:
            tokens = [self.cross[0](tokens[0], tokens[1]), self.cross[1](tokens[1], tokens[0])]
        return self.head(torch.cat([t.mean(dim=1) for t in tokens], dim=1))
