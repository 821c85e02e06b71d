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

CONFIG = {"shard_size": 2, "batch_size": 2, "face_detector": "haar"}
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
    from fastmer.executors import local

    calls = []
    original = local.process_clip
    local.process_clip = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)
    try:
        summary = extract(clips, out, ExtractConfig(**CONFIG), log=lines.append)
    finally:
        local.process_clip = original
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
    command = ["extract", str(tiny_corpus), "--face-detector", "haar", "-o", str(tmp_path / "s"), "--no-progress", "--size", "64"]
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


# --- issue 17, item 3: a resumed store follows edits of the corpus ------------------------------
TENSORS = ("flow_onset_apex", "flow_phases", "keyframes")


def edit_sheet(corpus, changes=None, drop=()):
    """Edit the synthetic corpus's coding sheet: ``changes`` {uid: {column: value}}, ``drop`` uids whose row goes."""
    from openpyxl import load_workbook

    from fastmer.datasets.synth import SPREADSHEET_NAME

    book = load_workbook(corpus / SPREADSHEET_NAME)
    sheet = book.active
    header = [cell.value for cell in sheet[1]]
    for number in range(sheet.max_row, 1, -1):
        values = dict(zip(header, (cell.value for cell in sheet[number]), strict=True))
        uid = f"casme2/sub{values['Subject']}/{values['Filename']}"
        if uid in drop:
            sheet.delete_rows(number)
        for column, value in (changes or {}).get(uid, {}).items():
            sheet.cell(number, header.index(column) + 1).value = value
    book.save(corpus / SPREADSHEET_NAME)


def rows_by_uid(out):
    """Every column of every row (tensors as bytes), by uid."""
    store = fstore.open(out)
    tensors = {name: store.numpy(name) for name in store.representations}
    metadata = [c for c in store.table.column_names if c not in store.representations]
    rows = store.table.select(metadata).to_pylist()
    return {row["uid"]: {**row, **{name: array[i].tobytes() for name, array in tensors.items()}}
            for i, row in enumerate(rows)}


def assert_consistent(out, corpus_uids):
    """Each uid at most once (and never both a row and an error row); every clip the store
    lacks is listed as pending in store.json (its place is known)."""
    store = fstore.open(out)
    uids, errors = store.column("uid"), store.errors.column("uid").to_pylist()
    assert len(set(uids)) == len(uids) and not set(uids) & set(errors), (uids, errors)
    pending = {uid for entry in store.meta.get("pending", []) for uid in entry["uids"]}
    assert set(corpus_uids) <= set(uids) | set(errors) | pending


@pytest.fixture
def corpus_and_store(tiny_corpus, tmp_path):
    """A copy of the tiny corpus (mtimes kept) and its store, 2 clips per shard."""
    import shutil

    corpus = shutil.copytree(tiny_corpus, tmp_path / "corpus")
    out = tmp_path / "store"
    extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    return corpus, out


def reference(corpus, tmp_path):
    """A fresh extraction of the corpus as it is now."""
    out = tmp_path / "reference"
    summary = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    assert summary.n_skipped == 0
    return out


