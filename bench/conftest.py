"""Benchmarks (pytest-benchmark): `make bench`. Figures go to bench/RESULTS.md.

Every timed function synchronises the GPU before returning, and each native kernel is
measured next to its baseline (the pure-PyTorch reference) in the same run: ratios are
stable on shared machines, absolute times are not.
"""

from __future__ import annotations

import pytest
import torch


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request) -> str:
    return request.param
