"""Motion representations against float64 references written here from SPEC's equations."""

import math

import numpy as np
import pytest
import torch

from fastmer.config import FLOW_CHANNELS
from fastmer.motion import representations as R
from fastmer.motion.representations import (
    COF_CHANNELS,
    MM_COF_CHANNELS,
    PHASE_FLOW_CHANNELS,
    REPRESENTATION_INFO,
    REPRESENTATIONS,
    cof,
    combined_magnitude,
    dynamic_images,
    flow_features,
    mesti,
    minmax_normalize,
    mm_cof,
    motion_intensity,
    motion_intensity_dynamic_images,
    motion_intensity_order,
    phase_dynamic_images,
    phase_flow_features,
    temporal_ranked_dynamic_images,
)
from fastmer.ops import flow_magnitude_reference, optical_strain_reference

EPS = 1e-8


# --------------------------------------------------------------------------- references
def alpha_closed_form(T: int) -> np.ndarray:
    """α_t = 2(T − t + 1) − (T + 1)(H_T − H_{t−1}), t = 1..T; T = 1 → α_1 = 1 (SPEC §1.4)."""
    if T == 1:
        return np.ones(1)
    H = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, T + 1))])
    return np.array([2 * (T - t + 1) - (T + 1) * (H[T] - H[t - 1]) for t in range(1, T + 1)])


def ref_di(frames: np.ndarray) -> np.ndarray:
    """(T, C, H, W) -> (C, H, W): Σ_t α_t I_t, float64."""
    alpha = alpha_closed_form(frames.shape[0])
    return np.tensordot(alpha, frames.astype(np.float64), axes=(0, 0))


