"""timm models as the feature-map encoders of fastmer's networks (``--backbone NAME``).

Any image model of `timm <https://github.com/huggingface/pytorch-image-models>`_ (ResNet-50,
VGG-19-BN, EfficientNet-B0, ViT-B/16, ...) replaces the compact CNN of the classifier and
multi-stream networks: :class:`TimmEncoder` builds it without its classifier and returns its
last feature map (a ViT's patch tokens laid back on their grid), so every network that takes
an encoder takes any timm model. timm is optional (``pip install 'fastmer[timm]'``); it needs
a torchvision built for the installed torch.

ImageNet weights (``fastmer train --pretrained``) are one explicit download of the
``model.safetensors`` that timm's pretrained configuration names on the Hugging Face Hub
(:func:`pretrained_file`); from then on they are a local file like ``--weights FILE``, loaded
by name and shape (:meth:`fastmer.models.model.MERModel.match_initial_weights`) and recorded
with their sha256. A stem pretrained on 3 channels is adapted to the network's 1, 2 or more
input maps by :func:`adapt_input_weight`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fastmer.choices import ENCODERS

#: Prefix that always means a timm model (``timm:resnet18``; a bare ``resnet18`` is fastmer's own).
TIMM_PREFIX = "timm:"
INSTALL_HINT = ("pip install 'fastmer[timm]' (timm needs a torchvision built for your torch: for the CPU wheel of "
                "torch 2.13 there is none; torch 2.14.1 with torchvision 0.29.1 works)")


def import_timm():
    """The timm module, or ImportError saying how to install it."""
    try:
        import timm  # noqa: PLC0415
    except Exception as exc:  # a torchvision that does not match torch fails in many ways
        raise ImportError(f"timm is not usable here ({type(exc).__name__}: {exc}); {INSTALL_HINT}") from exc
    return timm


def is_timm_backbone(backbone: object) -> bool:
    """Whether a ``--backbone`` name means a timm model: any name but fastmer's own
    :data:`~fastmer.choices.ENCODERS` (``timm:NAME`` always does)."""
    return isinstance(backbone, str) and backbone not in ENCODERS


def timm_name(backbone: str) -> str:
    """``backbone`` without :data:`TIMM_PREFIX`."""
    return backbone.removeprefix(TIMM_PREFIX)


def check_timm_model(backbone: str) -> str:
    """The timm model name of ``backbone``; ValueError when timm is missing or has no such model."""
    name = timm_name(backbone)
    try:
        timm = import_timm()
    except ImportError as exc:
        raise ValueError(f"backbone {backbone!r} is not one of fastmer's encoders, so it must be a timm model, "
                         f"but {exc}") from exc
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:8]}*")[:8]
        raise ValueError(f"timm has no model {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
    return name


class TimmEncoder(nn.Module):
    """A timm model without its classifier: ``(N, C, H, W) -> (N, out_channels, h, w)``.

    Convolutional models give their last feature map; transformers (ViT, DeiT, ...) their
    patch tokens, class and register tokens dropped, reshaped to the patch grid. Models that
    accept ``dynamic_img_size`` are built with it, so any input size is taken (the position
    embedding is interpolated).

    Args:
        name: a timm model name (``timm.list_models()``).
        in_channels: input maps; the stem is built for them (:func:`adapt_input_weight` maps
            3-channel pretrained weights onto it).

    Example:
        >>> TimmEncoder("resnet18", 2)(torch.zeros(1, 2, 64, 64)).shape  # doctest: +SKIP
        torch.Size([1, 512, 2, 2])
    """

    def __init__(self, name: str, in_channels: int) -> None:
        super().__init__()
        timm = import_timm()
        options = {"pretrained": False, "num_classes": 0, "global_pool": "", "in_chans": in_channels}
        try:
            self.model = timm.create_model(name, dynamic_img_size=True, **options)
        except TypeError:  # convolutional models do not take it
            self.model = timm.create_model(name, **options)
        self.name = name
        self.out_channels = int(self.model.num_features)
        self.prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 0))
        patch = getattr(getattr(self.model, "patch_embed", None), "patch_size", None)
        self.patch = tuple(patch) if patch is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(x)
        if features.dim() == 4:
            if features.shape[1] != self.out_channels and features.shape[-1] == self.out_channels:
                features = features.permute(0, 3, 1, 2)  # channels-last models (some ConvNeXt/Swin variants)
            return features
        if features.dim() != 3 or self.patch is None:
            raise ValueError(f"timm model {self.name} gives features of shape {tuple(features.shape)}, "
                             "neither a feature map nor patch tokens")
        tokens = features[:, self.prefix_tokens :]
        height, width = x.shape[-2] // self.patch[0], x.shape[-1] // self.patch[1]
        if tokens.shape[1] != height * width:
            raise ValueError(f"timm model {self.name}: {tokens.shape[1]} patch tokens for a {height}x{width} grid")
        return tokens.transpose(1, 2).reshape(len(x), self.out_channels, height, width)


def adapt_input_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A stem convolution's weight pretrained on 3 (RGB) channels, for ``in_channels`` maps.

    timm's rule (``timm.models.adapt_input_conv``), so that a pretrained stem sees inputs of
    the scale it was trained on: one map takes the sum of the three RGB kernels (a grey image
    is R = G = B); any other number repeats the RGB kernels in turn (R, G, B, R, ...) and
    scales them by ``3 / in_channels``. A flow's ``u, v`` thus meet the R and G kernels ×1.5.

    Shape:
        ``(O, 3, kh, kw) -> (O, in_channels, kh, kw)``
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected a (O, 3, kh, kw) convolution weight, got {tuple(weight.shape)}")
    if in_channels == 3:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = weight.repeat(1, -(-in_channels // 3), 1, 1)[:, :in_channels]
    return repeated * (3 / in_channels)


def pretrained_file(backbone: str) -> tuple[Path, str]:
    """timm's ImageNet weights of ``backbone``: downloaded once into the Hugging Face cache
    (``huggingface_hub``; a later call finds them there) and returned as a local file.

    Returns:
        ``(path of model.safetensors, "timm:<hub repository>")``.

    Raises:
        ValueError: timm missing or the model unknown, no safetensors weights on the Hub for
            it, or the download failed (the message says why; nothing is trained).
    """
    name = check_timm_model(backbone)
    timm = import_timm()
    config = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(config, "hf_hub_id", None) if config is not None else None
    if not hub_id:
        raise ValueError(f"timm has no pretrained weights on the Hugging Face Hub for {name!r} "
                         "(give a local safetensors file with --weights)")
    from huggingface_hub import hf_hub_download  # noqa: PLC0415  (a timm dependency)

    try:
        path = hf_hub_download(hub_id, "model.safetensors")
    except Exception as exc:  # offline, missing file, HTTP errors
        raise ValueError(f"could not download the pretrained weights of {name} ({hub_id}/model.safetensors): "
                         f"{type(exc).__name__}: {exc}; download them where there is network and pass "
                         "--weights FILE") from exc
    return Path(path), f"timm:{hub_id}"
