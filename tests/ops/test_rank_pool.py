import pytest
import torch

from fastmer.ops import RankPool, rank_pool, rank_pool_coefficients, rank_pool_reference


def closed_form(T: int) -> list[float]:
    """α_t = 2(T − t + 1) − (T + 1)(H_T − H_{t−1}), straight from the definition."""
    H = [0.0]
    for i in range(1, T + 1):
        H.append(H[-1] + 1.0 / i)
    return [2 * (T - t + 1) - (T + 1) * (H[T] - H[t - 1]) for t in range(1, T + 1)]


@pytest.mark.parametrize("T", [1, 2, 3, 6, 30, 61])
def test_coefficients_match_closed_form_and_sum_to_zero(T):
    alpha = rank_pool_coefficients(T)
    torch.testing.assert_close(alpha, torch.tensor(closed_form(T), dtype=torch.float64))
    assert abs(alpha.sum().item()) < 1e-9


def test_coefficients_for_six_frames_match_bilen():
    # Values quoted from hbilen/dynamic-image-nets for N = 6.
    expected = [-5.15, -0.15, 1.35, 1.6833, 1.4333, 0.8333]
    torch.testing.assert_close(rank_pool_coefficients(6), torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (2, 2, 1, 5, 5), (3, 6, 3, 7, 9), (2, 31, 1, 64, 64), (1, 3, 2, 1, 9000)])
def test_float64_matches_reference(device, shape):
    frames = torch.rand(shape, dtype=torch.float64, device=device) * 255
    got = rank_pool(frames, backend="native")
    assert got.dtype == torch.float64 and got.shape == (shape[0], *shape[2:])
    torch.testing.assert_close(got, rank_pool_reference(frames), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("shape", [(2, 2, 1, 5, 5), (3, 6, 3, 7, 9), (2, 31, 1, 64, 64), (2, 61, 1, 32, 32)])
def test_float32_error_at_most_twice_torchs(device, shape):
    # The weights cancel (they sum to 0), so float32 error grows with T; compare errors
    # against the float64 oracle instead of bits (flash-attention's criterion).
    frames = torch.rand(shape, dtype=torch.float64, device=device) * 255
    oracle = rank_pool_reference(frames)
    err_native = (rank_pool(frames.float(), backend="native").double() - oracle).abs().max().item()
    err_torch = (rank_pool_reference(frames.float()).double() - oracle).abs().max().item()
    assert err_native <= 2 * err_torch + 1e-5, (err_native, err_torch)


def test_two_frames_give_half_the_difference(device):
    i1, i2 = torch.rand(2, 1, 3, 4, 4, device=device, dtype=torch.float64).unbind(0)
    frames = torch.stack([i1, i2], dim=1)
    torch.testing.assert_close(rank_pool(frames, backend="native"), (i2 - i1) / 2)


def test_static_clip_and_single_frame_give_zeros(device):
    still = torch.rand(1, 1, 2, 5, 5, device=device, dtype=torch.float64).expand(2, 9, 2, 5, 5)
    assert rank_pool(still, backend="native").abs().max().item() < 1e-9
    assert rank_pool(torch.rand(3, 1, 1, 4, 4, device=device), backend="native").abs().max().item() == 0


def test_uint8_frames_are_pooled_in_float32(device):
    frames = torch.randint(0, 256, (2, 5, 1, 8, 8), dtype=torch.uint8, device=device)
    out = rank_pool(frames)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), rank_pool_reference(frames.double()), rtol=1e-6, atol=1e-3)


def test_non_contiguous(device):
    base = torch.rand(2, 8, 8, 5, 3, device=device, dtype=torch.float64)  # N, H, W, T, C
    frames = base.permute(0, 3, 4, 1, 2)[:, ::2]  # N, T/2, C, H, W
    assert not frames.is_contiguous()
    torch.testing.assert_close(rank_pool(frames, backend="native"), rank_pool_reference(frames.contiguous()))


def test_empty_batch(device):
    assert rank_pool(torch.empty(0, 4, 3, 5, 5, device=device), backend="native").shape == (0, 3, 5, 5)


def test_zero_frames_rejected():
    with pytest.raises(ValueError, match=r"need at least one frame"):
        rank_pool(torch.empty(2, 0, 1, 4, 4))


def test_bad_shape_names_the_argument():
    with pytest.raises(ValueError, match=r"rank_pool: expected frames of shape \[N, T, C, H, W\], got \[4, 4, 4, 4\]"):
        rank_pool(torch.zeros(4, 4, 4, 4))


def test_gradcheck(device):
    frames = torch.rand(2, 5, 2, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: rank_pool(f, backend="native"), (frames,))
    assert torch.autograd.gradgradcheck(lambda f: rank_pool(f, backend="native"), (frames,))


def test_backward_is_alpha_times_grad(device):
    frames = torch.rand(1, 4, 1, 2, 2, dtype=torch.float64, device=device, requires_grad=True)
    rank_pool(frames, backend="native").sum().backward()
    alpha = torch.tensor(closed_form(4), dtype=torch.float64, device=device)
    torch.testing.assert_close(frames.grad, alpha.view(1, 4, 1, 1, 1).expand_as(frames))


def test_opcheck(device):
    frames = torch.rand(2, 4, 1, 5, 5, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.fastmer.rank_pool.default, (frames,))
    torch.library.opcheck(torch.ops.fastmer.rank_pool_backward.default, (torch.rand(2, 1, 5, 5, device=device), 4))


def test_module_and_compile():
    frames = torch.rand(2, 3, 1, 6, 6)
    torch.testing.assert_close(RankPool()(frames), rank_pool_reference(frames))
    # register_fake lets torch.compile trace through the native op.
    compiled = torch.compile(lambda f: torch.ops.fastmer.rank_pool(f) * 2, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(frames), 2 * rank_pool_reference(frames))
