import pytest
import torch

from fastmer.ops import FlowMagnitude, flow_magnitude, flow_magnitude_reference

SHAPES = [(1, 2, 1, 1), (3, 2, 7, 9), (2, 2, 128, 128), (5, 2, 1, 17)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_float64_reference(device, shape, dtype):
    flow = torch.randn(shape, dtype=torch.float64, device=device) * 3
    expected = flow_magnitude_reference(flow)
    got = flow_magnitude(flow.to(dtype), backend="native")
    assert got.dtype == dtype and got.shape == (shape[0], 1, shape[2], shape[3])
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)


def test_known_values(device):
    flow = torch.tensor([[[[3.0, 0.0]], [[4.0, -2.0]]]], device=device)  # (1, 2, 1, 2)
    assert flow_magnitude(flow, backend="native").flatten().tolist() == [5.0, 2.0]


def test_non_contiguous(device):
    base = torch.randn(4, 9, 11, 2, device=device)
    flow = base.permute(0, 3, 1, 2)[:, :, 1:, ::2]  # channels-last view, sliced
    assert not flow.is_contiguous()
    torch.testing.assert_close(flow_magnitude(flow, backend="native"), flow_magnitude_reference(flow.contiguous()))


def test_empty_batch(device):
    out = flow_magnitude(torch.empty(0, 2, 5, 5, device=device), backend="native")
    assert out.shape == (0, 1, 5, 5)


def test_half_is_computed_in_float32(device):
    flow = torch.randn(2, 2, 4, 4, device=device).half()
    out = flow_magnitude(flow)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, flow_magnitude_reference(flow.float()))


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), torch.zeros(1, 2, 4, 4, 1)])
def test_bad_shape_names_the_argument(bad):
    with pytest.raises(ValueError, match=r"flow_magnitude: expected flow of shape \[N, 2, H, W\]"):
        flow_magnitude(bad)


def test_integer_flow_rejected():
    with pytest.raises(TypeError, match="flow must be a floating-point tensor"):
        flow_magnitude(torch.zeros(1, 2, 3, 3, dtype=torch.int32))


def test_opcheck(device):
    torch.library.opcheck(torch.ops.fastmer.flow_magnitude.default, (torch.randn(2, 2, 5, 6, device=device),))


def test_module():
    flow = torch.randn(2, 2, 3, 3)
    torch.testing.assert_close(FlowMagnitude()(flow), flow_magnitude_reference(flow))
