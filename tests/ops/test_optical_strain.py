import math

import pytest
import torch

from fastmer.ops import OpticalStrain, optical_strain, optical_strain_reference

SHAPES = [(1, 2, 1, 1), (2, 2, 1, 9), (2, 2, 9, 1), (2, 2, 2, 2), (3, 2, 7, 9), (2, 2, 128, 128)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_float64_reference(device, shape, dtype):
    flow = torch.randn(shape, dtype=torch.float64, device=device)
    expected = optical_strain_reference(flow)
    got = optical_strain(flow.to(dtype), backend="native")
    assert got.dtype == dtype and got.shape == (shape[0], 1, shape[2], shape[3])
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_affine_flow_has_constant_analytic_strain(device, backend):
    # u = a x + b y, v = c x + d y: every stencil (central and one-sided) is exact, so
    # |e| = sqrt(a² + d² + (b + c)² / 2) at every pixel, border included.
    a, b, c, d = 0.3, -0.2, 0.05, 0.1
    ys, xs = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64), indexing="ij")
    flow = torch.stack([a * xs + b * ys, c * xs + d * ys]).unsqueeze(0).double().to(device)
    out = optical_strain(flow, backend=backend)
    expected = math.sqrt(a * a + d * d + (b + c) ** 2 / 2)
    torch.testing.assert_close(out, torch.full_like(out, expected), rtol=1e-12, atol=1e-12)


def test_pure_rotation_has_zero_strain(device):
    # A rigid rotation (u = -w y, v = w x) has an antisymmetric gradient: no strain.
    w = 0.01
    ys, xs = torch.meshgrid(torch.arange(5.0, dtype=torch.float64), torch.arange(5.0, dtype=torch.float64), indexing="ij")
    flow = torch.stack([-w * ys, w * xs]).unsqueeze(0).double().to(device)
    assert optical_strain(flow, backend="native").abs().max().item() < 1e-15


def test_quadratic_flow_interior_matches_central_difference(device):
    # u = x², v = y²: central differences of a quadratic are exact inside the image.
    ys, xs = torch.meshgrid(torch.arange(7.0, dtype=torch.float64), torch.arange(7.0, dtype=torch.float64), indexing="ij")
    flow = torch.stack([xs**2, ys**2]).unsqueeze(0).double().to(device)
    out = optical_strain(flow, backend="native")[0, 0, 1:-1, 1:-1]
    expected = torch.sqrt((2 * xs) ** 2 + (2 * ys) ** 2)[1:-1, 1:-1].to(device)
    torch.testing.assert_close(out, expected)


def test_non_contiguous(device):
    base = torch.randn(3, 10, 12, 2, device=device, dtype=torch.float64)
    flow = base.permute(0, 3, 1, 2)[:, :, ::2, 1:]
    assert not flow.is_contiguous()
    torch.testing.assert_close(optical_strain(flow, backend="native"), optical_strain_reference(flow.contiguous()))


def test_empty_batch(device):
    assert optical_strain(torch.empty(0, 2, 4, 4, device=device), backend="native").shape == (0, 1, 4, 4)


def test_bad_shape_names_the_argument():
    with pytest.raises(ValueError, match=r"optical_strain: expected flow of shape \[N, 2, H, W\], got \[2, 1, 4, 4\]"):
        optical_strain(torch.zeros(2, 1, 4, 4))


def test_opcheck(device):
    torch.library.opcheck(torch.ops.fastmer.optical_strain.default, (torch.randn(2, 2, 6, 5, device=device),))


def test_module():
    flow = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(OpticalStrain()(flow), optical_strain_reference(flow))
