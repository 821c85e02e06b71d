"""Interrupted commands: SIGTERM and SIGINT stop every command at once (130 / 143), leave no
process behind and no temporary file; an interrupted training run resumes to the report an
uninterrupted one gives.

Each command runs as a real subprocess in its own session; the test records the process
tree while it runs (from /proc), sends the signal as `kill` (SIGTERM, to the command) or a
terminal (SIGINT, to the whole foreground process group) would, and checks the tree after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")

FASTMER = [sys.executable, "-m", "fastmer"]


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            table[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return table


def _descendants(pid: int) -> set[int]:
    table = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in table.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"  # a zombie has ended; only its parent's wait is missing


class Command:
    """A fastmer command in its own session, its process tree watched while it runs."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = cwd / "stderr.txt"
        self.stderr_file = self.stderr_path.open("w")
        self.proc = subprocess.Popen([*FASTMER, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=self.stderr_file,
                                     start_new_session=True, env={**os.environ, **(env or {})})
        self.seen: set[int] = set()

    def watch(self) -> None:
        self.seen |= _descendants(self.proc.pid)

    def wait_for(self, ready: Callable[[], bool], timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.watch()
            if self.proc.poll() is not None:
                pytest.fail(f"the command ended ({self.proc.returncode}) before it was ready: {self.stderr()[-2000:]}")
            if ready():
                self.watch()
                return
            time.sleep(0.05)
        pytest.fail(f"not ready after {timeout} s: {self.stderr()[-2000:]}")

    def interrupt(self, signum: int, timeout: float = 20.0) -> tuple[int, float]:
        """Send ``signum`` as `kill` (SIGTERM) or Ctrl-C (SIGINT: the process group); the exit
        status and the seconds it took to exit."""
        self.watch()
        begin = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            os.kill(self.proc.pid, signum)
        while self.proc.poll() is None and time.monotonic() - begin < timeout:
            self.watch()
            time.sleep(0.02)
        try:
            status = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout} s after {signal.Signals(signum).name}: {self.stderr()[-2000:]}")
        return status, time.monotonic() - begin

    def stderr(self) -> str:
        self.stderr_file.flush()
        return self.stderr_path.read_text()

    def leftovers(self, wait: float = 5.0) -> list[int]:
        """The processes of its tree still alive (given ``wait`` seconds to go)."""
        end = time.monotonic() + wait
        while True:
            alive = sorted(p for p in self.seen if _alive(p))
            if not alive or time.monotonic() > end:
                return alive
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in self.seen:  # nothing of a failed test may outlive it
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.stderr_file.close()


def _workers(command: Command, n: int) -> Callable[[], bool]:
    """Ready once ``n`` multiprocessing workers run under the command."""
    def ready() -> bool:
        count = 0
        for pid in _descendants(command.proc.pid):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():  # not the resource tracker
                    count += 1
            except OSError:
                pass
        return count >= n
    return ready


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]


def _check_stopped(command: Command, signum: int, status: int, seconds: float, folder: Path) -> str:
    expected = 130 if signum == signal.SIGINT else 143
    message = command.stderr().strip().splitlines()
    assert status == expected, (status, command.stderr()[-3000:])
    assert seconds < 10, f"took {seconds:.1f} s to stop"
    assert message and message[-1].startswith(f"interrupted ({signal.Signals(signum).name})"), message[-3:]
    assert command.leftovers() == [], "processes outlived the command"
    if folder.exists():
        assert _temporaries(folder) == []
    return message[-1]


# --------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_train_workers_stop_with_the_command(synthetic_store, tmp_path, signum):
    run = tmp_path / "run"
    command = Command(["train", str(synthetic_store), "-o", str(run), "-j", "2", "--epochs", "100000"], tmp_path)
    try:
        command.wait_for(_workers(command, 2))
        workers = len(command.seen)
        status, seconds = command.interrupt(signum)
        line = _check_stopped(command, signum, status, seconds, run)
        assert workers >= 2 and "worker processes stopped" in line and "--resume" in line
        assert (run / "run.json").is_file() and not (run / "report.json").exists()
    finally:
        command.close()


