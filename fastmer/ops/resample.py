"""Batched image resampling in PyTorch (CPU or GPU, wherever the images are)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def area_matrix(in_size: int, out_size: int, *, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``(out_size, in_size)`` matrix of area (box-filter) resampling along one axis.

    Output pixel ``i`` averages the input over ``[i, i + 1) * in_size / out_size`` with
    fractional overlaps, which is OpenCV's ``INTER_AREA`` when shrinking.
    """
    scale = in_size / out_size
    edges = torch.arange(out_size + 1, dtype=torch.float64) * scale
    lo, hi = edges[:-1, None], edges[1:, None]
    pixels = torch.arange(in_size, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(hi, pixels + 1) - torch.maximum(lo, pixels)).clamp(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).to(dtype=dtype, device=device)


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``(..., H, W)`` float images: area averaging when shrinking (OpenCV's
    INTER_AREA), bilinear with half-pixel centres when enlarging (INTER_LINEAR).

    Example:
        >>> resize(torch.ones(2, 10, 10), 4, 4).shape
        torch.Size([2, 4, 4])
    """
    h, w = images.shape[-2:]
    out = images
    if height <= h:
        out = torch.matmul(area_matrix(h, height, dtype=out.dtype, device=out.device), out)
    if width <= w:
        out = torch.matmul(out, area_matrix(w, width, dtype=out.dtype, device=out.device).t())
    if height > h or width > w:
        lead = out.shape[:-2]
        flat = out.reshape(-1, 1, *out.shape[-2:])
        flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
        out = flat.reshape(*lead, height, width)
    return out
