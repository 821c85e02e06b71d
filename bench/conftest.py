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


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Pairs/s and EPE per benchmark group (pytest-benchmark's table shows seconds only)."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None) or []
    rows = [b for b in benchmarks if "pairs" in b.extra_info]
    if not rows:
        return
    terminalreporter.section("pairs/s and accuracy (median time)")
    groups: dict[str, list] = {}
    for bench in rows:
        groups.setdefault(bench.group or "", []).append(bench)
    for group, items in sorted(groups.items()):
        terminalreporter.write_line(group)
        base = next((b for b in items if b.extra_info.get("backend") == "opencv"), None)
        for bench in sorted(items, key=lambda b: b.stats.median):
            info = bench.extra_info
            rate = info["pairs"] / bench.stats.median
            ratio = f"  x{base.stats.median / bench.stats.median:5.2f} vs opencv" if base is not None else ""
            epe = f"  EPE {info['epe']:.4f}" if "epe" in info else ""
            extra = f"  {info['roofline_fraction']:.0%} of peak bandwidth" if info.get("roofline_fraction") else ""
            terminalreporter.write_line(f"  {bench.name:55s} {rate:9.1f} pairs/s{epe}{ratio}{extra}")
