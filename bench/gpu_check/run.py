"""`make gpu-check`: the whole GPU acceptance of fastmer in one command.

Made for a lent GPU machine with no network and minutes of time: it uses that machine's
own Python (torch with CUDA, cmake, ninja, pybind11, pytest, pytest-benchmark already
there), creates no venv and downloads nothing. In order, printing progress:

1. build the extension in place (CMake + Ninja, ``FASTMER_CUDA=on``, ``TORCH_CUDA_ARCH_LIST``
   of the present GPU) into ``build/gpu-check`` and copy ``_C`` into ``fastmer/``; at the
   same time nvcc builds ``sanitizer_harness`` (the launchers without torch, see its header);
2. the ``cuda``-marked tests (the native ops on the GPU against the CPU and the references);
3. compute-sanitizer over the harness (memcheck with leak check, racecheck, initcheck,
   synccheck: TV-L1 float/half/gamma/early stop, rank pooling forward/backward, magnitude,
   strain, each with CUDA's grid caps and with 2 x 2 blocks) and memcheck over a small
   TV-L1 and rank-pool call through torch (the ops' own glue and allocator);
4. the GPU benchmarks (``bench/bench_gpu.py``);

then writes ``gpu_check.json`` and ``gpu_check.md`` (and every step's log) under
``GPU_CHECK_OUT`` (``--out``, default ``gpu_check/``). Every step has a time limit and the
whole run a deadline (8 minutes by default, ``--deadline``); a step that fails or overruns
is reported and the next steps still run, so one call yields everything it can. Exit
status: 0 all passed, 1 a step failed, 3 no usable CUDA GPU here (one line, at once).

    python bench/gpu_check/run.py --out gpu_check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = REPO / "build" / "gpu-check"
NO_GPU = 3

# Seconds each step may take at most (the deadline may cut them shorter).
LIMITS = {"build": 330, "harness": 200, "tests": 150, "sanitizer": 90, "sanitizer-torch": 150, "bench": 330}


class Unusable(RuntimeError):
    """This machine cannot run the GPU check (no GPU, no CUDA torch, no nvcc)."""


@dataclass
class Step:
    name: str
    status: str = "not run"  # passed | failed | timed out | not run
    seconds: float = 0.0
    log: str = ""
    detail: str = ""


@dataclass
class Report:
    started: str
    machine: dict = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    tests: dict = field(default_factory=dict)
    benchmarks: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    ok: bool = False
    reason: str = ""


class Clock:
    def __init__(self, deadline: float) -> None:
        self.start = time.monotonic()
        self.deadline = deadline

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.deadline - self.elapsed()

    def say(self, message: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        print(f"[gpu-check {minutes}:{seconds:02d}] {message}", flush=True)


# --- the machine ---------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    """A CUDA toolkit program: on PATH, under CUDA_HOME, or /usr/local/cuda."""
    for candidate in (shutil.which(name), *(Path(os.environ.get(v, "")) / "bin" / name for v in ("CUDA_HOME", "CUDA_PATH")),
                      Path("/usr/local/cuda/bin") / name):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def preflight() -> dict:
    """The machine's facts, or Unusable with a one-line reason; cheap checks first."""
    if not any(Path("/dev").glob("nvidia[0-9]*")) and shutil.which("nvidia-smi") is None:
        raise Unusable("no NVIDIA GPU on this machine (no /dev/nvidia* device, no nvidia-smi); run it on a GPU machine")
    try:
        import torch
    except ImportError as exc:
        raise Unusable(f"{sys.executable} cannot import torch ({exc}); run it with the GPU machine's Python") from exc
    if torch.version.cuda is None:
        raise Unusable(f"torch {torch.__version__} at {sys.executable} has no CUDA; a CUDA build of torch is needed")
    if not torch.cuda.is_available():
        raise Unusable(f"torch {torch.__version__} sees no CUDA device (driver or CUDA_VISIBLE_DEVICES?)")
    nvcc = find_tool("nvcc")
    if nvcc is None:
        raise Unusable("nvcc not found (PATH, CUDA_HOME, /usr/local/cuda): the extension cannot be built")
    build_tools = {tool: build_tool(tool) for tool in ("cmake", "ninja")}
    missing = [tool for tool, path in build_tools.items() if path is None]
    if missing:
        raise Unusable(f"{' and '.join(missing)} not found (PATH, or the {' and '.join(missing)} package of {sys.executable})")
    major, minor = torch.cuda.get_device_capability()
    version_text = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    nvcc_version = next((line.strip() for line in version_text.splitlines() if "release" in line), version_text.strip())
    props = torch.cuda.get_device_properties(0)
    return {"gpu": torch.cuda.get_device_name(), "capability": f"{major}.{minor}",
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpus": torch.cuda.device_count(), "torch": torch.__version__, "torch_cuda": torch.version.cuda, "nvcc": nvcc,
            "nvcc_version": nvcc_version, "compute_sanitizer": find_tool("compute-sanitizer"), "python": sys.version.split()[0],
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "arch_list": f"{major}.{minor}",
            **build_tools}


