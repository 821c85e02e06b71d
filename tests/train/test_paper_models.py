"""The seed papers' networks under fastmer train: every model runs LOSO (also stacked), the
4DME dual-view path in both view layouts, ablations and starting weights in the report."""

import json
from dataclasses import replace

import pyarrow.parquet as pq
import pytest
import torch

import fastmer.store as fstore
from fastmer.datasets.labels import get_protocol
from fastmer.models import MODELS
from fastmer.models.model import MERModel
from fastmer.train.run import train

PAPER_MODELS = ("microattnet", "fmanet", "mmcof", "cof", "dianet", "afn", "meganet", "meganet-di", "learnet")


def quick(name, epochs=2):
    return replace(MODELS[name].recipe, epochs=epochs, patience=None, batch_size=8)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_every_paper_model_trains_under_loso(paper_store, tmp_path, name):
    """Each model runs the whole protocol: 4 folds + the final model, stacked two at a time (vmap)."""
    report = train(paper_store, tmp_path / name, model=name, recipe=quick(name), fold_batch=2)
    assert report["n_folds"] == 4 and report["n_tested"] == 24 and report["execution"]["fold_batch"] == 2
    assert report["parameters"] == sum(
        p.numel() for p in MERModel.load(tmp_path / name / "model.safetensors", tmp_path / name / "model.json").net.parameters())
    assert report["input"]["view_layout"] is None
    assert 0 <= report["metrics"]["pooled"]["uf1"] <= 1


def test_afn_reads_two_representations(paper_store, tmp_path):
    report = train(paper_store, tmp_path / "afn", model="afn", recipe=quick("afn", 1))
    assert report["input"]["representation"] == ["trdi", "midi"]
    assert report["input"]["stored"]["channels"] == ["trdi", "midi"]
    store = fstore.open(paper_store)
    model = MERModel.load(tmp_path / "afn" / "model.safetensors", tmp_path / "afn" / "model.json")
    stacked = torch.cat([store.tensor("trdi"), store.tensor("midi")], dim=1)
    swapped = torch.cat([store.tensor("midi"), store.tensor("trdi")], dim=1)
    with torch.no_grad():
        assert not torch.allclose(model(stacked), model(swapped))  # the order is the stored one


def test_dual_phase_di_with_learnet(paper_store, tmp_path):
    report = train(paper_store, tmp_path / "run", model="learnet", recipe=quick("learnet", 1), augment=["dual-phase-di"])
    assert report["augment"] == ["dual-phase-di"] and report["n_tested"] == 24
    with pytest.raises(ValueError, match=r"needs a model reading dynamic_image \(.*learnet"):
        train(paper_store, tmp_path / "bad", model="dianet", recipe=quick("dianet", 1), augment=["dual-phase-di"])


def test_4dme_views_stacked(dual_view_store, tmp_path):
    """Views as channels: one sample per clip with both views; a clip missing a view is listed as excluded."""
    report = train(dual_view_store, tmp_path / "stack", model="microattnet", labels="4dme-multilabel",
                   recipe=quick("microattnet", 3), view_layout="stack")
    assert report["input"]["view_layout"] == "stack" and report["multilabel"]
    assert report["input"]["stored"]["shape"] == [16, 24, 24]
    assert report["n_clips"] == report["n_samples"] == report["n_tested"] == 39
    assert {"uid": "4dme/s4/c7", "reason": "a view is missing (views stacked as channels)"} in report["excluded_clips"]
    predictions = pq.read_table(tmp_path / "stack" / "predictions.parquet").to_pydict()
    assert len(predictions["uid"]) == 39 and all("@" not in uid for uid in predictions["uid"])
    assert report["metrics"]["pooled"]["uf1"] == report["metrics"]["pooled"]["macro_uf1"]
    config = json.loads((tmp_path / "stack" / "model.json").read_text())
    assert config["views"] == ["left", "right"] and len(config["thresholds"]) == 5
    model = MERModel(config)
    # each stream takes u (then v, then M) of both phases of the left view, then of the right one
    channels = config["stored"]["channels"]
    assert [channels[i] for i in model.adapter.index[:4]] == ["left/u_oa", "left/u_ao", "right/u_oa", "right/u_ao"]
    assert model.net.in_channels == 12


