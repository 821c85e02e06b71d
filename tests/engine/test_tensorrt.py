"""TensorRT engines: what works without TensorRT (clear refusals, plan/target checks) runs
everywhere; the build and the parity with PyTorch run where TensorRT 11 and a GPU are."""

import hashlib
import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.engine.onnx import export_onnx, sidecar_path
from fastmer.engine.score import open_engine
from fastmer.engine.tensorrt import check_plan_target, read_plan_sidecar

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
TARGET = {"tensorrt_version": "11.4.1", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("trt") / "m.onnx"
    export_onnx(tiny_run, path)
    return path


def _fake_plan(tmp_path, exported, blob=b"plan bytes", **target):
    plan = tmp_path / "m.plan"
    plan.write_bytes(blob)
    sidecar = {**json.loads(sidecar_path(exported).read_text()), "engine": "tensorrt", "target": {**TARGET, **target},
               "plan_sha256": hashlib.sha256(blob).hexdigest()}
    sidecar_path(plan).write_text(json.dumps(sidecar))
    return plan, sidecar


def test_a_plan_runs_only_on_its_tensorrt_and_gpu(tmp_path, exported):
    _, sidecar = _fake_plan(tmp_path, exported)
    check_plan_target(sidecar, TARGET, "m.plan")  # the same machine: accepted
    with pytest.raises(ValueError, match=r"m.plan was built for TensorRT 11.4.1; this machine has 11.5.0: rebuild"):
        check_plan_target(sidecar, {**TARGET, "tensorrt_version": "11.5.0"}, "m.plan")
    with pytest.raises(ValueError, match="built for GPU compute capability 9.0; this machine has 8.0"):
        check_plan_target(sidecar, {**TARGET, "compute_capability": "8.0", "gpu": "NVIDIA A100"}, "m.plan")
    with pytest.raises(ValueError, match="built for GPU NVIDIA H100 80GB HBM3; this machine has NVIDIA H100 PCIe"):
        check_plan_target(sidecar, {**TARGET, "gpu": "NVIDIA H100 PCIe"}, "m.plan")
    with pytest.raises(ValueError, match="does not describe a TensorRT plan"):
        check_plan_target({**sidecar, "engine": "onnx"}, TARGET, "m.plan")


def test_a_corrupt_or_unexplained_plan_is_refused_before_tensorrt(tmp_path, exported, tiny_store):
    plan, _ = _fake_plan(tmp_path, exported)
    assert read_plan_sidecar(plan)["engine"] == "tensorrt"
    plan.write_bytes(b"plan bytes, truncated or swapped")
    with pytest.raises(ValueError, match="m.plan does not match its sidecar .* corrupt or was replaced"):
        open_engine(plan)
    result = CliRunner().invoke(main, ["infer", str(tiny_store), "-e", str(plan), "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 1 and "corrupt or was replaced" in result.output
    sidecar_path(plan).unlink()
    with pytest.raises(FileNotFoundError, match="has no sidecar m.plan.json; build plans with `fastmer engine build`"):
        open_engine(plan)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-TensorRT messages cannot be shown")
def test_without_tensorrt_build_and_plans_say_what_to_install(tmp_path, exported, tiny_store):
    runner = CliRunner()
    result = runner.invoke(main, ["engine", "build", str(exported), "-o", str(tmp_path / "m.plan")])
    assert result.exit_code == 1 and "TensorRT is not installed: pip install 'fastmer[tensorrt]'" in result.output
    assert not (tmp_path / "m.plan").exists()
    plan, _ = _fake_plan(tmp_path, exported)
    scored = runner.invoke(main, ["infer", str(tiny_store), "-e", str(plan), "-o", str(tmp_path / "p.parquet")])
    assert scored.exit_code == 1 and "TensorRT is not installed" in scored.output
    info = json.loads(runner.invoke(main, ["info", "--json"]).output)["components"]
    assert info["tensorrt"]["available"] is False and "fastmer[tensorrt]" in info["tensorrt"]["reason"]


def test_engine_build_checks_its_inputs_first(tmp_path, tiny_run):
    runner = CliRunner()
    bad = runner.invoke(main, ["engine", "build", str(tiny_run / "model.json"), "-o", str(tmp_path / "m.plan")])
    assert bad.exit_code == 1 and "is not a readable ONNX model" in bad.output
    order = runner.invoke(main, ["engine", "build", str(tiny_run / "model.json"), "-o", str(tmp_path / "m.plan"),
                                 "--min-batch", "8", "--opt-batch", "4"])
    assert order.exit_code == 1 and "1 <= min (8) <= opt (4) <= max (256)" in order.output


@pytest.mark.skipif(not (HAS_TRT and torch.cuda.is_available()),
                    reason="TensorRT 11 and a CUDA GPU are needed to build and run a plan")
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_matches_pytorch(tmp_path, exported, tiny_run, tiny_store, fp16):
    from fastmer.engine.tensorrt import build_engine

    if fp16 and importlib.util.find_spec("modelopt") is None:
        pytest.skip("NVIDIA ModelOpt is not installed (pip install 'fastmer[tensorrt]')")
    build_engine(exported, tmp_path / "m.plan", min_batch=1, opt_batch=4, max_batch=4, fp16=fp16)
    plan = open_engine(tmp_path / "m.plan")
    import fastmer.store as fstore

    x = fstore.open(tiny_store).numpy("flow_onset_apex").astype(np.float32)  # 9 clips: 3 chunks over 2 slots
    expected = open_engine(tiny_run, device="cpu").run(x)
    np.testing.assert_allclose(plan.run(x), expected, atol=2e-2 if fp16 else 1e-3)
