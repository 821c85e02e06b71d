"""TV-L1: accuracy on real pairs with ground truth, agreement between implementations, bad input."""

import cv2
import numpy as np
import pytest
import torch
from flowdata import epe, load_flow_pair

from fastmer.ops import TVL1Params, tvl1
from fastmer.ops.tvl1 import prepare_images, pyramid_sizes


def textured_pairs(n: int = 3, size: tuple[int, int] = (48, 56), seed: int = 0):
    """uint8 pairs of a smooth random texture under small known affine motions."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = cv2.normalize(cv2.GaussianBlur(rng.random(size, dtype=np.float32) * 255, (0, 0), 1.5), None, 0, 255,
                         cv2.NORM_MINMAX)
    I0, I1, motions = [], [], []
    for _ in range(n):
        dx, dy, zoom = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(0.98, 1.02)
        M = np.float32([[zoom, 0, dx + (1 - zoom) * w / 2], [0, zoom, dy + (1 - zoom) * h / 2]])
        I0.append(np.round(base).astype(np.uint8))
        I1.append(np.clip(np.round(cv2.warpAffine(base, M, (w, h), borderMode=cv2.BORDER_REFLECT)), 0, 255).astype(np.uint8))
        motions.append((dx, dy))
    return torch.from_numpy(np.stack(I0)), torch.from_numpy(np.stack(I1)), motions


# ---------------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("preset, bound", [("opencv", 0.16), ("ipol", 0.23)])
def test_rubberwhale(shared_dir, device, preset, bound):
    I0, I1, truth, valid = load_flow_pair(shared_dir, "rubberwhale")
    flow = tvl1(torch.from_numpy(I0)[None].to(device), torch.from_numpy(I1)[None].to(device),
                TVL1Params.preset(preset), backend="native")
    assert epe(flow[0].cpu().numpy(), truth, valid) <= bound


def test_sintel_opencv_preset_within_5_percent_of_opencv(shared_dir, device):
    I0, I1, truth, valid = load_flow_pair(shared_dir, "sintel")
    ours = tvl1(torch.from_numpy(I0)[None].to(device), torch.from_numpy(I1)[None].to(device), backend="native")
    theirs = cv2.optflow.DualTVL1OpticalFlow_create().calc(I0, I1, None)
    assert epe(ours[0].cpu().numpy(), truth, valid) <= 1.05 * epe(theirs, truth, valid)


def test_sintel_ipol_preset(shared_dir, device):
    I0, I1, truth, valid = load_flow_pair(shared_dir, "sintel")
    flow = tvl1(torch.from_numpy(I0)[None].to(device), torch.from_numpy(I1)[None].to(device), TVL1Params.ipol(),
                backend="native")
    assert epe(flow[0].cpu().numpy(), truth, valid) <= 0.26


@pytest.mark.parametrize("preset", ["opencv", "ipol"])
def test_recovers_known_translation(device, preset):
    I0, I1, motions = textured_pairs()
    flow = tvl1(I0.to(device), I1.to(device), TVL1Params.preset(preset), backend="native").cpu()
    inner = flow[:, :, 10:-10, 10:-10]
    for k, (dx, dy) in enumerate(motions):
        assert abs(inner[k, 0].median().item() - dx) < 0.1 and abs(inner[k, 1].median().item() - dy) < 0.1, (k, dx, dy)


# ------------------------------------------------------------------- implementations agree
PARAMS = {
    "opencv": TVL1Params(),
    "ipol": TVL1Params.ipol(),
    "gamma+median3": TVL1Params(gamma=0.3, median_size=3, warps=3),
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_native_matches_pytorch_reference(device, name):
    I0, I1, _ = textured_pairs()
    params = PARAMS[name]
    native = tvl1(I0.to(device), I1.to(device), params, backend="native").cpu()
    reference = tvl1(I0, I1, params, backend="reference")
    assert (native - reference).abs().mean().item() < 1e-3
    assert (native - reference).abs().max().item() < 0.05


@pytest.mark.parametrize("name", list(PARAMS))
def test_cpu_stencil_scheme_matches_sweep(name):
    """The CUDA kernels' Jacobi stencil, run on the CPU (its CI twin), equals the row sweep."""
    I0, I1, _ = textured_pairs()
    sweep = tvl1(I0, I1, PARAMS[name], backend="native")
    stencil = tvl1(I0, I1, TVL1Params(**{**PARAMS[name].to_dict(), "scheme": "stencil"}), backend="native")
    assert (sweep - stencil).abs().mean().item() < 1e-4


def test_half_state_stays_close(device):
    I0, I1, _ = textured_pairs()
    full = tvl1(I0.to(device), I1.to(device), backend="native")
    half = tvl1(I0.to(device), I1.to(device), TVL1Params(half_state=True), backend="native")
    assert (full - half).abs().mean().item() < 0.01


def face_crop_pairs(corpus, size: int = 128):
    """Onset/apex face crops of every clip of a synthetic corpus, as uint8 [N, size, size]."""
    import csv

    I0, I1 = [], []
    with open(corpus / "ground_truth" / "clips.csv") as handle:
        for row in csv.DictReader(handle):
            folder = corpus / f"sub{row['subject']}" / row["filename"]
            x, y, side = (int(float(row[k])) for k in ("face_x", "face_y", "face_w"))
            for frame, out in ((row["onset"], I0), (row["apex"], I1)):
                image = cv2.imread(str(folder / f"img{frame}.jpg"), cv2.IMREAD_GRAYSCALE)
                out.append(cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(I0)), torch.from_numpy(np.stack(I1))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(shared_dir, tiny_corpus):
    pairs = [torch.from_numpy(p)[None] for p in load_flow_pair(shared_dir, "rubberwhale")[:2]]
    sintel = [torch.from_numpy(p)[None] for p in load_flow_pair(shared_dir, "sintel")[:2]]
    for a, b in (pairs, sintel, face_crop_pairs(tiny_corpus), textured_pairs(8)[:2]):
        for params in PARAMS.values():
            cpu = tvl1(a, b, params, backend="native")
            gpu = tvl1(a.cuda(), b.cuda(), params, backend="native").cpu()
            assert (cpu - gpu).abs().mean().item() <= 0.01


