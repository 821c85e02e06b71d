"""Input normalisation per representation (issue 18, item 4): signed maps keep zero at zero,
dynamic images are min–max scaled; the choice is per channel, switchable, shown and exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.models import MODELS, NORMALIZATIONS
from fastmer.models.inputs import SIGNED_QUANTILE, channel_normalizations, normalize_channels
from fastmer.models.model import MERModel, describe
from fastmer.train.augment import Augment


def _oracle(x: np.ndarray, modes: tuple[str, ...]) -> np.ndarray:
    """float64 numpy: min–max, or |x|'s k-th largest value (k = round(1% of the pixels)) as the scale."""
    out = x.astype(np.float64).copy()
    n, c, h, w = x.shape
    k = max(1, round((1 - SIGNED_QUANTILE) * h * w))
    for i in range(n):
        for j, mode in enumerate(modes):
            m = x[i, j].astype(np.float64)
            if mode == "minmax":
                out[i, j] = (m - m.min()) / (m.max() - m.min() + 1e-8)
            elif mode == "signed":
                peak = np.sort(np.abs(m).ravel())[::-1][k - 1]
                out[i, j] = np.clip(m / (peak + 1e-8), -1, 1)
    return out


def test_normalize_channels_against_a_float64_oracle():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (4, 3, 20, 20)).astype(np.float32)
    x[0, 1, :5] = 40.0  # outliers: the robust scale ignores the top 1%... mostly
    for modes in (("signed",) * 3, ("minmax",) * 3, ("signed", "minmax", "none"), ("none", "none", "signed")):
        got = normalize_channels(torch.from_numpy(x), modes).double().numpy()
        np.testing.assert_allclose(got, _oracle(x, modes), rtol=1e-5, atol=1e-6, err_msg=str(modes))
    with pytest.raises(ValueError, match="3 channels, 2 modes"):
        normalize_channels(torch.from_numpy(x), ("signed", "signed"))


def test_signed_keeps_zero_at_zero_and_the_sign():
    """MM-COF's gated-off pixels were 0.649 after min-max: under auto they stay 0."""
    x = torch.zeros(1, 3, 16, 16)
    x[0, 0, 4:8, 4:8] = torch.linspace(-2, 3, 16).view(4, 4)
    x[0, 1, 4:8, 4:8] = -1.5
    x[0, 2, 4:8, 4:8] = torch.linspace(0.1, 2, 16).view(4, 4)
    spec = MODELS["mmcof"].input
    model = MERModel.create("mmcof", ("a", "b"), tuple(spec.channels), (3, 16, 16))
    assert model.adapter.modes == ("signed",) * 3
    out = model.adapter(x)
    gated_off = x == 0
    assert torch.equal(out[gated_off], torch.zeros(int(gated_off.sum())))
    assert torch.equal(torch.sign(out), torch.sign(x))
    minmax = MERModel.create("mmcof", ("a", "b"), tuple(spec.channels), (3, 16, 16), normalization="minmax")
    assert float(minmax.adapter(x)[0, 1][gated_off[0, 1]].mean()) > 0.5  # what min-max did to "no motion"


def test_auto_decides_per_channel():
    channels = ("u", "v", "magnitude", "strain", "u_oa", "m_ao", "u_cof", "m_cof", "u_mm", "di", "di_oa", "trdi",
                "midi", "mesti", "di_r", "left/u", "right/di_ao_b", "xy", "c0")
    expected = ("signed",) * 9 + ("minmax",) * 6 + ("signed", "minmax", "none", "minmax")
    assert channel_normalizations("auto", channels) == expected
    assert channel_normalizations("minmax", channels[:3]) == ("minmax",) * 3
    assert "auto" in NORMALIZATIONS and MODELS["dianet"].input.normalization == "auto"
    assert MODELS["ststnet"].input.normalization == "minmax"  # kept as fastmer has always fed it


def test_augmentation_renormalises_as_the_adapter_does():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(0, 2, (3, 3, 12, 12)).astype(np.float32))
    modes = ("signed", "signed", "minmax")
    plain = Augment(("u", "v", "di"), p_flip=0.0, degrees=0.0, scale=0.0, normalization=modes)(x)
    assert torch.equal(plain, normalize_channels(x, modes))
    flipped = Augment(("u", "v", "di"), p_flip=1.0, degrees=0.0, scale=0.0, normalization=modes)(x)
    # the mirror of a signed u is -u mirrored: the sign survives normalisation
    assert torch.allclose(flipped[:, 0], -normalize_channels(x, modes)[:, 0].flip(-1), atol=1e-6)
    with pytest.raises(ValueError, match="minmax, signed or none for each of the 3 channels"):
        Augment(("u", "v", "di"), normalization=("signed",))
    with pytest.raises(ValueError, match="not both"):
        Augment(("u", "v", "di"), minmax=True, normalization=modes)


def test_signed_normalisation_exports_to_onnx():
    pytest.importorskip("onnxruntime")
    from fastmer.engine.onnx import model_to_onnx

    spec = MODELS["microattnet"].input
    model = MERModel.create("microattnet", ("a", "b", "c"), tuple(spec.channels), (6, 32, 32))
    assert set(model.adapter.modes) == {"signed"}
    _, diff = model_to_onnx(model)
    assert diff < 1e-4


def test_describe_and_the_cli_show_and_switch_it(tmp_path):
    info = describe("mmcof", ("a", "b"), normalization="signed")
    assert info["input"]["normalization"] == "signed"
    assert set(info["input"]["channel_normalization"].values()) == {"signed"}
    result = CliRunner().invoke(main, ["train", "-m", "dianet", "--describe"])
    assert result.exit_code == 0 and "normalization: auto (di_oa minmax, di_ao minmax)" in result.output
    result = CliRunner().invoke(main, ["train", "-m", "ststnet", "--describe", "--normalization", "signed"])
    assert result.exit_code == 0 and "normalization: signed (u signed, v signed, strain signed)" in result.output
    result = CliRunner().invoke(main, ["train", "-m", "ststnet", "--describe", "--normalization", "zscore"])
    assert result.exit_code == 2 and "--normalization" in result.output


def test_a_run_records_and_replays_the_normalisation(tmp_path):
    import json

    from fastmer.store.synthetic import synthetic_feature_store
    from fastmer.train.run import train

    words = ("happiness", "disgust", "surprise")
    clips = [{"uid": f"d/s{s}/c{c}", "subject": f"d/s{s}", "dataset": "d", "labels": [words[(c + s) % 3]]}
             for s in range(3) for c in range(4)]
    store = synthetic_feature_store(tmp_path / "store", clips, size=16)
    report = train(store, tmp_path / "run", model="ststnet", protocol="holdout", normalization="signed",
                   recipe=MODELS["ststnet"].recipe.__class__(epochs=1, lr=1e-3, batch_size=4), jobs=1)
    assert report["n_folds"] == 1
    config = json.loads((tmp_path / "run" / "model.json").read_text())
    assert config["input"]["normalization"] == "signed"
    with pytest.raises(ValueError, match="normalization must be one of"):
        train(store, tmp_path / "bad", model="ststnet", normalization="zscore")
