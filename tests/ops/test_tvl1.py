"""TV-L1: accuracy on real pairs with ground truth, agreement between implementations, bad input."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from flowdata import DEGRADATIONS, degrade, epe, load_flow_pair

from fastmer.ops import TVL1Params, tvl1
from fastmer.ops.tvl1 import _cubic_sample, _downscale, prepare_images, pyramid_sizes


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


# The default preset is OpenCV's algorithm: its EPE must be OpenCV's, within 1%, on clean pairs
# and on blurred, noisy and fogged versions of them (where weak gradients make small
# differences in pyramid geometry or warp borders show: resizing to the size ratio instead of
# by the factor cost 2-3% on Sintel, replicated warp borders 1-2%).
OPENCV_CASES = [("rubberwhale", kind) for kind in DEGRADATIONS] + \
               [("sintel", kind) for kind in ("clean", "motion_blur", "blur_noise")]


@pytest.mark.parametrize("pair, degradation", OPENCV_CASES)
def test_opencv_preset_within_1_percent_of_opencv(shared_dir, device, pair, degradation):
    I0, I1, truth, valid = load_flow_pair(shared_dir, pair)
    I0, I1 = degrade(I0, I1, degradation)
    ours = tvl1(torch.from_numpy(I0)[None].to(device), torch.from_numpy(I1)[None].to(device), backend="native")
    theirs = cv2.optflow.DualTVL1OpticalFlow_create().calc(I0, I1, None)
    mine, reference = epe(ours[0].cpu().numpy(), truth, valid), epe(theirs, truth, valid)
    assert mine <= 1.01 * reference, f"{pair}/{degradation}: EPE {mine:.4f} vs OpenCV {reference:.4f}"


def test_opencv_pyramid_levels_are_cv_resize_by_the_factor():
    """Stage check against OpenCV: levels are cv::resize(fx=fy=0.8) — sizes and pixels."""
    rng = np.random.default_rng(1)
    for h, w in [(128, 128), (97, 131), (436, 1024), (21, 45)]:
        image = rng.random((h, w), dtype=np.float32) * 255
        expected = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        (h1, w1) = pyramid_sizes(h, w, TVL1Params(min_size=4))[1]
        assert (h1, w1) == expected.shape
        ours = _downscale(torch.from_numpy(image)[None], h1, w1, TVL1Params())[0].numpy()
        np.testing.assert_allclose(ours, expected, atol=2e-3)
    # cv::resize rounds half to even: 0.5 * 45 = 22.5 -> 22 (IPOL's zoom rounds it up)
    assert pyramid_sizes(45, 45, TVL1Params(scale_step=0.5, min_size=4))[1] == (22, 22)
    assert pyramid_sizes(45, 45, TVL1Params.ipol(min_size=4))[1] == (23, 23)


def test_zero_warp_border_is_cv_remap_constant_border():
    """Stage check: warping with warp_border="zero" equals cv::remap(INTER_CUBIC, BORDER_CONSTANT)
    at positions on OpenCV's 1/32-pixel grid (where its fixed-point maps are exact), inside,
    across and beyond the border; "replicate" equals BORDER_REPLICATE."""
    rng = np.random.default_rng(2)
    image = (rng.random((24, 30), dtype=np.float32) * 255).astype(np.float32)
    ys, xs = np.mgrid[0:24, 0:30].astype(np.float32)
    shift_x = np.round(rng.uniform(-6, 6, xs.shape) * 32) / 32
    shift_y = np.round(rng.uniform(-6, 6, ys.shape) * 32) / 32
    map_x, map_y = (xs + shift_x).astype(np.float32), (ys + shift_y).astype(np.float32)
    assert ((map_x < 0) | (map_x > 29) | (map_y < 0) | (map_y > 23)).mean() > 0.2, "precondition: many samples outside"
    for border, cv_border in (("zero", cv2.BORDER_CONSTANT), ("replicate", cv2.BORDER_REPLICATE)):
        expected = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv_border)
        ours = _cubic_sample([torch.from_numpy(image)[None]], torch.from_numpy(map_x)[None], torch.from_numpy(map_y)[None],
                             -0.75, border)[0][0].numpy()
        np.testing.assert_allclose(ours, expected, atol=0.05, err_msg=border)


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
    "opencv+replicate": TVL1Params(warp_border="replicate"),
    "ipol": TVL1Params.ipol(),
    "gamma+median3": TVL1Params(gamma=0.3, median_size=3, warps=3),
}


def comparable(params: TVL1Params) -> tuple[TVL1Params, int]:
    """(params, margin) under which two implementations of the same iteration must agree.

    With OpenCV's zero warp border, a pixel whose match leaves the image is pulled by the fake
    edge of the zero padding and held by smoothing alone: its flow is chaotic in the float
    rounding (pixels apart between two summation orders, OpenCV's own included), and so is
    the iteration at which a level's float error sum stops. So: a fixed iteration count, away
    from the border. The stopping rule is shared with "opencv+replicate", compared whole.
    """
    if params.warp_border == "zero":
        return replace(params, epsilon=1e-9, inner_iterations=10, outer_iterations=3), 6
    return params, 0


def crop(flow: torch.Tensor, margin: int) -> torch.Tensor:
    h, w = flow.shape[-2:]
    return flow[..., margin:h - margin, margin:w - margin]


@pytest.mark.parametrize("name", list(PARAMS))
def test_native_matches_pytorch_reference(device, name):
    I0, I1, _ = textured_pairs()
    params, margin = comparable(PARAMS[name])
    native = tvl1(I0.to(device), I1.to(device), params, backend="native").cpu()
    reference = tvl1(I0, I1, params, backend="reference")
    diff = crop(native - reference, margin).abs()
    assert diff.mean().item() < 1e-3
    assert diff.max().item() < 0.05


@pytest.mark.parametrize("name", list(PARAMS))
def test_cpu_stencil_scheme_matches_sweep(name):
    """The CUDA kernels' Jacobi stencil, run on the CPU (its CI twin), equals the row sweep."""
    I0, I1, _ = textured_pairs()
    params, margin = comparable(PARAMS[name])
    sweep = tvl1(I0, I1, params, backend="native")
    stencil = tvl1(I0, I1, replace(params, scheme="stencil"), backend="native")
    assert crop(sweep - stencil, margin).abs().mean().item() < 1e-4


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
            params, margin = comparable(params)
            cpu = tvl1(a, b, params, backend="native")
            gpu = tvl1(a.cuda(), b.cuda(), params, backend="native").cpu()
            assert crop(cpu - gpu, margin).abs().mean().item() <= 0.01


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
    args = (a, b, 0.25, 0.15, 0.3, 0.0, 0.01, 0.8, 0.0, -0.75, 2, 1, 3, 1, 5, 16, 0, 1, False, -1)
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
     ("normalize", "zscore", "normalize must be one of"), ("scheme", "jacobi", "scheme must be one of"),
     ("warp_border", "reflect", "warp_border must be one of")],
)
def test_bad_parameters(field, value, match):
    with pytest.raises(ValueError, match=match):
        TVL1Params(**{field: value})


