import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fastmer.store as fstore
from fastmer.engine.onnx import OnnxEngine, export_onnx, load_run_model
from fastmer.engine.score import open_engine, score_store


@pytest.fixture(scope="module")
def engine_path(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "model.onnx"
    info = export_onnx(tiny_run, path)
    assert info["max_abs_diff"] < 1e-4 and info["classes"] == ["negative", "positive", "surprise"]
    return path


@pytest.mark.parametrize("batch", [1, 4, 9])
def test_parity_with_pytorch_on_real_features_at_any_batch(tiny_store, tiny_run, engine_path, batch):
    features = fstore.open(tiny_store).tensor("flow_onset_apex")[:batch]
    with torch.no_grad():
        expected = load_run_model(tiny_run)(features).numpy()
    got = OnnxEngine(engine_path).run(features.numpy())
    assert got.shape == expected.shape == (batch, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_infer_writes_predictions(tiny_store, tiny_run, engine_path, tmp_path):
    summary = score_store(open_engine(engine_path), tiny_store, tmp_path / "preds.parquet", batch_size=4)
    assert summary.n_scored == 9 and summary.n_failed == 0 and summary.providers
    table = pq.read_table(tmp_path / "preds.parquet")
    store = fstore.open(tiny_store)
    assert table.column("uid").to_pylist() == store.column("uid")
    with torch.no_grad():
        expected = load_run_model(tiny_run)(store.tensor("flow_onset_apex")).argmax(1).tolist()
    classes = ("negative", "positive", "surprise")
    assert table.column("predicted").to_pylist() == [classes[i] for i in expected]


def test_engine_validates_inputs(engine_path, tmp_path):
    engine = OnnxEngine(engine_path)
    with pytest.raises(ValueError, match=r"expects features of shape \[N, 4, 128, 128\]"):
        engine.run(np.zeros((2, 3, 128, 128), np.float32))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxEngine(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError):
        OnnxEngine(tmp_path / "absent.onnx")


def test_export_needs_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a fastmer run directory"):
        export_onnx(tmp_path, tmp_path / "m.onnx")


def test_engines_of_two_column_and_view_stacked_models(paper_store, dual_view_store, tmp_path):
    """AFN reads trdi + midi; a view-stacked MicroAttNet takes each clip's two view rows joined."""
    from dataclasses import replace

    from fastmer.models import MODELS
    from fastmer.train.run import train

    for name, store, labels in (("afn", paper_store, "megc2019-3class"), ("microattnet", dual_view_store, "4dme-multilabel")):
        run = tmp_path / name
        train(store, run, model=name, labels=labels, recipe=replace(MODELS[name].recipe, epochs=1, patience=None))
        export_onnx(run, tmp_path / f"{name}.onnx")
        score_store(open_engine(tmp_path / f"{name}.onnx"), store, tmp_path / f"{name}.parquet")
        table = pq.read_table(tmp_path / f"{name}.parquet").to_pydict()
        model = load_run_model(run)
        s = fstore.open(store)
        if name == "afn":
            assert table["uid"] == s.column("uid")
            x = torch.cat([s.tensor("trdi"), s.tensor("midi")], dim=1)
        else:  # 39 clips with both views; s4/c7 has only its left one: an error row
            assert len(table["uid"]) == 40
            lacking = table["uid"].index("4dme/s4/c7")
            assert table["error"][lacking] == "4dme/s4/c7: the model takes views left, right; the clip has left"
            assert table["views"][lacking] == ["4dme/s4/c7@left"] and table["probabilities"][lacking] is None
            table["probabilities"].pop(lacking)
            table["uid"].pop(lacking)
            rows = {u: i for i, u in enumerate(s.column("uid"))}
            flow = s.tensor("flow_phases")
            x = torch.cat([flow[[rows[f"{u}@left"] for u in table["uid"]]],
                           flow[[rows[f"{u}@right"] for u in table["uid"]]]], dim=1)
        with torch.no_grad():
            logits = model(x)
        expected = torch.sigmoid(logits) if name == "microattnet" else torch.softmax(logits, 1)
        np.testing.assert_allclose(np.array(table["probabilities"]), expected.numpy(), atol=1e-5, rtol=1e-4)


def test_export_sidecar_and_check_on_real_clips(tiny_store, tiny_run, synthetic_store, tmp_path):
    import hashlib
    import json

    from fastmer.engine.onnx import sidecar_path

    info = export_onnx(tiny_run, tmp_path / "m.onnx")
    sidecar = json.loads(sidecar_path(tmp_path / "m.onnx").read_text())
    assert sidecar == {k: v for k, v in info.items() if k != "max_abs_diff"}
    assert sidecar["check"]["inputs"] == f"store {tiny_store} (9 samples)" and sidecar["check"]["max_abs_diff"] < 1e-4
    assert sidecar["onnx_sha256"] == hashlib.sha256((tmp_path / "m.onnx").read_bytes()).hexdigest()
    store = fstore.open(tiny_store)
    assert sidecar["extraction"] == {"params_hash": store.meta["params_hash"], "params": store.meta["params"]}
    assert sidecar["input"]["stored"]["channels"] == list(store.channels("flow_onset_apex"))
    assert sidecar["classes"] == ["negative", "positive", "surprise"] and not sidecar["multilabel"]
    run_config = json.loads((tiny_run / "model.json").read_text())
    assert sidecar["weights_sha256"] == run_config["weights_sha256"]
    # a store of other shapes cannot check it; a failing check writes nothing
    with pytest.raises(ValueError, match="trained on"):
        export_onnx(tiny_run, tmp_path / "x.onnx", store=synthetic_store)
    with pytest.raises(RuntimeError, match="disagrees with PyTorch"):
        export_onnx(tiny_run, tmp_path / "y.onnx", tolerance=-1.0)
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()
