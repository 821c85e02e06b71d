import cv2
import numpy as np
import pytest
import torch

from fastmer.models import MODELS, InputSpec, TrainRecipe, get_entry
from fastmer.models.inputs import InputAdapter
from fastmer.models.model import MERModel
from fastmer.models.ststnet import STSTNet
from fastmer.ops.resample import area_matrix


def test_ststnet_matches_the_authors_layer_sizes():
    net = STSTNet(3)
    # conv 3/5/8 filters of 3x3x3 (+bias), 16 BN channels (weight+bias), FC 400 -> 3
    expected = (3 + 5 + 8) * (27 + 1) + 16 * 2 + 400 * 3 + 3
    assert sum(p.numel() for p in net.parameters()) == expected == 1683
    assert net(torch.zeros(4, 3, 28, 28)).shape == (4, 3)
    with pytest.raises(ValueError, match="28, 28"):
        net(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("size", [28, 50, 64])
def test_area_resampling_equals_opencv_inter_area(size):
    image = np.random.default_rng(size).random((128, 96), dtype=np.float32)
    ours = (area_matrix(128, size) @ torch.from_numpy(image) @ area_matrix(96, size).T).numpy()
    np.testing.assert_allclose(ours, cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), atol=2e-6)


def test_adapter_selects_channels_and_normalises():
    spec = InputSpec("flow_onset_apex", ("u", "v", "strain"), size=28, normalization="minmax")
    adapter = InputAdapter(spec, ("u", "v", "magnitude", "strain"), (128, 128))
    x = torch.randn(2, 4, 128, 128)
    out = adapter(x)
    assert out.shape == (2, 3, 28, 28)
    torch.testing.assert_close(out.amin(dim=(2, 3)), torch.zeros(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.amax(dim=(2, 3)), torch.ones(2, 3), atol=1e-6, rtol=0)
    # the strain channel comes from stored channel 3
    x2 = x.clone()
    x2[:, 2] = 0  # magnitude is not used
    torch.testing.assert_close(adapter(x2), out)
    with pytest.raises(ValueError, match="no channel"):
        InputAdapter(spec, ("u", "v"), (128, 128))


def test_registry_and_recipes():
    entry = get_entry("ststnet")
    assert entry.input.channels == ("u", "v", "strain") and entry.input.size == 28
    assert entry.published == TrainRecipe(epochs=800, lr=5e-5, batch_size=256)
    with pytest.raises(ValueError, match="unknown model"):
        get_entry("resnet9000")
    with pytest.raises(ValueError, match="invalid training recipe"):
        TrainRecipe(epochs=0, lr=1e-3, batch_size=1)
    assert {"ststnet", "offapexnet"} <= set(MODELS)


def test_save_load_roundtrip(tmp_path):
    model = MERModel.create("ststnet", ("a", "b", "c"), ("u", "v", "magnitude", "strain"), (4, 64, 64)).eval()
    model.save(tmp_path / "w.safetensors", tmp_path / "w.json", extra={"note": 1})
    loaded = MERModel.load(tmp_path / "w.safetensors", tmp_path / "w.json")
    x = torch.randn(3, 4, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.config["note"] == 1 and loaded.classes == ("a", "b", "c")
