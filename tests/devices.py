"""Devices the tests run on (the `device` fixture in conftest.py)."""

from __future__ import annotations

import pytest
import torch


def devices() -> list[str]:
    """CPU always; CUDA when a GPU is visible (CUDA tests run on the lent GPU machine)."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def device_params(names: list[str]) -> list:
    """The CUDA cases carry the `cuda` marker, so `pytest -m cuda` (make gpu-check) selects them."""
    return [pytest.param(d, marks=pytest.mark.cuda) if d == "cuda" else d for d in names]