def test_edited_annotations_re_extract_exactly_those_clips(corpus_and_store, tmp_path):
    """One clip's apex and another's label edited in the coding sheet: the two are extracted
    again, their rows replaced (once each, new values, as a fresh run has them), every other
    row unchanged byte for byte and the shards holding none of the two not even rewritten."""
    corpus, out = corpus_and_store
    clips = load("casme2", corpus)
    apexed, relabelled = clips[1], clips[4]  # shards 0 and 2 of [0 1] [2 3] [4 5] [6 7] [8]
    assert relabelled.labels == ("surprise",)
    before = rows_by_uid(out)
    shards = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "clips").glob("*.parquet")}
    edit_sheet(corpus, {apexed.uid: {"ApexFrame": apexed.apex - 2}, relabelled.uid: {"Estimated Emotion": "happiness"}})
    lines = []
    summary = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lines.append)
    assert (summary.n_ok, summary.n_failed, summary.n_skipped) == (2, 0, 7)
    assert summary.redone == {"annotation changed": 2} and summary.removed == []
    assert f"resuming {out}: 7 of 9 clips already stored" in lines
    assert "2 clips re-extracted: annotation changed (2)" in lines
    store = fstore.open(out)
    assert store.complete and store.column("uid") == [c.uid for c in clips] and store.meta["pending"] == []
    after = rows_by_uid(out)
    assert after[apexed.uid]["apex"] == apexed.apex - 2 and after[apexed.uid]["apex_source"] == "annotation"
    assert after[relabelled.uid]["labels"] == ["happiness"]
    assert after[apexed.uid]["flow_onset_apex"] != before[apexed.uid]["flow_onset_apex"]
    for uid in before.keys() - {apexed.uid, relabelled.uid}:
        assert after[uid] == before[uid], uid
    for name in ("part-00001.parquet", "part-00003.parquet", "part-00004.parquet"):
        path = out / "clips" / name
        assert (path.read_bytes(), path.stat().st_mtime_ns) == shards[name], name
    assert after == rows_by_uid(reference(corpus, tmp_path))  # the rows of a fresh run over the edited corpus
    again = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lambda line: None)
    assert (again.n_ok, again.n_skipped, again.redone) == (0, 9, {})


def test_a_rewritten_frame_re_extracts_its_clip(corpus_and_store, tmp_path):
    import cv2

    corpus, out = corpus_and_store
    clip = load("casme2", corpus)[6]
    before = rows_by_uid(out)
    frame = corpus / clip.source / f"img{clip.apex}.jpg"
    image = cv2.imread(str(frame))
    cv2.imwrite(str(frame), np.clip(image.astype(np.int16) + 4, 0, 255).astype(np.uint8))  # other pixels, same name
    lines = []
    summary = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lines.append)
    assert (summary.n_ok, summary.n_skipped, summary.redone) == (1, 8, {"source files changed": 1})
    assert "1 clip re-extracted: source files changed (1)" in lines
    after = rows_by_uid(out)
    assert after[clip.uid]["keyframes"] != before[clip.uid]["keyframes"]
    assert after[clip.uid]["fingerprint"].split(":")[0] == before[clip.uid]["fingerprint"].split(":")[0]
    assert {uid: row for uid, row in after.items() if uid != clip.uid} == \
        {uid: row for uid, row in before.items() if uid != clip.uid}
    assert after == rows_by_uid(reference(corpus, tmp_path))


def test_a_clip_removed_from_the_sheet_is_reported_and_kept(corpus_and_store):
    """Kept, not deleted: a narrower clip list (a row deleted by mistake, a run over a
    narrower protocol) costs nothing; the log names it on every run; the clips after it
    keep their place and can still be replaced."""
    corpus, out = corpus_and_store
    clips = load("casme2", corpus)
    removed, relabelled = clips[4], clips[7]
    before = rows_by_uid(out)
    edit_sheet(corpus, {relabelled.uid: {"Estimated Emotion": "surprise"}}, drop={removed.uid})
    lines = []
    summary = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lines.append)
    assert (summary.n_clips, summary.n_ok, summary.n_skipped) == (8, 1, 7)
    assert summary.removed == [removed.uid] and summary.redone == {"annotation changed": 1}
    assert (f"1 clip in the store is no longer in the corpus: {removed.uid} (kept; --overwrite rebuilds the store "
            "from the corpus alone)") in lines
    store = fstore.open(out)
    assert store.column("uid") == [c.uid for c in clips]  # corpus order, the removed clip where it was
    after = rows_by_uid(out)
    assert after[removed.uid] == before[removed.uid] and after[relabelled.uid]["labels"] == ["surprise"]
    lines.clear()
    again = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lines.append)
    assert (again.n_ok, again.n_skipped, again.removed) == (0, 8, [removed.uid])
    assert any(line.startswith("1 clip in the store is no longer in the corpus") for line in lines)


