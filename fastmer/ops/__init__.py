"""Native ops (C++/CUDA kernels in ``torch.ops.fastmer``) with pure-PyTorch references.

Every op has a function (with shape checks and a ``backend`` switch), an ``nn.Module``
wrapper and a ``*_reference`` implementation that is both the test oracle and the
fallback when a native kernel is unavailable (see :mod:`fastmer.ops._native`).
"""

from fastmer.ops import _native
from fastmer.ops._native import NativeFallbackWarning
from fastmer.ops.flow_magnitude import FlowMagnitude, flow_magnitude, flow_magnitude_reference
from fastmer.ops.optical_strain import OpticalStrain, optical_strain, optical_strain_reference
from fastmer.ops.rank_pool import RankPool, rank_pool, rank_pool_coefficients, rank_pool_reference
from fastmer.ops.tvl1 import TVL1Params, tvl1, tvl1_reference

if _native.extension() is not None:
    from fastmer.ops import _registrations  # noqa: F401  (fake kernels + autograd)

__all__ = [
    "FlowMagnitude",
    "NativeFallbackWarning",
    "OpticalStrain",
    "RankPool",
    "TVL1Params",
    "flow_magnitude",
    "flow_magnitude_reference",
    "optical_strain",
    "optical_strain_reference",
    "rank_pool",
    "rank_pool_coefficients",
    "rank_pool_reference",
    "tvl1",
    "tvl1_reference",
]