def test_native_op_checks_its_arguments_too():
    a = torch.zeros(1, 32, 32)
    with pytest.raises(RuntimeError, match="median_size must be 1"):
        torch.ops.fastmer.tvl1(a, a, 0.25, 0.15, 0.3, 0.0, 0.01, 0.8, 0.0, -0.75, 5, 5, 30, 10, 4, 16, 0, 1, False, -1)
    with pytest.raises(RuntimeError, match="warp_border must be 0"):
        torch.ops.fastmer.tvl1(a, a, 0.25, 0.15, 0.3, 0.0, 0.01, 0.8, 0.0, -0.75, 5, 5, 30, 10, 5, 16, 0, 2, False, -1)


def test_avx2_and_baseline_builds_give_identical_flow(monkeypatch):
    """The CPU kernel is compiled twice (baseline x86-64 and AVX2/FMA/F16C without FP
    contraction) and picked at run time: both must compute bit-identical flow, in every
    scheme and with gamma, so a user's features never depend on their CPU's ISA."""
    from fastmer.ops import _native

    if _native.cpu_capability() != "avx2":
        pytest.skip(f"this CPU or build runs the {_native.cpu_capability()!r} kernel only: nothing to compare")
    I0, I1, _ = textured_pairs(3)
    for params in (TVL1Params(), TVL1Params.ipol(), TVL1Params(gamma=0.3, median_size=3, warps=3),
                   TVL1Params(scheme="stencil"), TVL1Params(half_state=True)):
        avx2 = tvl1(I0, I1, params, backend="native")
        monkeypatch.setenv("FASTMER_CPU_CAPABILITY", "base")
        assert _native.cpu_capability() == "base"
        base = tvl1(I0, I1, params, backend="native")
        monkeypatch.delenv("FASTMER_CPU_CAPABILITY")
        assert torch.equal(avx2, base), f"{params}: max diff {(avx2 - base).abs().max().item():.3g}"
