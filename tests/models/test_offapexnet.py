import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from fastmer.models import MODELS, get_entry
from fastmer.models.model import MERModel
from fastmer.models.offapexnet import OffApexNet


def test_layer_sizes_and_parameter_count():
    net = OffApexNet(3)
    per_stream = (6 * 25 + 6) + (16 * 6 * 25 + 16)  # conv 5x5: 1->6, 6->16 (+bias)
    fc = (2 * 784 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 3 + 3)
    assert sum(p.numel() for p in net.parameters()) == 2 * per_stream + fc == 2_664_475
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in convs] == [
        (1, 6, (5, 5), (2, 2)), (6, 16, (5, 5), (2, 2)),
    ] * 2
    # 'same' convolutions and two 2x2 pools: 28 -> 14 -> 7, 16 maps per stream
    assert net.streams[0](torch.zeros(1, 1, 28, 28)).shape == (1, 16 * 7 * 7)
    dropouts = [m for m in net.classifier if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.5
    assert len([m for m in OffApexNet(3, dropout_both=True).classifier if isinstance(m, torch.nn.Dropout)]) == 2


def test_forward_shape_and_validation():
    net = OffApexNet(5).eval()
    assert net(torch.randn(4, 2, 28, 28)).shape == (4, 5)
    with pytest.raises(ValueError, match="28, 28"):
        net(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 2, 28, 28\)"):
        net(torch.zeros(1, 3, 28, 28))
    assert OffApexNet(3, in_channels=3)(torch.zeros(2, 3, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError):
        OffApexNet(3, in_channels=0)


def test_streams_are_separate_and_concatenated_u_first():
    torch.manual_seed(0)
    net = OffApexNet(3).eval()
    x = torch.randn(3, 2, 28, 28)
    features = {}
    net.classifier.register_forward_pre_hook(lambda _m, args: features.setdefault("fc_in", args[0]))
    net(x)
    u_part, v_part = features["fc_in"][:, :784], features["fc_in"][:, 784:]
    torch.testing.assert_close(u_part, net.streams[0](x[:, :1]))
    torch.testing.assert_close(v_part, net.streams[1](x[:, 1:]))
    # changing v leaves the u stream's features untouched
    x2 = x.clone()
    x2[:, 1] = torch.randn(3, 28, 28)
    torch.testing.assert_close(net.streams[0](x2[:, :1]), u_part)


def test_registry_entry():
    entry = get_entry("offapexnet")
    assert "offapexnet" in MODELS and entry.name == "offapexnet"
    assert entry.input.representation == "flow_onset_apex"
    assert entry.input.channels == ("u", "v") and entry.input.size == 28 and entry.input.normalization == "minmax"
    assert entry.published is None and "OFF-ApexNet" in entry.reference
    net = entry.build(4, in_channels=2)
    assert isinstance(net, OffApexNet) and net(torch.zeros(1, 2, 28, 28)).shape == (1, 4)


def test_mermodel_roundtrip_selects_u_and_v(tmp_path):
    torch.manual_seed(0)
    model = MERModel.create("offapexnet", ("a", "b", "c"), ("u", "v", "magnitude", "strain"), (4, 64, 64)).eval()
    x = torch.randn(3, 4, 64, 64)
    x2 = x.clone()
    x2[:, 2:] = torch.randn(3, 2, 64, 64)  # magnitude and strain are not inputs
    torch.testing.assert_close(model(x2), model(x))
    model.save(tmp_path / "model.safetensors", tmp_path / "model.json")
    loaded = MERModel.load(tmp_path / "model.safetensors", tmp_path / "model.json")
    torch.testing.assert_close(loaded(x), model(x))
    assert json.loads((tmp_path / "model.json").read_text())["input"]["channels"] == ["u", "v"]


def test_onnx_export_matches_pytorch(tmp_path):
    from fastmer.engine.onnx import OnnxEngine, export_onnx

    torch.manual_seed(0)
    model = MERModel.create("offapexnet", ("negative", "positive", "surprise"), ("u", "v", "magnitude", "strain"),
                            (4, 32, 32)).eval()
    model.save(tmp_path / "model.safetensors", tmp_path / "model.json")
    info = export_onnx(tmp_path, tmp_path / "model.onnx")
    assert info["max_abs_diff"] < 1e-4 and info["model"] == "offapexnet"
    engine = OnnxEngine(tmp_path / "model.onnx")
    for batch in (1, 5):
        features = torch.randn(batch, 4, 32, 32)
        with torch.no_grad():
            expected = model(features).numpy()
        np.testing.assert_allclose(engine.run(features.numpy()), expected, atol=1e-4, rtol=0)


def test_trains_in_a_loso_run(tiny_store, tmp_path):
    from fastmer.train.run import train

    report = train(tiny_store, tmp_path / "run", model="offapexnet",
                   recipe=replace(MODELS["offapexnet"].recipe, epochs=2))
    assert report["model"] == "offapexnet" and report["n_folds"] == 3 and report["n_clips"] == 9
    loaded = MERModel.load(tmp_path / "run" / "model.safetensors", tmp_path / "run" / "model.json")
    assert isinstance(loaded.net, OffApexNet)