def test_a_store_without_fingerprints_resumes_unchecked_with_a_note(corpus_and_store):
    """Stores written before fingerprints were recorded resume as before: their clips are
    taken as unchanged, and one line says so."""
    import pyarrow.parquet as pq

    corpus, out = corpus_and_store
    for part in (out / "clips").glob("part-*.parquet"):
        pq.write_table(pq.read_table(part).drop_columns(["fingerprint"]), part)
    meta = json.loads((out / "store.json").read_text())
    del meta["pending"]
    (out / "store.json").write_text(json.dumps(meta))
    files = {p: p.read_bytes() for p in (out / "clips").iterdir()}
    clips = load("casme2", corpus)
    edit_sheet(corpus, {clips[0].uid: {"Estimated Emotion": "surprise"}})
    lines = []
    summary = extract(load("casme2", corpus), out, ExtractConfig(**CONFIG), log=lines.append)
    assert (summary.n_ok, summary.n_skipped, summary.n_unverified, summary.redone) == (0, 9, 9, {})
    notes = [line for line in lines if line.startswith("note:")]
    assert notes == ["note: 9 clips in the store have no fingerprint (written before fastmer recorded them): kept "
                     "without checking their annotation and files; --overwrite re-extracts them"]
    assert {p: p.read_bytes() for p in (out / "clips").iterdir()} == files


RUN_KILLED = (
    "import os, signal, sys\n"
    "from pathlib import Path\n"
    "import fastmer.store.writer as w\n"
    "limit, inside, calls = int(sys.argv[3]), sys.argv[4] == 'inside', [0]\n"
    "def tick(when):\n"
    "    if when == ('inside' if inside else 'after'):\n"
    "        calls[0] += 1\n"
    "        if calls[0] == limit:\n"
    "            os.kill(os.getpid(), signal.SIGKILL)\n"
    "atomic_write = w._atomic_write\n"
    "def counted_write(path, write):\n"
    "    rewrite = path.suffix == '.parquet' and path.exists()\n"
    "    atomic_write(path, lambda handle: (write(handle), handle.flush(), rewrite and tick('inside')))\n"
    "    tick('after')\n"
    "w._atomic_write = counted_write\n"
    "unlink = Path.unlink\n"
    "def counted_unlink(self, *args, **kwargs):\n"
    "    unlink(self, *args, **kwargs)\n"
    "    if self.suffix == '.parquet':\n"
    "        tick('after')\n"
    "Path.unlink = counted_unlink\n"
) + RUN


@pytest.mark.slow
def test_killed_while_replacing_changed_clips_and_resumed(corpus_and_store, tmp_path):
    """SIGKILL after every file operation of a run that replaces 3 changed clips (store.json
    journal, shards rewritten without the old rows or deleted, new shards), and inside each
    rewrite of an old shard (its temporary file written, not renamed): the store is
    consistent at that moment, and resuming it gives the rows of a fresh run."""
    import shutil

    corpus, out = corpus_and_store
    clips = load("casme2", corpus)
    edit_sheet(corpus, {clips[1].uid: {"ApexFrame": clips[1].apex - 2}, clips[3].uid: {"Estimated Emotion": "disgust"},
                        clips[8].uid: {"Estimated Emotion": "surprise"}})
    expected = rows_by_uid(reference(corpus, tmp_path))
    uids = [c.uid for c in clips]
    killed = []
    for inside in (False, True):
        for limit in range(1, 20):
            run = tmp_path / f"run-{inside}-{limit}"
            shutil.copytree(out, run)
            done = subprocess.run([sys.executable, "-c", RUN_KILLED, str(corpus), str(run), str(limit),
                                   "inside" if inside else "after"], capture_output=True, text=True)
            if done.returncode == 0:
                assert limit > 2, done.stdout  # the run had file operations to kill
                break
            assert done.returncode == -signal.SIGKILL, done.stderr
            killed.append((inside, limit))
            assert_consistent(run, uids)
            resumed = extract(load("casme2", corpus), run, ExtractConfig(**CONFIG), log=lambda line: None)
            assert resumed.n_ok <= 3 and resumed.n_failed == 0
            assert fstore.open(run).complete and fstore.open(run).meta["pending"] == []
            assert rows_by_uid(run) == expected, (inside, limit)
            assert [p.name for p in run.rglob(".*")] == []
            shutil.rmtree(run)
    assert [limit for inside, limit in killed if inside] == [1, 2]  # the two old shards rewritten
    assert len(killed) >= 2 + 8, killed
