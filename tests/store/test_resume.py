"""Resuming a store: what is committed, shard names, parameter checks, leftovers, error retry."""

import json

import numpy as np
import pytest

import fastmer.store as fstore
from fastmer.store import schema
from fastmer.store.writer import RepresentationSpec, StoreWriter

SPEC = {"flow": RepresentationSpec((2, 3, 4), "float32", ("u", "v"))}
PARAMS = {"size": 4}


def row(i: int, view: str = "full") -> dict:
    uid = f"d/s{i % 2}/c{i}" + ("" if view == "full" else f"@{view}")
    return {"uid": uid, "corpus_index": i, "dataset": "d", "subject": f"d/s{i % 2}", "clip_id": f"c{i}", "view": view,
            "onset": 1, "apex": 3, "offset": 9, "apex_source": "annotation", "labels": ["surprise"],
            "action_units": "1+2", "face_box": [1, 2, 30, 30], "source": f"/data/c{i}"}


def error(i: int, why: str = "cannot read image") -> dict:
    return {"uid": f"d/s{i % 2}/c{i}", "corpus_index": i, "dataset": "d", "subject": f"d/s{i % 2}",
            "clip_id": f"c{i}", "source": f"/data/c{i}", "stage": "decode", "error": why}


def tensors(i: int) -> dict:
    return {"flow": np.full((2, 3, 4), i, np.float32) + np.arange(24, dtype=np.float32).reshape(2, 3, 4)}


def shard_names(path, folder="clips"):
    return sorted(p.name for p in (path / folder).iterdir())


def interrupted(path, indices, shard_size=2, errors=()):
    """A run that wrote ``indices`` (and error rows ``errors``) and then crashed."""
    with pytest.raises(RuntimeError, match="killed"), StoreWriter(path, SPEC, PARAMS, shard_size=shard_size) as w:
        for i in indices:
            w.add(row(i), tensors(i))
        for i in errors:
            w.add_error(error(i))
        raise RuntimeError("killed")


def test_resume_continues_with_new_shard_names_and_corpus_order(tmp_path):
    store = tmp_path / "s"
    interrupted(store, [0, 2, 5])  # clips 1, 3, 4 missing: e.g. a run over another ordering
    before = {name: (store / "clips" / name).read_bytes() for name in shard_names(store)}
    assert list(before) == ["part-00000.parquet", "part-00001.parquet"]
    assert not fstore.open(store).complete
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        assert w.resumed and w.n_retried == 0
        assert w.committed == {0: ["d/s0/c0"], 2: ["d/s0/c2"], 5: ["d/s1/c5"]}
        for i in (4, 3, 1):  # written out of order on purpose
            w.add(row(i), tensors(i))
    names = shard_names(store)
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet", "part-00003.parquet"]
    assert all((store / "clips" / n).read_bytes() == data for n, data in before.items())  # never rewritten
    s = fstore.open(store)
    assert s.complete and len(s) == 6 and s.meta["n_clips"] == 6
    assert s.column("uid") == [row(i)["uid"] for i in range(6)]  # corpus order, not write order
    assert s.column("corpus_index") == list(range(6))
    flow = s.tensor("flow").numpy()
    for i in range(6):
        np.testing.assert_array_equal(flow[i], tensors(i)["flow"])


def test_resumed_store_keeps_created_and_an_in_order_store_stays_zero_copy(tmp_path):
    store = tmp_path / "s"
    interrupted(store, [0, 1], shard_size=10)
    created = json.loads((store / "store.json").read_text())["created"]
    StoreWriter(store, SPEC, PARAMS).close()
    meta = json.loads((store / "store.json").read_text())
    assert meta["created"] == created and meta["complete"] and meta["format_version"] == schema.FORMAT_VERSION == 4
    s = fstore.open(store)
    assert s.numpy("flow").ctypes.data == s.table.column("flow").chunks[0].storage.values.buffers()[1].address


def test_views_of_one_clip_share_a_shard_and_keep_their_order(tmp_path):
    store = tmp_path / "s"
    with StoreWriter(store, SPEC, PARAMS, shard_size=1) as w:
        for i in (1, 0):
            for view in ("left", "right"):
                w.add(row(i, view), tensors(i))
    assert len(shard_names(store)) == 2  # one shard per clip, however small shard_size
    assert fstore.open(store).column("uid") == ["d/s0/c0@left", "d/s0/c0@right", "d/s1/c1@left", "d/s1/c1@right"]


def test_other_parameters_are_refused_naming_both_hashes(tmp_path):
    store = tmp_path / "s"
    interrupted(store, [0])
    old, new = schema.params_hash(PARAMS), schema.params_hash({"size": 8})
    with pytest.raises(FileExistsError, match=f"params_hash {old}; this run: {new}.*--overwrite.*another --out"):
        StoreWriter(store, SPEC, {"size": 8})
    other = {"flow": RepresentationSpec((2, 3, 4), "float16", ("u", "v"))}
    with pytest.raises(FileExistsError, match="other representations.*--overwrite"):
        StoreWriter(store, other, PARAMS)
    meta = json.loads((store / "store.json").read_text())
    meta["format_version"] = 2
    (store / "store.json").write_text(json.dumps(meta))
    with pytest.raises(FileExistsError, match="v2 .*cannot be resumed.*--overwrite"):
        StoreWriter(store, SPEC, PARAMS)
    assert shard_names(store) == ["part-00000.parquet"]  # nothing was touched