def build_tool(name: str) -> str | None:
    """cmake or ninja: on PATH, or from the PyPI package of that name in this Python (its bin folder)."""
    found = shutil.which(name)
    if found:
        return found
    try:
        module = __import__(name)
    except ImportError:
        return None
    folder = getattr(module, "CMAKE_BIN_DIR", None) or getattr(module, "BIN_DIR", None)
    candidate = Path(folder or "") / name
    return str(candidate) if folder and candidate.is_file() else None


def environment(machine: dict) -> dict:
    """Subprocess environment: fastmer from this tree (with the _C just built), torch's libraries found."""
    import torch

    torch_lib = str(Path(torch.__file__).parent / "lib")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    # cmake and ninja where preflight found them (CMake looks ninja up on PATH).
    tool_dirs = dict.fromkeys(str(Path(machine[tool]).parent) for tool in ("cmake", "ninja"))
    env["PATH"] = os.pathsep.join([*tool_dirs, env.get("PATH", "")])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (torch_lib, env.get("LD_LIBRARY_PATH", "")) if p)
    env["TORCH_CUDA_ARCH_LIST"] = machine["arch_list"]
    env["FASTMER_CUDA"] = "on"
    env.setdefault("FASTMER_CACHE", str(BUILD / "cache"))
    return env


# --- running steps --------------------------------------------------------------------------


_RUNNING: set[subprocess.Popen] = set()  # process groups to kill if gpu-check itself is stopped


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        handle.write("$ " + " ".join(cmd) + "\n\n")
        handle.flush()
        # Its own process group, so a timeout kills ninja's and pytest's children too.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    _RUNNING.add(proc)
    return proc


def kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _RUNNING.discard(proc)


def finish(proc: subprocess.Popen, step: Step, limit: float, began: float) -> None:
    try:
        code = proc.wait(timeout=max(1.0, limit))
        _RUNNING.discard(proc)
        step.status = "passed" if code == 0 else "failed"
        if code != 0:
            step.detail = f"exit status {code}"
    except subprocess.TimeoutExpired:
        kill(proc)
        step.status, step.detail = "timed out", f"killed after {limit:.0f} s"
    step.seconds = round(time.monotonic() - began, 1)


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_step(report: Report, clock: Clock, name: str, cmd: list[str], env: dict, out: Path, limit: float) -> Step:
    step = Step(name, log=f"{name}.log")
    report.steps.append(step)
    budget = min(limit, clock.left())
    if budget < 5:
        step.detail = "no time left before the deadline"
        clock.say(f"{name}: not run ({step.detail})")
        return step
    clock.say(f"{name}: started (limit {budget:.0f} s)")
    began = time.monotonic()
    finish(start(cmd, out / step.log, env), step, budget, began)
    report_step(clock, step, out)
    return step


def report_step(clock: Clock, step: Step, out: Path) -> None:
    clock.say(f"{step.name}: {step.status} in {step.seconds:.0f} s" + (f" ({step.detail})" if step.detail else ""))
    if step.status != "passed":
        print(tail(out / step.log), flush=True)


# --- the steps -------------------------------------------------------------------------------