def ref_minmax(image: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Per-channel min–max of (C, H, W)."""
    lo = image.min(axis=(-2, -1), keepdims=True)
    hi = image.max(axis=(-2, -1), keepdims=True)
    return (image - lo) / (hi - lo + eps)


def as_np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def random_clips(lengths, channels=None, size=(6, 7), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    shape = (channels,) if channels else ()
    return [torch.rand((t, *shape, *size), generator=g, dtype=dtype) * 255 for t in lengths]


def with_channel(clip: torch.Tensor) -> np.ndarray:
    arr = as_np(clip)
    return arr[:, None] if arr.ndim == 3 else arr


# --------------------------------------------------------------------------- dynamic images
@pytest.mark.parametrize("channels", [None, 3])
def test_dynamic_images_match_closed_form_for_mixed_lengths(channels):
    lengths = [1, 2, 3, 6, 9, 6, 2]
    clips = random_clips(lengths, channels)
    got = dynamic_images(clips, normalize=None)
    c = channels or 1
    assert got.shape == (len(lengths), c, 6, 7) and got.dtype == torch.float64
    for i, clip in enumerate(clips):
        np.testing.assert_allclose(as_np(got[i]), ref_di(with_channel(clip)), rtol=1e-10, atol=1e-8)
    normalised = dynamic_images(clips)  # default: min–max per clip and channel
    for i, clip in enumerate(clips):
        np.testing.assert_allclose(as_np(normalised[i]), ref_minmax(ref_di(with_channel(clip))), atol=1e-9)
    assert normalised.min() >= 0 and normalised.max() <= 1


def test_six_frame_weights_are_bilens():
    # unit impulses: the DI of frame t = e_t reads off α_t; SPEC §1.4 quotes N = 6
    clip = torch.eye(6, dtype=torch.float64).view(6, 1, 6)
    got = dynamic_images([clip], normalize=None).flatten()
    np.testing.assert_allclose(as_np(got), [-5.15, -0.15, 1.35, 1.68333, 1.43333, 0.83333], atol=1e-5)


def test_single_frame_modes():
    clip = torch.rand(1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(dynamic_images([clip], normalize=None)[0, 0], clip[0])
    assert dynamic_images([clip], normalize=None, single_frame="zeros").abs().max() == 0


def test_padded_input_ignores_padding_and_equals_list():
    lengths = [4, 7, 2]
    clips = random_clips(lengths)
    padded = torch.full((3, 7, 6, 7), float("nan"), dtype=torch.float64)
    for i, clip in enumerate(clips):
        padded[i, : clip.shape[0]] = clip
    from_padded = dynamic_images(padded, lengths=torch.tensor(lengths), normalize=None)
    assert torch.isfinite(from_padded).all()
    torch.testing.assert_close(from_padded, dynamic_images(clips, normalize=None), rtol=0, atol=0)
    # 5-D padded (N, T, C, H, W)
    torch.testing.assert_close(dynamic_images(padded.unsqueeze(2), lengths=lengths, normalize=None), from_padded, rtol=0, atol=0)


def test_batch_invariance_float32():
    clips = random_clips([5, 3, 8, 5, 1], dtype=torch.float32, seed=3)
    batch = dynamic_images(clips)
    for i, clip in enumerate(clips):
        assert torch.equal(dynamic_images([clip])[0], batch[i]), i
    # the same clip among other lengths / other clips
    reordered = dynamic_images([clips[2], clips[0], clips[4]])
    assert torch.equal(reordered[0], batch[2]) and torch.equal(reordered[1], batch[0]) and torch.equal(reordered[2], batch[4])


def test_trdi_is_chronological_rank_pooling():
    clips = random_clips([5, 3], seed=4)
    got = temporal_ranked_dynamic_images(clips, normalize=None)
    for i, clip in enumerate(clips):
        np.testing.assert_allclose(as_np(got[i]), ref_di(with_channel(clip)), rtol=1e-10, atol=1e-8)
    # time order matters: reversing the clip changes the TRDI
    assert not torch.allclose(temporal_ranked_dynamic_images([clips[0].flip(0)], normalize=None)[0], got[0])


def test_phase_dynamic_images_split_at_apex_and_share_it():
    clips = random_clips([6, 5, 4, 3], channels=2, seed=1)
    apex = [3, 0, 3, 1]  # includes apex at onset and at offset (1-frame phases)
    got = phase_dynamic_images(clips, apex, normalize=None)
    assert got.shape == (4, 4, 6, 7)
    for i, (clip, a) in enumerate(zip(clips, apex)):
        arr = with_channel(clip)
        np.testing.assert_allclose(as_np(got[i, :2]), ref_di(arr[: a + 1]), rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(as_np(got[i, 2:]), ref_di(arr[a:]), rtol=1e-10, atol=1e-8)
    normalised = phase_dynamic_images(clips, torch.tensor(apex))
    for i, (clip, a) in enumerate(zip(clips, apex)):
        arr = with_channel(clip)
        np.testing.assert_allclose(as_np(normalised[i, 2:]), ref_minmax(ref_di(arr[a:])), atol=1e-9)


def test_mesti_is_apex_centred_rank_pooling():
    clips = random_clips([7, 4, 5], seed=2)
    apex = [2, 3, 0]
    got = mesti(clips, apex, normalize=None)
    for i, (clip, a) in enumerate(zip(clips, apex)):
        arr = with_channel(clip)
        expected = ref_di(arr[: a + 1]) + ref_di(arr[a:][::-1])  # second half ranked offset→apex
        np.testing.assert_allclose(as_np(got[i]), expected, rtol=1e-10, atol=1e-8)
    # a symmetric rise-and-fall clip gives twice the onset→apex DI
    ramp = torch.tensor([0.0, 1.0, 4.0, 1.0, 0.0], dtype=torch.float64).view(5, 1, 1) * torch.rand(1, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(mesti([ramp], [2], normalize=None), 2 * dynamic_images([ramp[:3]], normalize=None))


def test_mesti_triangular_weights():
    clips = random_clips([7, 4, 1], seed=5)
    apex = [2, 3, 0]
    got = mesti(clips, apex, weighting="triangular", normalize=None)
    for i, (clip, a) in enumerate(zip(clips, apex)):
        arr = with_channel(clip)
        t = arr.shape[0]
        span = max(a, t - 1 - a)
        w = np.zeros(t) if span == 0 else 1 - np.abs(np.arange(t) - a) / span
        np.testing.assert_allclose(as_np(got[i]), np.tensordot(w, arr - arr[:1], axes=(0, 0)), rtol=1e-10, atol=1e-8)


# --------------------------------------------------------------------------- motion intensity
def test_motion_intensity_is_mean_abs_difference_from_onset():
    clips = random_clips([5, 2, 1], channels=2, seed=6)
    curves = motion_intensity(clips)
    for clip, curve in zip(clips, curves):
        arr = with_channel(clip)
        expected = np.abs(arr - arr[:1]).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(as_np(curve), expected, rtol=1e-5)
    assert curves[2].tolist() == [0.0]


def shuffled_intensity_clip(seed: int, T: int = 8):
    """Onset I_0 plus frames I_0 + s_t P (P >= 0), the s_t distinct and shuffled in time."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 5, 6, generator=g, dtype=torch.float64) * 100
    pattern = torch.rand(1, 5, 6, generator=g, dtype=torch.float64) + 0.1
    strengths = torch.cat([torch.zeros(1, dtype=torch.float64), torch.randperm(T - 1, generator=g).double() + 1])
    return base + strengths.view(T, 1, 1) * pattern, strengths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_midi_reorders_frames_by_motion_intensity(seed):
    clip, strengths = shuffled_intensity_clip(seed)
    assert strengths.tolist() != sorted(strengths.tolist())  # really shuffled
    order = motion_intensity_order([clip])[0]
    assert order.tolist() == np.argsort(strengths.numpy(), kind="stable").tolist()
    sorted_clip = clip[np.argsort(strengths.numpy())]
    got = motion_intensity_dynamic_images([clip], normalize=None)
    np.testing.assert_allclose(as_np(got[0]), ref_di(with_channel(sorted_clip)), rtol=1e-10, atol=1e-8)
    # MIDI of the shuffled clip = TRDI of the clip in intensity order, and != TRDI of the shuffled one
    torch.testing.assert_close(got, temporal_ranked_dynamic_images([sorted_clip], normalize=None))
    assert not torch.allclose(got, temporal_ranked_dynamic_images([clip], normalize=None))


def test_midi_batch_with_padding_and_given_intensity():
    clip_a, s_a = shuffled_intensity_clip(3, T=6)
    clip_b, s_b = shuffled_intensity_clip(4, T=4)
    padded = torch.zeros(2, 6, 5, 6, dtype=torch.float64)
    padded[0], padded[1, :4] = clip_a, clip_b
    both = motion_intensity_dynamic_images(padded, lengths=[6, 4], normalize=None)
    torch.testing.assert_close(both[1], motion_intensity_dynamic_images([clip_b], normalize=None)[0])
    # intensity given explicitly (e.g. flow magnitude): reversed strengths reverse the order
    given = motion_intensity_dynamic_images([clip_a], intensity=[-s_a], normalize=None)
    expected = ref_di(with_channel(clip_a[np.argsort(-s_a.numpy(), kind="stable")]))
    np.testing.assert_allclose(as_np(given[0]), expected, rtol=1e-10, atol=1e-8)


# --------------------------------------------------------------------------- flow representations
def random_flows(n=3, size=(9, 11), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 2, *size, generator=g, dtype=dtype) * 2, torch.randn(n, 2, *size, generator=g, dtype=dtype))


