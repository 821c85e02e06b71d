"""Benchmarks (pytest-benchmark): `make bench`. Figures go to bench/RESULTS.md.

Every timed function synchronises the GPU before returning, and each native kernel is
measured next to its baseline (the pure-PyTorch reference) in the same run: ratios are
stable on shared machines, absolute times are not.
"""

from __future__ import annotations

import pytest
import torch


def untrained_run(path, model: str = "fmanet", representation: str = "flow_phases", size: int = 128):
    """A run directory holding an untrained model, as `fastmer train` writes it (for scoring benchmarks)."""
    from fastmer.datasets.labels import get_protocol
    from fastmer.models.model import MERModel
    from fastmer.motion.representations import REPRESENTATIONS

    torch.manual_seed(0)
    channels = REPRESENTATIONS[representation]
    network = MERModel.create(model, get_protocol("megc2019-3class").classes, channels, (len(channels), size, size))
    path.mkdir(parents=True)
    network.eval().save(path / "model.safetensors", path / "model.json")
    return path


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request) -> str:
    return request.param


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Pairs/s and EPE per benchmark group, clips/s of the extraction benchmarks
    (pytest-benchmark's table shows seconds only)."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None) or []
    pairs_summary(terminalreporter, [b for b in benchmarks if "pairs" in b.extra_info])
    clips_summary(terminalreporter, [b for b in benchmarks if "clips" in b.extra_info])
    folds_summary(terminalreporter, [b for b in benchmarks if "total_folds" in b.extra_info])


def by_group(rows: list) -> list[tuple[str, list]]:
    groups: dict[str, list] = {}
    for bench in rows:
        groups.setdefault(bench.group or "", []).append(bench)
    return sorted(groups.items())


def pairs_summary(terminalreporter, rows: list) -> None:
    if not rows:
        return
    terminalreporter.section("pairs/s and accuracy (median time)")
    for group, items in by_group(rows):
        terminalreporter.write_line(group)
        base = next((b for b in items if b.extra_info.get("backend") == "opencv"), None)
        for bench in sorted(items, key=lambda b: b.stats.median):
            info = bench.extra_info
            rate = info["pairs"] / bench.stats.median
            ratio = f"  x{base.stats.median / bench.stats.median:5.2f} vs opencv" if base is not None else ""
            epe = f"  EPE {info['epe']:.4f}" if "epe" in info else ""
            extra = f"  {info['roofline_fraction']:.0%} of peak bandwidth" if info.get("roofline_fraction") else ""
            terminalreporter.write_line(f"  {bench.name:55s} {rate:9.1f} pairs/s{epe}{ratio}{extra}")


def clips_summary(terminalreporter, rows: list) -> None:
    """bench_extract.py, bench_infer.py: clips/s of each side, ratio to the baseline in the same run, where the time went."""
    if not rows:
        return
    terminalreporter.section("clips/s (median time; min time in brackets)")
    for group, items in by_group(rows):
        terminalreporter.write_line(group)
        base = next((b for b in items if b.extra_info.get("side") == "baseline"), None)
        for bench in sorted(items, key=lambda b: -b.stats.median):
            info = bench.extra_info
            rate, best = info["clips"] / bench.stats.median, info["clips"] / bench.stats.min
            ratio = ""
            if base is not None and bench is not base:
                ratio = (f"  x{base.stats.median / bench.stats.median:5.2f} "
                         f"[x{base.stats.min / bench.stats.min:5.2f}] vs baseline")
            guard = f"  guard: EPE vs baseline {info['guard_epe_max']:.4f} px" if "guard_epe_max" in info else ""
            terminalreporter.write_line(f"  {bench.name:45s} {rate:7.2f} [{best:5.2f}] clips/s{ratio}{guard}")
            stages = info.get("stages")
            if stages:
                wall = info.get("wall") or sum(stages.values())
                parts = ", ".join(f"{name} {seconds:.2f} s ({seconds / wall:.0%})" for name, seconds in stages.items())
                terminalreporter.write_line(f"      busy seconds (share of wall {wall:.2f} s): {parts}")
                if info.get("one_core") and base is not None:  # CPU seconds: what two cores could do at best
                    cpu = sum(stages.values())
                    terminalreporter.write_line(f"      {cpu:.2f} CPU-s in all: on two cores at best {cpu / 2:.2f} s, "
                                                f"x{base.stats.median / (cpu / 2):5.2f} vs baseline")


def folds_summary(terminalreporter, rows: list) -> None:
    """bench_train.py: seconds per fold and the whole protocol's time (the baseline's extrapolated)."""
    if not rows:
        return
    terminalreporter.section("training: whole-protocol time (median)")
    for group, items in by_group(rows):
        terminalreporter.write_line(group)
        per_fold = {b.extra_info["side"]: b.stats.median / b.extra_info["folds"] for b in items}
        for bench in items:
            info = bench.extra_info
            total = per_fold[info["side"]] * info["total_folds"]
            note = (f"extrapolated from {info['folds']} folds" if info["extrapolated"] else
                    f"measured; {info.get('jobs')} worker(s), amp {info.get('amp')}, pooled UF1 {info.get('uf1', 0):.3f}")
            ratio = ""
            if info["side"] != "baseline" and "baseline" in per_fold:
                ratio = f"  x{per_fold['baseline'] / per_fold[info['side']]:5.2f} vs baseline"
            terminalreporter.write_line(f"  {info['side']:10s} {per_fold[info['side']]:7.2f} s/fold  "
                                        f"{total / 60:6.2f} min for {info['total_folds']} folds ({note}){ratio}")
