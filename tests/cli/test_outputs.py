"""Every command that writes refuses to destroy what is not its own output, and never writes over an input.

Issue 17: `fastmer extract victim -o victim --overwrite` emptied a corpus folder, `-o FILE
--overwrite` unlinked the file, and `infer -o STORE/store.json` broke the store. Each case
runs the real command on a copy and checks that the refused path is left byte for byte.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main, os_error_message
from fastmer.outputs import is_parquet, is_run, is_store


def snapshot(path: Path) -> dict[str, str]:
    """Every file under `path` (or the file itself) with its sha256."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def corpus(tiny_corpus, tmp_path):
    """A private copy: a regression must not wipe the session's corpus."""
    return Path(shutil.copytree(tiny_corpus, tmp_path / "corpus"))


@pytest.fixture
def victims(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("\\chapter{Introduction}")
    file = tmp_path / "notes.txt"
    file.write_text("do not delete")
    return folder, file


def refused(result, *words):
    assert result.exit_code in (1, 2), result.output  # 2: click's own usage check got there first
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def test_extract_never_overwrites_the_corpus_a_folder_or_a_file(runner, corpus, victims):
    folder, file = victims
    before = {p: snapshot(p) for p in (corpus, folder, file)}
    refused(runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(corpus), "--overwrite"]), "is the input")
    refused(runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(corpus / "sub01"), "--overwrite"]),
            "is not a fastmer feature store")
    refused(runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(folder), "--overwrite"]),
            "is not a fastmer feature store", "even with --overwrite")
    refused(runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(file), "--overwrite"]), "is a file")
    with pytest.raises(FileExistsError, match="is a file, not a fastmer feature store"):  # the Python API too
        from fastmer.config import ExtractConfig
        from fastmer.datasets import load
        from fastmer.extract import extract

        extract(load("casme2", corpus), file, ExtractConfig(face_detector="haar"), overwrite=True)
    assert {p: snapshot(p) for p in (corpus, folder, file)} == before


def test_train_never_writes_into_its_store_or_a_foreign_folder(runner, tiny_store, victims, tmp_path):
    folder, _ = victims
    before = snapshot(folder), snapshot(tiny_store)
    base = ["train", str(tiny_store), "-m", "ststnet", "--epochs", "1"]
    refused(runner.invoke(main, [*base, "-o", str(tiny_store), "--overwrite"]), "is the input")
    refused(runner.invoke(main, [*base, "-o", str(folder)]), "is not empty", "--overwrite")
    refused(runner.invoke(main, [*base, "-o", str(folder), "--overwrite"]), "is not a fastmer training run")
    assert (snapshot(folder), snapshot(tiny_store)) == before


def test_export_infer_viz_refuse_their_inputs_and_existing_files(runner, tiny_store, tiny_run, victims, tmp_path):
    _, file = victims
    onnx = tmp_path / "model.onnx"
    assert runner.invoke(main, ["export", str(tiny_run), "-o", str(onnx)]).exit_code == 0
    store_before, run_before, onnx_before = snapshot(tiny_store), snapshot(tiny_run), snapshot(onnx)
    refused(runner.invoke(main, ["export", str(tiny_run), "-o", str(onnx)]), "already exists", "--overwrite")
    refused(runner.invoke(main, ["export", str(tiny_run), "-o", str(tiny_run / "model.onnx")]), "lies inside the input")
    refused(runner.invoke(main, ["export", str(tiny_run), "-o", str(file), "--overwrite"]), "is not an .onnx file")

    infer = ["infer", str(tiny_store), "-e", str(onnx)]
    refused(runner.invoke(main, [*infer, "-o", str(tiny_store / "store.json"), "--overwrite"]), "lies inside the input")
    refused(runner.invoke(main, [*infer, "-o", str(onnx), "--overwrite"]), "is the input")
    refused(runner.invoke(main, [*infer, "-o", f"{onnx}.json", "--overwrite"]), "is the input")
    refused(runner.invoke(main, [*infer, "-o", str(file), "--overwrite"]), "is not a Parquet predictions file")
    predictions = tmp_path / "predictions.parquet"
    assert runner.invoke(main, [*infer, "-o", str(predictions)]).exit_code == 0 and is_parquet(predictions)
    refused(runner.invoke(main, [*infer, "-o", str(predictions)]), "already exists", "--overwrite")
    assert runner.invoke(main, [*infer, "-o", str(predictions), "--overwrite"]).exit_code == 0

    refused(runner.invoke(main, ["viz", str(tiny_store), "-c", "x", "-o", str(tiny_store)]), "is the input")
    refused(runner.invoke(main, ["engine", "build", str(onnx), "-o", str(onnx)]), "is the input")
    assert (snapshot(tiny_store), snapshot(tiny_run), snapshot(onnx)) == (store_before, run_before, onnx_before)
    assert len(fstore.open(tiny_store)) > 0


def test_demo_and_synth_overwrite_only_their_own_folders(runner, victims):
    folder, _ = victims
    before = snapshot(folder)
    refused(runner.invoke(main, ["demo", "--out", str(folder), "--overwrite"]), "is not a fastmer demo folder")
    refused(runner.invoke(main, ["synth", "-o", str(folder), "--overwrite"]), "does not look like a synthetic corpus")
    assert snapshot(folder) == before


def test_recognisers(tiny_store, tiny_run, tmp_path):
    assert is_store(tiny_store) and not is_store(tiny_run) and not is_store(tmp_path)
    assert is_run(tiny_run) and not is_run(tiny_store)
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    assert not is_parquet(tmp_path / "x.parquet") and not is_parquet(tmp_path / "missing.parquet")


def test_os_errors_are_one_line_naming_the_path(runner, tiny_store, tiny_run, tmp_path):
    onnx = tmp_path / "model.onnx"
    assert runner.invoke(main, ["export", str(tiny_run), "-o", str(onnx)]).exit_code == 0
    result = runner.invoke(main, ["infer", str(tiny_store), "-e", str(onnx), "-o", "/proc/fastmer-predictions.parquet"])
    refused(result, "/proc")
    assert len(result.output.strip().splitlines()) == 1
    full = OSError(28, "No space left on device", "/data/store/clips/part-00003.parquet")
    assert os_error_message(full) == "No space left on device: /data/store/clips/part-00003.parquet"
