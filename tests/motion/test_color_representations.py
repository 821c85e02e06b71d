"""``fastmer extract --color`` (issue 18, item 2): the dynamic images and MESTI of RGB crops,
three channels per grey channel, checked against a float64 reference built from the frame
files with numpy alone."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.extract import extract
from fastmer.motion.representations import representation_channels
from fastmer.store import open as open_store

SIZE = 40
NAMES = ("flow_onset_apex", "dynamic_image", "dynamic_image_phases", "trdi", "mesti")


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """float64 area averaging of an (h, w) image to (size, size): each output pixel is the mean
    of the input pixels it covers, partial pixels weighted by the part covered."""
    def weights(n: int) -> np.ndarray:
        scale = n / size
        w = np.zeros((size, n))
        for i in range(size):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n)):
                w[i, j] = min(hi, j + 1) - max(lo, j)
        return w / scale
    rows, cols = weights(image.shape[0]), weights(image.shape[1])
    return rows @ image @ cols.T


def rank_pool(frames: np.ndarray) -> np.ndarray:
    """Bilen's approximate rank pooling of (T, ...) frames, float64, from the defining sum."""
    t = len(frames)
    alpha = np.array([sum((2 * j - t - 1) / j for j in range(k, t + 1)) for k in range(1, t + 1)])
    return np.tensordot(alpha, frames, axes=1)


def minmax(image: np.ndarray) -> np.ndarray:
    return (image - image.min()) / (image.max() - image.min() + 1e-8)


@pytest.fixture(scope="module")
def color_store(tiny_corpus, tmp_path_factory):
    clips = load("casme2", tiny_corpus)[:3]
    out = tmp_path_factory.mktemp("color") / "store"
    config = ExtractConfig(face_detector="haar", size=SIZE, representations=NAMES, color=True, decoder="opencv")
    summary = extract(clips, out, config, log=lambda line: None)
    assert summary.n_failed == 0, summary.failures
    return clips, open_store(out)


def test_color_dynamic_images_match_a_float64_reference(color_store):
    clips, store = color_store
    uids = store.column("uid")
    for clip in clips:
        row = uids.index(clip.uid)
        onset, apex, offset = (store.column(name)[row] for name in ("onset", "apex", "offset"))
        x, y, w, h = store.column("face_box")[row]
        paths = [p for n, p in zip(clip.frame_numbers, clip.frame_paths, strict=True) if onset <= n <= offset]
        rgb = np.stack([cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths])
        crops = np.stack([[area_resize(f[y : y + h, x : x + w, c].astype(np.float64), SIZE) for c in range(3)]
                          for f in rgb])
        crops = np.round(crops)  # stored crops are uint8
        a = apex - onset
        expected = {
            "dynamic_image": [minmax(rank_pool(crops)[c]) for c in range(3)],
            "dynamic_image_phases": [minmax(rank_pool(crops[: a + 1])[c]) for c in range(3)]
            + [minmax(rank_pool(crops[a:])[c]) for c in range(3)],
            "mesti": [minmax(rank_pool(crops[: a + 1])[c] + rank_pool(crops[a:][::-1])[c]) for c in range(3)],
        }
        expected["trdi"] = expected["dynamic_image"]
        for name, channels in expected.items():
            got = store.tensor(name)[row].double().numpy()
            assert got.shape == (len(channels), SIZE, SIZE)
            # a crop pixel may round the other way at .5 (float32 vs float64): a few 1/255 steps
            np.testing.assert_allclose(got, np.stack(channels), atol=0.03, err_msg=name)
        # colour really is there: the red and blue dynamic images differ
        di = store.tensor("dynamic_image")[row].numpy()
        assert np.abs(di[0] - di[2]).max() > 0.01


def test_color_channels_shapes_and_parameters(color_store, tiny_corpus, tmp_path):
    _, store = color_store
    meta = json.loads((store.path / "store.json").read_text())
    assert meta["params"]["color"] is True
    assert meta["representations"]["dynamic_image_phases"]["channels"] == [
        "di_oa_r", "di_oa_g", "di_oa_b", "di_ao_r", "di_ao_g", "di_ao_b"]
    assert meta["representations"]["flow_onset_apex"]["shape"] == [4, SIZE, SIZE]  # flows stay grey
    assert tuple(meta["representations"]["mesti"]["channels"]) == representation_channels("mesti", True)
    assert store.tensor("keyframes").shape[1:] == (3, SIZE, SIZE)  # onset, apex, offset grey crops
    grey = ExtractConfig(face_detector="haar", representations=NAMES).feature_params("opencv-haar:x")
    assert "color" not in grey  # grey stores keep the parameters (and hash) they had
    with pytest.raises(ValueError, match="color changes only dynamic_image"):
        ExtractConfig(representations=("flow_onset_apex",), color=True)


def test_the_cli_extracts_in_colour(tiny_corpus, tmp_path):
    runner = CliRunner()
    base = ["extract", str(tiny_corpus), "--face-detector", "haar", "--size", "32", "--no-progress"]
    ok = runner.invoke(main, [*base, "-o", str(tmp_path / "c"), "--color", "-r", "dynamic_image,midi"])
    assert ok.exit_code == 0, ok.output
    assert open_store(tmp_path / "c").tensor("midi").shape[1:] == (3, 32, 32)
    bad = runner.invoke(main, [*base, "-o", str(tmp_path / "bad"), "--color", "-r", "cof"])
    assert bad.exit_code == 1 and "color changes only" in bad.output
    assert not (tmp_path / "bad").exists()
