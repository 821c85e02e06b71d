import math

import pytest
import torch

from fastmer.motion.representations import REPRESENTATIONS, flow_features, phase_flow_features
from fastmer.ops import optical_strain
from fastmer.train.augment import (
    DI_PHASES,
    Augment,
    affine,
    channel_kind,
    dual_phase_di,
    hflip,
    random_affine,
)

FLOW = ("u", "v", "magnitude", "strain")


def smooth_flow(n=2, h=24, w=24, seed=0, dtype=torch.float64):
    """A smooth random flow (sum of a few low-frequency sinusoids), ``(n, 2, h, w)``."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    out = torch.zeros(n, 2, h, w, dtype=dtype)
    for _ in range(3):
        fx, fy, phase = (torch.rand(3, generator=g, dtype=dtype) * torch.tensor([0.4, 0.4, 6.0], dtype=dtype)).tolist()
        amp = torch.randn(n, 2, 1, 1, generator=g, dtype=dtype)
        out += amp * torch.sin(fx * xs + fy * ys + phase)
    return out


def interior(x, margin=1):
    return x[..., margin:-margin, margin:-margin]


def test_every_stored_channel_has_a_kind():
    for name, channels in REPRESENTATIONS.items():
        if name not in MAPS:  # block histograms: never augmented (the SVM refuses it)
            continue
        kinds = [channel_kind(c) for c in channels]
        us = [k.pair for k in kinds if k.role == "u"]
        assert sorted(us) == sorted(k.pair for k in kinds if k.role == "v"), name  # every u has its v
    assert channel_kind("u") == ("u", True, "") and channel_kind("v2") == ("v", True, "2")
    assert channel_kind("u_cof").pixels is False and channel_kind("m_cof").role == "scalar"
    assert channel_kind("m_oa").role == "magnitude" and channel_kind("strain").role == "scalar"
    assert channel_kind("di_ao").role == "scalar"
    for bad in ("flow_x", "uv", "rgb"):
        with pytest.raises(ValueError, match="unknown channel"):
            channel_kind(bad)


MAPS = sorted(name for name in REPRESENTATIONS if name != "lbptop")  # lbptop: histograms, not maps


@pytest.mark.parametrize("representation", MAPS)
def test_hflip_twice_is_identity(representation):
    channels = REPRESENTATIONS[representation]
    x = torch.randn(3, len(channels), 9, 12)
    assert torch.equal(hflip(hflip(x, channels), channels), x)


def test_hflip_of_a_known_motion():
    # rightward motion (u = +1) in the left half of the image
    flow = torch.zeros(1, 2, 6, 8)
    flow[0, 0, :, :4] = 1.0
    flow[0, 1, :3, :] = 0.5  # some downward motion in the top half
    out = hflip(flow, ("u", "v"))
    expected_u = torch.zeros(6, 8)
    expected_u[:, 4:] = -1.0  # leftward, in the right half
    assert torch.equal(out[0, 0], expected_u)
    assert torch.equal(out[0, 1], flow[0, 1])  # v is symmetric left-right here, unchanged
    with pytest.raises(ValueError, match="3 names"):
        hflip(flow, ("u", "v", "strain"))


def test_magnitude_and_strain_commute_with_hflip():
    flow = smooth_flow(dtype=torch.float32)
    features = flow_features(flow)  # u, v, magnitude, strain
    flipped_flow = hflip(flow, ("u", "v"))
    torch.testing.assert_close(interior(flow_features(flipped_flow)), interior(hflip(features, FLOW)), atol=1e-5, rtol=0)
    # with central/one-sided differences it holds on the border too
    torch.testing.assert_close(flow_features(flipped_flow), hflip(features, FLOW), atol=1e-5, rtol=0)
    # both phases
    second = smooth_flow(seed=1, dtype=torch.float32)
    phases = phase_flow_features(flow, second)
    channels = REPRESENTATIONS["flow_phases"]
    torch.testing.assert_close(
        phase_flow_features(flipped_flow, hflip(second, ("u", "v"))), hflip(phases, channels), atol=1e-5, rtol=0
    )


def test_rot90_of_a_constant_rightward_flow_points_up():
    flow = torch.zeros(2, 2, 10, 10)
    flow[:, 0] = 1.0  # u = 1, v = 0: rightward
    out = affine(flow, ("u", "v"), 90.0)
    # counter-clockwise on screen, y down: rightward becomes upward, v = -1
    torch.testing.assert_close(out[:, 0], torch.zeros(2, 10, 10), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 1], -torch.ones(2, 10, 10), atol=1e-6, rtol=0)
    torch.testing.assert_close(affine(flow, ("u", "v"), -90.0)[:, 1], torch.ones(2, 10, 10), atol=1e-6, rtol=0)


def test_rotation_direction_matches_the_image_rotation():
    # an image turned 90° counter-clockwise: a bright pixel right of the centre moves above it
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 7] = 1.0
    rotated = affine(image, ("di",), 90.0)
    assert rotated[0, 0].argmax().item() == 1 * 9 + 4  # row 1 (above the centre row 4), column 4
    torch.testing.assert_close(rotated, torch.rot90(image, 1, dims=(-2, -1)), atol=1e-6, rtol=0)
    # frames moving right by one pixel, rotated like the image, move up by one pixel:
    # the rotated flow of the rotated frames is (0, -1), as affine() gives for (1, 0)
    frame = torch.rand(1, 1, 9, 9)
    moved = torch.roll(frame, 1, dims=-1)  # I2(x, y) = I1(x - 1, y): flow u = +1
    frame_r, moved_r = (torch.rot90(f, 1, dims=(-2, -1)) for f in (frame, moved))
    assert torch.equal(moved_r, torch.roll(frame_r, -1, dims=-2))  # I2r(x, y) = I1r(x, y + 1): flow v = -1


def test_rot90_of_a_flow_field_and_its_features():
    flow = smooth_flow(h=20, w=20, dtype=torch.float32)
    features = flow_features(flow)
    out = affine(features, FLOW, 90.0)
    rot = lambda t: torch.rot90(t, 1, dims=(-2, -1))  # noqa: E731
    # vectors turned by R(90°) = [[0, 1], [-1, 0]]: u' = v, v' = -u at the rotated position
    torch.testing.assert_close(out[:, 0], rot(features[:, 1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], -rot(features[:, 0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 2:], rot(features[:, 2:]), atol=1e-5, rtol=0)
    # magnitude and strain of the rotated flow = rotated magnitude and strain
    torch.testing.assert_close(interior(flow_features(out[:, :2])), interior(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("degrees", "scale"), [(30.0, 1.0), (-17.0, 1.1), (5.0, 0.93), (0.0, 1.05)])
def test_linear_flow_rotates_and_scales_exactly(degrees, scale):
    # f(p) = J p (p in pixels from the centre). The transformed frames have the flow
    # f'(p') = A f(A^-1 p') = R J R^T p' with A = s R: bilinear sampling is exact for it.
    h, w = 31, 45  # not square: the aspect ratio must be handled
    jac = torch.tensor([[0.02, -0.01], [0.015, 0.03]], dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) - (h - 1) / 2,
                            torch.arange(w, dtype=torch.float64) - (w - 1) / 2, indexing="ij")
    p = torch.stack([xs, ys])  # (2, h, w)
    flow = torch.einsum("ij,jhw->ihw", jac, p).unsqueeze(0)
    features = flow_features(flow)
    out = affine(features, FLOW, degrees, scale)
    t = math.radians(degrees)
    rot = torch.tensor([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]], dtype=torch.float64)
    expected = torch.einsum("ij,jhw->ihw", rot @ jac @ rot.T, p)
    # pixels whose source lies well inside the image
    src = torch.einsum("ij,jhw->ihw", rot.T / scale, p)
    inside = (src[0].abs() < (w - 1) / 2 - 1) & (src[1].abs() < (h - 1) / 2 - 1)
    assert inside.sum() > 0.5 * h * w
    torch.testing.assert_close(out[0, :2][:, inside], expected[:, inside], atol=1e-9, rtol=0)
    # strain of a linear field is constant and invariant to rotation and scale
    strain = features[0, 3, h // 2, w // 2]
    torch.testing.assert_close(out[0, 3][inside], strain.expand(int(inside.sum())), atol=1e-12, rtol=0)
    # pixels whose neighbours are inside too (central differences)
    core = interior(inside) & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
    got = interior(optical_strain(out[:, :2])[0, 0])[core]
    torch.testing.assert_close(got, strain.expand(int(core.sum())), atol=1e-9, rtol=0)
    # the magnitude channel scales with the image: |f'| = s |f| at the source point
    # (bilinear sampling of |J p| is exact but at its cone tip near the centre)
    magnitude = torch.hypot(*expected)
    far = inside & (magnitude > 0.1)
    torch.testing.assert_close(out[0, 2][far], magnitude[far], atol=0, rtol=2e-2)  # s - 1 is 5-10 %


def test_scale_units():
    x = torch.ones(1, 7, 6, 6)
    channels = ("u", "v", "magnitude", "strain", "u_cof", "v_cof", "m_cof")
    x[:, 1] = 0.0
    x[:, 5] = 0.0
    out = affine(x, channels, 0.0, 1.1)
    got = out.mean(dim=(2, 3))[0].tolist()
    assert got == pytest.approx([1.1, 0.0, 1.1, 1.0, 1.0, 0.0, 1.0], abs=1e-6)


def test_unpaired_components_cannot_rotate():
    x = torch.randn(2, 2, 8, 8)
    with pytest.raises(ValueError, match="partner"):
        affine(x, ("u", "strain"), 10.0)
    with pytest.raises(ValueError, match="partner"):
        Augment(("u", "strain"))
    assert Augment(("u", "strain"), degrees=0, scale=0)(x).shape == x.shape
    with pytest.raises(ValueError, match="scale"):
        affine(torch.randn(1, 2, 4, 4), ("u", "v"), 0.0, 0.0)


def test_random_affine_and_augment_are_deterministic():
    x = torch.randn(8, 4, 16, 16)
    a = random_affine(x, FLOW, generator=torch.Generator().manual_seed(3))
    b = random_affine(x, FLOW, generator=torch.Generator().manual_seed(3))
    c = random_affine(x, FLOW, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    aug1, aug2 = Augment(FLOW, seed=11), Augment(FLOW, seed=11)
    for _ in range(3):
        assert torch.equal(aug1(x), aug2(x))
    assert not torch.equal(Augment(FLOW, seed=12)(x), Augment(FLOW, seed=11)(x))
    # no rotation, no scale (max 0): identity
    torch.testing.assert_close(random_affine(x, FLOW, max_degrees=0, max_scale=0), x)


def test_augment_flips_per_sample_and_normalises():
    x = smooth_flow(n=6, dtype=torch.float32)
    features = flow_features(x)
    always = Augment(FLOW, p_flip=1.0, degrees=0, scale=0)
    assert torch.equal(always(features), hflip(features, FLOW))
    assert torch.equal(Augment(FLOW, p_flip=0.0, degrees=0, scale=0)(features), features)
    half = Augment(FLOW, p_flip=0.5, degrees=0, scale=0, seed=0)(features)
    flipped = [torch.equal(half[i], hflip(features, FLOW)[i]) for i in range(6)]
    kept = [torch.equal(half[i], features[i]) for i in range(6)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    out = Augment(FLOW, minmax=True, seed=1)(features)
    assert out.amin().item() >= 0 and out.amax().item() <= 1
    torch.testing.assert_close(out.amax(dim=(2, 3)), torch.ones(6, 4), atol=1e-6, rtol=0)


def test_dual_phase_di():
    n, labels = 6, torch.tensor([0, 1, 2, 0, 1, 2])
    whole = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4)
    phases = torch.cat([whole + 100, whole + 200], dim=1)  # di_oa, di_ao
    train, test = [4, 0, 2], [1, 3, 5]
    s = dual_phase_di(whole, phases, labels, train, test_index=test)
    assert s.x.shape == (9, 1, 4, 4)
    assert s.source.tolist() == [4, 0, 2] * 3
    assert s.phase.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert s.y.tolist() == [labels[i].item() for i in s.source.tolist()]
    assert s.x[:, 0, 0, 0].tolist() == [4, 0, 2, 104, 100, 102, 204, 200, 202]
    assert not set(s.source.tolist()) & set(test)
    assert not (set(s.x[:, 0, 0, 0].tolist()) & {float(i + o) for i in test for o in (0, 100, 200)})
    assert DI_PHASES[s.phase[3]] == "onset_apex"
    # phases only; (N, 2, C, H, W) input
    s2 = dual_phase_di(whole, phases.unsqueeze(2), labels, train, include_whole=False)
    assert s2.x.shape == (6, 1, 4, 4) and s2.phase.tolist() == [1, 1, 1, 2, 2, 2]
    torch.testing.assert_close(s2.x, s.x[3:])
    # multi-channel DIs: C onset→apex channels then C apex→offset
    rgb = torch.randn(n, 3, 4, 4)
    rgb_phases = torch.randn(n, 6, 4, 4)
    s3 = dual_phase_di(rgb, rgb_phases, labels, [1])
    torch.testing.assert_close(s3.x, torch.stack([rgb[1], rgb_phases[1, :3], rgb_phases[1, 3:]]))


def test_dual_phase_di_refuses_test_clips_and_subjects():
    whole, phases, labels = torch.zeros(4, 1, 2, 2), torch.zeros(4, 2, 2, 2), [0, 1, 0, 1]
    with pytest.raises(ValueError, match="both train_index and test_index"):
        dual_phase_di(whole, phases, labels, [0, 1], test_index=[1, 2])
    with pytest.raises(ValueError, match=r"subject\(s\) \['s1'\]"):
        dual_phase_di(whole, phases, labels, [0, 1], test_index=[2, 3], subjects=["s1", "s2", "s1", "s3"])
    dual_phase_di(whole, phases, labels, [0, 1], test_index=[2, 3], subjects=["s1", "s1", "s2", "s2"])
    with pytest.raises(ValueError, match="repeated"):
        dual_phase_di(whole, phases, labels, [0, 0])
    with pytest.raises(ValueError, match="lie in"):
        dual_phase_di(whole, phases, labels, [4])
    with pytest.raises(ValueError, match="phases must have shape"):
        dual_phase_di(whole, torch.zeros(4, 3, 2, 2), labels, [0])


def test_stacked_view_channels_transform_per_view():
    """Views stacked as channels ("left/u_oa"): each view's u pairs with that view's v."""
    assert channel_kind("left/u_oa").pair == "left/_oa" and channel_kind("right/v_oa").pair == "right/_oa"
    assert channel_kind("right/m_ao").role == "magnitude" and channel_kind("left/di").role == "scalar"
    flow = smooth_flow(h=20, w=20, dtype=torch.float32)
    other = torch.flip(flow, dims=(1,))  # another field for the right view
    names = ("left/u_oa", "left/v_oa", "right/u_oa", "right/v_oa")
    stacked = torch.cat([flow, other], dim=1)
    out = affine(stacked, names, 90.0)
    torch.testing.assert_close(out[:, :2], affine(flow, ("u", "v"), 90.0))
    torch.testing.assert_close(out[:, 2:], affine(other, ("u", "v"), 90.0))
    torch.testing.assert_close(hflip(stacked, names)[:, 2:], hflip(other, ("u", "v")))
    with pytest.raises(ValueError, match="unpaired|partner"):
        affine(stacked[:, 1:], names[1:], 30.0)
