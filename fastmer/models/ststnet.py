"""STSTNet: Shallow Triple Stream Three-dimensional CNN (Liong et al., 2019).

S.-T. Liong, Y. S. Gan, J. See, H.-Q. Khor, Y.-C. Huang, "Shallow Triple Stream
Three-dimensional CNN (STSTNet) for Micro-expression Recognition", FG 2019 (MEGC).
"""

from __future__ import annotations

import torch
from torch import nn


class STSTNet(nn.Module):
    """Three parallel 3×3 convolutions (3, 5 and 8 filters) over the 28×28 (u, v, strain)
    input, each followed by ReLU, batch norm, 3×3/3 max pooling and dropout; the 16
    maps are concatenated, 2×2 average-pooled to 5×5 and classified by one linear layer.

    Layer sizes, padding 2 and the ReLU→BN order follow the authors' own PyTorch port
    (github.com/christy1206/STSTNet, ``main.py``); 1,683 parameters for 3 classes.

    Args:
        num_classes: output classes.
        in_channels: input maps (3: u, v, optical strain).
        dropout: dropout after each stream.

    Shape:
        ``(N, in_channels, 28, 28) -> (N, num_classes)`` logits.

    Example:
        >>> STSTNet(3)(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, width, kernel_size=3, padding=2),
                nn.ReLU(),
                nn.BatchNorm2d(width),
                nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
                nn.Dropout(dropout),
            )
            for width in (3, 5, 8)
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(5 * 5 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (28, 28):
            raise ValueError(f"STSTNet expects (N, C, 28, 28) inputs, got {list(x.shape)}")
        x = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.fc(self.pool(x).flatten(1))
