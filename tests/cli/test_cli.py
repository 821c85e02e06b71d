"""Every command through click's CliRunner, plus the no-torch-at-help guarantee."""

import json
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fastmer.cli import COMMANDS, main


@pytest.fixture
def runner():
    return CliRunner()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_every_command(runner, name):
    for flag in ("-h", "--help"):
        result = runner.invoke(main, [name, flag])
        assert result.exit_code == 0, result.output
        assert f"Usage: main {name}" in result.output or f"Usage: fastmer {name}" in result.output


def test_top_level_help_and_version(runner):
    result = runner.invoke(main, ["-h"])
    assert result.exit_code == 0 and all(name in result.output for name in COMMANDS)
    assert runner.invoke(main, ["--version"]).output.strip().endswith("0.1.0")


@pytest.mark.parametrize("args", [["--help"], *[[name, "--help"] for name in sorted(COMMANDS)]])
def test_help_never_imports_torch(args):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom fastmer.cli import main\n"
        f"r = CliRunner().invoke(main, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_info_json(runner):
    result = runner.invoke(main, ["info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["extension"]["loaded"] is True
    assert info["extension"]["cpu_capability"] in ("avx2", "base")
    assert all(paths["cpu"] == "native" for paths in info["ops"].values())
    comps = info["components"]
    assert comps["onnxruntime"]["available"] and "CPUExecutionProvider" in comps["onnxruntime"]["providers"]
    for name in ("tensorrt", "dali", "ray", "pyav", "timm"):
        assert comps[name]["available"] or comps[name]["reason"]
    assert info["decode"]["auto"]["cpu"]["images"]["engine"] in ("dali-cpu", "opencv")
    assert info["decode"]["auto"]["cpu"]["video"]["h264"]["engine"] in ("pyav", "opencv")  # never DALI on a CPU
    # the tests' model cache is empty: auto has no detector and says how to get one
    assert info["faces"]["auto"] is None and "fastmer models fetch yunet" in info["faces"]["reason"]
    text = runner.invoke(main, ["info"]).output
    assert "native extension fastmer._C: loaded" in text
    assert "CPU TV-L1 build in use: " in text
    assert "decoding (--decoder auto picks, per device):" in text and "face detector (--face-detector auto)" in text


def test_synth_extract_train_export_infer(runner, tmp_path):
    corpus, store, run = tmp_path / "corpus", tmp_path / "store", tmp_path / "run"
    result = runner.invoke(main, ["synth", "-o", str(corpus), "--subjects", "2", "--clips-per-subject", "3",
                                  "--min-frames", "10", "--max-frames", "12", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "wrote 6 clips of 2 subjects" in result.output
    result = runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(tmp_path / "dis"), "--size", "64", "--no-progress",
                                  "--flow-backend", "dis"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "dis" / "store.json").read_text())["params"]["flow_backend"] == "dis"
    result = runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(store), "--size", "64", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "6 of 6 clips extracted" in result.output
    meta = json.loads((store / "store.json").read_text())
    assert meta["params"]["flow_backend"] == "fastmer" and meta["params"]["tvl1"]["median_size"] == 5
    assert meta["runtime"]["device"] in ("cpu", "cuda")
    result = runner.invoke(main, ["train", str(store), "-o", str(run), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_folds"] == 2
    result = runner.invoke(main, ["export", str(run), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0 and "max |onnxruntime - torch|" in result.output, result.output
    result = runner.invoke(main, ["infer", str(store), "-e", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 6
    # Re-running the same extraction resumes the store: everything is skipped.
    again = runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(store), "--size", "64", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "0 of 6 clips extracted" in again.output and "6 skipped (already in the store)" in again.output
    # Other parameters into an existing store are refused, naming the flag that allows it.
    other = runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(store), "--no-progress"])
    assert other.exit_code == 1 and "other parameters" in other.output and "--overwrite" in other.output


def test_extract_exits_3_when_clips_fail(runner, tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    victim = sorted((corpus / "sub02").iterdir())[0]
    for frame in victim.iterdir():
        frame.write_bytes(b"")
    result = runner.invoke(main, ["extract", str(corpus), "--face-detector", "haar", "-o", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code == 3, result.output
    assert "8 of 9 clips extracted" in result.stdout and "1 failed" in result.stdout
    assert f"casme2/sub02/{victim.name} [decode] " in result.stderr and ".jpg: empty file" in result.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["extract", "/no/such/dir", "-o", "x"], 2, "'/no/such/dir' does not exist"),
        (["extract", ".", "-o", "x", "--size", "4"], 2, "--size"),
        (["extract", ".", "-o", "x", "--dataset", "smic9"], 2, "--dataset"),
        (["extract", ".", "-o", "x", "--dataset", "manifest"], 2, "with --dataset manifest ROOT is the manifest file"),
        (["extract", "f.csv", "-o", "x"], 2, "--dataset casme2 reads a corpus folder"),
        (["extract", ".", "-o", "x", "--dataset", "smic", "--annotations", "f.csv"], 2,
         "--dataset smic takes no single coding spreadsheet"),
        (["extract", ".", "-o", "x", "--apex", "guess"], 2, "--apex"),
        (["extract", ".", "-o", "x", "-r", "flow_phases,optical_flux"], 2, "unknown representation(s) optical_flux"),
        (["extract", ".", "-o", "x", "--face-detector", "dlib"], 2, "--face-detector"),
        (["extract", ".", "-o", "x", "--decoder", "ffmpeg"], 2, "--decoder"),
        (["extract", ".", "-o", "x", "--protocol", "nope"], 1, "unknown"),
        (["train", ".", "-o", "x"], 1, "is not a fastmer feature store"),
        (["train", ".", "-o", "x", "--model", "vgg"], 2, "--model"),
        (["export", ".", "-o", "m.onnx"], 1, "not a fastmer run directory"),
        (["synth", "-o", "x", "--min-frames", "3"], 2, "min_frames"),
        (["demo"], 2, "--out"),
    ],
)
def test_bad_arguments_name_the_problem(runner, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.csv").write_text("subject,path,onset,apex,offset,label\n")
    result = runner.invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_infer_rejects_a_plan_without_its_sidecar(runner, tiny_store, tmp_path):
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"x")
    result = runner.invoke(main, ["infer", str(tiny_store), "-e", str(engine), "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 1 and "has no sidecar model.plan.json" in result.output


def test_extract_with_every_face_and_apex_option(runner, tiny_corpus, tmp_path, shared_dir):
    model = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    store = tmp_path / "store"
    result = runner.invoke(main, ["extract", str(tiny_corpus), "-o", str(store), "--no-progress", "--size", "64",
                                  "--decoder", "opencv", "--face-detector", "yunet", "--face-model", str(model),
                                  "--face-box", "union", "--align", "--apex", "spot", "--apex-estimator", "regions",
                                  "--protocol", "casme2-5class", "--decode-whole-frames"])
    assert result.exit_code in (0, 3), result.output
    assert "face detector: opencv-yunet:face_detection_yunet_2023mar (requested)" in result.stderr
    assert "decoder: opencv (" in result.stderr
    meta = json.loads((store / "store.json").read_text())
    assert meta["params"]["face_detector"] == "opencv-yunet:face_detection_yunet_2023mar"
    assert meta["params"]["face_box"] == "union" and meta["params"]["align"] is True
    assert meta["params"]["apex"] == "spot" and meta["params"]["apex_estimator"] == "regions"
    assert meta["runtime"]["decoder"] == "opencv" and meta["runtime"]["face_model"] == str(model)
    assert meta["runtime"]["decode_region"] is False and "decode_region" not in meta["params"]  # same crops either way
    clips = pq.read_table(store / "clips").to_pydict() if (store / "clips").is_dir() else {}
    if clips:
        assert set(clips["apex_source"]) == {"spotted:regions"} and set(clips["decoder"]) == {"opencv"}


def test_extract_a_manifest(runner, tiny_corpus, tmp_path):
    from fastmer.datasets import load

    clips = list(load("casme2", tiny_corpus))[:2]
    manifest = tmp_path / "clips.csv"
    lines = ["subject,path,onset,apex,offset,label"]
    lines += [f"{c.subject.split('/')[1]},{c.source},{c.onset},,{c.offset},{c.labels[0]}" for c in clips]
    manifest.write_text("\n".join(lines) + "\n")
    result = runner.invoke(main, ["extract", str(manifest), "--face-detector", "haar", "--dataset", "manifest", "-o", str(tmp_path / "s"),
                                  "--no-progress", "--size", "64"])
    assert result.exit_code == 0, result.output
    assert "2 of 2 clips extracted" in result.stdout
    table = pq.read_table(tmp_path / "s" / "clips").to_pydict()
    assert table["apex_source"] == ["spotted:pca"] * 2  # the manifest gives no apex