def build_commands(machine: dict) -> tuple[list[str], list[str], list[str]]:
    """CMake configure, CMake build, and the nvcc build of the sanitizer harness."""
    import pybind11

    configure = [machine["cmake"], "-S", str(REPO), "-B", str(BUILD), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                 "-DFASTMER_CUDA=on", f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                 f"-DCMAKE_CUDA_COMPILER={machine['nvcc']}", f"-DCMAKE_MAKE_PROGRAM={machine['ninja']}"]
    build = [machine["cmake"], "--build", str(BUILD), "--parallel", str(os.cpu_count() or 4)]
    arch = machine["arch_list"].replace(".", "")
    harness = [machine["nvcc"], "-std=c++17", "-O3", "-lineinfo", f"-arch=sm_{arch}", "--expt-relaxed-constexpr",
               "-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
               f"-I{REPO / 'csrc'}", str(HERE / "sanitizer_harness.cu"), "-o", str(BUILD / "sanitizer_harness")]
    return configure, build, harness


def build_step(report: Report, clock: Clock, machine: dict, env: dict, out: Path) -> bool:
    """Extension and harness, built side by side; the extension's _C copied into fastmer/."""
    configure, build, harness = build_commands(machine)
    BUILD.mkdir(parents=True, exist_ok=True)
    clock.say("build: extension (cmake + ninja) and sanitizer harness (nvcc), side by side")
    began = time.monotonic()
    harness_step, ext_step = Step("harness", log="harness.log"), Step("build", log="build.log")
    report.steps += [ext_step, harness_step]
    harness_proc = start(harness, out / harness_step.log, env)
    script = f"{' '.join(map(_quote, configure))} && {' '.join(map(_quote, build))}"
    ext_proc = start(["bash", "-c", script], out / ext_step.log, env)
    finish(ext_proc, ext_step, min(LIMITS["build"], clock.left()), began)
    finish(harness_proc, harness_step, max(1.0, min(LIMITS["harness"] - (time.monotonic() - began), clock.left())), began)
    if ext_step.status == "passed":
        built = sorted(BUILD.glob("_C*.so"))
        if not built:
            ext_step.status, ext_step.detail = "failed", f"no _C*.so in {BUILD}"
        else:
            for old in (REPO / "fastmer").glob("_C*.so"):
                old.unlink()
            shutil.copy2(built[0], REPO / "fastmer" / built[0].name)
            ext_step.detail = f"{built[0].name} copied into fastmer/"
    for step in (ext_step, harness_step):
        report_step(clock, step, out)
    return ext_step.status == "passed"


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def check_extension(report: Report, clock: Clock, env: dict, out: Path) -> bool:
    """The built extension loads and has CUDA kernels for every op."""
    probe = ("import json, torch, fastmer.ops._native as n; r = n.unavailable_reason(); assert r is None, r; "
             "missing = [op for op in n.NATIVE_OPS if not n.has_kernel(op, 'cuda')]; "
             "assert not missing, f'no CUDA kernel for {missing}'; print(json.dumps(n.build_info()))")
    step = run_step(report, clock, "extension-loads", [sys.executable, "-c", probe], env, out, 60)
    return step.status == "passed"


TEST_DIRS = ["tests/ops", "tests/motion"]


def tests_step(report: Report, clock: Clock, env: dict, out: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
           *TEST_DIRS]
    step = run_step(report, clock, "cuda-tests", cmd, env, out, LIMITS["tests"])
    report.tests = pytest_counts((out / step.log).read_text(errors="replace") if (out / step.log).exists() else "")
    if step.status == "passed" and not report.tests.get("passed"):
        step.status, step.detail = "failed", "no cuda test ran"


def pytest_counts(text: str) -> dict:
    """{'passed': 12, 'skipped': 3, ...} from pytest's closing line."""
    lines = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    if not lines:
        return {}
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)",
                                                    lines[-1])}


SANITIZERS = [("memcheck", ["--leak-check", "full"], []), ("racecheck", ["--racecheck-report", "all"], []),
              ("initcheck", [], ["--no-prefill"]), ("synccheck", [], [])]

