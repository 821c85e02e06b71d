"""Replacing stored clips: fingerprints, rows replaced in place, the pending journal, older stores."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_resume import PARAMS, SPEC, error, row, shard_names, tensors

import fastmer.store as fstore
import fastmer.store.writer as writer_module
from fastmer.store.writer import StoredClip, StoreWriter


def fingerprinted(i: int, fingerprint: str = "a0:s0", view: str = "full") -> dict:
    return {**row(i, view), "fingerprint": fingerprint}


def write(store, indices, shard_size=2, fingerprint="a0:s0"):
    with StoreWriter(store, SPEC, PARAMS, shard_size=shard_size) as w:
        for i in indices:
            w.add(fingerprinted(i, fingerprint), tensors(i))


def snapshot(store):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (store / "clips").iterdir()}


def rows_by_uid(store):
    s = fstore.open(store)
    flow = s.numpy("flow")
    return {r["uid"]: ({k: v for k, v in r.items() if k != "flow"}, flow[i].tobytes())
            for i, r in enumerate(s.table.to_pylist())}


def test_fingerprints_are_read_back_per_clip(tmp_path):
    store = tmp_path / "s"
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        w.add(fingerprinted(0, "a0:s0"), tensors(0))
        for view in ("left", "right"):
            w.add(fingerprinted(1, "a1:s1", view), tensors(1))
        w.add_error({**error(2), "fingerprint": "a2:s2"})
    w = StoreWriter(store, SPEC, PARAMS, retry_errors=False)
    assert w.stored == {0: StoredClip(("d/s0/c0",), "a0:s0", False),
                        1: StoredClip(("d/s1/c1@left", "d/s1/c1@right"), "a1:s1", False),
                        2: StoredClip(("d/s0/c2",), "a2:s2", True)}
    w.abort()
    assert fstore.open(store).column("fingerprint") == ["a0:s0", "a1:s1", "a1:s1"]
    assert fstore.open(store).errors.column("fingerprint").to_pylist() == ["a2:s2"]


def test_superseded_clips_are_replaced_in_place_and_other_shards_untouched(tmp_path):
    store = tmp_path / "s"
    write(store, range(5))  # shards: [0, 1], [2, 3], [4]
    before, rows_before = snapshot(store), rows_by_uid(store)
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        w.supersede(1)
        w.supersede(4)
        assert sorted(w.committed) == [0, 2, 3]
        assert snapshot(store) == before  # nothing removed before something is written
        for i in (1, 4):
            w.add({**fingerprinted(i, "a9:s0"), "apex": 5}, tensors(i + 10))
    s = fstore.open(store)
    assert s.column("uid") == [row(i)["uid"] for i in range(5)] and s.column("corpus_index") == list(range(5))
    assert s.complete and s.meta["n_clips"] == 5 and s.meta["pending"] == []
    assert s.column("apex") == [3, 5, 3, 3, 5] and s.column("fingerprint") == ["a0:s0", "a9:s0", "a0:s0", "a0:s0", "a9:s0"]
    np.testing.assert_array_equal(s.numpy("flow")[4], tensors(14)["flow"])
    after = rows_by_uid(store)
    for i in (0, 2, 3):
        assert after[row(i)["uid"]] == rows_before[row(i)["uid"]]  # every column, tensors byte for byte
    names = shard_names(store)
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00003.parquet"]  # [0], [2, 3], [1, 4]
    assert (store / "clips" / "part-00001.parquet").read_bytes() == before["part-00001.parquet"][0]
    assert (store / "clips" / "part-00001.parquet").stat().st_mtime_ns == before["part-00001.parquet"][1]
    assert pq.read_table(store / "clips" / "part-00000.parquet").column("uid").to_pylist() == ["d/s0/c0"]


def test_a_superseded_clip_that_now_fails_leaves_the_clips_table(tmp_path):
    store = tmp_path / "s"
    write(store, range(3))
    with StoreWriter(store, SPEC, PARAMS) as w:
        w.supersede(1)
        w.add_error({**error(1, "apex 99 is after the offset"), "fingerprint": "a1:s0"})
    s = fstore.open(store)
    assert s.column("uid") == ["d/s0/c0", "d/s0/c2"] and s.errors.column("uid").to_pylist() == ["d/s1/c1"]
    assert (s.meta["n_clips"], s.meta["n_errors"]) == (2, 1)


def test_superseding_nothing_written_leaves_the_store_as_it_was(tmp_path):
    store = tmp_path / "s"
    write(store, range(3))
    files = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    w = StoreWriter(store, SPEC, PARAMS)
    w.supersede(0)
    w.abort()
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == files
    w = StoreWriter(store, SPEC, PARAMS)
    with pytest.raises(ValueError, match="clip 7 is not in store"):
        w.supersede(7)
    w.supersede(2)
    with pytest.raises(ValueError, match="clip 0 is already in the store"):
        w.add(fingerprinted(0), tensors(0))  # only the released clip can be added again
    w.close()  # nothing added: its rows stay
    assert fstore.open(store).column("uid") == [row(i)["uid"] for i in range(3)]


def test_killed_after_removing_old_rows_the_pending_journal_restores_their_place(tmp_path, monkeypatch):
    """The window between removing a clip's old rows and writing its new ones: store.json
    lists it as pending with its index, so the next run puts it back where it was."""
    store = tmp_path / "s"
    write(store, range(4))
    original = writer_module.atomic_write_table

    def killed_at_new_shards(table, path):
        if path.name >= "part-00002.parquet":  # the rewrites of old shards go through, the new shard does not
            raise KeyboardInterrupt("killed")
        original(table, path)

    monkeypatch.setattr(writer_module, "atomic_write_table", killed_at_new_shards)
    w = StoreWriter(store, SPEC, PARAMS, shard_size=2)
    w.supersede(1)
    w.supersede(2)
    w.add(fingerprinted(1, "a9:s0"), tensors(11))
    w.add(fingerprinted(2, "a9:s0"), tensors(12))
    with pytest.raises(KeyboardInterrupt):
        w.flush()
    w.abort()
    monkeypatch.setattr(writer_module, "atomic_write_table", original)
    meta = json.loads((store / "store.json").read_text())
    assert not meta["complete"]
    assert meta["pending"] == [{"corpus_index": 1, "uids": ["d/s1/c1"]}, {"corpus_index": 2, "uids": ["d/s0/c2"]}]
    s = fstore.open(store)
    assert s.column("uid") == ["d/s0/c0", "d/s1/c3"]  # each uid at most once, even now
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        assert w.pending == {1: ["d/s1/c1"], 2: ["d/s0/c2"]} and sorted(w.committed) == [0, 3]
        assert 1 not in w.stored and 2 not in w.stored
        w.add(fingerprinted(2, "a9:s0"), tensors(12))
        w.add(fingerprinted(1, "a9:s0"), tensors(11))
    s = fstore.open(store)
    assert s.column("uid") == [row(i)["uid"] for i in range(4)] and s.meta["pending"] == []
    np.testing.assert_array_equal(s.numpy("flow")[1], tensors(11)["flow"])


def test_a_pending_clip_whose_old_rows_survived_is_not_pending(tmp_path):
    """Killed after the journal but before the rewrite: the old rows are still there (and win)."""
    store = tmp_path / "s"
    write(store, range(2))
    meta = json.loads((store / "store.json").read_text())
    meta.update(complete=False, pending=[{"corpus_index": 1, "uids": ["d/s1/c1"]}])
    (store / "store.json").write_text(json.dumps(meta))
    with StoreWriter(store, SPEC, PARAMS) as w:
        assert w.pending == {} and sorted(w.committed) == [0, 1]
    assert json.loads((store / "store.json").read_text())["pending"] == []


def test_retried_errors_are_removed_row_by_row_and_retain_keeps_one(tmp_path):
    store = tmp_path / "s"
    with StoreWriter(store, SPEC, PARAMS) as w:
        w.add(fingerprinted(0), tensors(0))
        w.add_error(error(1))
        w.add_error(error(2))
    with StoreWriter(store, SPEC, PARAMS) as w:
        assert w.n_retried == 2 and sorted(w.committed) == [0]
        w.retain(2)  # e.g. a clip the corpus no longer lists: its error row is kept
        assert w.n_retried == 1 and sorted(w.committed) == [0, 2]
        with pytest.raises(ValueError, match="not a failed clip being retried"):
            w.retain(0)
        w.add(fingerprinted(1), tensors(1))
    s = fstore.open(store)
    assert s.column("uid") == ["d/s0/c0", "d/s1/c1"] and s.errors.column("uid").to_pylist() == ["d/s0/c2"]
    assert (s.meta["n_clips"], s.meta["n_errors"]) == (2, 1)


def test_a_store_written_before_fingerprints_resumes_and_reads(tmp_path):
    """Shards without the fingerprint column (stores written before it): no fingerprint, and
    the reader takes them beside new shards that have it."""
    store = tmp_path / "s"
    write(store, range(3))
    for part in (store / "clips").glob("part-*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["fingerprint"]), part)
    meta = json.loads((store / "store.json").read_text())
    del meta["pending"]
    (store / "store.json").write_text(json.dumps(meta))
    assert "fingerprint" not in fstore.open(store).table.column_names
    with StoreWriter(store, SPEC, PARAMS, shard_size=2) as w:
        assert {i: c.fingerprint for i, c in w.stored.items()} == {0: None, 1: None, 2: None}
        w.supersede(1)  # rows without the column can be replaced too
        w.add(fingerprinted(1, "a1:s1"), tensors(1))
        w.add(fingerprinted(3, "a3:s3"), tensors(3))
    s = fstore.open(store)
    assert s.column("uid") == [row(i)["uid"] for i in range(4)]
    assert s.column("fingerprint") == [None, "a1:s1", None, "a3:s3"]
    np.testing.assert_array_equal(s.numpy("flow"), np.stack([tensors(i)["flow"] for i in range(4)]))
