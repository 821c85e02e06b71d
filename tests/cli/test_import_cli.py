"""`fastmer import` through the CLI: help, exit codes, and train/viz on an imported store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main

CLASSES = ("negative", "positive", "surprise")


def _manifest(root: Path, subjects: int = 3, size: int = 28, broken: bool = False, frames: bool = True) -> Path:
    """MEGC 2019-style u/v/strain maps, one .npy per channel, stacked by the manifest."""
    rng = np.random.default_rng(1)
    rows = []
    for s in range(subjects):
        for k, label in enumerate(CLASSES):
            files = []
            for channel in ("u", "v", "strain"):
                name = f"sub{s}/{label}_{channel}.npy"
                (root / f"sub{s}").mkdir(parents=True, exist_ok=True)
                np.save(root / name, (rng.standard_normal((size, size)) + 3 * k).astype(np.float32))
                files.append(name)
            rows.append({"subject": f"sub{s}", "clip": f"c{k}", "labels": label, "file": ";".join(files),
                         **({"onset": 1, "apex": 4, "offset": 9} if frames else {})})
    if broken:
        rows.append({"subject": "sub0", "clip": "lost", "labels": "negative", "file": "sub0/lost.npy", "onset": "",
                     "apex": "", "offset": ""})
    path = root / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_help_lists_and_documents_import():
    runner = CliRunner()
    listed = runner.invoke(main, ["-h"])
    assert listed.exit_code == 0 and "import" in listed.output
    for flag in ("-h", "--help"):
        result = runner.invoke(main, ["import", flag])
        assert result.exit_code == 0, result.output
        for option in ("--out", "--name", "--channels", "--size", "--scale", "--offset", "--dtype", "--overwrite",
                       "[default: imported]", "bilinear"):
            assert option in result.output, option


def test_dtypes_match_the_api():
    from fastmer.cli import import_ as cli
    from fastmer.store import importer

    assert cli.IMPORT_DTYPES == importer.IMPORT_DTYPES


def test_import_then_train_and_viz(tmp_path):
    manifest = _manifest(tmp_path / "megc")
    runner = CliRunner()
    store = tmp_path / "store"
    result = runner.invoke(main, ["import", str(manifest), "-o", str(store), "--name", "flow_onset_apex",
                                  "--channels", "u,v,strain", "--dataset", "megc", "--scale", "0.5"])
    assert result.exit_code == 0, result.output
    assert "9 of 9 clips imported" in result.output and "ststnet, offapexnet" in result.output
    opened = fstore.open(store)
    first = np.load(tmp_path / "megc" / "sub0" / "negative_v.npy")
    np.testing.assert_array_equal(opened.numpy("flow_onset_apex")[0, 1], (first.astype(np.float64) * 0.5).astype(np.float32))
    assert opened.column("uid")[0] == "megc/sub0/c0"

    run = tmp_path / "run"
    trained = runner.invoke(main, ["train", str(store), "-m", "ststnet", "--epochs", "2", "-j", "1", "--device", "cpu",
                                   "-o", str(run)])
    assert trained.exit_code == 0, trained.output
    report = json.loads((run / "report.json").read_text())
    assert report["model"] == "ststnet" and report["n_folds"] == 3

    scored = runner.invoke(main, ["infer", str(store), "-e", str(run), "-o", str(tmp_path / "p.parquet")])
    assert scored.exit_code == 0 and "scored 9 clips" in scored.output, scored.output

    shown = runner.invoke(main, ["viz", str(store), "--clip", "megc/sub1/c2", "-o", str(tmp_path / "viz")])
    assert shown.exit_code == 0, shown.output
    assert list((tmp_path / "viz").glob("*.png"))

    # features without frame numbers (the usual MEGC 2019 images) are drawn too, without a motion curve
    bare = _manifest(tmp_path / "bare", frames=False)
    assert runner.invoke(main, ["import", str(bare), "-o", str(tmp_path / "bare_store"), "--name", "flow_onset_apex",
                                "--channels", "u,v,strain"]).exit_code == 0
    shown = runner.invoke(main, ["viz", str(tmp_path / "bare_store"), "--clip", "imported/sub1/c2", "-o",
                                 str(tmp_path / "viz_bare")])
    assert shown.exit_code == 0, shown.output
    index = json.loads((tmp_path / "viz_bare" / "index.json").read_text())
    assert list((tmp_path / "viz_bare").glob("*.png")) and index["clip"]["onset"] is None
    assert any("no onset/offset" in str(entry) or "motion_curve" in str(entry) for entry in index["skipped"]), index["skipped"]

    again = runner.invoke(main, ["import", str(manifest), "-o", str(store), "--name", "flow_onset_apex",
                                 "--channels", "u,v,strain", "--dataset", "megc", "--scale", "0.5"])
    assert again.exit_code == 0 and "0 of 9 clips imported" in again.output and "9 skipped" in again.output


def test_failed_rows_exit_3_and_bad_arguments(tmp_path):
    manifest = _manifest(tmp_path / "f", subjects=1, size=8, broken=True)
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(manifest), "-o", str(tmp_path / "store"), "-c", "u,v,s"])
    assert result.exit_code == 3, result.output
    assert "3 of 4 clips imported" in result.output and "1 failed" in result.output
    assert f"{manifest}, row 5, column file: " in result.output and "lost.npy: file not found" in result.output
    assert "no registered model reads the representation 'imported'" in result.output
    errors = fstore.open(tmp_path / "store").errors
    assert errors.column("uid").to_pylist() == ["imported/sub0/lost"]

    bad = runner.invoke(main, ["import", str(manifest), "-o", str(tmp_path / "b"), "-c", "u,v"])
    assert bad.exit_code == 1 and "channels u,v name 2 channel(s), but the clips have 3" in bad.output
    bad = runner.invoke(main, ["import", str(manifest), "-o", str(tmp_path / "b"), "--dtype", "uint8"])
    assert bad.exit_code == 2 and "uint8" in bad.output
    bad = runner.invoke(main, ["import", str(manifest), "-o", str(tmp_path / "b"), "--size", "0"])
    assert bad.exit_code == 2 and "--size" in bad.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("x")
    bad = runner.invoke(main, ["import", str(manifest), "-o", str(tmp_path / "mine"), "--overwrite", "-c", "u,v,s"])
    assert bad.exit_code == 1 and "not a fastmer feature store" in bad.output
    assert (tmp_path / "mine" / "data.txt").read_text() == "x"
