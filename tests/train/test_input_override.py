"""Any network on any stored representation (issue 18, item 1): `fastmer train --input`, and the
apex/onset frame representations of P7's apex-frame baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.extract import extract
from fastmer.models import MODELS, TrainRecipe
from fastmer.models.inputs import override_input, parse_input
from fastmer.store import open as open_store
from fastmer.train.run import train

QUICK = TrainRecipe(epochs=1, lr=1e-3, batch_size=4)


@pytest.fixture(scope="module")
def frame_store(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("frames") / "store"
    config = ExtractConfig(face_detector="haar", size=32,
                           representations=("flow_onset_apex", "dynamic_image", "apex_frame", "onset_frame"))
    summary = extract(load("casme2", tiny_corpus), out, config, log=lambda line: None)
    assert summary.n_failed == 0, summary.failures
    return out


def test_frame_representations_are_the_key_frame_crops(frame_store):
    store = open_store(frame_store)
    keyframes = store.tensor("keyframes")  # uint8 onset, apex, offset crops
    assert store.tensor("apex_frame").shape[1:] == (1, 32, 32)
    assert torch.equal(store.tensor("apex_frame")[:, 0], keyframes[:, 1].float())
    assert torch.equal(store.tensor("onset_frame")[:, 0], keyframes[:, 0].float())


def test_parse_and_override():
    assert parse_input("mesti") == ("mesti", None)
    assert parse_input("flow_phases:m_oa, m_ao") == ("flow_phases", ("m_oa", "m_ao"))
    with pytest.raises(ValueError, match="is not NAME or NAME:CHANNEL"):
        parse_input("flow_phases:")
    available = {"flow_onset_apex": ("u", "v", "magnitude", "strain"), "cof": ("u_cof", "v_cof", "m_cof"),
                 "mm_cof": ("u_mm", "v_mm", "m_cof"), "apex_frame": ("apex",)}
    spec = override_input(MODELS["meganet"].input, ["apex_frame"], available)
    assert spec.representation == "apex_frame" and spec.channels == ("apex",) and spec.size is None
    spec = override_input(MODELS["mmcof"].input, ["flow_onset_apex:v,u", "cof:m_cof"], available)
    assert spec.representation == ("flow_onset_apex", "cof") and spec.channels == ("v", "u", "m_cof")
    for inputs, message in ((["mesti"], r"'mesti' is not in the store \(it has flow_onset_apex, cof, mm_cof"),
                            (["cof:x"], "cof has no channel.* x; it has u_cof, v_cof, m_cof"),
                            (["cof:u_cof", "cof:u_cof"], "u_cof chosen twice"),
                            (["cof:m_cof", "mm_cof:u_mm"], "m_cof in cof, mm_cof"),
                            (["apex_frame"], r"1 input channel\(s\) \(apex\) for a model of 3 input streams")):
        with pytest.raises(ValueError, match=message):
            override_input(MODELS["microattnet"].input if "streams" in message else MODELS["mmcof"].input,
                           inputs, available)


def test_meganet_on_the_apex_frame_trains_exports_and_scores_the_same(frame_store, tmp_path):
    """P7's apex-frame baseline: MEGANet fed the apex crop; the engine reads the same column."""
    pytest.importorskip("onnxruntime")
    from fastmer.engine.onnx import OnnxEngine, export_onnx, load_run_model

    run = tmp_path / "run"
    report = train(frame_store, run, model="meganet", inputs=("apex_frame",), protocol="holdout", recipe=QUICK, jobs=1)
    assert report["n_folds"] == 1
    config = json.loads((run / "model.json").read_text())
    assert config["input"]["representation"] == "apex_frame" and config["input"]["channels"] == ["apex"]
    export_onnx(run, tmp_path / "m.onnx")
    store = open_store(frame_store)
    x = store.tensor("apex_frame")
    with torch.no_grad():
        expected = load_run_model(run)(x).numpy()
    np.testing.assert_allclose(OnnxEngine(tmp_path / "m.onnx").run(x.numpy()), expected, atol=1e-4)


def test_a_network_that_cannot_take_the_input_is_refused_before_training(frame_store, tmp_path):
    with pytest.raises(ValueError, match=r"3 input channel\(s\) \(u, v, strain\) for a model of 2 input streams"):
        train(frame_store, tmp_path / "bad", model="dianet", inputs=("flow_onset_apex:u,v,strain",), recipe=QUICK, jobs=1)
    # two streams of two channels: the split works, DIANet's one-channel encoders do not
    with pytest.raises(ValueError, match=r"dianet cannot take this store's input: DIANet takes the two phase"):
        train(frame_store, tmp_path / "bad", model="dianet", inputs=("flow_onset_apex",), recipe=QUICK, jobs=1)
    assert not (tmp_path / "bad").exists()


def test_a_forward_failure_is_reported_before_training(frame_store, tmp_path, monkeypatch):
    from fastmer.models.model import MERModel

    def broken(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(MERModel, "forward", broken)
    with pytest.raises(ValueError, match=r"mmcof cannot take this store's input: the network does not take 2 input "
                                         r"channel\(s\) \(u, v\): mat1 and mat2"):
        train(frame_store, tmp_path / "bad", model="mmcof", inputs=("flow_onset_apex:u,v",), recipe=QUICK, jobs=1)


def test_the_cli_takes_describes_and_records_inputs(frame_store, tmp_path):
    runner = CliRunner()
    described = runner.invoke(main, ["train", str(frame_store), "-m", "mmcof", "--describe",
                                     "--input", "flow_onset_apex:u,v,magnitude"])
    assert described.exit_code == 0, described.output
    assert "input: flow_onset_apex channels u, v, magnitude -> network input 3x32x32" in described.output
    result = runner.invoke(main, ["train", str(frame_store), "-m", "mmcof", "--input", "flow_onset_apex:u,v,magnitude",
                                  "--epochs", "1", "-j", "1", "--device", "cpu", "-p", "holdout", "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r" / "model.json").read_text())
    assert config["input"]["channels"] == ["u", "v", "magnitude"]
    bad = runner.invoke(main, ["train", str(frame_store), "-m", "mmcof", "--input", "mesti", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "'mesti' is not in store" in bad.output
