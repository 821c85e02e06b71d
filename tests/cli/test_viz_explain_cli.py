"""fastmer viz RUN --clip UID: explanations come from the fold model that never trained on the clip,
the numbers in explanation.json are those of that model, the figures show them, errors are clear."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.explain import cross_attention, grad_cam
from fastmer.models import TrainRecipe
from fastmer.models.model import MERModel
from fastmer.viz import to_uint8

WORDS = ("happiness", "disgust", "surprise")
RECIPE = TrainRecipe(epochs=2, lr=1e-3, batch_size=8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A synthetic store (3 subjects x 3 clips, 16 px) and quick runs on it: MicroAttNet (LOSO),
    DIANet (hold-out) and the LBP-TOP SVM."""
    from fastmer.store.synthetic import synthetic_feature_store
    from fastmer.train.run import train

    root = tmp_path_factory.mktemp("explain")
    clips = [{"uid": f"d/s{s}/c{c}", "subject": f"d/s{s}", "dataset": "d", "labels": [WORDS[(c + s) % 3]]}
             for s in range(3) for c in range(3)]
    store = synthetic_feature_store(root / "store", clips, size=16,
                                    representations=("flow_phases", "dynamic_image_phases", "lbptop"))
    quiet = {"log": lambda line: None, "jobs": 1}
    train(store, root / "microattnet", model="microattnet", recipe=RECIPE, **quiet)
    train(store, root / "dianet", model="dianet", protocol="holdout", test_fraction=0.34, recipe=RECIPE, **quiet)
    train(store, root / "svm", model="lbptop-svm", **quiet)
    return {"store": store, "microattnet": root / "microattnet", "dianet": root / "dianet", "svm": root / "svm"}


def viz(*args):
    return CliRunner().invoke(main, ["viz", *map(str, args)])


def _fold_of(run: Path, uid: str) -> tuple[int, str]:
    for i, entry in enumerate(json.loads((run / "folds.json").read_text())):
        if uid in entry["test"]:
            return i, entry["name"]
    raise AssertionError(f"{uid} is in no fold's test set")


def _network_input(model: MERModel, store: Path, uid: str) -> torch.Tensor:
    """The clip's network input, read through the store's whole-column reader (another path than viz's)."""
    s = fstore.open(store)
    row = s.column("uid").index(uid)
    stored = torch.cat([s.tensor(name)[row : row + 1] for name in model.adapter.spec.representations], dim=1)
    with torch.no_grad():
        return model.adapter(stored)


def _panel(image: np.ndarray, files: list[dict], filename: str, name: str) -> np.ndarray:
    """The panel's pixels at the array's resolution (each array pixel is a zoom x zoom square in the PNG)."""
    (entry,) = [f for f in files if f["file"] == filename]
    (panel,) = [p for p in entry["panels"] if p["name"] == name]
    x, y, w, h = panel["box"]
    shown, zoom = image[y : y + h, x : x + w], panel["zoom"]
    small = shown[::zoom, ::zoom]
    np.testing.assert_array_equal(np.repeat(np.repeat(small, zoom, 0), zoom, 1), shown)
    return small