def test_phase_flow_features_match_references():
    oa, ao = random_flows()
    got = phase_flow_features(oa, ao)
    assert got.shape == (3, 8, 9, 11) and len(PHASE_FLOW_CHANNELS) == 8
    expected = torch.cat(
        [oa, flow_magnitude_reference(oa), optical_strain_reference(oa), ao, flow_magnitude_reference(ao), optical_strain_reference(ao)],
        dim=1,
    )
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert PHASE_FLOW_CHANNELS[2] == "m_oa" and PHASE_FLOW_CHANNELS[7] == "s_ao"


def test_combined_magnitude_on_known_magnitudes():
    # phase 1: (3a, 4a) with a = 0, 1, 2 -> M1 = 0, 5, 10 -> M1n = 0, .5, 1
    a = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64).view(1, 1, 1, 3)
    oa = torch.cat([3 * a, 4 * a], dim=1)
    # phase 2: M2 = 6, 2, 4 (v only, negative) -> M2n = 1, 0, .5
    ao = torch.cat([torch.zeros_like(a), -torch.tensor([6.0, 2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 3)], dim=1)
    got = combined_magnitude(oa, ao, eps=0)
    np.testing.assert_allclose(as_np(got).ravel(), [0.4, 0.6 * 0.5, 0.6 + 0.2], rtol=1e-12)
    got = combined_magnitude(oa, ao, theta1=0.3, theta2=0.7, eps=0)
    np.testing.assert_allclose(as_np(got).ravel(), [0.7, 0.15, 0.3 + 0.35], rtol=1e-12)
    # SPEC's ε = 1e-8 in the denominator by default
    np.testing.assert_allclose(as_np(combined_magnitude(oa, ao)).ravel()[2], 0.6 * 10 / (10 + EPS) + 0.4 * 2 / (4 + EPS), rtol=1e-14)


def ref_cof(oa, ao, t1, t2, direction, eps=EPS):
    oa, ao = as_np(oa), as_np(ao)
    out = []
    for f1, f2 in zip(oa, ao):
        m1, m2 = np.hypot(f1[0], f1[1]), np.hypot(f2[0], f2[1])
        mc = t1 * (m1 - m1.min()) / (m1.max() - m1.min() + eps) + t2 * (m2 - m2.min()) / (m2.max() - m2.min() + eps)
        s1, s2 = f1 / (m1.max() + eps), f2 / (m2.max() + eps)
        uv = t1 * s1 - t2 * s2 if direction == "flip" else s1
        out.append(np.concatenate([uv, mc[None]]))
    return np.stack(out)


@pytest.mark.parametrize(("t1", "t2", "direction"), [(0.6, 0.4, "flip"), (0.3, 0.7, "flip"), (0.5, 0.5, "onset_apex")])
def test_cof_matches_reference(t1, t2, direction):
    oa, ao = random_flows(seed=1)
    got = cof(oa, ao, theta1=t1, theta2=t2, direction=direction)
    assert got.shape == (3, len(COF_CHANNELS), 9, 11)
    np.testing.assert_allclose(as_np(got), ref_cof(oa, ao, t1, t2, direction), rtol=1e-10, atol=1e-12)


def test_cof_defaults_and_return_motion_adds_up():
    oa, _ = random_flows(seed=2)
    got = cof(oa, -0.5 * oa)  # apex→offset goes back: sign flip makes the phases add
    np.testing.assert_allclose(as_np(got), ref_cof(oa, -0.5 * oa, 0.6, 0.4, "flip"), rtol=1e-10, atol=1e-12)
    flow = as_np(oa)
    peak = np.hypot(flow[:, 0], flow[:, 1]).max(axis=(1, 2))[:, None, None, None]
    np.testing.assert_allclose(as_np(got[:, :2]), flow / peak, rtol=1e-6)  # 0.6 ũ1 + 0.4 ũ1


@pytest.mark.parametrize(("modulation", "tau"), [("hard", 0.2), ("hard", 0.5), ("soft", 0.2)])
def test_mm_cof_matches_reference(modulation, tau):
    oa, ao = random_flows(seed=3)
    got = mm_cof(oa, ao, modulation=modulation, tau=tau)
    ref = ref_cof(oa, ao, 0.6, 0.4, "flip")
    gate = (ref[:, 2:] >= tau).astype(float) if modulation == "hard" else ref[:, 2:]
    np.testing.assert_allclose(as_np(got), np.concatenate([ref[:, :2] * gate, ref[:, 2:]], axis=1), rtol=1e-10, atol=1e-12)
    if modulation == "hard":
        assert (got[:, :2][(torch.from_numpy(ref[:, 2:]) < tau).expand(-1, 2, -1, -1)] == 0).all()
        assert 0 < (torch.from_numpy(ref[:, 2]) < tau).double().mean() < 1  # the gate does something
    assert len(MM_COF_CHANNELS) == got.shape[1]


def test_flow_representations_are_per_clip():
    oa, ao = random_flows(n=4, seed=4, dtype=torch.float32)
    oa[1] *= 1000  # a huge clip must not change the others' normalisation
    for fn in (cof, mm_cof, phase_flow_features, combined_magnitude):
        batch = fn(oa, ao)
        for i in range(4):
            torch.testing.assert_close(fn(oa[i : i + 1], ao[i : i + 1])[0], batch[i], rtol=0, atol=0)


def test_minmax_normalize():
    x = torch.tensor([[[[2.0, 4.0], [3.0, 6.0]], [[1.0, 1.0], [1.0, 1.0]]]], dtype=torch.float64)
    got = minmax_normalize(x, eps=0)
    np.testing.assert_allclose(as_np(got).ravel(), [0, 0.5, 0.25, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(as_np(minmax_normalize(x))[0, 0, 1, 1], 4 / (4 + EPS))


def test_float32_and_device(device):
    oa, ao = random_flows(seed=5, dtype=torch.float32)
    got = cof(oa.to(device), ao.to(device))
    assert got.dtype == torch.float32 and got.device.type == device
    np.testing.assert_allclose(as_np(got), ref_cof(oa, ao, 0.6, 0.4, "flip"), rtol=1e-4, atol=1e-5)
    clips = [c.to(device) for c in random_clips([4, 6], dtype=torch.float32)]
    di = phase_dynamic_images(clips, [1, 2])
    assert di.device.type == device and di.dtype == torch.float32


def test_gradients_reach_the_frames():
    clips = [c.requires_grad_() for c in random_clips([4, 3, 4], seed=7)]
    mesti(clips, [1, 1, 2]).sum().backward()
    assert all(c.grad is not None and c.grad.abs().sum() > 0 for c in clips)


# --------------------------------------------------------------------------- registry
def test_registry_describes_every_representation():
    assert REPRESENTATIONS["flow_onset_apex"] == FLOW_CHANNELS
    assert set(REPRESENTATIONS) == set(REPRESENTATION_INFO)
    for name, channels in REPRESENTATIONS.items():
        assert isinstance(channels, tuple) and all(isinstance(c, str) for c in channels), name
        assert len(set(channels)) == len(channels), name
        assert REPRESENTATION_INFO[name].strip(), name
    clips = random_clips([5, 4])
    apex = [2, 1]
    oa, ao = random_flows(n=2)
    outputs = {
        "flow_onset_apex": flow_features(oa),
        "flow_phases": phase_flow_features(oa, ao),
        "cof": cof(oa, ao),
        "mm_cof": mm_cof(oa, ao),
        "dynamic_image": dynamic_images(clips),
        "dynamic_image_phases": phase_dynamic_images(clips, apex),
        "trdi": temporal_ranked_dynamic_images(clips),
        "midi": motion_intensity_dynamic_images(clips),
        "mesti": mesti(clips, apex),
        "lbptop": R.lbptop_features([np.random.default_rng(0).integers(0, 256, (9, 32, 32), dtype=np.uint8)]),
        "apex_frame": R.frame_crops(clips, apex),
        "onset_frame": R.frame_crops(clips, [0, 0]),
    }
    assert torch.equal(outputs["apex_frame"][1], clips[1][1][None].float())
    assert set(outputs) == set(REPRESENTATIONS)
    for name, out in outputs.items():
        assert out.shape[1] == len(REPRESENTATIONS[name]), name
    assert tuple(outputs["lbptop"].shape[1:]) == R.representation_shape("lbptop", 32) == (3, 25, 16)
    assert R.representation_shape("cof", 64) == (3, 64, 64)


def test_public_names_are_exported():
    for name in R.__all__:
        assert hasattr(R, name), name


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: phase_flow_features(torch.zeros(2, 3, 4, 4), torch.zeros(2, 2, 4, 4)), r"flow_onset_apex of shape \[N, 2, H, W\]"),
        (lambda: cof(torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 5)), r"flow_apex_offset must have the shape of flow_onset_apex"),
        (lambda: mm_cof(torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4)), r"flow_apex_offset of shape \[N, 2, H, W\]"),
        (lambda: cof(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), theta1=-0.1), r"theta1 must be a finite number >= 0"),
        (lambda: cof(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), theta2=math.nan), r"theta2"),
        (lambda: cof(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), direction="sum"), r"direction must be one of"),
        (lambda: mm_cof(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), modulation="x"), r"modulation must be one of"),
        (lambda: dynamic_images([torch.zeros(3, 4)]), r"clips\[0\] of shape \[T, H, W\] or \[T, C, H, W\]"),
        (lambda: dynamic_images([torch.zeros(3, 4, 4), torch.zeros(3, 4, 5)]), r"frame shape of clips\[0\].*clips\[1\]"),
        (lambda: dynamic_images([torch.zeros(3, 4, 4), torch.zeros(3, 1, 4, 4)]), r"mix \[T, H, W\] and \[T, C, H, W\]"),
        (lambda: dynamic_images([torch.zeros(0, 4, 4)]), r"clips\[0\] has no frames"),
        (lambda: dynamic_images([]), r"clips is empty"),
        (lambda: dynamic_images(torch.zeros(2, 3, 4)), r"padded clips of shape \[N, T, H, W\] or \[N, T, C, H, W\]"),
        (lambda: dynamic_images(torch.zeros(2, 3, 4, 4), lengths=[3]), r"lengths as N = 2 integers \(shape \[2\]\)"),
        (lambda: dynamic_images(torch.zeros(2, 3, 4, 4), lengths=[3, 4]), r"lengths\[1\] = 4 is outside \[1, T = 3\]"),
        (lambda: dynamic_images([torch.zeros(3, 4, 4)], lengths=[3]), r"lengths is only used with a padded"),
        (lambda: dynamic_images([torch.zeros(3, 4, 4)], normalize="z"), r"normalize must be one of"),
        (lambda: dynamic_images([torch.zeros(3, 4, 4)], single_frame="one"), r"single_frame must be one of"),
        (lambda: phase_dynamic_images([torch.zeros(3, 4, 4)], apex=[3]), r"apex\[0\] = 3 is outside the clip's frames \[0, 2\]"),
        (lambda: phase_dynamic_images([torch.zeros(3, 4, 4)] * 2, apex=[1]), r"apex as N = 2 integer frame indices"),
        (lambda: mesti([torch.zeros(3, 4, 4)], apex=[1.5]), r"apex as N = 1 integer"),
        (lambda: mesti([torch.zeros(3, 4, 4)], apex=[1], weighting="gauss"), r"weighting must be one of"),
        (lambda: motion_intensity_dynamic_images([torch.zeros(3, 4, 4)], intensity=[torch.zeros(2)]), r"intensity\[0\] of shape \[T_i = 3\]"),
        (lambda: motion_intensity([torch.zeros(3, 4, 4)], sigma=-1), r"sigma must be >= 0"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
