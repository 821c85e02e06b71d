"""fastmer.explain: Grad-CAM against a float64 autograd reference, maps that follow the class,
stream layers, MicroAttNet's stream weights and DIANet's attention against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fastmer.explain import conv_layers, cross_attention, grad_cam, stream_layers, stream_weights


class TinyCNN(nn.Module):
    """conv1 -> ReLU -> conv2 (stride 2) -> ReLU(inplace) -> global mean -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
        self.relu = nn.ReLU(inplace=True)  # acts on conv2's output in place: the hook must keep it intact
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.relu(self.conv2(torch.relu(self.conv1(x)))).mean(dim=(2, 3)))


def _bilinear(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Half-pixel-centre bilinear resampling (edges clamped), written out in numpy."""
    h, w = m.shape

    def taps(n_out: int, n_in: int):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, ly = taps(size[0], h)
    x0, x1, lx = taps(size[1], w)
    top = m[y0][:, x0] * (1 - lx) + m[y0][:, x1] * lx
    bottom = m[y1][:, x0] * (1 - lx) + m[y1][:, x1] * lx
    return top * (1 - ly)[:, None] + bottom * ly[:, None]


def _reference(net: TinyCNN, x: torch.Tensor, targets: list[int]) -> np.ndarray:
    """Grad-CAM at conv2, computed with plain autograd in float64 (no hooks)."""
    maps = []
    for n, k in enumerate(targets):
        a = net.conv2(torch.relu(net.conv1(x[n : n + 1]))).detach().requires_grad_(True)
        logit = net.fc(torch.relu(a).mean(dim=(2, 3)))[0, k]
        (grad,) = torch.autograd.grad(logit, a)
        alpha = grad[0].numpy().mean(axis=(1, 2))
        cam = np.maximum(np.tensordot(alpha, a[0].detach().numpy(), axes=1), 0.0)
        cam = _bilinear(cam, tuple(x.shape[-2:]))
        span = cam.max() - cam.min()
        maps.append((cam - cam.min()) / span if span > 0 else np.zeros_like(cam))
    return np.stack(maps)


@pytest.fixture
def tiny() -> tuple[TinyCNN, torch.Tensor]:
    torch.manual_seed(3)
    net = TinyCNN().double()
    x = torch.randn(4, 2, 13, 11, dtype=torch.float64)
    return net, x


def test_grad_cam_matches_float64_autograd_reference(tiny):
    net, x = tiny
    predicted = net(x).argmax(1).tolist()
    for target, targets in ((None, predicted), (2, [2] * 4), ([0, 1, 2, 1], [0, 1, 2, 1])):
        maps = grad_cam(net, x, target=target)
        assert maps.shape == (4, 13, 11) and maps.dtype == torch.float64
        np.testing.assert_allclose(maps.numpy(), _reference(net, x, targets), atol=1e-6, rtol=0)
        assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    # the default layer is the last convolution the input reaches; naming it gives the same maps
    assert conv_layers(net, x) == ["conv1", "conv2"]
    np.testing.assert_array_equal(grad_cam(net, x, layer="conv2").numpy(), grad_cam(net, x).numpy())
    assert not torch.equal(grad_cam(net, x, layer="conv1"), grad_cam(net, x))
    assert net.training  # the model's mode is restored


def _bump(size: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """A cosine bump, exactly zero outside rows x cols."""
    image = np.zeros((size, size))
    r = np.sin(np.linspace(0, math.pi, rows[1] - rows[0]))
    c = np.sin(np.linspace(0, math.pi, cols[1] - cols[0]))
    image[rows[0] : rows[1], cols[0] : cols[1]] = np.outer(r, c)
    return image


def test_grad_cam_follows_the_class_region():
    # Channel 0 pools the positive part of the image, channel 1 the negative part; logit k reads
    # channel k only. On an image with a positive bump in region A and a negative one in region
    # B, class 0's logit depends on region A only and class 1's on region B only.
    conv = nn.Conv2d(1, 2, 2, stride=2, bias=False)  # a 2x2 average of x and of -x: the map is 16x16
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.25, -0.25]).reshape(2, 1, 1, 1).expand(2, 1, 2, 2))
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).double()
    region_a, region_b = ((4, 14), (2, 14)), ((18, 30), (16, 28))  # on the 2x2 grid
    image = 1.5 * _bump(32, *region_a) - _bump(32, *region_b)
    x = torch.from_numpy(image)[None, None].requires_grad_(True)
    inside = {k: np.zeros((32, 32), bool) for k in (0, 1)}
    for k, ((r0, r1), (c0, c1)) in enumerate((region_a, region_b)):
        inside[k][r0:r1, c0:c1] = True
        (dx,) = torch.autograd.grad(net(x)[0, k], x)  # the known region: where the logit depends on the image
        assert np.abs(dx[0, 0].numpy())[~inside[k]].max() == 0 and np.abs(dx[0, 0].numpy())[inside[k]].max() > 0
    x = x.detach()
    for k in (0, 1):
        cam = grad_cam(net, x, target=k)[0].numpy()
        peak = np.unravel_index(cam.argmax(), cam.shape)
        assert inside[k][peak], (k, peak)
        assert cam[inside[k]].sum() > 0.8 * cam.sum()
        assert cam[inside[1 - k]].max() < 0.2  # the other class's region is cold
    assert net(x).argmax().item() == 0  # the larger bump wins: the default target is class 0
    np.testing.assert_array_equal(grad_cam(net, x).numpy(), grad_cam(net, x, target=0).numpy())


def test_errors_are_clear(tiny):
    net, x = tiny
    with pytest.raises(ValueError, match=r"layer 'fc' is not a convolution.*valid layers: conv1, conv2"):
        grad_cam(net, x, layer="fc")
    with pytest.raises(ValueError, match="no convolution"):
        grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(2 * 13 * 11, 3)).double(), x)
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(net, x, target=3)
    with pytest.raises(ValueError, match="one class index per sample"):
        grad_cam(net, x, target=[0, 1])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        grad_cam(net, x[0])
    with pytest.raises(ValueError, match="no stream weights"):
        stream_weights(net, x)
    with pytest.raises(ValueError, match="no cross-attention"):
        cross_attention(net, x)


def test_stream_layers_and_weights_of_microattnet():
    from fastmer.models.microattnet import MicroAttNet

    torch.manual_seed(0)
    net = MicroAttNet(3, in_channels=6).train()
    x = torch.rand(2, 6, 24, 24)
    assert stream_layers(net, x, 3) == [f"encoders.{g}.layers.8" for g in range(3)]
    weights = stream_weights(net, x)
    assert net.training
    # by hand: additive attention over the streams' pooled vectors (eval mode)
    net.eval()
    with torch.no_grad():
        vectors = torch.stack([se(encoder(part)).mean(dim=(2, 3))
                               for part, encoder, se in zip(x.chunk(3, dim=1), net.encoders, net.se, strict=True)], dim=1)
        scores = net.fusion.score(torch.tanh(net.fusion.project(vectors))).squeeze(-1)
    np.testing.assert_allclose(weights.numpy(), torch.softmax(scores, dim=1).numpy(), atol=1e-6)
    np.testing.assert_allclose(weights.sum(1).numpy(), 1, atol=1e-6)
    # a network that mixes the streams' channels before any convolution has no per-stream layer
    mixed = nn.Sequential(nn.Conv2d(6, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="no convolution of its own"):
        stream_layers(mixed, x, 3)


def test_dianet_cross_attention_against_a_hand_computation():
    from fastmer.models.dianet import DIANet

    torch.manual_seed(1)
    net = DIANet(3, in_shape=(2, 32, 32), dim=16, heads=2).double().eval()
    x = torch.rand(2, 2, 32, 32, dtype=torch.float64)
    maps = cross_attention(net, x)
    assert maps.grid == (4, 4)
    with torch.no_grad():
        tokens = [net.projections[i](net.encoders[i](x[:, i : i + 1]).flatten(2).transpose(1, 2)) + net.positions[i]
                  for i in range(2)]
        for i in range(2):
            mha = net.cross[i].attention
            wq, wk, _ = mha.in_proj_weight.chunk(3)
            bq, bk, _ = mha.in_proj_bias.chunk(3)
            q = (tokens[i] @ wq.T + bq).reshape(2, 16, 2, 8).transpose(1, 2)
            k = (tokens[1 - i] @ wk.T + bk).reshape(2, 16, 2, 8).transpose(1, 2)
            expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)  # (N, heads, L, L)
            np.testing.assert_allclose(maps.weights[i].numpy(), expected.numpy(), atol=1e-10)
            np.testing.assert_allclose(maps.received(i).numpy(), expected.mean(dim=(1, 2)).reshape(2, 4, 4).numpy(),
                                       atol=1e-10)
    np.testing.assert_allclose(maps.received(0).sum(dim=(1, 2)).numpy(), 1, atol=1e-10)


def test_every_registered_cnn_gets_maps_per_stream():
    from fastmer.models import MODELS
    from fastmer.models.model import MERModel
    from fastmer.motion.representations import REPRESENTATIONS, representation_shape

    torch.manual_seed(0)
    for name, entry in MODELS.items():
        channels = tuple(c for r in entry.input.representations for c in REPRESENTATIONS[r])
        shape = representation_shape(entry.input.representations[0], 32)
        model = MERModel.create(name, ("a", "b", "c"), channels, (len(channels), *shape[1:]))
        x = model.adapter(torch.rand(2, len(channels), *shape[1:]))
        if entry.fitter == "solver":
            with pytest.raises(ValueError, match="no convolution"):
                grad_cam(model.net, x)
            continue
        assert grad_cam(model.net, x).shape == (2, *x.shape[-2:]), name
        if entry.input.groups > 1:
            layers = stream_layers(model.net, x, entry.input.groups)
            assert len(set(layers)) == entry.input.groups, (name, layers)