TORCH_OPS_SNIPPET = """
import torch
from fastmer.ops import TVL1Params, rank_pool
from fastmer.ops.tvl1 import tvl1
g = torch.Generator().manual_seed(0)
I0 = (torch.rand(2, 40, 48, generator=g) * 255).to(torch.uint8).cuda()
I1 = torch.roll(I0, 1, dims=2)
for half in (False, True):
    f = tvl1(I0, I1, TVL1Params(nscales=2, warps=1, inner_iterations=4, outer_iterations=2, half_state=half), backend="native")
    assert torch.isfinite(f).all()
x = torch.rand(2, 6, 1, 16, 16, device="cuda", requires_grad=True)
rank_pool(x, backend="native").sum().backward()
torch.cuda.synchronize()
print("torch ops ok")
"""


def sanitizer_steps(report: Report, clock: Clock, machine: dict, env: dict, out: Path, harness_ok: bool) -> None:
    sanitizer = machine["compute_sanitizer"]
    if sanitizer is None:
        report.steps.append(Step("compute-sanitizer", status="failed",
                                 detail="compute-sanitizer not found (PATH, CUDA_HOME, /usr/local/cuda)"))
        clock.say("compute-sanitizer: not found")
        return
    harness = str(BUILD / "sanitizer_harness")
    for tool, tool_args, harness_args in SANITIZERS:
        if not harness_ok:
            report.steps.append(Step(f"sanitizer-{tool}", detail="the harness did not build"))
            continue
        cmd = [sanitizer, "--tool", tool, *tool_args, "--error-exitcode", "1", harness, *harness_args]
        step = run_step(report, clock, f"sanitizer-{tool}", cmd, env, out, LIMITS["sanitizer"])
        step.detail = step.detail or sanitizer_summary(out / step.log)
    cmd = [sanitizer, "--tool", "memcheck", "--error-exitcode", "1", sys.executable, "-c", TORCH_OPS_SNIPPET]
    # Without torch's caching allocator every tensor is its own allocation, which memcheck bounds-checks.
    step = run_step(report, clock, "sanitizer-memcheck-torch-ops", cmd, {**env, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}, out,
                    LIMITS["sanitizer-torch"])
    step.detail = step.detail or sanitizer_summary(out / step.log)


def sanitizer_summary(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", text)
    return found[-1] if found else ""


# bench/bench_gpu.py in three runs, the kernel's own figures first and the slow baselines
# last, each writing its JSON: a run cut by the deadline loses only its own rows. The
# ratios of the first run are computed against the baselines of the third.
BENCH_RUNS = {"bench-fastmer": "roofline or fastmer-cuda", "bench-rank-pool-scoring": "rank_pool or scoring",
              "bench-baselines": "torch-cuda or fastmer-cpu"}


def bench_step(report: Report, clock: Clock, env: dict, out: Path) -> None:
    merged: dict = {"benchmarks": []}
    began = time.monotonic()
    for name, selection in BENCH_RUNS.items():
        json_path = out / f"{name}.json"
        cmd = [sys.executable, "-m", "pytest", "bench/bench_gpu.py", "-o", "python_files=bench_*.py", "--benchmark-only",
               "-k", selection, f"--benchmark-json={json_path}", "-q", "-p", "no:cacheprovider"]
        step = run_step(report, clock, name, cmd, env, out, LIMITS["bench"] - (time.monotonic() - began))
        rows = json.loads(json_path.read_text()).get("benchmarks", []) if json_path.exists() else []
        if step.status == "passed" and not rows:  # everything skipped: nothing was measured
            step.status, step.detail = "failed", "no benchmark ran (all skipped?)"
        merged["benchmarks"] += rows
    report.benchmarks = summarise_benchmarks(merged)


def summarise_benchmarks(data: dict) -> list[dict]:
    """One row per benchmark: group, name, median seconds, rates, and the ratios that matter
    (fastmer CUDA vs the torch reference and vs the CPU kernel; compile vs eager; native vs reference)."""
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        median = bench["stats"]["median"]
        row = {"group": bench["group"], "name": bench["name"], "median_s": median, **info}
        for unit in ("pairs", "clips"):
            if unit in info:
                row[f"{unit}_per_s"] = info[unit] / median
        rows.append(row)
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row)
    for items in by_group.values():
        medians = {row.get("side") or row.get("engine"): row["median_s"] for row in items}
        for row in items:
            side = row.get("side") or row.get("engine")
            for base in ("torch-cuda", "fastmer-cpu", "baseline", "torch-eager"):
                if base in medians and base != side:
                    row[f"speedup_vs_{base}"] = medians[base] / row["median_s"]
    return rows


