"""fastmer train's execution, augmentation and baseline options through the CLI."""

import json

import pytest
import torch
from click.testing import CliRunner

from fastmer.cli import main


def _run(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def test_cli_names_match_the_engine():
    from fastmer.cli import train as cli
    from fastmer.models import blocks
    from fastmer.train import run

    assert cli.AUGMENTATIONS == run.AUGMENTATIONS and cli.DEVICES == run.DEVICES
    assert cli.VIEW_LAYOUTS == run.VIEW_LAYOUTS and cli.ENCODERS == blocks.ENCODERS


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
    assert bad.exit_code == 2 and "ststnet has no C option" in bad.output


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


def test_describe_prints_the_parameter_count():
    from fastmer.datasets.labels import get_protocol
    from fastmer.models.model import describe

    for name in ("microattnet", "fmanet", "mmcof", "cof", "dianet", "afn", "meganet", "meganet-di", "learnet"):
        result = _run("-m", name, "--describe")
        assert result.exit_code == 0, result.output
        count = describe(name, get_protocol("megc2019-3class").classes)["parameters"]
        assert f"parameters: {count:,}" in result.output and name in result.output
    full = _run("-m", "microattnet", "--describe", "--labels", "4dme-multilabel")
    ablated = _run("-m", "microattnet", "--describe", "--labels", "4dme-multilabel", "--no-se", "--no-fusion-attention")
    assert "negative, positive, surprise, repression, others" in full.output
    assert '"se": false' in ablated.output and '"fusion_attention": false' in ablated.output
    count = [line for line in full.output.splitlines() if "parameters:" in line]
    assert count != [line for line in ablated.output.splitlines() if "parameters:" in line]
    resnet = _run("-m", "mmcof", "--describe", "--backbone", "resnet18")
    assert '"encoder": "resnet18"' in resnet.output and "11,17" in resnet.output  # ResNet-18 without its 1000-way fc
    scalar = _run("-m", "afn", "--describe", "-O", "gate=scalar", "-O", "dropout=0.2")
    assert '"gate": "scalar"' in scalar.output and '"dropout": 0.2' in scalar.output


def test_describe_with_a_store_uses_its_shapes(dual_view_store, paper_store):
    stacked = _run(dual_view_store, "-m", "microattnet", "--describe")
    assert stacked.exit_code == 0 and "views stacked left, right -> network input 12x24x24" in stacked.output
    separate = _run(dual_view_store, "-m", "microattnet", "--describe", "--view-layout", "separate")
    assert "network input 6x24x24" in separate.output
    learnet = _run(paper_store, "-m", "learnet", "--describe", "--input-size", "112")
    assert "network input 1x112x112" in learnet.output


def test_model_switches_are_checked():
    for args, flag in ((("-m", "fmanet", "--no-se"), "--no-se"), (("-m", "ststnet", "--backbone", "resnet18"), "--backbone"),
                       (("-m", "dianet", "--no-fusion-attention"), "--no-fusion-attention")):
        result = _run(*args, "--describe")
        assert result.exit_code == 2 and flag in result.output, result.output
    bad = _run("-m", "afn", "-O", "gate", "--describe")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    unknown = _run("-m", "afn", "-O", "bogus=1", "--describe")
    assert unknown.exit_code == 1 and "afn has no option(s) bogus" in unknown.output
    missing = _run("-m", "afn")
    assert missing.exit_code == 2 and "STORE and --out are required" in missing.output


def test_paper_model_from_the_cli_with_ablation_and_weights(paper_store, tmp_path):
    from safetensors.torch import save_file

    from fastmer.models.blocks import ResNet18

    save_file({k: v.contiguous() for k, v in ResNet18(1000, in_channels=1).state_dict().items()},
              tmp_path / "r18.safetensors")
    result = _run(paper_store, "-m", "dianet", "--backbone", "resnet18", "--weights", tmp_path / "r18.safetensors",
                  "--epochs", "1", "-O", "fusion=concat", "-j", "1", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["model_options"]["encoder"] == "resnet18" and report["model_options"]["fusion"] == "concat"
    assert report["initial_weights"]["file"].endswith("r18.safetensors")
    assert "encoders.1.layer4.1.conv2.weight" in report["initial_weights"]["loaded"]
    assert report["initial_weights"]["shape_mismatch"] == [] and "fc.weight" in report["initial_weights"]["unused"]


def _timm_usable() -> bool:
    try:
        import timm  # noqa: F401
    except Exception:  # noqa: BLE001 - a torchvision that does not match torch fails in many ways
        return False
    return True


def test_a_timm_backbone_without_timm_says_how_to_install_it(synthetic_store, tmp_path):
    if _timm_usable():
        pytest.skip("timm is usable here: tests/models/test_timm.py covers the backbone")
    result = _run(synthetic_store, "-m", "cof", "--backbone", "resnet50", "-o", tmp_path / "run")
    assert result.exit_code == 2 and "--backbone" in result.output
    assert "must be a timm model" in result.output and "pip install 'fastmer[timm]'" in result.output
    assert not (tmp_path / "run").exists()


def test_pretrained_needs_a_timm_backbone(synthetic_store, tmp_path):
    uvm = ("--input", "flow_onset_apex:u,v,magnitude")  # cof's own input is not in this store
    result = _run(synthetic_store, "-m", "cof", *uvm, "--pretrained", "-o", tmp_path / "run")
    assert result.exit_code == 1 and "--pretrained starts a timm backbone" in result.output
    assert "fastmer's own encoder 'compact'" in result.output and not (tmp_path / "run" / "model.json").exists()
    result = _run(synthetic_store, "-m", "ststnet", "--pretrained", "-o", tmp_path / "run")
    assert result.exit_code == 1 and "model ststnet has no backbone option" in result.output
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    result = _run(synthetic_store, "-m", "cof", *uvm, "--pretrained", "--weights", weights, "-o", tmp_path / "run")
    assert result.exit_code == 2 and "either --pretrained" in result.output