def _same_report(a: dict, b: dict) -> None:
    """Reports equal but for timings."""
    def strip(report: dict) -> dict:
        report = json.loads(json.dumps(report))
        report.pop("seconds")
        for row in report["folds"]:
            row.pop("seconds")
        return report
    assert strip(a) == strip(b)


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_report(synthetic_store, tmp_path):
    from click.testing import CliRunner

    from fastmer.cli import main

    args = [str(synthetic_store), "--epochs", "40", "-j", "1"]
    reference = tmp_path / "reference"
    result = CliRunner().invoke(main, ["train", *args, "-o", str(reference)])
    assert result.exit_code == 0, result.output

    run = tmp_path / "run"
    command = Command(["train", *args, "-o", str(run)], tmp_path)
    try:
        command.wait_for(lambda: len(list((run / "folds").glob("*.done.json"))) >= 2)
        os.kill(command.proc.pid, signal.SIGKILL)
        assert command.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        command.close()
    finished = len(list((run / "folds").glob("*.done.json")))
    assert 2 <= finished < 4 and not (run / "report.json").exists()

    refused = CliRunner().invoke(main, ["train", *args, "-o", str(run)])
    assert refused.exit_code == 1 and "not empty" in refused.output
    resumed = CliRunner().invoke(main, ["train", *args, "-o", str(run), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"{finished} of 5 models already trained" in resumed.output

    _same_report(json.loads((run / "report.json").read_text()), json.loads((reference / "report.json").read_text()))
    assert pq.read_table(run / "predictions.parquet").equals(pq.read_table(reference / "predictions.parquet"))
    for weights in ["model.safetensors", *(f"folds/fold-{i:03d}.safetensors" for i in range(4))]:
        assert (run / weights).read_bytes() == (reference / weights).read_bytes(), weights
    assert (run / "folds.json").read_text() == (reference / "folds.json").read_text()

    again = CliRunner().invoke(main, ["train", *args, "-o", str(run), "--resume"])
    assert again.exit_code == 0 and "nothing to resume" in again.output


def test_resume_refuses_other_settings_naming_them(synthetic_store, tmp_path):
    from click.testing import CliRunner

    from fastmer.cli import main

    run = tmp_path / "run"
    first = CliRunner().invoke(main, ["train", str(synthetic_store), "-o", str(run), "--epochs", "1"])
    assert first.exit_code == 0, first.output
    (run / "report.json").unlink()  # as if interrupted before the end
    result = CliRunner().invoke(main, ["train", str(synthetic_store), "-o", str(run), "--epochs", "2", "--seed", "3",
                                       "--resume"])
    assert result.exit_code == 1
    assert "recipe.epochs: then 1, now 2" in result.output and "seed: then 0, now 3" in result.output
    assert "--overwrite to start again" in result.output and not (run / "report.json").exists()
    # --overwrite replaces an interrupted run (run.json marks it as one)
    replaced = CliRunner().invoke(main, ["train", str(synthetic_store), "-o", str(run), "--epochs", "1", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["train", str(synthetic_store), "-o", str(other), "--resume"])
    assert result.exit_code == 1 and "holds no resumable fastmer run" in result.output
    assert (other / "notes.txt").read_text() == "mine"
    both = CliRunner().invoke(main, ["train", str(synthetic_store), "-o", str(run), "--resume", "--overwrite"])
    assert both.exit_code == 2 and "give one of them" in both.output


def test_resume_checks_the_saved_fold_records(synthetic_store, tmp_path):
    """A fold whose weights changed after it finished is trained again, not trusted."""
    from fastmer.train.run import train

    run = tmp_path / "run"
    report = train(synthetic_store, run, recipe=_recipe(2))
    (run / "report.json").unlink()
    weights = run / "folds" / "fold-001.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    lines: list[str] = []
    resumed = train(synthetic_store, run, recipe=_recipe(2), resume=True, log=lines.append)
    assert "resuming" in "\n".join(lines) and "4 of 5 models already trained" in "\n".join(lines)
    _same_report(resumed, report)
    changed = [line for line in lines if "trained in" in line]
    assert len(changed) == 1 and "s1" in changed[0]  # only fold 1 again


def _recipe(epochs: int):
    from dataclasses import replace

    from fastmer.models import MODELS

    return replace(MODELS["ststnet"].recipe, epochs=epochs)


# --------------------------------------------------------------------------- the other commands


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_synth_workers_stop_and_nothing_is_left(tmp_path, signum):
    out = tmp_path / "corpus"
    command = Command(["synth", "-o", str(out), "--subjects", "30", "--workers", "2"], tmp_path)
    try:
        command.wait_for(_workers(command, 2))
        status, seconds = command.interrupt(signum)
        _check_stopped(command, signum, status, seconds, tmp_path)
        assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "stderr.txt"] == []
    finally:
        command.close()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_extract_stops_and_resumes(tiny_corpus, tmp_path, signum):
    store = tmp_path / "store"
    args = ["extract", str(tiny_corpus), "-o", str(store), "--face-detector", "haar", "--workers", "2"]
    command = Command(args, tmp_path)
    try:
        command.wait_for(lambda: (store / "store.json").exists())
        status, seconds = command.interrupt(signum)
        line = _check_stopped(command, signum, status, seconds, store)
        assert "the same command resumes" in line
    finally:
        command.close()
    finished = subprocess.run([*FASTMER, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_spot_stops(tmp_path, signum):
    from fastmer.datasets.synth_long import LongSynthConfig, generate_long

    corpus = tmp_path / "long"
    generate_long(corpus, LongSynthConfig(subjects=1, videos_per_subject=1, seconds=60, fps=30, seed=3))
    out = tmp_path / "spotted"
    command = Command(["spot", str(corpus), "--dataset", "synth-long", "-o", str(out), "--face-detector", "haar"],
                      tmp_path)
    try:
        command.wait_for(lambda: out.exists() and any(out.iterdir()))
        status, seconds = command.interrupt(signum)
        _check_stopped(command, signum, status, seconds, out)
    finally:
        command.close()


@pytest.fixture(scope="module")
def infer_corpus(tmp_path_factory):
    """Enough clips that scoring them takes a while."""
    from fastmer.datasets.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("infer") / "corpus"
    generate(root, SynthConfig(subjects=6, clips_per_subject=6, seed=2, min_frames=30, max_frames=40))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_infer_and_export_stop_without_writing(tiny_run, infer_corpus, tmp_path, signum):
    predictions = tmp_path / "predictions.parquet"
    command = Command(["infer", str(infer_corpus), "--dataset", "casme2", "--engine", str(tiny_run), "-o",
                       str(predictions), "--face-detector", "haar", "--workers", "1"], tmp_path)
    try:
        command.wait_for(lambda: "infer:" in command.stderr())  # scoring clips
        status, seconds = command.interrupt(signum)
        line = _check_stopped(command, signum, status, seconds, tmp_path)
        assert "was not written" in line and not predictions.exists()
    finally:
        command.close()

    onnx = tmp_path / "model.onnx"
    command = Command(["export", str(tiny_run), "-o", str(onnx)], tmp_path)
    try:
        time.sleep(1.5)  # loading its modules or exporting
        status, seconds = command.interrupt(signum)
        _check_stopped(command, signum, status, seconds, tmp_path)
        assert not onnx.exists()
    finally:
        command.close()


@pytest.mark.slow
def test_ray_executor_leaves_no_ray_process(tiny_corpus, tmp_path):
    pytest.importorskip("ray")
    store = tmp_path / "store"
    command = Command(["extract", str(tiny_corpus), "-o", str(store), "--face-detector", "haar", "--executor", "ray"],
                      tmp_path, env={"RAY_ADDRESS": ""})

    def ray_workers() -> bool:  # Ray started and running its actors (they rename themselves ray::...)
        for pid in _descendants(command.proc.pid):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::"):
                    return True
            except OSError:
                pass
        return False

    try:
        command.wait_for(ray_workers, timeout=180)
        status, seconds = command.interrupt(signal.SIGTERM, timeout=60)
        assert status == 143, command.stderr()[-3000:]
        left = command.leftovers(wait=30)
        assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left]
    finally:
        command.close()


# --------------------------------------------------------------------------- the pieces


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_process_pool_stops_its_workers_at_once():
    import multiprocessing

    from fastmer.interrupt import process_pool

    begin = time.monotonic()
    with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
        for _ in range(4):
            pool.submit(_sleep, 60)
        workers = [p.pid for p in multiprocessing.active_children()]
        raise KeyboardInterrupt
    assert time.monotonic() - begin < 10  # not the 60 s of the running tasks
    assert len(workers) == 2 and not any(_alive(p) for p in workers)


PARENT = """
import os, sys, time
from fastmer.interrupt import process_pool
from tests_helper_sleep import sleep_forever
with process_pool(1) as pool:
    pool.submit(sleep_forever)
    time.sleep(60)
"""


def test_workers_die_with_a_killed_parent(tmp_path):
    """Even a SIGKILL of the command (no handler runs) takes its workers with it."""
    (tmp_path / "tests_helper_sleep.py").write_text("import time\ndef sleep_forever():\n    time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
                              start_new_session=True)
    try:
        seen: set[int] = set()
        end = time.monotonic() + 60
        while time.monotonic() < end and not any(_worker_cmd(p) for p in seen):
            seen |= _descendants(parent.pid)
            time.sleep(0.05)
        workers = [p for p in seen if _worker_cmd(p)]
        assert workers, "no worker started"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        end = time.monotonic() + 10
        while time.monotonic() < end and any(_alive(p) for p in workers):
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in _descendants(parent.pid):
            os.kill(pid, signal.SIGKILL)


def _worker_cmd(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


SWALLOWED = """
import os, signal, sys, time
import fastmer.interrupt as interrupt
interrupt.WATCHDOG_SECONDS = 1.0

class SignalInDestructor:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)  # its exception is printed and lost
        time.sleep(0.2)

try:
    with interrupt.handle_signals():
        obj = SignalInDestructor()
        del obj
        print("body went on", flush=True)
        if sys.argv[1] == "hang":
            while True:
                time.sleep(0.05)
except interrupt.Interrupted as exc:
    print("interrupted", exc.signum, flush=True)
    sys.exit(143)
"""


@pytest.mark.parametrize("body", ["finish", "hang"])
def test_a_lost_signal_exception_still_stops_the_command(body):
    """Raised inside a destructor, the signal's exception is lost: a body that finishes
    reports the interruption at its end, one that goes on is stopped by the watchdog."""
    begin = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SWALLOWED, body], capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    assert "body went on" in done.stdout
    if body == "finish":
        assert "interrupted 15" in done.stdout
    else:
        assert "not stopped after 1 s, exiting now" in done.stderr and time.monotonic() - begin < 20


def test_seeds_runs_resume_seed_by_seed(synthetic_store, tmp_path):
    from click.testing import CliRunner

    from fastmer.cli import main

    out = tmp_path / "seeds"
    args = ["train", str(synthetic_store), "-o", str(out), "--epochs", "1", "--seeds", "3,5", "-j", "1"]
    assert CliRunner().invoke(main, args).exit_code == 0
    finished = (out / "seed-3" / "report.json").read_bytes()
    before = json.loads((out / "report.json").read_text())
    (out / "report.json").unlink()  # as if stopped during seed 5
    (out / "seed-5" / "report.json").unlink()
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "nothing to resume" in resumed.output and "resuming" in resumed.output  # seed 3 kept, seed 5 resumed
    assert (out / "seed-3" / "report.json").read_bytes() == finished
    after = json.loads((out / "report.json").read_text())
    assert after["metrics"]["across_seeds"] == before["metrics"]["across_seeds"]
