"""The learned spotter (`fastmer train --task spot`, `fastmer spot --method softnet`) and spot-then-
recognise (`fastmer infer --spot`) on synthetic long videos."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.datasets.long import load_long
from fastmer.datasets.synth_long import LongSynthConfig, generate_long
from fastmer.models.softnet import SoftNet, SpotterModel
from fastmer.phases.flowspot import probability_runs
from fastmer.phases.intervals import Interval
from fastmer.train.spotting import load_maps, pseudo_labels

CONFIG = LongSynthConfig(subjects=3, seconds=12, width=320, height=240, min_face_px=130, max_face_px=144,
                         macro_peak_px=(2.2, 3.2), micro_per_minute=20, macro_per_minute=8, blinks_per_minute=10,
                         seed=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("learned") / "corpus"
    generate_long(root, CONFIG)
    return root


@pytest.fixture(scope="module")
def maps_output(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("maps") / "spots"
    result = CliRunner().invoke(main, ["spot", str(corpus), "-d", "synth-long", "-o", str(out), "--face-detector",
                                       "haar", "--decoder", "opencv", "--save-maps"])
    assert result.exit_code == 0, result.output
    return out


def test_pseudo_labels_mark_the_windows_that_overlap_an_expression():
    truth = [Interval(10, 14, "micro"), Interval(30, 50, "macro")]
    labels = pseudo_labels(25, k=4, stride=2, truth=truth, kind="micro")
    # heads j (frame 2j) whose window 2j..2j+4 overlaps 10..14: frames 6..14 -> heads 3..7
    assert np.flatnonzero(labels).tolist() == [3, 4, 5, 6, 7]
    assert np.flatnonzero(pseudo_labels(25, 4, 2, truth, "macro")).tolist() == list(range(13, 25))
    numbered = pseudo_labels(10, 2, 1, [Interval(105, 106, "micro")], "micro", numbers=list(range(100, 110)))
    assert np.flatnonzero(numbered).tolist() == [3, 4, 5, 6]  # frames 103..106 = indices 3..6


def test_probability_runs_invert_the_pseudo_labels():
    k, stride = 4, 1
    truth = Interval(20, 27, "micro")
    scores = pseudo_labels(60, k, stride, [truth], "micro") * 0.9 + 0.05
    (run,) = probability_runs(scores, k, stride, threshold=0.7, n_frames=60, kind="micro")
    # Smoothing over k frames blurs the run's ends by at most a frame.
    assert abs(run.onset - truth.onset) <= 1 and abs(run.offset - truth.offset) <= 1 and run.kind == "micro"
    assert truth.onset <= run.apex <= truth.offset
    assert probability_runs(np.full(60, 0.3), k, stride, 0.7, 60, "micro") == []


def test_save_maps_keeps_what_training_reads(corpus, maps_output):
    videos = load_long("synth-long", corpus)
    saved = {v.uid: v for v in load_maps(maps_output)}
    assert set(saved) == {v.uid for v in videos}
    for video in videos:
        maps = saved[video.uid]
        assert maps.truth == list(video.intervals) and maps.fps == 30.0 and maps.n_frames == CONFIG.n_frames
        assert maps.scales == {"micro": (5, 1), "macro": (18, 3)}
        assert maps.maps["micro"].shape == (CONFIG.n_frames, 3, 16, 16) and maps.maps["micro"].dtype == np.float16
        assert maps.maps["macro"].shape == (CONFIG.n_frames // 3, 3, 16, 16)
        assert maps.near["micro"].shape == (CONFIG.n_frames, 7, 4)
        # Motion maps are finite where a flow was computed, NaN at the ends (no frame k ahead).
        assert np.isfinite(maps.maps["micro"][:100]).all() and np.isnan(maps.maps["micro"][-1]).all()


def test_train_spot_loso_then_spot_with_the_trained_model(tmp_path, corpus, maps_output):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", str(maps_output), "--task", "spot", "-o", str(run), "--epochs", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "report.json").read_text())
    assert report["protocol"] == "loso" and len(report["folds"]) == 3
    subjects = {f"synth-long/s0{i}" for i in (1, 2, 3)}
    assert {fold["subject"] for fold in report["folds"]} == subjects
    # The pooled counts are the folds' counts summed (each test video scored once).
    for kind in ("micro", "macro", "overall"):
        for count in ("tp", "fp", "fn"):
            assert report["pooled"][kind][count] == sum(fold[kind][count] for fold in report["folds"])
    n_truth = sum(len(v.intervals) for v in load_long("synth-long", corpus))
    assert report["pooled"]["overall"]["tp"] + report["pooled"]["overall"]["fn"] == n_truth
    model = SpotterModel.load(run)
    assert set(model.nets) == {"micro", "macro"} and model.info["subjects"] == sorted(subjects)
    assert "info" in json.loads((run / "spotter.json").read_text())
    out = tmp_path / "learned"
    result = runner.invoke(main, ["spot", str(corpus), "-d", "synth-long", "-o", str(out), "--method", "softnet",
                                  "--model", str(run), "--face-detector", "haar", "--decoder", "opencv"])
    assert result.exit_code == 0, result.output
    assert "overall: TP" in result.output
    table = pq.read_table(out / "intervals")
    assert set(table.column("method").to_pylist()) <= {"softnet"}
    # Resuming with the same spotter skips every video; with another one, none.
    args = ["spot", str(corpus), "-d", "synth-long", "-o", str(out), "--method", "softnet", "--face-detector", "haar",
            "--decoder", "opencv"]
    result = runner.invoke(main, [*args, "--model", str(run)])
    assert result.exit_code == 0 and "(3 already spotted)" in result.output, result.output
    other = tmp_path / "other"
    SpotterModel({"micro": SoftNet(), "macro": SoftNet()}, model.params, model.scale, model.info).save(other)
    result = runner.invoke(main, [*args, "--model", str(other)])
    assert result.exit_code == 0 and "(0 already spotted)" in result.output, result.output


def test_train_spot_refuses_what_it_cannot_use(tmp_path, maps_output):
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(maps_output), "--task", "spot", "-o", str(tmp_path / "r"), "-m",
                                  "offapexnet"])
    assert result.exit_code == 2 and "--model: not an option of --task spot" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["train", str(empty), "--task", "spot", "-o", str(tmp_path / "r2")])
    assert result.exit_code == 1 and "holds no flow maps" in result.output and "--save-maps" in result.output
    result = runner.invoke(main, ["spot", str(maps_output), "-o", str(tmp_path / "s"), "--method", "softnet"])
    assert result.exit_code == 2 and "--method softnet needs --model" in result.output


def test_a_saved_spotter_round_trips(tmp_path):
    torch.manual_seed(0)
    model = SpotterModel({"micro": SoftNet(), "macro": SoftNet()}, {"method": "softnet"}, {"micro": 0.5, "macro": 2.0},
                         {"videos": 1})
    model.save(tmp_path)
    again = SpotterModel.load(tmp_path)
    maps = torch.randn(5, 3, 16, 16)
    for kind in ("micro", "macro"):
        torch.testing.assert_close(again.score(kind, maps), model.score(kind, maps))
    assert not any(p.suffix == ".pt" or p.suffix == ".pkl" for p in tmp_path.iterdir())
    with pytest.raises(FileNotFoundError, match="holds no trained spotter"):
        SpotterModel.load(tmp_path / "nothing")


def test_infer_spot_scores_one_row_per_spotted_interval(tmp_path, corpus, tiny_run):
    out = tmp_path / "predictions.parquet"
    result = CliRunner().invoke(main, ["infer", str(corpus), "-d", "synth-long", "--spot", "--engine",
                                       str(tiny_run), "-o", str(out), "--face-detector", "haar", "--decoder",
                                       "opencv", "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pylist()
    assert table, "no interval was spotted"
    videos = {v.uid: v for v in load_long("synth-long", corpus)}
    for row in table:
        assert row["kind"] == "micro" and row["video"] in videos
        assert row["onset"] <= row["apex"] <= row["offset"] and row["error"] is None
        assert row["uid"] == f"{row['video']}@{row['onset']}-{row['offset']}"
        assert abs(sum(row["probabilities"]) - 1) < 1e-4
    # Most spotted intervals are the true micro-expressions (IoU >= 0.5).
    truth = [(v.uid, i) for v in videos.values() for i in v.intervals if i.kind == "micro"]
    hits = sum(any(uid == row["video"] and Interval(row["onset"], row["offset"]).length > 0
                   and _iou(row, i) >= 0.5 for uid, i in truth) for row in table)
    assert hits >= 0.7 * len(table)


def _iou(row, interval):
    inter = min(row["offset"], interval.offset) - max(row["onset"], interval.onset) + 1
    union = (row["offset"] - row["onset"] + 1) + interval.length - max(inter, 0)
    return max(inter, 0) / union


def test_infer_spot_options_are_checked(tmp_path, corpus, tiny_run):
    runner = CliRunner()
    base = ["infer", str(corpus), "--engine", str(tiny_run), "-o", str(tmp_path / "p.parquet")]
    result = runner.invoke(main, [*base, "-d", "synth-long"])
    assert result.exit_code == 2 and "it needs --spot" in result.output
    result = runner.invoke(main, [*base, "--spot-method", "peak"])
    assert result.exit_code == 2 and "apply with --spot" in result.output
    result = runner.invoke(main, [*base, "-d", "casme2", "--spot"])
    assert result.exit_code == 2 and "not one for --spot" in result.output


def test_extract_spot_stores_one_clip_per_spotted_interval(tmp_path, corpus):
    from fastmer.store import FeatureStore

    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["extract", str(corpus), "-d", "synth-long", "--spot", "-o", str(store),
                                       "--face-detector", "haar", "--decoder", "opencv", "-r", "flow_onset_apex",
                                       "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "spotted" in result.output
    rows = FeatureStore(store).table.select(["uid", "onset", "apex", "offset"]).to_pylist()
    assert rows
    for row in rows:
        video, interval = row["uid"].rsplit("@", 1)
        onset, offset = map(int, interval.split("-"))
        assert (row["onset"], row["offset"]) == (onset, offset) and onset <= row["apex"] <= offset
    result = CliRunner().invoke(main, ["extract", str(corpus), "-d", "synth-long", "-o", str(tmp_path / "s2")])
    assert result.exit_code == 2 and "--spot reads long videos" in result.output
