"""FMANet and the plain-backbone classifiers of the COF / MM-COF papers.

L. T. Nguyen et al., "FMANet: A Novel Dual-Phase Optical Flow Approach with Fusion Motion
Attention Network for Robust Micro-expression Recognition", arXiv:2510.07810.
V. T. A. Khuong et al., "A Novel Combined Optical Flow Approach for Comprehensive
Micro-Expression Recognition", arXiv:2510.15471.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastmer.models.blocks import SpatialAttention, check_input, make_encoder
from fastmer.motion.representations import COF_THETA

PHASE_FUSIONS = ("scalar", "pixel")


class FMANet(nn.Module):
    """Two phase encoders (onset→apex, apex→offset flow), learnable phase fusion initialised
    from the MM-COF weights θ, a motion attention module, and a classification head.

    Input: the store's ``flow_phases`` channels ``[u_oa, v_oa, m_oa, u_ao, v_ao, m_ao]``
    (each map min-max normalised by the input adapter); the first half goes to the
    onset→apex encoder, the second to the apex→offset one.

    * Encoders: :class:`~fastmer.models.blocks.CompactEncoder` (default) or ResNet-18,
      separate weights (``shared_encoder`` to share) → ``F1, F2``.
    * Learnable fusion (MM-COF's θ made learnable): ``scalar``: ``[w1, w2] = softmax(a)`` with
      ``a`` initialised to ``log θ``; ``pixel``: ``W = softmax(Conv1×1([F1; F2]) + log θ)``
      (zero-initialised convolution, so training starts from θ). ``F = w1 F1 + w2 F2``.
    * Motion attention (MM-COF's magnitude modulation made learnable): spatial attention
      ``A = σ(Conv7×7([mean_c F; max_c F; Mc↓]))``, ``F' = F ⊙ A + F``, where
      ``Mc = θ1·M1 + θ2·M2`` is the combined magnitude of the inputs (SPEC §1.3) averaged
      down to ``F``'s size (``magnitude_prior=False`` leaves it out).
    * Head: global average pooling → Dropout → Linear (logits).

    Confirmed by the paper's abstract and reviews: dual-phase flow input, learnable fusion of
    the phases and a learnable magnitude modulation / attention to salient regions,
    end-to-end training. Readings (SPEC §3.3 [D], options here): encoder, separate weights,
    the fusion and attention equations, the use of ``Mc`` in the attention, the head.

    Args:
        num_classes: outputs.
        in_channels: 6 (u, v, M of each phase).
        encoder: one of :data:`~fastmer.models.blocks.ENCODERS`.
        shared_encoder: one encoder for both phases.
        theta: initial phase weights (θ1, θ2), default the MM-COF defaults.
        phase_fusion: ``"scalar"`` or ``"pixel"``.
        attention: the motion attention module.
        magnitude_prior: condition the attention on the inputs' combined magnitude.
        dropout: before the output layer.

    Shape:
        ``(N, 6, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> FMANet(3)(torch.zeros(2, 6, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 6, encoder: str = "compact",
                 shared_encoder: bool = False, theta: tuple[float, float] = COF_THETA, phase_fusion: str = "scalar",
                 attention: bool = True, magnitude_prior: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        if in_channels != 6:
            raise ValueError(f"FMANet takes 6 input maps (u, v, M of each phase), got in_channels={in_channels}")
        if phase_fusion not in PHASE_FUSIONS:
            raise ValueError(f"phase_fusion must be one of {PHASE_FUSIONS}, got {phase_fusion!r}")
        theta = tuple(float(t) for t in theta)
        if len(theta) != 2 or min(theta) <= 0:
            raise ValueError(f"theta must be two positive weights, got {theta}")
        self.register_buffer("theta", torch.tensor(theta) / sum(theta), persistent=False)
        self.encoder_oa = make_encoder(encoder, 3)
        self.encoder_ao = self.encoder_oa if shared_encoder else make_encoder(encoder, 3)
        dim = self.encoder_oa.out_channels
        log_theta = torch.log(self.theta)
        self.phase_fusion = phase_fusion
        if phase_fusion == "scalar":
            self.fusion_logits = nn.Parameter(log_theta.clone())
        else:
            self.fusion_conv = nn.Conv2d(2 * dim, 2, 1)
            nn.init.zeros_(self.fusion_conv.weight)
            with torch.no_grad():
                self.fusion_conv.bias.copy_(log_theta)
        self.magnitude_prior = magnitude_prior and attention
        self.attention = SpatialAttention(extra_channels=int(self.magnitude_prior)) if attention else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def phase_weights(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """``(N, 2, h, w)`` (pixel) or ``(1, 2, 1, 1)`` (scalar) fusion weights of the two phases."""
        if self.phase_fusion == "scalar":
            return torch.softmax(self.fusion_logits, dim=0).reshape(1, 2, 1, 1)
        return torch.softmax(self.fusion_conv(torch.cat([f1, f2], dim=1)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("FMANet", x, 6)
        f1, f2 = self.encoder_oa(x[:, :3]), self.encoder_ao(x[:, 3:])
        w = self.phase_weights(f1, f2)
        fused = w[:, 0:1] * f1 + w[:, 1:2] * f2
        if self.attention is not None:
            prior = None
            if self.magnitude_prior:
                combined = self.theta[0] * x[:, 2:3] + self.theta[1] * x[:, 5:6]
                prior = F.adaptive_avg_pool2d(combined, fused.shape[-2:])
            fused = self.attention(fused, prior)
        return self.head(fused.mean(dim=(2, 3)))


class BackboneClassifier(nn.Module):
    """A plain CNN classifier of one image (the COF / MM-COF papers' setting: hand-crafted
    ``cof`` or ``mm_cof`` three-channel images into VGG19/ResNet50-style networks, SPEC §4.3).

    ``encoder="compact"``: :class:`~fastmer.models.blocks.CompactEncoder` (3 blocks,
    32/64/128); ``"resnet18"``: torchvision's ResNet-18 architecture trained from scratch
    (ImageNet weights cannot be downloaded here; ``fastmer train --weights FILE`` starts from
    user-supplied safetensors, e.g. a converted torchvision checkpoint). Global average
    pooling, Dropout, Linear.

    Args:
        num_classes: outputs.
        in_channels: input maps (3 for COF / MM-COF).
        encoder: the backbone, one of :data:`~fastmer.models.blocks.ENCODERS`.
        dropout: before the output layer.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> BackboneClassifier(3, encoder="resnet18")(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, encoder: str = "compact",
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.backbone = make_encoder(encoder, in_channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.backbone.out_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("BackboneClassifier", x, self.in_channels)
        return self.head(self.backbone(x).mean(dim=(2, 3)))

