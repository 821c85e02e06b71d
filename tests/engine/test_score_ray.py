"""``fastmer infer --executor ray``: engines on Ray actors score the same rows as the local path."""

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fastmer.cli import main

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastmer[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    # 4 logical CPUs (on any machine): a decode actor, a feature actor, an engine and Ray Data's reads.
    ray.init(num_cpus=4, include_dashboard=False, logging_level="error", log_to_driver=False)
    yield
    ray.shutdown()


def _same_predictions(a, b):
    a, b = pq.read_table(a).to_pydict(), pq.read_table(b).to_pydict()
    assert a["uid"] == b["uid"] and a["predicted"] == b["predicted"] and a["error"] == b["error"]
    assert a["views"] == b["views"]
    for pa_, pb in zip(a["probabilities"], b["probabilities"], strict=True):
        assert (pa_ is None) == (pb is None)
        if pa_ is not None:
            assert max(abs(x - y) for x, y in zip(pa_, pb, strict=True)) < 1e-5


@pytest.mark.slow
def test_ray_scores_a_store_and_raw_corpus_like_the_local_path(local_ray, tiny_store, tiny_corpus, tiny_run, tmp_path):
    runner = CliRunner()
    common = ["-e", str(tiny_run), "--device", "cpu", "--batch-size", "4"]
    for name, args, engines in (("store", [str(tiny_store)], "2"),
                                ("raw", [str(tiny_corpus), "-d", "casme2", "--no-progress"], "1")):
        local = runner.invoke(main, ["infer", *args, *common, "-o", str(tmp_path / f"{name}-local.parquet")])
        assert local.exit_code == 0, local.output
        distributed = runner.invoke(main, ["infer", *args, *common, "--executor", "ray", "--ray-engines", engines,
                                           "-o", str(tmp_path / f"{name}-ray.parquet")])
        assert distributed.exit_code == 0, distributed.output
        assert "scored 9 clips" in distributed.output
        _same_predictions(tmp_path / f"{name}-local.parquet", tmp_path / f"{name}-ray.parquet")


def test_ray_options_need_the_ray_executor(tiny_store, tiny_run, tmp_path):
    result = CliRunner().invoke(main, ["infer", str(tiny_store), "-e", str(tiny_run), "--ray-engines", "2",
                                       "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 2 and "--ray-engines only apply with --executor ray" in result.output


@pytest.mark.slow
def test_ray_refuses_a_pipeline_that_cannot_fit(local_ray, tiny_corpus, tiny_run, tmp_path):
    result = CliRunner().invoke(main, ["infer", str(tiny_corpus), "-d", "casme2", "-e", str(tiny_run), "--device", "cpu",
                                       "--executor", "ray", "--ray-engines", "3", "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 1 and "the Ray cluster has 4 CPUs" in result.output, result.output
    assert not (tmp_path / "p.parquet").exists()


def test_a_mismatching_store_is_named_before_any_worker_starts(synthetic_store, tiny_run, tmp_path):
    result = CliRunner().invoke(main, ["infer", str(synthetic_store), "-e", str(tiny_run), "--executor", "ray",
                                       "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 1 and "the model was trained on" in result.output


@pytest.mark.slow
def test_ray_scores_stacked_views_like_the_local_path(local_ray, dual_view_store, tmp_path):
    from dataclasses import replace

    from fastmer.models import MODELS
    from fastmer.train.run import train

    run = tmp_path / "run"
    train(dual_view_store, run, model="microattnet", labels="4dme-multilabel",
          recipe=replace(MODELS["microattnet"].recipe, epochs=1, patience=None))
    runner = CliRunner()
    for executor in ("local", "ray"):
        result = runner.invoke(main, ["infer", str(dual_view_store), "-e", str(run), "--device", "cpu", "--executor",
                                      executor, "-o", str(tmp_path / f"{executor}.parquet")])
        assert result.exit_code == 3, result.output  # the clip lacking its right view is an error row
    _same_predictions(tmp_path / "local.parquet", tmp_path / "ray.parquet")
