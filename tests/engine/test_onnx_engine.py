import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fastmer.store as fstore
from fastmer.engine.onnx import OnnxEngine, export_onnx, infer_store, load_run_model


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
    summary = infer_store(engine_path, tiny_store, tmp_path / "preds.parquet", batch_size=4)
    assert summary.n_clips == 9 and summary.providers
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