def test_4dme_views_separate_merge_by_max(dual_view_store, tmp_path):
    """Views as samples: each fold's model scores both views; a clip's probabilities are their max."""
    out = tmp_path / "separate"
    report = train(dual_view_store, out, model="microattnet", labels="4dme-multilabel",
                   recipe=quick("microattnet", 2), view_layout="separate")
    assert report["n_samples"] == 79 and report["n_clips"] == report["n_tested"] == 40
    predictions = pq.read_table(out / "predictions.parquet").to_pydict()
    store = fstore.open(dual_view_store)
    stored = store.tensor("flow_phases")
    row = {uid: i for i, uid in enumerate(store.column("uid"))}
    classes = get_protocol("4dme-multilabel").classes
    folds = {f["fold"]: f for f in report["folds"]}
    for uid, views, fold, probs, predicted in zip(predictions["uid"], predictions["views"], predictions["fold"],
                                                   predictions["probabilities"], predictions["predicted"], strict=True):
        assert views == ([f"{uid}@left"] if uid == "4dme/s4/c7" else [f"{uid}@left", f"{uid}@right"])
        weights = out / folds[fold]["weights"]
        model = MERModel.load(weights, weights.with_suffix(".json"))
        with torch.no_grad():
            expected = torch.sigmoid(model(stored[[row[v] for v in views]])).amax(0)
        torch.testing.assert_close(torch.tensor(probs), expected, atol=1e-5, rtol=1e-5)
        thresholds = folds[fold]["thresholds"]
        assert predicted == [c for c, p, t in zip(classes, probs, thresholds, strict=True) if p >= t]


def test_fmanet_refuses_stacked_views_with_a_hint(dual_view_store, tmp_path):
    with pytest.raises(ValueError, match="try --view-layout separate"):
        train(dual_view_store, tmp_path / "r", model="fmanet", labels="4dme-multilabel", recipe=quick("fmanet", 1))


def test_ablations_and_starting_weights_are_recorded(paper_store, tmp_path):
    from safetensors.torch import save_file

    full = train(paper_store, tmp_path / "full", model="microattnet", recipe=quick("microattnet", 1))
    ablated = train(paper_store, tmp_path / "ablated", model="microattnet", recipe=quick("microattnet", 1),
                    model_options={"fusion_attention": False, "se": False})
    assert full["model_options"]["fusion_attention"] and full["model_options"]["se"]
    assert not ablated["model_options"]["fusion_attention"] and not ablated["model_options"]["se"]
    assert ablated["parameters"] != full["parameters"]
    # starting weights: every fold starts from them (a frozen check: lr tiny, 1 epoch)
    model = MERModel.load(tmp_path / "full" / "model.safetensors", tmp_path / "full" / "model.json")
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, tmp_path / "start.safetensors")
    tiny = replace(quick("microattnet", 1), lr=1e-12)
    started = train(paper_store, tmp_path / "started", model="microattnet", recipe=tiny,
                    weights=tmp_path / "start.safetensors")
    info = started["initial_weights"]
    assert info["unused"] == [] and info["shape_mismatch"] == [] and len(info["loaded"]) == len(model.net.state_dict())
    fold0 = MERModel.load(tmp_path / "started" / "folds" / "fold-000.safetensors",
                          tmp_path / "started" / "folds" / "fold-000.json")
    torch.testing.assert_close(fold0.net.encoders[0].layers[0].weight, model.net.encoders[0].layers[0].weight)


def test_input_size_override(paper_store, tmp_path):
    report = train(paper_store, tmp_path / "r", model="meganet", recipe=quick("meganet", 1), input_size=40)
    assert report["input"]["size"] == 40
    model = MERModel.load(tmp_path / "r" / "model.safetensors", tmp_path / "r" / "model.json")
    assert model.adapter.out_shape == (1, 40, 40)


def test_dual_phase_di_with_stacked_views(dual_view_store, tmp_path):
    """Each view's onset->apex (apex->offset) DI becomes that view's channel of the extra sample."""
    from fastmer.datasets.labels import get_protocol
    from fastmer.models import get_entry
    from fastmer.train.run import _prepare, _template

    store = fstore.open(dual_view_store)
    entry = get_entry("meganet-di")
    template, layout = _template(store, entry, get_protocol("4dme-multilabel").classes, "stack", None, {})
    data = _prepare(store, template, entry, get_protocol("4dme-multilabel"), ["dual-phase-di"], layout)
    assert layout == "stack" and data.x.shape == (39, 2, 24, 24) and data.phases.shape == (39, 2, 2, 24, 24)
    phases = store.tensor("dynamic_image_phases")
    row = {uid: i for i, uid in enumerate(store.column("uid"))}
    i = row[f"{data.uids[3]}@right"]
    expected = template.adapter(torch.cat([phases[i - 1 : i, 1:2], phases[i : i + 1, 1:2]], dim=1))  # apex->offset
    torch.testing.assert_close(data.phases[3, 1], expected[0])
    report = train(dual_view_store, tmp_path / "r", model="meganet-di", labels="4dme-multilabel",
                   recipe=quick("meganet-di", 1), augment=["dual-phase-di"])
    assert report["input"]["view_layout"] == "stack" and report["n_tested"] == 39
