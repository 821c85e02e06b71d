"""make gpu-check: what can be checked without a GPU (the GPU path itself runs on a lent machine)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from devices import device_params

REPO = Path(__file__).resolve().parents[1]


def _load_driver():
    """bench/gpu_check/run.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("fastmer_gpu_check", REPO / "bench" / "gpu_check" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _load_driver()


def test_make_gpu_check_on_a_machine_without_gpu_stops_at_once_with_one_line(tmp_path):
    out = tmp_path / "out"
    began = time.monotonic()
    result = subprocess.run(["make", "-s", "gpu-check", f"GPU_PYTHON={sys.executable}", f"GPU_CHECK_OUT={out}"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert time.monotonic() - began < 30
    assert result.returncode != 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: ") and "GPU" in lines[0], result.stdout
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] is False and report["reason"] in lines[0]
    assert "Not run" in (out / "gpu_check.md").read_text()


def test_run_py_exit_status_without_gpu(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path)]) == gpu_check.NO_GPU


def test_cuda_device_cases_carry_the_cuda_marker():
    """gpu-check selects the GPU tests with `-m cuda`: the device fixture's CUDA case must be marked."""
    cpu, cuda = device_params(["cpu", "cuda"])
    assert cpu == "cpu"
    assert cuda.values == ("cuda",) and [m.name for m in cuda.marks] == ["cuda"]


def test_pytest_counts_reads_the_closing_line():
    text = "....\n========= 12 passed, 3 skipped, 1 xfailed in 4.2s =========\n"
    assert gpu_check.pytest_counts(text) == {"passed": 12, "skipped": 3, "xfailed": 1}
    assert gpu_check.pytest_counts("1 failed, 2 passed, 1 error in 1s") == {"failed": 1, "passed": 2, "error": 1}
    assert gpu_check.pytest_counts("no tests ran") == {}


def _bench(group, name, median, **info):
    return {"group": group, "name": name, "stats": {"median": median}, "extra_info": info}


def test_benchmark_summary_ratios_and_markdown():
    data = {"benchmarks": [
        _bench("tvl1 N=256", "test_tvl1[fastmer-cuda-256]", 0.5, pairs=256, side="fastmer-cuda"),
        _bench("tvl1 N=256", "test_tvl1[torch-cuda-256]", 50.0, pairs=256, side="torch-cuda"),
        _bench("tvl1 N=256", "test_tvl1[fastmer-cpu-256]", 2.0, pairs=256, side="fastmer-cpu"),
        _bench("scoring", "test_scoring[torch-eager]", 0.2, clips=256, engine="torch-eager", side="baseline"),
        _bench("scoring", "test_scoring[torch-compile]", 0.1, clips=256, engine="torch-compile", side="engine"),
        _bench("roofline", "test_tvl1_roofline[fp32-state]", 2.0, pairs=256, achieved_bytes_per_s=1.34e12,
               roofline_fraction=0.4, fraction_of_copy=0.5, copy_bytes_per_s=2.68e12),
    ]}
    rows = {row["name"]: row for row in gpu_check.summarise_benchmarks(data)}
    fast = rows["test_tvl1[fastmer-cuda-256]"]
    assert fast["pairs_per_s"] == 512.0
    assert fast["speedup_vs_torch-cuda"] == 100.0 and fast["speedup_vs_fastmer-cpu"] == 4.0
    assert rows["test_scoring[torch-compile]"]["speedup_vs_baseline"] == 2.0
    assert "speedup_vs_baseline" not in rows["test_scoring[torch-eager]"]
    report = gpu_check.Report(started="now", machine={"gpu": "NVIDIA H100 80GB HBM3"}, benchmarks=list(rows.values()),
                              steps=[gpu_check.Step("build", "passed", 90.0)], ok=True)
    text = gpu_check.markdown(report)
    assert "×100.00 vs torch-cuda" in text and "1,340 GB/s = 0.4 of nominal" in text and "| build | passed | 90 |" in text


def test_sanitizer_harness_compiles_with_nvcc(tmp_path):
    """The harness is built on the GPU machine by nvcc; here it is compiled (not run) so it cannot rot."""
    nvcc = gpu_check.find_tool("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    machine = {"nvcc": nvcc, "arch_list": "9.0", "cmake": "cmake", "ninja": "ninja"}
    cmd = gpu_check.build_commands(machine)[2]
    cmd[cmd.index("-o") + 1] = str(tmp_path / "harness")
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