# --- the report -------------------------------------------------------------------------------


def write_report(report: Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "—" if value is None else str(value)


def markdown(report: Report) -> str:
    m = report.machine
    lines = [f"# make gpu-check — {report.started}", ""]
    if report.reason:
        lines += [f"**Not run:** {report.reason}", ""]
    if m:
        result = "passed" if report.ok else "FAILED"
        lines += [f"Machine: {m.get('gpu')} (compute capability {m.get('capability')}, {m.get('gpu_memory_gib')} GiB), "
                  f"{m.get('cpu_count')} CPU cores; Python {m.get('python')}, torch {m.get('torch')} "
                  f"(CUDA {m.get('torch_cuda')}), {m.get('nvcc_version')}. Total {report.seconds:.0f} s. Result: **{result}**.",
                  ""]
    if report.steps:
        lines += ["| step | status | seconds | detail |", "|---|---|---|---|"]
        lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.detail} |" for s in report.steps]
        lines.append("")
    if report.tests:
        lines += ["CUDA tests: " + ", ".join(f"{n} {word}" for word, n in report.tests.items()), ""]
    if report.benchmarks:
        lines += ["| benchmark | median s | pairs/s or clips/s | speed-ups | bandwidth |", "|---|---|---|---|---|"]
        for row in report.benchmarks:
            rate = row.get("pairs_per_s") or row.get("clips_per_s")
            speedups = ", ".join(f"×{v:.2f} vs {k.removeprefix('speedup_vs_')}" for k, v in row.items()
                                 if k.startswith("speedup_vs_"))
            bandwidth = ""
            if "achieved_bytes_per_s" in row:
                bandwidth = (f"{row['achieved_bytes_per_s'] / 1e9:,.0f} GB/s = {_fmt(row.get('roofline_fraction'))} of nominal, "
                             f"{row['fraction_of_copy']:.2f} of a D2D copy ({row['copy_bytes_per_s'] / 1e9:,.0f} GB/s)")
            lines.append(f"| {row['name']} | {row['median_s']:.4g} | {_fmt(rate)} | {speedups} | {bandwidth} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("GPU_CHECK_OUT") or "gpu_check"),
                        help="directory for gpu_check.json, gpu_check.md and the logs (default: $GPU_CHECK_OUT or gpu_check)")
    parser.add_argument("--deadline", type=float, default=480.0, help="seconds for the whole run (default 480)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    clock = Clock(args.deadline)
    report = Report(started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    try:
        report.machine = preflight()
    except Unusable as exc:
        report.reason = str(exc)
        write_report(report, out)
        print(f"gpu-check: {exc}", flush=True)
        return NO_GPU
    m = report.machine
    clock.say(f"{m['gpu']} (sm_{m['arch_list'].replace('.', '')}), torch {m['torch']}, {m['nvcc_version']}; output in {out}")
    env = environment(m)
    # SIGTERM (a scheduler, `timeout`) ends the run like Ctrl-C: steps killed, report written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        built = build_step(report, clock, m, env, out)
        harness_ok = any(s.name == "harness" and s.status == "passed" for s in report.steps)
        if built and check_extension(report, clock, env, out):
            tests_step(report, clock, env, out)
        elif built:
            report.steps.append(Step("cuda-tests", detail="the extension does not load with its CUDA kernels"))
        else:
            report.steps.append(Step("cuda-tests", detail="the extension did not build"))
        sanitizer_steps(report, clock, m, env, out, harness_ok)
        if built:
            bench_step(report, clock, env, out)
        else:
            report.steps.append(Step("benchmarks", detail="the extension did not build"))
    finally:
        for proc in list(_RUNNING):
            kill(proc)
        report.seconds = round(clock.elapsed(), 1)
        report.ok = bool(report.steps) and all(s.status == "passed" for s in report.steps)
        write_report(report, out)
    failed = [s.name for s in report.steps if s.status != "passed"]
    clock.say(f"{'passed' if report.ok else 'FAILED: ' + ', '.join(failed)}; report: {out / 'gpu_check.md'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
