"""The seed papers' networks: shapes on store tensors, gradients, overfitting, ONNX parity,
and their blocks against the equations they implement (float64 references)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastmer.datasets.labels import get_protocol
from fastmer.models import MODELS, model_options
from fastmer.models.afn import AFN
from fastmer.models.blocks import GradientAttention, ResNet18, SqueezeExcite
from fastmer.models.dianet import DIANet
from fastmer.models.fmanet import FMANet
from fastmer.models.inputs import gather_stored
from fastmer.models.learnet import LEARNet, SameConv2d
from fastmer.models.microattnet import FusionAttention, MicroAttNet
from fastmer.models.model import MERModel, describe
from fastmer.store import open as open_store

PAPER_MODELS = ("microattnet", "fmanet", "mmcof", "cof", "dianet", "afn", "meganet", "meganet-di", "learnet")
CLASSES = get_protocol("megc2019-3class").classes


def build(store, name, **options):
    entry = MODELS[name]
    x, channels = gather_stored(store, entry.input)
    model = MERModel.create(name, CLASSES, channels, tuple(x.shape[1:]), **options)
    return model, x


def labels(store):
    protocol = get_protocol("megc2019-3class")
    return torch.tensor([CLASSES.index(protocol.classes_of(tuple(lab))[0]) for lab in store.column("labels")])


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_forward_shapes_and_gradients_reach_every_parameter(paper_store, name):
    store = open_store(paper_store)
    torch.manual_seed(0)
    model, x = build(store, name)
    logits = model(x[:8])
    assert logits.shape == (8, 3) and torch.isfinite(logits).all()
    F.cross_entropy(logits, labels(store)[:8]).backward()
    for key, p in model.net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {key}"


@pytest.mark.parametrize("name", [*PAPER_MODELS, "fmanet-resnet18"])
def test_overfits_16_clips(paper_store, name):
    """A 16-clip batch reaches 100% training accuracy (predicted in eval mode)."""
    store = open_store(paper_store)
    torch.manual_seed(1)
    options = {"encoder": "resnet18"} if name.endswith("resnet18") else {}
    model, x = build(store, name.removesuffix("-resnet18"), **options)
    y = labels(store)
    x, y = x[:16], y[:16]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    accuracy = 0.0
    for step in range(300):
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step % 10 == 9:
            model.eval()
            with torch.no_grad():
                accuracy = (model(x).argmax(1) == y).float().mean().item()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0, f"{name} reached {accuracy:.2f} after {step + 1} steps"


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_exports_to_onnx_matching_pytorch(paper_store, name):
    from fastmer.engine.onnx import OnnxEngine, model_to_onnx

    store = open_store(paper_store)
    torch.manual_seed(2)
    model, x = build(store, name)
    model.eval()
    # non-trivial batch-norm statistics, so the check covers them
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    proto, diff = model_to_onnx(model, probe=x[:3].float())
    engine = OnnxEngine.from_proto(proto)
    with torch.no_grad():
        expected = model(x[3:10].float()).numpy()  # another batch size than the probe's
    np.testing.assert_allclose(engine.run(x[3:10].float().numpy()), expected, atol=1e-4, rtol=1e-4)
    assert diff <= 1e-4


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_describe_counts_parameters(name):
    info = describe(name, CLASSES)
    channels = _stored_channels(name)
    model = MERModel.create(name, CLASSES, channels, (len(channels), 128, 128))
    assert info["parameters"] == sum(p.numel() for p in model.net.parameters()) > 1000
    assert sum(info["parameters_by_module"].values()) == info["parameters"]
    assert set(info["options"]) == set(model_options(name))
    assert info["input"]["network_input"] == [len(MODELS[name].input.channels), 128, 128]


def _stored_channels(name):
    from fastmer.motion.representations import REPRESENTATIONS

    return tuple(c for r in MODELS[name].input.representations for c in REPRESENTATIONS[r])


# --- references ---------------------------------------------------------------------------


def test_learnet_has_the_keras_models_parameter_count():
    """SPEC §5.3: 1,866,757 for 5 classes on 112x112x3, counting BN's moving statistics as Keras does."""
    net = LEARNet(5, in_channels=3, in_shape=(3, 112, 112))
    params = sum(p.numel() for p in net.parameters())
    statistics = sum(b.numel() for k, b in net.named_buffers() if k.endswith(("running_mean", "running_var")))
    assert params + statistics == 1_866_757
    assert net(torch.zeros(2, 3, 112, 112)).shape == (2, 5)
    assert net.classifier[1].in_features == 4 * 4 * 256  # the Keras model's 4x4x256 flatten


def test_same_convolution_pads_like_tensorflow():
    """TF "same", stride 2, 6x6 input, 3x3 kernel: output 3x3, one padding row/column at the bottom/right."""
    conv = SameConv2d(1, 1, 3, stride=2, bias=False).double()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    k = conv.weight[0, 0].detach()
    padded = torch.zeros(7, 7, dtype=torch.float64)
    padded[:6, :6] = x[0, 0]
    expected = torch.tensor([[float((padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * k).sum()) for j in range(3)]
                             for i in range(3)], dtype=torch.float64)
    torch.testing.assert_close(conv(x)[0, 0].detach(), expected)
    assert conv(torch.zeros(1, 1, 7, 5, dtype=torch.float64)).shape[-2:] == (4, 3)