def test_microattnet_explanation_is_the_fold_model(runs, tmp_path):
    run, uid = runs["microattnet"], "d/s1/c2"
    out = tmp_path / "out"
    result = viz(run, "--clip", uid, "-o", out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "explanation.json").read_text())
    index, fold = _fold_of(run, uid)
    assert data["model"]["fold"] == fold and data["model"]["weights"] == f"folds/fold-{index:03d}.safetensors"
    assert data["model"]["trained_on_clip"] is False
    model = MERModel.load(run / f"folds/fold-{index:03d}.safetensors", run / f"folds/fold-{index:03d}.json")
    x = _network_input(model, runs["store"], uid)
    with torch.no_grad():
        logits = model.net(x)[0]
        expected_weights = model.net.stream_weights(x)[0]
    np.testing.assert_allclose(data["logits"], logits.numpy(), atol=1e-5)
    assert data["predicted"] == data["target"] == model.classes[int(logits.argmax())]
    # stream weights read back equal the fold model's, and are not the final model's
    assert list(data["stream_weights"]) == ["horizontal", "vertical", "magnitude"]
    np.testing.assert_allclose(list(data["stream_weights"].values()), expected_weights.numpy(), atol=1e-6)
    final = MERModel.load(run / "model.safetensors", run / "model.json")
    with torch.no_grad():
        assert not np.allclose(final.net.stream_weights(x)[0].numpy(), expected_weights.numpy(), atol=1e-6)
    # one map per stream, at the stream's own last convolution, equal to grad_cam on that model
    assert [m["layer"] for m in data["grad_cam"]] == [f"encoders.{g}.layers.8" for g in range(3)]
    assert [m["channels"] for m in data["grad_cam"]] == [["u_oa", "u_ao"], ["v_oa", "v_ao"], ["m_oa", "m_ao"]]
    target = model.classes.index(data["target"])
    for entry in data["grad_cam"]:
        np.testing.assert_allclose(entry["map"], grad_cam(model.net, x, target, entry["layer"])[0].numpy(), atol=2e-6)
    assert {f["file"] for f in data["files"]} == {"gradcam.png", "stream_weights.png"}
    assert any("no key-frame crops" in note for note in data["notes"])  # a synthetic store has none
    # the PNG shows the network input channel exactly, and the overlay differs from it
    image = cv2.cvtColor(cv2.imread(str(out / "gradcam.png")), cv2.COLOR_BGR2RGB)
    channel = to_uint8(x[0, 0].numpy())
    np.testing.assert_array_equal(_panel(image, data["files"], "gradcam.png", "horizontal/u_oa")[..., 0], channel)
    assert _panel(image, data["files"], "gradcam.png", "horizontal/u_oa+cam").std(axis=2).max() > 0  # coloured
    # the map alone: jet from 0 to 1, at the network input's resolution
    cam = np.asarray(data["grad_cam"][0]["map"])
    jet = matplotlib.colormaps["jet"](cam, bytes=True)[..., :3].astype(int)
    np.testing.assert_allclose(_panel(image, data["files"], "gradcam.png", "horizontal/cam").astype(int), jet, atol=1)
    bars = cv2.imread(str(out / "stream_weights.png"))
    assert bars is not None and bars.shape[0] > 100
    (entry,) = [f for f in data["files"] if f["file"] == "stream_weights.png"]
    assert entry["bars"] == data["stream_weights"]

    # --target: another class, its own maps
    other = next(c for c in model.classes if c != data["predicted"])
    result = viz(run, "--clip", uid, "-o", tmp_path / "other", "--target", other)
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "other" / "explanation.json").read_text())
    assert again["target"] == other and again["predicted"] == data["predicted"]
    for entry in again["grad_cam"]:
        np.testing.assert_allclose(entry["map"], grad_cam(model.net, x, model.classes.index(other), entry["layer"])[0].numpy(),
                                   atol=2e-6)
    # --layer: one map over every channel
    result = viz(run, "--clip", uid, "-o", tmp_path / "layer", "--layer", "encoders.1.layers.4")
    assert result.exit_code == 0, result.output
    (single,) = json.loads((tmp_path / "layer" / "explanation.json").read_text())["grad_cam"]
    # a layer inside the vertical stream is drawn over that stream's channels
    assert single["layer"] == "encoders.1.layers.4" and single["stream"] == "vertical"
    assert single["channels"] == ["v_oa", "v_ao"]
    np.testing.assert_allclose(single["map"], grad_cam(model.net, x, target, "encoders.1.layers.4")[0].numpy(), atol=2e-6)


def test_dianet_attention_and_the_final_model_for_training_clips(runs, tmp_path):
    run = runs["dianet"]
    (entry,) = json.loads((run / "folds.json").read_text())
    tested, trained = entry["test"][0], entry["train"][0]
    result = viz(run, "--clip", tested, "-o", tmp_path / "tested")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "tested" / "explanation.json").read_text())
    assert data["model"]["fold"] == "holdout" and not data["model"]["trained_on_clip"]
    model = MERModel.load(run / "folds/fold-000.safetensors", run / "folds/fold-000.json")
    maps = cross_attention(model.net, _network_input(model, runs["store"], tested))
    for i, direction in enumerate(data["attention"]["directions"]):
        np.testing.assert_allclose(direction["received"], maps.received(i)[0].numpy(), atol=1e-6)
        assert abs(np.sum(direction["received"]) - 1) < 1e-4
    assert [d["queries"] for d in data["attention"]["directions"]] == ["di_oa", "di_ao"]
    assert [m["layer"] for m in data["grad_cam"]] == ["encoders.0.layers.8", "encoders.1.layers.8"]
    assert cv2.imread(str(tmp_path / "tested" / "attention.png")) is not None
    # a clip that trained every fold: the final model, and the JSON says it saw the clip
    result = viz(run, "--clip", trained, "-o", tmp_path / "trained")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "trained" / "explanation.json").read_text())
    assert data["model"]["fold"] is None and data["model"]["weights"] == "model.safetensors"
    assert data["model"]["trained_on_clip"] is True and "has seen" in data["model"]["choice"]


