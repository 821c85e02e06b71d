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


def _flip_weight_byte(path):
    """Flip one byte inside the largest weight initializer of an .onnx file, in place."""
    import onnx

    blob = bytearray(path.read_bytes())
    largest = max(onnx.load_model_from_string(bytes(blob)).graph.initializer, key=lambda t: len(t.raw_data))
    raw = largest.raw_data
    at = bytes(blob).find(raw)
    assert len(raw) >= 64 and at > 0 and bytes(blob).find(raw, at + 1) == -1
    blob[at + len(raw) // 2 + 3] ^= 0xFF  # the high byte of a float32: a large change of one weight
    path.write_bytes(bytes(blob))


def _copy_engine(engine_path, to, sidecar=True):
    import shutil

    from fastmer.engine.onnx import sidecar_path

    to.mkdir()
    shutil.copy(engine_path, to / "model.onnx")
    if sidecar:
        shutil.copy(sidecar_path(engine_path), sidecar_path(to / "model.onnx"))
    return to / "model.onnx"


def test_a_flipped_weight_byte_is_refused(engine_path, tiny_store, tmp_path):
    """Issue 17: one byte of a weight changed predictions by up to 0.9999 and scoring exited 0."""
    import hashlib
    import json
    import re

    import onnx
    from click.testing import CliRunner

    from fastmer.cli import main
    from fastmer.engine.onnx import WEIGHTS_KEY, sidecar_path, weights_sha256

    # the export records the whole file's sha256 in the sidecar and the weights' in the metadata
    proto = onnx.load(str(engine_path))
    recorded = {e.key: e.value for e in proto.metadata_props}[WEIGHTS_KEY]
    assert recorded == weights_sha256(proto)
    expected_file = json.loads(sidecar_path(engine_path).read_text())["onnx_sha256"]

    # with its sidecar: the file's bytes are checked
    path = _copy_engine(engine_path, tmp_path / "with_sidecar")
    _flip_weight_byte(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    message = f"{re.escape(str(path))} is corrupt or was replaced: sha256 {digest}, expected {expected_file}"
    with pytest.raises(ValueError, match=message):
        open_engine(path)
    with pytest.raises(ValueError, match=message):
        OnnxEngine(path)
    result = CliRunner().invoke(main, ["infer", str(tiny_store), "--engine", str(path), "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code != 0 and "is corrupt or was replaced" in result.output, result.output
    assert not (tmp_path / "p.parquet").exists()
    # a TensorRT build from it is refused before TensorRT is needed (so here too, without TensorRT)
    result = CliRunner().invoke(main, ["engine", "build", str(path), "-o", str(tmp_path / "m.plan")])
    assert result.exit_code != 0 and "is corrupt or was replaced" in result.output, result.output

    # without its sidecar: the weights are checked against the hash in the model's own metadata
    path = _copy_engine(engine_path, tmp_path / "alone", sidecar=False)
    assert open_engine(path).run(np.zeros((1, 4, 128, 128), np.float32)).shape == (1, 3)  # intact: opens
    _flip_weight_byte(path)
    actual = weights_sha256(onnx.load(str(path)))
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is corrupt or was replaced: sha256 {actual}, "
                                         f"expected {recorded}"):
        open_engine(path)


def test_weights_hash_covers_values_not_layout():
    """The metadata's weights hash: the same tensors stored raw or typed, in any order, hash alike."""
    from onnx import TensorProto, helper, numpy_helper

    from fastmer.engine.onnx import weights_sha256

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = numpy_helper.from_array(w, "w")
    typed = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], w.ravel().tolist())
    bias = numpy_helper.from_array(np.ones(2, np.float32), "b")
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]

    def model(*initializers):
        return helper.make_model(helper.make_graph([helper.make_node("Identity", ["b"], ["y"])], "g", [], out,
                                                   initializer=list(initializers)))

    assert weights_sha256(model(raw, bias)) == weights_sha256(model(bias, typed))
    w[1, 2] = 7.0
    assert weights_sha256(model(numpy_helper.from_array(w, "w"), bias)) != weights_sha256(model(raw, bias))


def test_older_exports_and_third_party_models(engine_path, tmp_path):
    """An export from before the weights hash (no sidecar) still opens; a model without fastmer's
    metadata is refused as before."""
    import onnx
    from onnx import TensorProto, helper

    from fastmer.engine.onnx import WEIGHTS_KEY

    proto = onnx.load(str(engine_path))
    kept = [e for e in proto.metadata_props if e.key != WEIGHTS_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(tmp_path / "older.onnx"))
    assert open_engine(tmp_path / "older.onnx").classes == ("negative", "positive", "surprise")

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match="has no fastmer metadata; export it with `fastmer export`"):
        open_engine(tmp_path / "other.onnx")