def test_resnet18_has_torchvisions_layout():
    net = ResNet18(1000, in_channels=3)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512  # torchvision.models.resnet18()
    keys = set(net.state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.bias", "fc.weight", "fc.bias"):
        assert key in keys
    assert len(keys) == 122  # torchvision's resnet18 state dict


def test_squeeze_excite_equation():
    se = SqueezeExcite(32, reduction=4).double()
    x = torch.randn(2, 32, 5, 5, dtype=torch.float64)
    z = x.mean(dim=(2, 3))
    s = torch.sigmoid(torch.relu(z @ se.fc1.weight.T + se.fc1.bias) @ se.fc2.weight.T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])
    assert se.fc1.out_features == 8


def test_fusion_attention_equation():
    fusion = FusionAttention(16, hidden=8).double()
    f = torch.randn(3, 3, 16, dtype=torch.float64)
    e = torch.tanh(f @ fusion.project.weight.T + fusion.project.bias) @ fusion.score.weight[0]
    alpha = torch.exp(e) / torch.exp(e).sum(1, keepdim=True)
    torch.testing.assert_close(fusion(f), (alpha[:, :, None] * f).sum(1))
    torch.testing.assert_close(fusion.weights(f).sum(1), torch.ones(3, dtype=torch.float64))


def test_gradient_attention_equation():
    ga = GradientAttention(2).double().eval()
    ga.bn.running_mean.uniform_(-0.1, 0.1)
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")[0]
    gx = torch.zeros_like(x[0])
    gy = torch.zeros_like(x[0])
    for i in range(6):
        for j in range(7):
            w = p[:, i : i + 3, j : j + 3]
            gx[:, i, j] = (w[:, :, 2] - w[:, :, 0]) @ torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
            gy[:, i, j] = (w[:, 2, :] - w[:, 0, :]) @ torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    g = torch.sqrt(gx**2 + gy**2 + 1e-12)[None]
    attention = torch.sigmoid(ga.bn(F.conv2d(g, ga.conv.weight, padding=1)))
    torch.testing.assert_close(ga(x), x + x * attention)


def test_fmanet_starts_from_the_mm_cof_weights():
    net = FMANet(3, theta=(0.7, 0.3))
    f = torch.randn(2, 128, 4, 4)
    torch.testing.assert_close(net.phase_weights(f, f).flatten(), torch.tensor([0.7, 0.3]))
    pixel = FMANet(3, theta=(0.7, 0.3), phase_fusion="pixel")
    w = pixel.phase_weights(f, torch.randn(2, 128, 4, 4))
    torch.testing.assert_close(w, torch.tensor([0.7, 0.3]).reshape(1, 2, 1, 1).expand(2, 2, 4, 4))
    with pytest.raises(ValueError, match="6 input maps"):
        FMANet(3, in_channels=12)


def test_afn_gate_mixes_the_two_streams():
    net = AFN(3).eval()
    f_t, f_m = torch.randn(4, 128), torch.randn(4, 128)
    g = net.gates(f_t, f_m)
    assert g.shape == (4, 128) and ((g > 0) & (g < 1)).all()
    scalar = AFN(3, gate="scalar")
    assert scalar.gates(f_t, f_m).shape == (4, 1)
    with pytest.raises(ValueError, match="gate"):
        AFN(3, gate="magic")
    # neither fastmer's nor a timm model: refused, saying so whether timm is installed or not
    for build_bad in (lambda: AFN(3, encoder="no_such_net"), lambda: FMANet(3, encoder="no_such_net"),
                      lambda: DIANet(3, encoder="no_such_net")):
        with pytest.raises(ValueError, match=r"'no_such_net' is not one of fastmer's encoders|timm has no model"):
            build_bad()


def test_dianet_cross_attention_is_bidirectional():
    torch.manual_seed(0)
    net = DIANet(3, in_shape=(2, 32, 32)).eval()
    x = torch.randn(2, 2, 32, 32)
    base = net(x)
    changed = x.clone()
    changed[:, 1] += torch.randn(2, 32, 32)  # the apex->offset DI only
    with torch.no_grad():
        tokens_a = net.projections[0](net.encoders[0](x[:, :1]).flatten(2).transpose(1, 2)) + net.positions[0]
        tokens_b = net.projections[1](net.encoders[1](x[:, 1:]).flatten(2).transpose(1, 2)) + net.positions[1]
        tokens_b2 = net.projections[1](net.encoders[1](changed[:, 1:]).flatten(2).transpose(1, 2)) + net.positions[1]
        # stream a's fused tokens depend on stream b (and not only through concatenation)
        assert not torch.allclose(net.cross[0](tokens_a, tokens_b), net.cross[0](tokens_a, tokens_b2))
    assert not torch.allclose(base, net(changed))
    concat = DIANet(3, in_shape=(2, 32, 32), fusion="concat")
    assert sum(p.numel() for p in concat.parameters()) < sum(p.numel() for p in net.parameters())