def test_real_store_draws_crops(tiny_run, tmp_path):
    """The conftest's STSTNet run on a real extracted store: the key-frame crops come with the maps."""
    s = fstore.open(json.loads((tiny_run / "report.json").read_text())["store"])
    uid = s.column("uid")[0]
    result = viz(tiny_run, "--clip", uid, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "explanation.json").read_text())
    assert [m["layer"] for m in data["grad_cam"]] == ["streams.2.0"]
    assert np.asarray(data["grad_cam"][0]["map"]).shape == (28, 28)
    crops = {p["name"] for f in data["files"] if f["file"] == "crops.png" for p in f["panels"]}
    assert {"onset", "apex", "offset", "apex/input"} <= crops
    image = cv2.cvtColor(cv2.imread(str(tmp_path / "crops.png")), cv2.COLOR_BGR2RGB)
    apex = s.table.slice(0, 1).column("keyframes").chunks[0].to_numpy_ndarray()[0][1]
    shown = _panel(image, data["files"], "crops.png", "apex")
    np.testing.assert_array_equal(shown if apex.ndim == 3 else shown[..., 0], apex if apex.ndim == 2 else np.moveaxis(apex, 0, -1))


def test_format_pdf(runs, tmp_path):
    result = viz(runs["dianet"], "--clip", "d/s1/c2", "-o", tmp_path, "--format", "pdf")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "explanation.json").read_text())
    names = [f["file"] for f in data["files"]]
    assert names == ["gradcam.pdf", "attention.pdf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "explanation.json"])
    for name in names:
        assert (tmp_path / name).read_bytes().startswith(b"%PDF")
    # the attention each token receives is shown with its own values (a colour bar), not rescaled
    (entry,) = [f for f in data["files"] if f["file"] == "attention.pdf"]
    tokens = [p for p in entry["panels"] if p["name"].endswith("/tokens")]
    assert [p["name"] for p in tokens] == [f"{d['queries']}->{d['keys']}/tokens" for d in data["attention"]["directions"]]
    for panel, direction in zip(tokens, data["attention"]["directions"], strict=True):
        received = np.asarray(direction["received"])
        assert panel["received_range"] == pytest.approx([received.min(), received.max()], abs=1e-6)  # JSON: 6 decimals


def test_errors(runs, tmp_path):
    run = runs["microattnet"]
    result = viz(run, "--clip", "d/s1/c7", "-o", tmp_path / "a")
    assert result.exit_code == 2 and "--clip" in result.output and "did you mean" in result.output
    assert "d/s1/c" in result.output
    result = viz(run, "--clip", "d/s1/c2", "-o", tmp_path / "b", "--target", "fear")
    assert result.exit_code == 2 and "--target" in result.output and "negative" in result.output
    result = viz(run, "--clip", "d/s1/c2", "-o", tmp_path / "c", "--layer", "head.1")
    assert result.exit_code == 2 and "--layer" in result.output and "encoders.2.layers.8" in result.output
    # a run whose store is gone
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    for name in ("report.json", "model.json"):
        data = json.loads((moved / name).read_text())
        if "store" in data:
            data["store"] = str(tmp_path / "gone")
        if "trained_on" in data:
            data["trained_on"]["store"] = str(tmp_path / "gone")
        (moved / name).write_text(json.dumps(data))
    result = viz(moved, "--clip", "d/s1/c2", "-o", tmp_path / "d")
    assert result.exit_code == 1 and "feature store" in result.output and "gone" in result.output and "--store" in result.output
    result = viz(moved, "--clip", "d/s1/c2", "-o", tmp_path / "d", "--store", runs["store"])
    assert result.exit_code == 0, result.output
    # a model without convolutions
    result = viz(runs["svm"], "--clip", "d/s1/c2", "-o", tmp_path / "e")
    assert result.exit_code == 1 and "no convolution" in result.output
    # output inside the run is refused; run-only options on a store are refused
    result = viz(run, "--clip", "d/s1/c2", "-o", run / "x")
    assert result.exit_code == 1 and not (run / "x").exists()
    result = viz(runs["store"], "--clip", "d/s1/c2", "-o", tmp_path / "f", "--target", "positive")
    assert result.exit_code == 2 and "--target" in result.output
    result = viz(runs["store"], "--clip", "d/s1/c2")
    assert result.exit_code == 2 and "--out" in result.output


def test_default_output_folder(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = viz(runs["microattnet"], "--clip", "d/s0/c0")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "explanations" / "d_s0_c0" / "explanation.json").is_file()
