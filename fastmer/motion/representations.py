"""Motion representations stored per clip (more arrive with later versions).

``flow_onset_apex``: the TV-L1 flow from the onset to the apex frame with the channels
:data:`FLOW_CHANNELS` = horizontal u, vertical v, magnitude M and optical strain (the
u/v/strain input of STSTNet, the H/V/M channels of MicroAttNet).
"""

from __future__ import annotations

import torch

from fastmer.config import FLOW_CHANNELS
from fastmer.ops import flow_magnitude, optical_strain

REPRESENTATIONS = {"flow_onset_apex": FLOW_CHANNELS}


def flow_features(flow: torch.Tensor) -> torch.Tensor:
    """Stack flow with its magnitude and optical strain (native kernels, batched).

    Args:
        flow: ``(N, 2, H, W)`` flow in pixels.

    Returns:
        ``(N, 4, H, W)`` channels ``(u, v, magnitude, strain)``.

    Example:
        >>> flow_features(torch.zeros(3, 2, 8, 8)).shape
        torch.Size([3, 4, 8, 8])
    """
    return torch.cat([flow, flow_magnitude(flow), optical_strain(flow)], dim=1)
