"""fastmer infer's scoring: PyTorch and ONNX engines agree, multi-label thresholds, views merged
per clip by max, a failing batch reported while the rest is scored."""

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.engine.onnx import export_onnx
from fastmer.engine.score import TorchEngine, open_engine, score_store
from fastmer.models import MODELS
from fastmer.train.run import train


@pytest.fixture(scope="module")
def separate_run(dual_view_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("separate") / "run"
    train(dual_view_store, run, model="microattnet", labels="4dme-multilabel", view_layout="separate",
          recipe=replace(MODELS["microattnet"].recipe, epochs=2, patience=None))
    return run


def test_torch_and_onnx_engines_agree(tiny_store, tiny_run, tmp_path):
    export_onnx(tiny_run, tmp_path / "m.onnx")
    a = score_store(open_engine(tiny_run, device="cpu"), tiny_store, tmp_path / "torch.parquet", batch_size=4)
    b = score_store(open_engine(tmp_path / "m.onnx"), tiny_store, tmp_path / "onnx.parquet")
    assert a.providers == ["torch-cpu"] and a.n_scored == b.n_scored == 9
    ta, tb = pq.read_table(tmp_path / "torch.parquet").to_pydict(), pq.read_table(tmp_path / "onnx.parquet").to_pydict()
    assert ta["predicted"] == tb["predicted"] and ta["uid"] == fstore.open(tiny_store).column("uid")
    np.testing.assert_allclose(ta["probabilities"], tb["probabilities"], atol=1e-5)
    assert ta["error"] == [None] * 9 and ta["view_probabilities"] == [None] * 9  # full frames: no views to list


@pytest.mark.slow
def test_torch_compile_engine(tiny_store, tiny_run, tmp_path):
    eager = TorchEngine(tiny_run, device="cpu")
    compiled = TorchEngine(tiny_run, device="cpu", compile=True)
    x = fstore.open(tiny_store).numpy("flow_onset_apex")
    np.testing.assert_allclose(compiled.run(x[:5]), eager.run(x[:5]), atol=1e-4)
    assert compiled.providers == ["torch-cpu-compile"]


def test_views_scored_one_at_a_time_merge_by_max(dual_view_store, separate_run, tmp_path):
    engine = open_engine(separate_run, device="cpu")
    summary = score_store(engine, dual_view_store, tmp_path / "p.parquet", batch_size=7)
    table = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert summary.n_scored == 40 and len(table["uid"]) == 40  # 39 clips with 2 views, 1 with its left view only
    store = fstore.open(dual_view_store)
    row = {u: i for i, u in enumerate(store.column("uid"))}
    flow = store.tensor("flow_phases")
    thresholds = engine.config["thresholds"]
    classes = engine.config["classes"]
    for uid, views, probs, per_view, predicted in zip(table["uid"], table["views"], table["probabilities"],
                                                      table["view_probabilities"], table["predicted"], strict=True):
        assert all(v.startswith(uid + "@") for v in views)
        with torch.no_grad():
            each = torch.sigmoid(engine.model(flow[[row[v] for v in views]]))
        np.testing.assert_allclose(per_view, each.numpy(), atol=1e-5)  # one row of probabilities per view
        np.testing.assert_allclose(probs, each.amax(0).numpy(), atol=1e-5)
        assert predicted == [c for c, p, t in zip(classes, probs, thresholds, strict=True) if p >= t]


class _Flaky:
    """An engine whose second batch fails (a driver error, a corrupt input...)."""

    def __init__(self, engine):
        self.engine, self.config, self.providers, self.calls = engine, engine.config, ["flaky"], 0

    def run(self, features):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("device lost")
        return self.engine.run(features)


def test_a_failing_batch_is_reported_and_the_rest_scored(tiny_store, tiny_run, tmp_path):
    summary = score_store(_Flaky(open_engine(tiny_run, device="cpu")), tiny_store, tmp_path / "p.parquet", batch_size=4)
    table = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert (summary.n_scored, summary.n_failed) == (5, 4) and summary.errors == ["RuntimeError: device lost"]
    assert table["error"] == [None] * 4 + ["RuntimeError: device lost"] * 4 + [None]
    assert table["predicted"][4:8] == [None] * 4 and table["probabilities"][4] is None


def test_infer_cli_with_a_run_and_bad_inputs(tiny_store, tiny_run, synthetic_store, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["infer", str(tiny_store), "-e", str(tiny_run), "--device", "cpu", "-o", str(tmp_path / "p.parquet")])
    assert ok.exit_code == 0 and "scored 9 clips" in ok.output and "torch-cpu" in ok.output, ok.output
    mismatch = runner.invoke(main, ["infer", str(synthetic_store), "-e", str(tiny_run), "-o", str(tmp_path / "q.parquet")])
    assert mismatch.exit_code == 1 and "the model was trained on" in mismatch.output
    compile_onnx = runner.invoke(main, ["infer", str(tiny_store), "-e", str(tmp_path / "p.parquet"), "--compile",
                                        "-o", str(tmp_path / "r.parquet")])
    assert compile_onnx.exit_code == 2 and "--compile applies to a run directory" in compile_onnx.output
    other = runner.invoke(main, ["infer", str(tiny_store), "-e", str(tmp_path / "p.parquet"), "-o", str(tmp_path / "s.parquet")])
    assert other.exit_code == 1 and "neither a training run directory, an .onnx file nor a TensorRT .plan" in other.output


def test_cli_devices_match():
    from fastmer.cli import infer
    from fastmer.train import run

    assert infer.DEVICES == run.DEVICES
