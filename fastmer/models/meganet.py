"""MEGANet with the Gradient Attention block, on MESTI (or ordinary dynamic images).

"Apex-Centered Spatio-Temporal Rank Pooling and Gradient Attention for Micro-Expression
Recognition" (MESTI-MEGANet), arXiv:2509.00056.
"""

from __future__ import annotations

import torch
from torch import nn

from fastmer.models.blocks import GradientAttention, check_input, conv_bn_relu


class MEGANet(nn.Module):
    """Four stages of [Conv3×3-BN-ReLU ×2 → Gradient Attention → MaxPool 2×2] with
    32/64/128/256 channels, global average pooling, Dropout(0.5), Linear.

    Gradient Attention (:class:`~fastmer.models.blocks.GradientAttention`): fixed Sobel
    gradient magnitudes of each channel, ``A = σ(BN(Conv3×3(G)))``, ``F' = F + F ⊙ A``.

    Confirmed by the paper's abstract: a network with a Gradient Attention block for
    fine-grained motion features, evaluated on MESTI (a spatio-temporal image of the clip)
    and compared with other inputs. Readings (SPEC §8.3 [D], options here): the stage
    layout and widths, the GA equation. ``gradient_attention=False`` is the ablation.
    The registry offers it on ``mesti`` (``meganet``) and on the onset→offset dynamic image
    (``meganet-di``).

    Args:
        num_classes: outputs.
        in_channels: input maps (1: a grayscale MESTI or dynamic image).
        widths: stage widths.
        gradient_attention: the GA block after each stage.
        dropout: before the output layer.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` logits.

    Example:
        >>> MEGANet(3)(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256),
                 gradient_attention: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        stages = []
        for width in widths:
            stages.append(nn.Sequential(
                *conv_bn_relu(in_channels, width), *conv_bn_relu(width, width),
                GradientAttention(width) if gradient_attention else nn.Identity(),
                nn.MaxPool2d(2, ceil_mode=True),
            ))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("MEGANet", x, self.in_channels)
        return self.head(self.stages(x).mean(dim=(2, 3)))
