"""fastmer infer on raw data: a corpus or videos extracted on the fly with the engine's
training settings, features straight to the engine. The reference is the two-step path
(extract a store, then score it), which must give the same predictions."""

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.engine.onnx import export_onnx
from fastmer.engine.score import open_engine, score_clips, score_store


def _table(path):
    return pq.read_table(path).to_pydict()


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    """Lossless FFV1 in Matroska, so the test does not depend on a lossy codec's build."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video_folder(tiny_corpus, tmp_path_factory):
    """Three clips of the tiny corpus (onset..offset) as videos, and a file that is not a video."""
    root = tmp_path_factory.mktemp("videos") / "videos"
    clips = list(load("casme2", tiny_corpus))[:3]
    for clip in clips:
        frames = [cv2.imread(p, cv2.IMREAD_COLOR) for n, p in zip(clip.frame_numbers, clip.frame_paths, strict=True)
                  if clip.onset <= n <= clip.offset]
        _write_video(root / clip.subject.split("/")[1] / f"{clip.clip_id}.mkv", frames)
    (root / "sub01" / "broken.mp4").write_bytes(b"not a video at all")
    return root


def test_raw_corpus_scores_as_its_store(tiny_corpus, tiny_store, tiny_run, tmp_path):
    engine = open_engine(tiny_run, device="cpu")
    lines = []
    raw = score_clips(engine, load("casme2", tiny_corpus), tmp_path / "raw.parquet", extract_batch_size=4,
                      workers=2, log=lines.append)
    stored = score_store(engine, tiny_store, tmp_path / "store.parquet")
    assert (raw.n_scored, raw.n_failed) == (stored.n_scored, 0) == (9, 0)
    a, b = _table(tmp_path / "raw.parquet"), _table(tmp_path / "store.parquet")
    assert a["uid"] == b["uid"] and a["predicted"] == b["predicted"] and a["labels"] == b["labels"]
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)
    # Only what the engine reads is computed: STSTNet's onset->apex flow.
    assert "flow_onset_apex at 128x128" in lines[0] and "dynamic_image" not in lines[0]


def test_onnx_engine_on_a_raw_corpus_uses_its_sidecar(tiny_corpus, tiny_store, tiny_run, tmp_path):
    export_onnx(tiny_run, tmp_path / "m.onnx")
    engine = open_engine(tmp_path / "m.onnx")
    assert engine.sidecar["extraction"]["params"] == json.loads((tiny_store / "store.json").read_text())["params"]
    score_clips(engine, load("casme2", tiny_corpus), tmp_path / "raw.parquet")
    score_store(open_engine(tiny_run, device="cpu"), tiny_store, tmp_path / "store.parquet")
    a, b = _table(tmp_path / "raw.parquet"), _table(tmp_path / "store.parquet")
    assert a["predicted"] == b["predicted"]
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)


def test_infer_videos_matches_extract_then_infer(video_folder, tiny_run, tmp_path):
    runner = CliRunner()
    raw = runner.invoke(main, ["infer", str(video_folder), "-e", str(tiny_run), "--device", "cpu", "--no-progress",
                               "-o", str(tmp_path / "raw.parquet")])
    # The broken file is an error row; the three videos are scored (exit 3: something failed).
    assert raw.exit_code == 3, raw.output
    assert "scored 3 clips" in raw.output and "1 clips failed" in raw.output
    extracted = runner.invoke(main, ["extract", str(video_folder), "--face-detector", "haar", "-d", "videos", "-r", "flow_onset_apex",
                                     "--face-detector", "haar", "--no-progress", "-o", str(tmp_path / "store")])
    assert extracted.exit_code == 3, extracted.output  # the same broken file fails there too
    stored = runner.invoke(main, ["infer", str(tmp_path / "store"), "-e", str(tiny_run), "--device", "cpu",
                                  "-o", str(tmp_path / "store.parquet")])
    assert stored.exit_code == 0, stored.output
    a, b = _table(tmp_path / "raw.parquet"), _table(tmp_path / "store.parquet")
    broken = a["uid"].index("videos/sub01/broken")
    assert a["error"][broken].startswith("extract [decode]") and "not a readable video" in a["error"][broken]
    assert a["probabilities"][broken] is None and a["predicted"][broken] is None
    good = [i for i in range(len(a["uid"])) if i != broken]
    assert [a["uid"][i] for i in good] == b["uid"] and [a["predicted"][i] for i in good] == b["predicted"]
    np.testing.assert_allclose([a["probabilities"][i] for i in good], b["probabilities"], atol=1e-5)
    assert all(labels == [] for labels in a["labels"])


def test_raw_input_needs_recorded_extraction_parameters(tiny_run, tiny_corpus, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "model.json").read_text())
    config["trained_on"] = {"store": str(tmp_path / "gone"), "params_hash": "0" * 16}
    (run / "model.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["infer", str(tiny_corpus), "-d", "casme2", "-e", str(run), "-o",
                                       str(tmp_path / "p.parquet")])
    assert result.exit_code == 1 and "does not record the extraction parameters" in result.output
    assert not (tmp_path / "p.parquet").exists()


def test_infer_input_checks(tiny_store, tiny_run, tmp_path):
    runner = CliRunner()
    both = runner.invoke(main, ["infer", str(tiny_store), "-d", "casme2", "-e", str(tiny_run), "-o", str(tmp_path / "p")])
    assert both.exit_code == 2 and "is a feature store; --dataset applies to raw data" in both.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(main, ["infer", str(empty), "-e", str(tiny_run), "-o", str(tmp_path / "p")])
    assert nothing.exit_code == 1 and f"no video (.mp4, .avi, .mkv, .webm, .mov) under {empty}" in nothing.output


def test_from_params_reproduces_and_refuses(tiny_store):
    params = json.loads((tiny_store / "store.json").read_text())["params"]
    config = ExtractConfig.from_params(params, ("flow_onset_apex",), device="cpu", workers=1)
    assert config.representations == ("flow_onset_apex",) and config.face_detector == "haar"
    assert config.size == params["size"] and config.apex == params["apex"] and config.device == "cpu"
    # Computing a subset changes only the representations' entry of the parameters.
    full = ExtractConfig.from_params(params)
    assert full.feature_params(params["face_detector"]) == params
    with pytest.raises(ValueError, match="mesti were not extracted"):
        ExtractConfig.from_params({**params, "representations": {"flow_onset_apex": params["representations"]["flow_onset_apex"]}}, ("mesti",))
    with pytest.raises(ValueError, match="flow_onset_apex was extracted with channels"):
        ExtractConfig.from_params({**params, "representations": {**params["representations"], "flow_onset_apex": ["u"]}})
    with pytest.raises(ValueError, match="tvl1 parameters"):
        ExtractConfig.from_params({**params, "tvl1": {**params["tvl1"], "warps": 1}})
    with pytest.raises(ValueError, match="unknown face detector 'dlib'"):
        ExtractConfig.from_params({**params, "face_detector": "dlib"})
    with pytest.raises(ValueError, match="lack size"):
        ExtractConfig.from_params({k: v for k, v in params.items() if k != "size"})
    with pytest.raises(ValueError, match="not runtime settings: size"):
        ExtractConfig.from_params(params, size=64)


def test_videos_loader(video_folder, tiny_corpus, tmp_path):
    clips = load("videos", video_folder)
    assert [c.clip_id for c in clips] == ["EP01_05", "EP02_01", "EP03_05", "broken"]
    original = next(c for c in load("casme2", tiny_corpus) if c.uid == "casme2/sub01/EP01_05")
    # A whole video is one clip: frames 0..n-1, apex to be spotted, no label.
    assert clips[0].subject == "videos/sub01" and clips[0].onset == 0 and clips[0].apex is None
    assert clips[0].offset == original.offset - original.onset and clips[0].labels == () and clips[0].fps == 30
    assert "video_unreadable" in clips[3].notes and clips.report.counts()["defects"]["video_unreadable"] == 1
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{video_folder / 'sub01' / 'EP01_05.mkv'}\n\nrelative.mkv\n")
    listed = load("videos", listing)
    assert [c.source for c in listed] == [str(video_folder / "sub01" / "EP01_05.mkv"), str(tmp_path / "relative.mkv")]
    assert "folder_missing" in listed[1].notes
    assert len(load("videos", video_folder / "sub01" / "EP01_05.mkv")) == 1
    notes = tmp_path / "notes.md"
    notes.write_text("")
    with pytest.raises(ValueError, match="notes.md is neither a video"):
        load("videos", notes)


def test_a_real_face_video_is_scored(shared_dir, tiny_run, tmp_path):
    """H.264 from a phone-like camera (PyAV), a real face (Haar, as the run was extracted),
    the apex spotted on the smile: one clip, scored."""
    video = shared_dir / "data" / "video" / "single_face.mp4"
    result = CliRunner().invoke(main, ["infer", str(video), "-e", str(tiny_run), "--device", "cpu", "--no-progress",
                                       "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 0, result.output
    table = _table(tmp_path / "p.parquet")
    assert table["uid"] == ["videos/video/single_face"] and table["error"] == [None]
    assert abs(sum(table["probabilities"][0]) - 1) < 1e-5 and table["predicted"][0] in ("negative", "positive", "surprise")


def test_runs_trained_before_params_were_recorded_read_them_from_their_store(tiny_run, tiny_store):
    from fastmer.engine.onnx import extraction_params

    config = json.loads((tiny_run / "model.json").read_text())
    stored = json.loads((tiny_store / "store.json").read_text())
    older = {**config, "trained_on": {k: v for k, v in config["trained_on"].items() if k != "params"}}
    assert extraction_params(older) == stored["params"]
    # A store rewritten with other parameters since is not the one the model saw.
    assert extraction_params({**older, "trained_on": {**older["trained_on"], "params_hash": "0" * 16}}) is None


def test_infer_on_raw_data_honours_an_explicit_face_detector(tiny_corpus, tiny_run, tiny_store, tmp_path, shared_dir):
    """Issue 17, item 14: --face-model/--face-detector were ignored when the engine was trained with another
    detector. An explicit choice is used, said in a warning and recorded in the predictions' metadata."""
    import pyarrow.parquet as pq

    trained = json.loads((tiny_store / "store.json").read_text())["params"]["face_detector"]
    assert trained.startswith("opencv-haar")
    runner = CliRunner()
    base = ["infer", str(tiny_corpus), "-d", "casme2", "-e", str(tiny_run), "--device", "cpu", "--no-progress"]
    model = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    result = runner.invoke(main, [*base, "--face-model", str(model), "-o", str(tmp_path / "yunet.parquet")])
    assert result.exit_code in (0, 3), result.output
    assert f"extracted with face detector {trained}; scoring with opencv-yunet" in result.stderr
    metadata = pq.read_schema(tmp_path / "yunet.parquet").metadata
    assert metadata[b"fastmer_face_detector"].decode().startswith("opencv-yunet")
    assert metadata[b"fastmer_face_detector_trained"].decode() == trained
    result = runner.invoke(main, [*base, "--face-detector", "none", "-o", str(tmp_path / "none.parquet")])
    assert result.exit_code == 0, result.output
    assert pq.read_schema(tmp_path / "none.parquet").metadata[b"fastmer_face_detector"] == b"none"
    # without a choice, the training store's detector, recorded as such
    result = runner.invoke(main, [*base, "-o", str(tmp_path / "same.parquet")])
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert pq.read_schema(tmp_path / "same.parquet").metadata[b"fastmer_face_detector"].decode() == trained
    # a store's faces were cropped at extraction: the options are refused there
    refused = runner.invoke(main, ["infer", str(tiny_store), "-e", str(tiny_run), "--face-detector", "none",
                                   "-o", str(tmp_path / "x.parquet")])
    assert refused.exit_code == 2 and "apply to raw data" in refused.output


def test_a_video_without_a_face_gets_no_prediction(tiny_run, tmp_path, shared_dir):
    """Issue 17, item 11: machinery-like texture is a face error row with every detector, never a score."""
    rng = np.random.default_rng(5)
    base = np.kron(rng.integers(0, 255, (45, 80, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # blocks
    cv2.putText(base, "MACHINE 42", (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 8)
    frames = [np.roll(base, 2 * t, axis=1) for t in range(20)]  # a slow pan
    _write_video(tmp_path / "in" / "texture.mkv", frames)
    model = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    for name, options in (("haar", []), ("yunet", ["--face-model", str(model)])):
        out = tmp_path / f"{name}.parquet"
        result = CliRunner().invoke(main, ["infer", str(tmp_path / "in"), "-e", str(tiny_run), "--device", "cpu",
                                           "--no-progress", "-o", str(out), *options])
        assert result.exit_code == 3, result.output
        table = _table(out)
        assert table["uid"] == ["videos/in/texture"] and table["predicted"] == [None]
        assert table["error"][0].startswith("extract [face]: no face"), table["error"]
        assert table["probabilities"][0] is None or all(np.isnan(table["probabilities"][0]))
