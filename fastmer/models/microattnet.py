"""Triple-Stream MicroAttNet (dual-view optical flow for 4D MER; winner of 4DMR @ IJCAI 2025).

L. T. Nguyen, V. T. A. Khuong, T. B. P. Man, T. H. Le, T. D. Ngo, "Dual-View Optical Flow for
4D Micro-Expression Recognition – A Multi-Stream Fusion Attention Approach", arXiv:2603.26849.
"""

from __future__ import annotations

import torch
from torch import nn

from fastmer.models.blocks import CompactEncoder, SqueezeExcite, check_input

STREAMS = ("horizontal", "vertical", "magnitude")
FUSIONS_WITHOUT_ATTENTION = ("concat", "mean")


class FusionAttention(nn.Module):
    """Additive attention over stream vectors, SPEC §2.3 [D]:
    ``e_s = wᵀ tanh(W f_s + b)``, ``α = softmax_s(e)``, ``f = Σ_s α_s f_s``.

    Shape:
        ``(N, S, D) -> (N, D)`` (and the weights ``(N, S)`` from :meth:`weights`)
    """

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.project = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.score(torch.tanh(self.project(features))).squeeze(-1), dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (self.weights(features)[:, :, None] * features).sum(dim=1)


class MicroAttNet(nn.Module):
    """Three modality streams (horizontal u, vertical v, magnitude M optical flow), each over
    both phases (and both views when they are stacked), fused by attention.

    Input channels are stream-major: the first third is the u stream, then v, then M; each
    stream holds its phases (onset→apex, apex→offset) and, with views stacked as channels,
    each view's phases (SPEC §2.2: ``[u_L,p1, u_L,p2, u_R,p1, u_R,p2]``). With views as
    separate samples a stream has 2 channels and fastmer merges the views' predictions per
    clip by max.

    Per stream: :class:`CompactEncoder` (3 × [Conv3×3 → BN → ReLU → MaxPool2], 32/64/128
    channels); on the magnitude stream a squeeze-and-excitation block on the last feature
    map; global average pooling → ``f_s ∈ R^128``. The three vectors are fused by
    :class:`FusionAttention` and classified by Dropout(0.5) → Linear. The outputs are logits:
    with a multi-label protocol (4DME) fastmer trains them as independent sigmoids with the
    (sigmoid) focal loss and per-class thresholds; with a single-label one, as softmax.

    Confirmed by the paper's abstract: three modality-specific streams on H/V/M flow of two
    phases and two views; a fusion-attention module weighting the streams; an SE block
    strengthening the magnitude stream; multi-label output over five categories; focal loss,
    Adam and early stopping (the registry's recipe). Readings (SPEC [D], options here):
    the stream CNN and widths, the SE position (last map of the M stream; ``se_all_streams``),
    the reduction 16 (min 8 units), the additive attention equation and its 64 hidden units,
    the head, and the view layout.

    Args:
        num_classes: outputs (5 for 4DME).
        in_channels: input maps, a multiple of 3 (one group per stream).
        widths: encoder widths.
        fusion_attention: fuse with attention (``--no-fusion-attention``: off).
        fusion_without_attention: ``"concat"`` (head on the 3 concatenated vectors) or
            ``"mean"`` when ``fusion_attention`` is off.
        se: the SE block (``--no-se``: off).
        se_all_streams: SE on every stream instead of only the magnitude one.
        se_reduction: ``r``.
        attention_hidden: hidden units of the fusion attention.
        dropout: before the output layer.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> MicroAttNet(5, in_channels=6)(torch.zeros(2, 6, 64, 64)).shape
        torch.Size([2, 5])
    """

    def __init__(self, num_classes: int = 5, in_channels: int = 6, widths: tuple[int, ...] = (32, 64, 128),
                 fusion_attention: bool = True, fusion_without_attention: str = "concat", se: bool = True,
                 se_all_streams: bool = False, se_reduction: int = 16, attention_hidden: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if in_channels < 3 or in_channels % len(STREAMS):
            raise ValueError(f"MicroAttNet: in_channels must be a positive multiple of 3 (u, v, M streams), "
                             f"got {in_channels}")
        if fusion_without_attention not in FUSIONS_WITHOUT_ATTENTION:
            raise ValueError(f"fusion_without_attention must be one of {FUSIONS_WITHOUT_ATTENTION}, "
                             f"got {fusion_without_attention!r}")
        self.in_channels = in_channels
        per_stream = in_channels // len(STREAMS)
        self.encoders = nn.ModuleList(CompactEncoder(per_stream, tuple(widths)) for _ in STREAMS)
        dim = self.encoders[0].out_channels
        with_se = [se and (se_all_streams or name == "magnitude") for name in STREAMS]
        self.se = nn.ModuleList(SqueezeExcite(dim, se_reduction) if on else nn.Identity() for on in with_se)
        self.fusion = FusionAttention(dim, attention_hidden) if fusion_attention else None
        self.fusion_without_attention = fusion_without_attention
        head_in = dim * len(STREAMS) if not fusion_attention and fusion_without_attention == "concat" else dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_in, num_classes))

    def stream_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, D)``: each stream's pooled vector (H, V, M)."""
        check_input("MicroAttNet", x, self.in_channels)
        groups = x.chunk(len(STREAMS), dim=1)
        return torch.stack([se(encoder(g)).mean(dim=(2, 3)) for g, encoder, se in zip(groups, self.encoders, self.se,
                                                                                     strict=True)], dim=1)

    def stream_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` fusion-attention weights of the H, V and M streams (for inspection)."""
        if self.fusion is None:
            raise ValueError("this MicroAttNet has no fusion attention (fusion_attention=False)")
        return self.fusion.weights(self.stream_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stream_features(x)
        if self.fusion is not None:
            fused = self.fusion(features)
        elif self.fusion_without_attention == "concat":
            fused = features.flatten(1)
        else:
            fused = features.mean(dim=1)
        return self.head(fused)
