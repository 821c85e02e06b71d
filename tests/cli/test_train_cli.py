"""fastmer train's execution, augmentation and baseline options through the CLI."""

import json

import torch
from click.testing import CliRunner

from fastmer.cli import main


def _run(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def test_cli_names_match_the_engine():
    from fastmer.cli import train as cli
    from fastmer.train import run

    assert cli.AUGMENTATIONS == run.AUGMENTATIONS and cli.DEVICES == run.DEVICES


def test_lbptop_svm_from_the_cli(synthetic_store, tmp_path):
    result = _run(synthetic_store, "-m", "lbptop-svm", "--svm-c", "2", "-o", tmp_path / "svm", "-j", "1")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "svm" / "report.json").read_text())
    assert report["model"] == "lbptop-svm" and report["model_options"]["C"] == 2.0 and report["n_folds"] == 4
    # the SVM exports like a network: flatten, Hellinger map, standardise, one matmul
    exported = CliRunner().invoke(main, ["export", str(tmp_path / "svm"), "-o", str(tmp_path / "svm.onnx")])
    assert exported.exit_code == 0 and "lbptop-svm" in exported.output, exported.output
    bad = _run(synthetic_store, "-m", "lbptop-svm", "--epochs", "3", "-o", tmp_path / "bad")
    assert bad.exit_code == 2 and "fitted by a solver, not by gradient descent: --epochs" in bad.output
    bad = _run(synthetic_store, "-m", "ststnet", "--svm-c", "1", "-o", tmp_path / "bad")
    assert bad.exit_code == 2 and "ststnet is not an SVM" in bad.output


def test_augment_jobs_and_devices(synthetic_store, tmp_path):
    result = _run(synthetic_store, "-a", "flip", "-a", "affine", "--epochs", "2", "-j", "2", "-o", tmp_path / "aug")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "aug" / "report.json").read_text())
    assert report["augment"] == ["flip", "affine"] and report["execution"]["jobs"] == 2
    assert "2 worker processes" in result.output
    result = _run(synthetic_store, "--fold-batch", "5", "--epochs", "1", "-o", tmp_path / "stacked")
    assert result.exit_code == 0 and "5 folds stacked per step" in result.output  # 4 folds + the final model
    result = _run(synthetic_store, "--amp", "--device", "cpu", "--epochs", "1", "-j", "1", "-o", tmp_path / "amp")
    assert result.exit_code == 0 and "bfloat16 mixed precision" in result.output, result.output
    assert json.loads((tmp_path / "amp" / "report.json").read_text())["execution"]["amp"] is True
    if not torch.cuda.is_available():
        bad = _run(synthetic_store, "--device", "cuda", "-o", tmp_path / "cuda")
        assert bad.exit_code == 1 and "torch sees no CUDA GPU" in bad.output
    bad = _run(synthetic_store, "-a", "dual-phase-di", "--epochs", "1", "-o", tmp_path / "dp")
    assert bad.exit_code == 1 and "needs a model reading dynamic_image" in bad.output
    bad = _run(synthetic_store, "-a", "mirror", "-o", tmp_path / "x")
    assert bad.exit_code == 2 and "mirror" in bad.output


def test_multilabel_from_the_cli(synthetic_multilabel_store, tmp_path):
    result = _run(synthetic_multilabel_store, "--labels", "4dme-multilabel", "--epochs", "3", "-j", "1",
                  "-o", tmp_path / "ml")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    report = json.loads((tmp_path / "ml" / "report.json").read_text())
    assert printed["uf1"] == report["metrics"]["pooled"]["macro_uf1"] and report["multilabel"]
    table = CliRunner().invoke(main, ["report", str(tmp_path / "ml")])
    assert table.exit_code == 0 and "4dme-multilabel" in table.output
