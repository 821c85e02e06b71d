"""``--executor ray``: the same pipeline on a local Ray instance writes the same store."""

import shutil

import pyarrow as pa
import pytest
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.extract import STAGES, extract

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastmer[ray]')")

OPTIONS = ["--size", "64", "--batch-size", "4", "--no-progress", "--face-detector", "haar"]


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray instance for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def damaged_corpus(tiny_corpus, tmp_path_factory):
    """The tiny corpus with one unreadable frame: that clip must become an error row."""
    corpus = tmp_path_factory.mktemp("ray") / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    victim = load("casme2", corpus)[4]
    (corpus / victim.source / f"img{victim.offset}.jpg").write_bytes(b"not a jpeg")
    return corpus, victim


def assert_same_rows(a, b):
    assert a.column_names == b.column_names
    for name in a.column_names:
        if isinstance(a.column(name).type, pa.FixedShapeTensorType):
            x, y = (t.column(name).combine_chunks().to_numpy_ndarray() for t in (a, b))
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name  # bit-identical
        elif name not in ("source",):
            assert a.column(name).to_pylist() == b.column(name).to_pylist(), name


def test_ray_store_equals_the_local_store(local_ray, damaged_corpus, tmp_path):
    corpus, victim = damaged_corpus
    runner = CliRunner()
    stores = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        extra = ["--ray-decode-actors", "1", "--ray-feature-actors", "1"] if executor == "ray" else []
        result = runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(out), "--executor", executor, *OPTIONS, *extra])
        assert result.exit_code == 3, result.output  # one clip failed, the run went on
        assert "8 of 9 clips extracted" in result.output and "flow pairs/s" in result.output
        stores[executor] = fstore.open(out)
    local, remote = stores["local"], stores["ray"]
    assert remote.complete and len(remote) == 8
    assert remote.column("uid") == local.column("uid") == [c.uid for c in load("casme2", corpus) if c.uid != victim.uid]
    assert_same_rows(remote.table, local.table)
    assert remote.errors.column("uid").to_pylist() == [victim.uid] == local.errors.column("uid").to_pylist()
    assert remote.errors.column("stage").to_pylist() == local.errors.column("stage").to_pylist()
    assert remote.meta["params_hash"] == local.meta["params_hash"] and remote.meta["runtime"]["executor"] == "ray"

    # resuming with Ray: nothing stored is recomputed, the failed clip is retried (and fails again)
    summary = extract(load("casme2", corpus), tmp_path / "ray", ExtractConfig(size=64, batch_size=4, face_detector="haar"),
                      executor="ray", log=lambda line: None)
    assert (summary.n_skipped, summary.n_failed, summary.n_ok) == (8, 1, 0)
    assert_same_rows(fstore.open(tmp_path / "ray").table, local.table)


def test_ray_summary_counts_stages_and_pairs(local_ray, tiny_corpus, tmp_path):
    clips = load("casme2", tiny_corpus)[:3]
    summary = extract(clips, tmp_path / "s", ExtractConfig(size=64, batch_size=2, face_detector="haar"),
                      executor="ray", ray_options={"decode_actors": 1}, log=lambda line: None)
    assert summary.executor == "ray" and summary.n_ok == 3
    assert summary.n_pairs == 6  # onset->apex and apex->offset per clip
    assert set(summary.stages) == set(STAGES) and all(summary.stages[s] > 0 for s in ("decode", "flow", "write"))


def test_ray_options_are_checked(tiny_corpus, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["extract", str(tiny_corpus), "--face-detector", "haar", "-o", str(tmp_path / "s"), "--ray-gpus", "1"])
    assert result.exit_code == 2 and "--ray-gpus only apply with --executor ray" in result.output
    with pytest.raises(ValueError, match="decode_actors must be >= 1"):
        extract(load("casme2", tiny_corpus)[:1], tmp_path / "t", ExtractConfig(face_detector="haar", size=64), executor="ray",
                ray_options={"decode_actors": 0}, log=lambda line: None)
    with pytest.raises(ValueError, match="executor must be one of local, ray"):
        extract(load("casme2", tiny_corpus)[:1], tmp_path / "u", executor="dask")
