import json
import os
import stat

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import fastmer.store as fstore
from fastmer.store.writer import RepresentationSpec, StoreWriter

SPEC = {"flow": RepresentationSpec((2, 3, 4), "float32", ("u", "v"))}


def row(i: int) -> dict:
    return {"uid": f"d/s{i % 2}/c{i}", "dataset": "d", "subject": f"d/s{i % 2}", "clip_id": f"c{i}", "view": "full",
            "onset": 1, "apex": 3, "offset": 9, "apex_source": "annotation", "labels": ["surprise"],
            "action_units": "1+2", "face_box": [1, 2, 30, 30], "source": f"/data/c{i}"}


def tensors(i: int) -> dict:
    return {"flow": np.full((2, 3, 4), i, np.float32) + np.arange(24, dtype=np.float32).reshape(2, 3, 4)}


def test_roundtrip_across_shards(tmp_path):
    with StoreWriter(tmp_path / "s", SPEC, {"size": 4}, shard_size=2) as writer:
        for i in range(5):
            writer.add(row(i), tensors(i))
        writer.add_error({"uid": "d/s0/bad", "dataset": "d", "subject": "d/s0", "clip_id": "bad", "source": "/x",
                          "stage": "decode", "error": "cannot read image /x/img1.jpg"})
    store = fstore.open(tmp_path / "s")
    assert len(store) == 5 and store.complete
    assert sorted(p.name for p in (tmp_path / "s" / "clips").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    flow = store.tensor("flow")
    assert flow.shape == (5, 2, 3, 4) and flow.dtype == torch.float32
    for i in range(5):
        np.testing.assert_array_equal(flow[i].numpy(), tensors(i)["flow"])
    assert store.tensor("flow", channels=("v",)).shape == (5, 1, 3, 4)
    assert store.column("clip_id") == [f"c{i}" for i in range(5)]
    assert store.errors.column("stage").to_pylist() == ["decode"]
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    assert meta["n_clips"] == 5 and meta["n_errors"] == 1 and meta["params"] == {"size": 4}
    assert store.column("params_hash") == [meta["params_hash"]] * 5


def test_single_shard_tensor_is_zero_copy(tmp_path):
    with StoreWriter(tmp_path / "s", SPEC, {}) as writer:
        for i in range(3):
            writer.add(row(i), tensors(i))
    store = fstore.open(tmp_path / "s")
    array = store.numpy("flow")
    chunk = store.table.column("flow").chunks[0]
    assert array.ctypes.data == chunk.storage.values.buffers()[1].address + chunk.storage.values.offset * 4
    assert store.tensor("flow").data_ptr() == array.ctypes.data


def test_readable_without_fastmer(tmp_path):
    with StoreWriter(tmp_path / "s", SPEC, {}) as writer:
        writer.add(row(0), tensors(0))
    table = pq.read_table(tmp_path / "s" / "clips")
    assert table.column("uid").to_pylist() == ["d/s0/c0"]
    assert str(table.schema.field("flow").type).startswith("extension<arrow.fixed_shape_tensor")
    np.testing.assert_array_equal(table.column("flow").chunks[0].to_numpy_ndarray()[0], tensors(0)["flow"])
    assert json.loads(table.schema.field("flow").metadata[b"channels"]) == ["u", "v"]


def test_files_are_atomic_and_world_readable(tmp_path):
    with StoreWriter(tmp_path / "s", SPEC, {}) as writer:
        writer.add(row(0), tensors(0))
    names = [p.name for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert not [n for n in names if n.startswith(".")], names  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    for p in (tmp_path / "s").rglob("*.parquet"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_crash_keeps_finished_shards_and_marks_incomplete(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(tmp_path / "s", SPEC, {}, shard_size=2) as writer:
        for i in range(3):
            writer.add(row(i), tensors(i))
        raise RuntimeError("boom")
    store = fstore.open(tmp_path / "s")
    assert len(store) == 3 and not store.complete


def test_never_overwrites_what_is_not_a_store(tmp_path):
    """--overwrite replaces a store, not a folder of other things nor a file (issue 17: `extract victim -o victim`)."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        StoreWriter(tmp_path / "s", SPEC, {})
    with pytest.raises(FileExistsError, match=r"s is not empty and is not a fastmer feature store.*even with --overwrite"):
        StoreWriter(tmp_path / "s", SPEC, {}, overwrite=True)
    assert (tmp_path / "s" / "keep.txt").read_text() == "x" and sorted(p.name for p in (tmp_path / "s").iterdir()) == ["keep.txt"]
    (tmp_path / "f").write_text("data")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="f is a file, not a fastmer feature store"):
            StoreWriter(tmp_path / "f", SPEC, {}, overwrite=overwrite)
    assert (tmp_path / "f").read_text() == "data"


def test_overwrite_replaces_the_store_and_only_the_store(tmp_path):
    with StoreWriter(tmp_path / "s", SPEC, {"a": 1}) as writer:
        writer.add(row(0), tensors(0))
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with StoreWriter(tmp_path / "s", SPEC, {"a": 2}, overwrite=True) as writer:
        writer.add(row(1), tensors(1))
    store = fstore.open(tmp_path / "s")
    assert len(store) == 1 and store.meta["params"] == {"a": 2}
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"


def test_wrong_tensor_shape_and_unknown_names(tmp_path):
    writer = StoreWriter(tmp_path / "s", SPEC, {})
    with pytest.raises(ValueError, match="flow has shape"):
        writer.add(row(0), {"flow": np.zeros((2, 3, 5), np.float32)})
    writer.close()
    store = fstore.open(tmp_path / "s")
    assert len(store) == 0 and store.tensor("flow").shape == (0, 2, 3, 4)
    with pytest.raises(KeyError, match="no representation 'dynamic'"):
        store.tensor("dynamic")
    with pytest.raises(KeyError, match="no channel"):
        store.tensor("flow", channels=("w",))


def test_not_a_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a fastmer feature store"):
        fstore.open(tmp_path)