def test_microattnet_ablations_change_the_model():
    full = MicroAttNet(5, in_channels=12)
    counts = {
        (fa, se): sum(p.numel() for p in MicroAttNet(5, in_channels=12, fusion_attention=fa, se=se).parameters())
        for fa in (True, False) for se in (True, False)
    }
    assert len(set(counts.values())) == 4
    assert counts[(True, True)] == sum(p.numel() for p in full.parameters())
    # SE sits on the magnitude stream only (unless se_all_streams)
    assert [type(m).__name__ for m in full.se] == ["Identity", "Identity", "SqueezeExcite"]
    assert all(type(m).__name__ == "SqueezeExcite" for m in MicroAttNet(5, se_all_streams=True).se)
    x = torch.randn(2, 12, 24, 24)
    weights = full.eval().stream_weights(x)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="multiple of 3"):
        MicroAttNet(5, in_channels=4)
    with pytest.raises(ValueError, match=r"\(N, 12, H, W\)"):
        full(torch.zeros(1, 6, 24, 24))


def test_initial_weights_match_by_name_and_suffix(paper_store, tmp_path):
    """--weights: a plain ResNet-18 state dict goes into the backbone of every stream."""
    from safetensors.torch import save_file

    store = open_store(paper_store)
    model, _ = build(store, "afn", encoder="resnet18")
    donor = ResNet18(1000, in_channels=1)
    state = {k: v.contiguous() for k, v in donor.state_dict().items()}
    save_file(state, tmp_path / "r18.safetensors")
    update, info = model.match_initial_weights(tmp_path / "r18.safetensors")
    assert "encoders.0.layer3.1.conv2.weight" in update and "encoders.1.layer3.1.conv2.weight" in update
    torch.testing.assert_close(update["encoders.1.layer1.0.conv1.weight"], donor.layer1[0].conv1.weight.detach())
    assert "fc.weight" in info["unused"] and len(info["sha256"]) == 64
    model.load_initial_weights(tmp_path / "r18.safetensors")
    torch.testing.assert_close(model.net.encoders[0].conv1.weight, donor.conv1.weight)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        model.match_initial_weights(tmp_path / "bad.safetensors")
    save_file({"nothing.here": torch.zeros(3)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="no tensor"):
        model.match_initial_weights(tmp_path / "other.safetensors")


def test_rgb_stem_is_adapted_to_the_input_maps(paper_store, tmp_path):
    """--weights / --pretrained from an RGB checkpoint: the stem of a network fed 1 map per
    stream (AFN's dynamic images) takes the RGB kernels summed; the rest loads as is."""
    from safetensors.torch import save_file

    store = open_store(paper_store)
    model, _ = build(store, "afn", encoder="resnet18")
    donor = ResNet18(1000, in_channels=3)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, tmp_path / "rgb.safetensors")
    info = model.load_initial_weights(tmp_path / "rgb.safetensors")
    assert info["adapted_input"] == ["encoders.0.conv1.weight", "encoders.1.conv1.weight"]
    assert not info["shape_mismatch"] and "encoders.0.conv1.weight" in info["loaded"]
    expected = donor.conv1.weight.detach().double().sum(dim=1, keepdim=True)
    for encoder in model.net.encoders:
        torch.testing.assert_close(encoder.conv1.weight.double(), expected)
        torch.testing.assert_close(encoder.layer2[0].conv1.weight, donor.layer2[0].conv1.weight)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 7])
def test_adapt_input_weight_is_timms_rule(channels):
    """Against the rule written out in float64: 1 map sums R, G, B; n maps take R, G, B, R, ...
    scaled by 3/n."""
    from fastmer.models.timm_backbone import adapt_input_weight

    weight = torch.randn(8, 3, 5, 5, dtype=torch.float64)
    got = adapt_input_weight(weight, channels)
    if channels == 1:
        expected = weight[:, 0:1] + weight[:, 1:2] + weight[:, 2:3]
    else:
        expected = torch.stack([weight[:, i % 3] for i in range(channels)], dim=1) * (3.0 / channels)
    torch.testing.assert_close(got, expected)
    if channels == 1 or channels % 3 == 0:  # then a constant input meets the RGB stem's response to grey
        torch.testing.assert_close(got.sum(dim=(1, 2, 3)), weight.sum(dim=(1, 2, 3)))
    with pytest.raises(ValueError, match=r"\(O, 3, kh, kw\)"):
        adapt_input_weight(torch.zeros(8, 2, 3, 3), 1)


def test_unknown_options_are_refused(paper_store):
    store = open_store(paper_store)
    with pytest.raises(ValueError, match="has no option"):
        build(store, "meganet", se=False)
    assert math.isclose(model_options("fmanet")["theta"][0], 0.6)