def test_batch_invariance(device):
    """A pair's flow does not depend on its batch. On the CPU it is bit-identical whether
    pairs run in parallel or one pair's rows do (per-row error sums, added in row order)."""
    I0, I1, _ = textured_pairs(4)
    together = tvl1(I0.to(device), I1.to(device), backend="native").cpu()
    threads = torch.get_num_threads()
    try:
        for k in range(4):
            alone = tvl1(I0[k : k + 1].to(device), I1[k : k + 1].to(device), backend="native").cpu()
            torch.set_num_threads(1)
            serial = tvl1(I0[k : k + 1].to(device), I1[k : k + 1].to(device), backend="native").cpu()
            torch.set_num_threads(threads)
            if device == "cpu":
                assert torch.equal(alone[0], together[k]) and torch.equal(serial[0], together[k])
            else:  # atomics make the error sums order-dependent in the last bits
                assert (alone[0] - together[k]).abs().max().item() < 1e-4
    finally:
        torch.set_num_threads(threads)


def test_input_forms_are_equivalent():
    I0, I1, _ = textured_pairs(2)
    reference = tvl1(I0, I1)
    torch.testing.assert_close(tvl1(I0[:, None], I1[:, None]), reference)  # [N, 1, H, W]
    torch.testing.assert_close(tvl1(I0.float() / 255, I1.float() / 255), reference, atol=1e-4, rtol=0)  # float in [0, 1]
    assert tvl1(I0[:0], I1[:0]).shape == (0, 2, 48, 56)


def test_opcheck_and_fake_kernel():
    I0, I1, _ = textured_pairs(2, size=(20, 24))
    a, b = prepare_images(I0, I1, TVL1Params())
    args = (a, b, 0.25, 0.15, 0.3, 0.0, 0.01, 0.8, 0.0, -0.75, 2, 1, 3, 1, 5, 16, 0, False, -1)
    torch.library.opcheck(torch.ops.fastmer.tvl1.default, args)


def test_pyramid_sizes_stop_at_min_size():
    assert pyramid_sizes(388, 584, TVL1Params()) == [(388, 584), (310, 467), (248, 374), (198, 299), (158, 239)]
    assert pyramid_sizes(128, 128, TVL1Params.ipol()) == [(128, 128), (64, 64), (32, 32), (16, 16)]
    assert pyramid_sizes(20, 100, TVL1Params()) == [(20, 100), (16, 80)]


# ------------------------------------------------------------------------------ bad input
def bad(I0, I1, match, params=None, exc=ValueError):
    with pytest.raises(exc, match=match):
        tvl1(I0, I1, params)


def test_bad_inputs_are_rejected_before_any_kernel():
    ok = torch.zeros(2, 32, 32, dtype=torch.uint8)
    bad(ok, torch.zeros(2, 32, 33, dtype=torch.uint8), r"I0 has shape \[2, 32, 32\] but I1 has \[2, 32, 33\]")
    bad(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), ok, r"expected I0 of shape \[N, H, W\] or \[N, 1, H, W\]")
    nan = torch.zeros(2, 32, 32)
    nan[1, 5, 5] = float("nan")
    bad(torch.zeros(2, 32, 32), nan, "I1 contains NaN")
    bad(torch.zeros(2, 8, 64, dtype=torch.uint8), torch.zeros(2, 8, 64, dtype=torch.uint8),
        r"8x64 are smaller than the coarsest pyramid level \(16x16 px\)")
    strided = torch.zeros(2, 32, 64, dtype=torch.uint8)[:, :, ::2]
    bad(strided, ok, "I0 must be contiguous")
    bad(ok, torch.zeros(2, 32, 32, dtype=torch.uint8, device="meta"), "I0 is on cpu but I1 on meta")
    bad(ok.to(torch.int32), ok.to(torch.int32), "I0 must be uint8 or float32")
    bad(ok, ok.float(), "I0 is torch.uint8 but I1 is torch.float32")
    bad(ok.numpy(), ok, "I0 must be a torch.Tensor", exc=TypeError)


@pytest.mark.parametrize(
    "field, value, match",
    [("tau", 0.0, "tau must be > 0"), ("median_size", 4, "median_size must be 1"), ("scale_step", 1.0, "scale_step"),
     ("pyramid", "gauss", "pyramid must be one of"), ("warps", 0, "warps must be >= 1"),
     ("normalize", "zscore", "normalize must be one of"), ("scheme", "jacobi", "scheme must be one of")],
)
def test_bad_parameters(field, value, match):
    with pytest.raises(ValueError, match=match):
        TVL1Params(**{field: value})


def test_native_op_checks_its_arguments_too():
    a = torch.zeros(1, 32, 32)
    with pytest.raises(RuntimeError, match="median_size must be 1"):
        torch.ops.fastmer.tvl1(a, a, 0.25, 0.15, 0.3, 0.0, 0.01, 0.8, 0.0, -0.75, 5, 5, 30, 10, 4, 16, 0, False, -1)
