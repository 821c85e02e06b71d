"""OFF-ApexNet: Optical Flow Features from Apex frame Network (Gan et al., 2019).

Y. S. Gan, S.-T. Liong, W.-C. Yau, Y.-C. Huang, L.-K. Tan, "OFF-ApexNet on micro-expression
recognition system", Signal Processing: Image Communication 74 (2019) 129-139
(arXiv:1805.08699).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = 28
"""Side of the square input of each stream (the paper's 28 × 28 flow images)."""


class OffApexNet(nn.Module):
    """Two LeNet-like CNN streams, one on the horizontal flow u and one on the vertical
    flow v of the onset→apex flow, fused by two fully connected layers.

    Per stream (one input channel each)::

        conv 5×5, 6 filters → ReLU → max-pool 2×2/2      28×28 → 14×14
        conv 5×5, 16 filters → ReLU → max-pool 2×2/2     14×14 → 7×7   (784 features)

    The streams' 784 features are concatenated (u first) and classified by
    ``FC 1024 → ReLU → FC 1024 → ReLU → dropout(0.5) → FC num_classes`` (logits; the
    softmax is in the loss).

    What the paper gives: the two inputs (horizontal and vertical optical flow between
    the onset and the apex frame, each resized to 28×28), the two streams of two 5×5
    convolutions with 6 and 16 filters, each followed by 2×2 max pooling, the concatenation
    of the streams and the two 1024-unit fully connected layers before the output layer.

    Our reading, not confirmed by a text or code we could consult: ``'same'`` (zero)
    padding of the convolutions (padding 2), which makes each stream 16 × 7 × 7 = 784
    features and the network 2,664,475 parameters for 3 classes; this agrees with the
    2.66 M parameters and the ``padding=2`` of the public PyTorch re-implementation used as
    a baseline by Off-TANet (PRICAI 2021), whereas ``'valid'`` padding would give ~1.58 M.
    ReLU after every convolution and hidden fully connected layer (the authors' TensorFlow
    code was not available to us; that re-implementation has no activation after its
    convolutions), and a single dropout of 0.5 before the output layer, as the fusion is
    described (the re-implementation puts dropout after both hidden layers:
    ``dropout_both=True``). The paper's optimiser, learning rate and epochs were not
    checked against its text, so the registry records no published recipe.
    Inputs are min-max normalised per map by the registry's :class:`InputSpec`.

    Args:
        num_classes: output classes.
        in_channels: input maps, one stream each (2: u, v as in the paper).
        hidden: width of the two fully connected layers (1024).
        dropout: dropout probability before the output layer.
        dropout_both: also apply dropout after the first fully connected layer.

    Shape:
        ``(N, in_channels, 28, 28) -> (N, num_classes)`` logits.

    Example:
        >>> OffApexNet(3)(torch.zeros(2, 2, 28, 28)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 2,
        hidden: int = 1024,
        dropout: float = 0.5,
        dropout_both: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1 or hidden < 1:
            raise ValueError(f"OffApexNet: num_classes, in_channels and hidden must be >= 1, got "
                             f"{num_classes}, {in_channels}, {hidden}")
        self.in_channels = in_channels
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(1, 6, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=2, stride=2),
                nn.Conv2d(6, 16, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=2, stride=2),
                nn.Flatten(),
            )
            for _ in range(in_channels)
        )
        features = in_channels * 16 * (INPUT_SIZE // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(features, hidden),
            nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout_both else []),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"OffApexNet expects (N, {self.in_channels}, {INPUT_SIZE}, {INPUT_SIZE}) inputs, got {list(x.shape)}"
            )
        features = [stream(x[:, i : i + 1]) for i, stream in enumerate(self.streams)]
        return self.classifier(torch.cat(features, dim=1))
