"""Resumable extraction: kill -9 at any moment, resume, and end with the rows of a clean run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.extract import extract

CONFIG = {"shard_size": 2, "batch_size": 2}
RUN = (
    "import sys\n"
    "from fastmer.config import ExtractConfig\n"
    "from fastmer.datasets import load\n"
    "from fastmer.extract import extract\n"
    f"s = extract(load('casme2', sys.argv[1]), sys.argv[2], ExtractConfig(**{CONFIG!r}), log=lambda line: None)\n"
    "print('skipped', s.n_skipped, 'ok', s.n_ok, 'failed', s.n_failed)\n"
)
VOLATILE = ("created", "updated", "runtime")  # when and how a run went, not what it stored


@pytest.fixture(scope="module")
def clean(tiny_corpus, tmp_path_factory):
    """(a) the uninterrupted run."""
    out = tmp_path_factory.mktemp("clean") / "store"
    summary = extract(load("casme2", tiny_corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    assert (summary.n_ok, summary.n_failed, summary.n_skipped) == (9, 0, 0)
    return out


def assert_same_store(store, clean):
    a, b = fstore.open(store), fstore.open(clean)
    assert a.complete and len(a) == len(b) == 9
    assert a.column("uid") == b.column("uid")
    for name in a.table.column_names:
        if name == "flow_onset_apex":
            x, y = a.numpy(name), b.numpy(name)
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes()  # bit-identical
        else:
            assert a.column(name) == b.column(name), name
    assert a.errors.num_rows == b.errors.num_rows == 0
    meta_a, meta_b = ({k: v for k, v in s.meta.items() if k not in VOLATILE} for s in (a, b))
    assert meta_a == meta_b
    assert [p.name for p in store.rglob(".*")] == []  # no temporary file left


def shards(out):
    return len(list((out / "clips").glob("part-*.parquet"))) if (out / "clips").is_dir() else 0


def test_killed_at_any_moment_and_resumed_gives_the_clean_rows(tiny_corpus, clean, tmp_path):
    """(b) SIGKILL very early, while a shard is written, and after 1, 3 and 4 shards; resume each time."""
    out = tmp_path / "store"
    moments = [
        ("early", lambda: out.exists()),
        ("1 shard", lambda: shards(out) >= 1),
        ("temporary file", lambda: any(out.glob("*/.*.tmp"))),
        ("3 shards", lambda: shards(out) >= 3),
        ("4 shards", lambda: shards(out) >= 4),
    ]
    killed_running = []
    for name, moment in moments:
        proc = subprocess.Popen([sys.executable, "-c", RUN, str(tiny_corpus), str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and not moment() and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed_running.append(name)
        proc.communicate()
        if name != "temporary file":  # that one can finish first: its window is short
            assert proc.returncode == -signal.SIGKILL, (name, proc.returncode)
        if out.is_dir() and (out / "store.json").is_file():
            assert not json.loads((out / "store.json").read_text())["complete"], name
    assert len(killed_running) >= len(moments) - 1, killed_running
    done = subprocess.run([sys.executable, "-c", RUN, str(tiny_corpus), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    skipped = int(done.stdout.split()[1])
    assert 4 * CONFIG["shard_size"] <= skipped < 9, done.stdout  # it resumed, and had work left
    assert_same_store(out, clean)


def test_resuming_a_complete_store_skips_everything(tiny_corpus, clean, tmp_path):
    """(c) nothing decoded, nothing recomputed, no shard rewritten."""
    out = tmp_path / "store"
    clips = load("casme2", tiny_corpus)
    extract(clips, out, ExtractConfig(**CONFIG), log=lambda line: None)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*.parquet")}
    lines = []
    import fastmer.extract as fextract

    calls = []
    original = fextract.process_clip
    fextract.process_clip = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)
    try:
        summary = extract(clips, out, ExtractConfig(**CONFIG), log=lines.append)
    finally:
        fextract.process_clip = original
    assert (summary.n_skipped, summary.n_ok, summary.n_failed, summary.n_rows) == (9, 0, 0, 0)
    assert calls == []  # not even decoded
    assert any(line.startswith(f"resuming {out}: 9 of 9 clips already stored") for line in lines)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*.parquet")} == before
    assert_same_store(out, clean)


def test_a_store_of_other_clips_is_refused_and_a_prefix_is_continued(tiny_corpus, clean, tmp_path):
    clips = load("casme2", tiny_corpus)
    extract(clips[3:], tmp_path / "other", ExtractConfig(**CONFIG), log=lambda line: None)
    with pytest.raises(FileExistsError, match="extracted from other clips.*--overwrite"):
        extract(clips, tmp_path / "other", ExtractConfig(**CONFIG), log=lambda line: None)
    extract(clips[:4], tmp_path / "prefix", ExtractConfig(**CONFIG), log=lambda line: None)
    summary = extract(clips, tmp_path / "prefix", ExtractConfig(**CONFIG), log=lambda line: None)
    assert (summary.n_skipped, summary.n_ok) == (4, 5)
    assert_same_store(tmp_path / "prefix", clean)


def test_failed_clips_are_retried_on_resume(tiny_corpus, clean, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    victim = load("casme2", corpus)[4]
    frame = corpus / victim.source / f"img{victim.onset}.jpg"
    saved = frame.read_bytes()
    frame.write_bytes(b"")  # a transient failure
    out = tmp_path / "store"
    first = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    assert (first.n_ok, first.n_failed) == (8, 1)
    assert fstore.open(out).errors.column("uid").to_pylist() == [victim.uid]
    again = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    assert (again.n_skipped, again.n_ok, again.n_failed) == (8, 0, 1)  # still broken: one error row, not two
    assert fstore.open(out).errors.column("uid").to_pylist() == [victim.uid]
    frame.write_bytes(saved)
    fixed = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    assert (fixed.n_skipped, fixed.n_ok, fixed.n_failed) == (8, 1, 0)
    store = fstore.open(out)
    assert store.errors.num_rows == 0 and store.column("uid") == fstore.open(clean).column("uid")
    assert np.array_equal(store.numpy("flow_onset_apex"), fstore.open(clean).numpy("flow_onset_apex"))


def test_cli_resumes_the_same_command_and_overwrite_recomputes(tiny_corpus, tmp_path):
    """(d)"""
    runner = CliRunner()
    command = ["extract", str(tiny_corpus), "-o", str(tmp_path / "s"), "--no-progress", "--size", "64"]
    first = runner.invoke(main, command)
    assert first.exit_code == 0, first.output
    assert "9 of 9 clips extracted" in first.stdout and "0 failed, 0 skipped (already in the store)" in first.stdout
    shard = tmp_path / "s" / "clips" / "part-00000.parquet"
    stamp = shard.stat().st_mtime_ns
    again = runner.invoke(main, command)
    assert again.exit_code == 0, again.output
    assert "0 of 9 clips extracted" in again.stdout and "0 failed, 9 skipped (already in the store)" in again.stdout
    assert shard.stat().st_mtime_ns == stamp
    redo = runner.invoke(main, [*command, "--overwrite"])
    assert redo.exit_code == 0, redo.output
    assert "9 of 9 clips extracted" in redo.stdout and "0 skipped" in redo.stdout
    assert shard.stat().st_mtime_ns != stamp
    other = runner.invoke(main, [*command[:-1], "96"])
    assert other.exit_code == 1
    assert "other parameters" in other.output and "--overwrite" in other.output
