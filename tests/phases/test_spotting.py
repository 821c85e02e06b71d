import numpy as np
import pytest
import torch

from fastmer.phases.spotting import detrend, principal_curve, spot_apex


def test_detrend_anchors_after_the_onset_and_floors_the_onset():
    curve = torch.tensor([0.0, 2.0, 3.0, 9.0, 5.0, 6.0])  # frames 1..5: ramp 2 -> 6 plus a bump at 3
    out = detrend(curve)
    np.testing.assert_allclose(out[1:].numpy(), [0.0, 0.0, 5.0, 0.0, 0.0], atol=1e-6)
    assert out[0] == out[1:].min()


def test_principal_curve_follows_the_pattern_strength_not_the_drift():
    rng = np.random.default_rng(1)
    length, apex = 40, 13
    pattern = rng.normal(0, 1, (48, 48))
    drift = rng.normal(0, 1, (48, 48))
    strength = np.where(np.arange(length) <= apex, np.arange(length) / apex,
                        (length - 1 - np.arange(length)) / (length - 1 - apex))
    frames = (120 + 3 * strength[:, None, None] * pattern
              + 4 * np.linspace(0, 1, length)[:, None, None] * drift  # grows to the end, larger than the pattern
              + rng.normal(0, 1.5, (length, 48, 48)))
    curve = principal_curve(torch.from_numpy(frames).float(), sigma=0.0)
    assert int(torch.argmax(curve)) == apex
    # the curve is the pattern strength up to scale
    c = curve[1:].numpy()
    s = strength[1:]
    assert np.corrcoef(c, s)[0, 1] > 0.98


def test_short_clips_and_views():
    crops = np.zeros((3, 16, 16), np.uint8)
    crops[1, 4:8, 4:8] = 50
    assert spot_apex([crops])[0] == 1
    with pytest.raises(ValueError, match="different numbers of frames"):
        spot_apex([crops, crops[:2]])
    with pytest.raises(ValueError, match="at least one view"):
        spot_apex([])


@pytest.fixture(scope="module")
def synth_corpus(tmp_path_factory):
    from fastmer.datasets.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("apex") / "corpus"
    generate(root, SynthConfig(subjects=4, clips_per_subject=6, seed=23))
    return root


def test_spotted_apex_is_within_two_frames_of_the_truth(synth_corpus):
    """The issue's measure: >= 95% of synthetic clips within 2 frames (default estimator)."""
    from fastmer.datasets import load
    from fastmer.decode import open_clip_frames
    from fastmer.face import HaarFaceDetector, crop_clip, locate_face

    detector = HaarFaceDetector()
    errors = []
    for clip in load("casme2", synth_corpus):
        with open_clip_frames(clip, engine="opencv") as source:
            frames = source.read(range(clip.onset, clip.offset + 1))
        track = locate_face(frames, detector)
        index, _ = spot_apex([crop_clip(frames, track.box, 128)])
        errors.append(abs(clip.onset + index - clip.apex))
    errors = np.array(errors)
    assert len(errors) == 24
    assert np.mean(errors <= 2) >= 0.95, errors


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0])
def test_blur_is_opencv_gaussian_blur(sigma):
    """The curves' pre-blur equals OpenCV's Gaussian blur with replicated borders."""
    import cv2

    from fastmer.phases.spotting import _gaussian_blur

    frames = np.random.default_rng(3).integers(0, 256, (4, 37, 52)).astype(np.float32)
    radius = max(1, int(3 * sigma + 0.5))
    expected = np.stack([cv2.GaussianBlur(f, (2 * radius + 1,) * 2, sigma, borderType=cv2.BORDER_REPLICATE)
                         for f in frames])
    np.testing.assert_allclose(_gaussian_blur(torch.from_numpy(frames), sigma).numpy(), expected, atol=2e-4)


def _principal_curve_oracle(crops: np.ndarray, sigma: float) -> np.ndarray:
    """float64 numpy: Gaussian blur (replicated border), drift-removed residuals, SVD."""
    frames = crops.astype(np.float64)
    radius = max(1, int(3 * sigma + 0.5))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(frames, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    height, width = frames.shape[1:]
    rows = sum(kernel[k] * padded[:, :, k : k + width] for k in range(2 * radius + 1))
    blurred = sum(kernel[k] * rows[:, k : k + height] for k in range(2 * radius + 1)).reshape(len(frames), -1)
    tau = np.linspace(0, 1, len(frames) - 1)[:, None]
    residual = blurred[1:] - blurred[1:2] - tau * (blurred[-1:] - blurred[1:2])
    u, s, _ = np.linalg.svd(residual, full_matrices=False)
    coefficient = s[0] * np.abs(u[:, 0])
    return np.concatenate([[coefficient.min()], coefficient])


@pytest.mark.parametrize("shape", [(60, 37, 29), (300, 64, 64), (9, 8, 8)])
def test_principal_curve_matches_a_float64_oracle(shape):
    """The curve is computed band by band of rows from the uint8 crops (no float copy of a long
    clip, issue 17 item 15); it must still be the whole clip's first principal component."""
    rng = np.random.default_rng(shape[0])
    t = np.arange(shape[0])[:, None, None]
    crops = np.clip(128 + 20 * np.sin(t / 7.0) * rng.normal(0, 1, shape[1:]) + rng.normal(0, 4, shape), 0, 255)
    crops = crops.astype(np.uint8)
    expected = _principal_curve_oracle(crops, 1.0)
    for given in (crops, torch.from_numpy(crops)):
        got = principal_curve(given, sigma=1.0).double().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.max())


@pytest.mark.parametrize("band_bytes", [1, 5000, 1 << 30])
def test_principal_curve_is_the_same_whatever_the_band_height(band_bytes, monkeypatch):
    """Short clips are blurred in one band, long ones in bands of at least 8 rows (BAND_BYTES):
    the curve must not depend on where the bands are cut."""
    from fastmer.phases import spotting

    crops = np.random.default_rng(1).integers(0, 256, (40, 50, 30), dtype=np.uint8)
    whole = principal_curve(crops, sigma=1.0)
    monkeypatch.setattr(spotting, "BAND_BYTES", band_bytes)
    assert torch.equal(principal_curve(crops, sigma=1.0), whole)
