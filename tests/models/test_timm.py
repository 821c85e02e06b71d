"""timm backbones (`fastmer train --backbone NAME [--pretrained]`), where timm imports.

timm needs a torchvision built for the installed torch; the CPU torch 2.13 wheel of `make
test` has none, so these tests skip there and `make test-timm` runs them in a venv with torch
2.14.1 and torchvision 0.29.1 (CI runs both). Nothing is downloaded: ImageNet-style weights
are a timm model's own state dict saved locally, and the Hub download of `--pretrained` is
replaced by that file, so the same loading path runs.
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

try:
    import timm
except Exception as exc:  # noqa: BLE001 - a torchvision that does not match torch fails in many ways
    pytest.skip(f"timm is not usable here ({type(exc).__name__}: {exc}); `make test-timm` runs these tests",
                allow_module_level=True)

from fastmer.cli import main
from fastmer.models import timm_backbone
from fastmer.models.model import MERModel
from fastmer.models.timm_backbone import TimmEncoder


@pytest.mark.parametrize(("name", "channels", "size", "out"), [
    ("resnet18", 2, 64, (512, 2, 2)),
    ("efficientnet_b0", 1, 64, (1280, 2, 2)),
    ("vit_tiny_patch16_224", 3, 64, (192, 4, 4)),  # patch tokens back on their 4x4 grid, at any input size
])
def test_timm_encoders_give_feature_maps(name, channels, size, out):
    torch.manual_seed(0)
    encoder = TimmEncoder(name, channels).eval()
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        maps = encoder(x)
    assert maps.shape == (2, *out) and encoder.out_channels == out[0]
    if name.startswith("vit"):  # the tokens are the model's own, in row-major patch order
        with torch.no_grad():
            tokens = encoder.model.forward_features(x)[:, encoder.prefix_tokens :]
        torch.testing.assert_close(maps.flatten(2).transpose(1, 2), tokens)


def rgb_checkpoint(name, path, seed=0):
    """A timm model's full state dict (3-channel stem, ImageNet classifier) as safetensors, as
    timm's Hub weights are, and the model."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    donor = timm.create_model(name, pretrained=False)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, path)
    return donor


def test_local_weights_load_into_the_backbone_with_the_stem_adapted(synthetic_store, tmp_path):
    """cof on u, v only (2 maps): every backbone tensor is the checkpoint's, the stem is the RGB
    kernels repeated and scaled by 3/2 (float64 rule), the ImageNet classifier is left out."""
    donor = rgb_checkpoint("resnet18", tmp_path / "resnet18.safetensors")
    from fastmer.models import get_entry
    from fastmer.models.inputs import override_input
    from fastmer.store import open as open_store

    store = open_store(synthetic_store)
    spec = override_input(get_entry("cof").input, ("flow_onset_apex:u,v",),
                          {name: meta["channels"] for name, meta in store.representations.items()}, "store")
    model = MERModel.create("cof", ("a", "b", "c"), store.representations["flow_onset_apex"]["channels"],
                            tuple(store.representations["flow_onset_apex"]["shape"]), input_spec=spec,
                            encoder="timm:resnet18")
    info = model.load_initial_weights(tmp_path / "resnet18.safetensors")
    assert info["adapted_input"] == ["backbone.model.conv1.weight"]
    assert sorted(info["unused"]) == ["fc.bias", "fc.weight"] and not info["shape_mismatch"]
    state = model.net.state_dict()
    for key, value in donor.state_dict().items():
        if key.startswith("fc.") or key == "conv1.weight":
            continue
        torch.testing.assert_close(state["backbone.model." + key], value)
    stem = donor.conv1.weight.detach().double()
    torch.testing.assert_close(state["backbone.model.conv1.weight"].double(), stem[:, [0, 1]] * 1.5)


def test_train_with_pretrained_uses_the_downloaded_file_and_records_it(synthetic_store, tmp_path, monkeypatch):
    """`--pretrained`: the file timm's configuration names on the Hub (here: the download
    replaced by a local file) starts every fold; report.json and model.json record its
    source and sha256; the saved model reloads without timm's weights."""
    import hashlib

    import huggingface_hub

    checkpoint = tmp_path / "hub" / "model.safetensors"
    checkpoint.parent.mkdir()
    rgb_checkpoint("resnet18", checkpoint)
    asked = []

    def download(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return str(checkpoint)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(synthetic_store), "-m", "cof", "--input", "flow_onset_apex:u,v,magnitude",
                                       "--backbone", "timm:resnet18", "--pretrained", "--epochs", "1", "-j", "1",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    hub_id = timm.models.get_pretrained_cfg("resnet18").hf_hub_id
    assert asked == [(hub_id, "model.safetensors")]
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    report = json.loads((out / "report.json").read_text())
    assert report["initial_weights"]["sha256"] == sha and report["initial_weights"]["source"] == f"timm:{hub_id}"
    assert report["model_options"]["encoder"] == "timm:resnet18"
    config = json.loads((out / "model.json").read_text())
    assert config["initial_weights"]["sha256"] == sha and config["initial_weights"]["source"] == f"timm:{hub_id}"
    assert config["timm_version"] == timm.__version__
    model = MERModel.load(out / "model.safetensors", out / "model.json")
    assert isinstance(model.net.backbone, TimmEncoder)
    assert np.isfinite(model(torch.zeros(1, *config["stored"]["shape"])).detach().numpy()).all()
    # and it exports: ONNX Runtime agrees with PyTorch on the training store's clips
    result = CliRunner().invoke(main, ["export", str(out), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0 and "max |onnxruntime - torch|" in result.output, result.output


def test_pretrained_download_failure_is_a_clear_error(synthetic_store, tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    result = CliRunner().invoke(main, ["train", str(synthetic_store), "-m", "cof", "--input", "flow_onset_apex:u,v,magnitude",
                                       "--backbone", "resnet50", "--pretrained", "-o", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "could not download the pretrained weights of resnet50" in result.output and "--weights FILE" in result.output
    assert not (tmp_path / "run" / "model.json").exists()


def test_unknown_timm_model_is_refused_with_suggestions(synthetic_store, tmp_path):
    result = CliRunner().invoke(main, ["train", str(synthetic_store), "-m", "cof", "--backbone", "resnet5O",
                                       "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and "timm has no model 'resnet5O'" in result.output


def test_pretrained_weights_file_lookup_uses_timms_configuration(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **kw: str(tmp_path / filename))
    path, source = timm_backbone.pretrained_file("efficientnet_b0")
    assert path == tmp_path / "model.safetensors"
    assert source == "timm:" + timm.models.get_pretrained_cfg("efficientnet_b0").hf_hub_id
