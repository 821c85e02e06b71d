"""Building blocks shared by the seed papers' networks (SPEC.md §1.5, §2.3, §3.3, §8.3).

Every block is size-agnostic (convolutions and global pooling), exports to ONNX and has
no data-dependent control flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# fastmer's own feature extractors of the classifier and multi-stream networks, by name
# (ENCODERS): CompactEncoder (small data) or ResNet18 (torchvision's architecture, trained
# from scratch). Any other name is a timm model (fastmer.models.timm_backbone.TimmEncoder;
# ``timm:NAME`` forces timm's).
from fastmer.choices import ENCODERS  # noqa: F401  (re-exported: blocks.ENCODERS)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: ``s = σ(W2 ReLU(W1 GAP(X)))``, ``X' = X ⊙ s`` (SPEC §1.5).

    Args:
        channels: ``C``.
        reduction: ``r`` of the bottleneck ``C → C/r`` (at least ``min_hidden`` units).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, min_hidden)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


class CompactEncoder(nn.Module):
    """``len(widths)`` blocks of [Conv3×3 → BN → ReLU → MaxPool 2×2]; the SPEC's light CNN
    for small MER corpora (§2.3, §3.3).

    Shape:
        ``(N, in_channels, H, W) -> (N, widths[-1], H / 2^k, W / 2^k)`` (floors)
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in widths:
            layers += [*conv_bn_relu(in_channels, width), nn.MaxPool2d(2, ceil_mode=True)]
            in_channels = width
        self.layers = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class BasicBlock(nn.Module):
    """torchvision's ResNet ``BasicBlock`` (same parameter names, so its weights load)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """ResNet-18 with torchvision's layout and parameter names (``conv1``, ``bn1``,
    ``layer1``…``layer4``, ``fc``), trained from scratch: pretrained weights cannot be
    downloaded at run time. A torchvision ``resnet18`` state dict saved as safetensors loads
    into it (``--weights``); with ``in_channels != 3`` or another class count, the
    mismatching ``conv1``/``fc`` are reported and left at their initialisation.

    Args:
        num_classes: output classes; 0 makes it a feature extractor (``forward`` returns the
            ``(N, 512, h, w)`` map of ``layer4``).
        in_channels: input maps.

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)`` (or the layer4 map).

    Example:
        >>> ResNet18(3, in_channels=3)(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 3])
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, blocks = (64, 128, 256, 512), []
        in_width = 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks.append(nn.Sequential(BasicBlock(in_width, width, stride), BasicBlock(width, width)))
            in_width = width
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.out_channels = 512
        self.fc = nn.Linear(512, num_classes) if num_classes > 0 else None
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return x if self.fc is None else self.fc(x.mean(dim=(2, 3)))


def make_encoder(kind: str, in_channels: int) -> nn.Module:
    """A feature-map encoder by name with an ``out_channels`` attribute: one of
    :data:`ENCODERS`, else a timm model (``timm:NAME`` or a bare timm name)."""
    if kind == "compact":
        return CompactEncoder(in_channels)
    if kind == "resnet18":
        return ResNet18(0, in_channels)  # no fc: forward returns the layer4 map
    from fastmer.models.timm_backbone import TimmEncoder, check_timm_model  # noqa: PLC0415

    return TimmEncoder(check_timm_model(kind), in_channels)


class SpatialAttention(nn.Module):
    """CBAM-style spatial attention ``A = σ(Conv7×7([mean_c F; max_c F; extra]))``,
    applied as ``F' = F ⊙ A + F`` (SPEC §3.3).

    Args:
        extra_channels: maps concatenated to the pooled ones (e.g. FMANet's combined
            magnitude), resized to ``F``'s size by the caller.

    Shape:
        ``(N, C, h, w), (N, extra, h, w) -> (N, C, h, w)``
    """

    def __init__(self, kernel_size: int = 7, extra_channels: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 + extra_channels, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        pooled = [x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)]
        if extra is not None:
            pooled.append(extra)
        attention = torch.sigmoid(self.conv(torch.cat(pooled, dim=1)))
        return x * attention + x


class GradientAttention(nn.Module):
    """MEGANet's Gradient Attention, SPEC §8.3 [D]: fixed Sobel gradient magnitude per
    channel ``G = sqrt((S_x * F)² + (S_y * F)²)`` (depth-wise, not learned), attention
    ``A = σ(BN(Conv3×3(G)))`` and ``F' = F + F ⊙ A``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernels = torch.stack([sobel_x, sobel_x.t()])[:, None].repeat(channels, 1, 1, 1)  # (2C, 1, 3, 3)
        self.register_buffer("sobel", kernels, persistent=False)
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grads = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.sobel, groups=self.channels)
        gx, gy = grads[:, 0::2], grads[:, 1::2]
        magnitude = torch.sqrt(gx * gx + gy * gy + 1e-12)  # ε: finite gradient where G = 0
        return x + x * torch.sigmoid(self.bn(self.conv(magnitude)))


def check_input(name: str, x: torch.Tensor, channels: int) -> None:
    """Raise a clear error unless ``x`` is ``(N, channels, H, W)``."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} expects (N, {channels}, H, W) inputs, got {list(x.shape)}")
