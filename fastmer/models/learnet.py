"""LEARNet: the lightweight dynamic-image network of the dual-phase DI augmentation paper.

M. Verma, S. K. Vipparthi, G. Singh, S. Murala, "LEARNet: Dynamic Imaging Network for Micro
Expression Recognition", IEEE TIP 29 (2020); Keras code github.com/MonuVermaCV/LearNet.
Used by V. T. A. Khuong et al., "Improving Micro-Expression Recognition with Phase-Aware
Temporal Augmentation", arXiv:2510.15466.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastmer.models.blocks import check_input


class SameConv2d(nn.Conv2d):
    """Keras/TensorFlow ``padding="same"``: output ``ceil(in / stride)``, the odd padding
    pixel at the bottom/right (PyTorch's symmetric padding would shift the grid)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((-(-int(size) // s) - 1) * s + k - int(size), 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride)


def _halved(size: int, times: int) -> int:
    for _ in range(times):
        size = -(-size // 2)  # "same" padding, stride 2: ceil(size / 2)
    return size


def _same(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    return nn.Sequential(SameConv2d(in_channels, out_channels, kernel_size, stride=2), nn.ReLU(inplace=True))


class LEARNet(nn.Module):
    """LEARNet as in the authors' Keras ``LEARNet_Model.py`` (SPEC §5.3), every convolution
    stride 2 with ReLU and "same" padding:

    * stem ``Conv_S`` 16 @ 3×3;
    * four lateral branches from the stem: branches 1 and 3 are 16 @ 1×1 → 32 @ 3×3 →
      64 @ 5×5; branches 2 and 4 ("accretive") are 16 @ 1×1, added to their partner's
      1×1 output → BN → 32 @ 3×3, added to the partner's 3×3 output → BN → 64 @ 5×5;
    * the four 64-channel outputs concatenated → BN → Conv 256 @ 3×3 → Flatten → Dense 256
      ReLU → Dropout 0.5 → Dense (logits; the softmax is in the loss).

    On the paper's 112×112×3 input this is 1,866,757 parameters for 5 classes counting, as
    Keras does, BN's moving statistics (tested). fastmer feeds the grayscale dynamic image
    (``in_channels=1``; a replicated-gray RGB image is the same function); the flattened size
    follows the input size. Trained from scratch, as in the paper.

    Args:
        num_classes: outputs.
        in_channels: input maps.
        in_shape: ``(C, H, W)`` of the input (sets the first dense layer's size).
        dropout: before the output layer.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> LEARNet(5, in_channels=3, in_shape=(3, 112, 112))(torch.zeros(2, 3, 112, 112)).shape
        torch.Size([2, 5])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 1, in_shape: tuple[int, int, int] = (1, 112, 112),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stem = _same(in_channels, 16, 3)
        self.plain = nn.ModuleList(
            nn.ModuleList([_same(16, 16, 1), _same(16, 32, 3), _same(32, 64, 5)]) for _ in range(2))
        self.accretive = nn.ModuleList(
            nn.ModuleList([_same(16, 16, 1), _same(16, 32, 3), _same(32, 64, 5)]) for _ in range(2))
        self.accretive_bn = nn.ModuleList(nn.ModuleList([nn.BatchNorm2d(16), nn.BatchNorm2d(32)]) for _ in range(2))
        self.merge_bn = nn.BatchNorm2d(256)
        self.merge = _same(256, 256, 3)
        side = [_halved(int(s), 5) for s in in_shape[-2:]]  # five stride-2 layers on any path
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(256 * side[0] * side[1], 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("LEARNet", x, self.in_channels)
        stem = self.stem(x)
        outputs = []
        for plain, accretive, bns in zip(self.plain, self.accretive, self.accretive_bn, strict=True):
            p1 = plain[0](stem)
            p2 = plain[1](p1)
            outputs.append(plain[2](p2))
            a = bns[0](accretive[0](stem) + p1)
            a = bns[1](accretive[1](a) + p2)
            outputs.append(accretive[2](a))
        # Keras order: branch 1, 2 (its accretive partner), 3, 4.
        return self.classifier(self.merge(self.merge_bn(torch.cat(outputs, dim=1))))