def test_overwrite_wipes_and_recomputes(tmp_path):
    store = tmp_path / "s"
    interrupted(store, [0, 1, 2], errors=[3])
    with StoreWriter(store, SPEC, {"size": 8}, overwrite=True) as w:
        assert not w.resumed and w.committed == {}
        w.add(row(0), tensors(7))
    s = fstore.open(store)
    assert len(s) == 1 and len(s.errors) == 0 and s.meta["params"] == {"size": 8}
    np.testing.assert_array_equal(s.numpy("flow")[0], tensors(7)["flow"])
    assert shard_names(store) == ["part-00000.parquet"]


def test_temporary_files_of_a_killed_run_are_removed(tmp_path):
    store = tmp_path / "s"
    interrupted(store, [0, 1])
    leftovers = [store / "clips" / ".part-00001.parquet.x1y2.tmp", store / "errors" / ".part-00000.parquet.a.tmp",
                 store / ".store.json.z.tmp"]
    for path in leftovers:
        path.write_bytes(b"PAR1 half a shard")
    assert len(fstore.open(store)) == 2  # the reader never sees them
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        assert w.committed == {0: ["d/s0/c0"], 1: ["d/s1/c1"]}
        assert not any(p.exists() for p in leftovers)
        w.add(row(2), tensors(2))
    assert [p.name for p in store.rglob(".*")] == []
    assert fstore.open(store).column("corpus_index") == [0, 1, 2]


def test_a_run_killed_before_its_first_file_leaves_a_fresh_store(tmp_path):
    store = tmp_path / "s"
    (store / "clips").mkdir(parents=True)
    (store / ".store.json.abc.tmp").write_text("{")
    with StoreWriter(store, SPEC, PARAMS) as w:  # nothing to resume, nothing refused
        assert not w.resumed
        w.add(row(0), tensors(0))
    assert len(fstore.open(store)) == 1 and [p.name for p in store.rglob(".*")] == []
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists and is not empty.*not a fastmer feature store"):
        StoreWriter(tmp_path / "t", SPEC, PARAMS)


def test_a_uid_or_clip_is_never_stored_twice(tmp_path):
    store = tmp_path / "s"
    interrupted(store, [0, 1])
    w = StoreWriter(store, SPEC, PARAMS)
    with pytest.raises(ValueError, match="clip 1 is already in the store"):
        w.add(row(1), tensors(1))
    with pytest.raises(ValueError, match="clip 0 is already in the store"):
        w.add_error(error(0))
    with pytest.raises(ValueError, match="d/s1/c1 is already in the store"):
        w.add({**row(1), "corpus_index": 9}, tensors(1))
    w.add(row(2), tensors(2))
    with pytest.raises(ValueError, match="already in the store"):
        w.add(row(2), tensors(2))  # twice in one run, before any flush
    w.close()
    uids = fstore.open(store).column("uid")
    assert uids == ["d/s0/c0", "d/s1/c1", "d/s0/c2"] and len(set(uids)) == len(uids)


def test_failed_clips_are_retried_and_their_old_error_rows_replaced(tmp_path):
    store = tmp_path / "s"
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        for i in range(4):
            w.add_error(error(i, "disk hiccup")) if i in (1, 3) else w.add(row(i), tensors(i))
    assert fstore.open(store).complete and len(fstore.open(store).errors) == 2
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        assert sorted(w.committed) == [0, 2] and w.n_retried == 2  # the failed clips are to do again
        assert len(fstore.open(store).errors) == 2  # kept until something new is written
        w.add(row(1), tensors(1))  # transient: works now
        w.add_error(error(3, "still broken"))
    s = fstore.open(store)
    assert s.column("uid") == ["d/s0/c0", "d/s1/c1", "d/s0/c2"]
    assert s.errors.column("uid").to_pylist() == ["d/s1/c3"]  # once, not twice, and not c1
    assert s.errors.column("error").to_pylist() == ["still broken"]
    assert s.errors.column("corpus_index").to_pylist() == [3]
    assert (s.meta["n_clips"], s.meta["n_errors"]) == (3, 1) and s.complete
    assert not set(s.column("uid")) & set(s.errors.column("uid").to_pylist())


def test_errors_can_be_kept_and_are_kept_when_nothing_is_retried(tmp_path):
    store = tmp_path / "s"
    with StoreWriter(store, SPEC, PARAMS) as w:
        w.add(row(0), tensors(0))
        w.add_error(error(1))
    with StoreWriter(store, SPEC, PARAMS, retry_errors=False) as w:
        assert sorted(w.committed) == [0, 1] and w.n_retried == 0
        with pytest.raises(ValueError, match="already in the store"):
            w.add_error(error(1))
    with StoreWriter(store, SPEC, PARAMS):
        pass  # a caller that retries nothing loses nothing
    s = fstore.open(store)
    assert s.errors.column("uid").to_pylist() == ["d/s1/c1"] and s.meta["n_errors"] == 1 and s.complete


def test_a_refused_resume_leaves_the_store_untouched(tmp_path):
    store = tmp_path / "s"
    with StoreWriter(store, SPEC, PARAMS) as w:
        w.add(row(0), tensors(0))
        w.add_error(error(1))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    w = StoreWriter(store, SPEC, PARAMS)
    w.abort()  # e.g. extract found the store was made from other clips
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before


def test_one_writer_at_a_time(tmp_path):
    first = StoreWriter(tmp_path / "s", SPEC, PARAMS)
    with pytest.raises(RuntimeError, match="being written by another process"):
        StoreWriter(tmp_path / "s", SPEC, PARAMS)
    first.close()
    StoreWriter(tmp_path / "s", SPEC, PARAMS).close()
