"""`fastmer spot` end to end on synthetic long videos with known intervals: F1 against the truth,
streaming (chunk size does not change the result), cuts, blinks, resuming, error rows."""

import json
import shutil

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.datasets.long import LongVideo, load_long
from fastmer.datasets.synth_long import LongSynthConfig, distractors, generate_long
from fastmer.face.detect import HaarFaceDetector
from fastmer.phases.flowspot import SpotParams
from fastmer.phases.intervals import spotting_scores
from fastmer.spot import SpotConfig, VideoSpotter, read_intervals, spot_video, spot_videos

CONFIG = LongSynthConfig(subjects=2, seconds=20, width=320, height=240, min_face_px=130, max_face_px=144,
                         macro_peak_px=(2.2, 3.2), micro_per_minute=14, macro_per_minute=6, blinks_per_minute=14,
                         seed=5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("long") / "corpus"
    generate_long(root, CONFIG)
    return root


@pytest.fixture(scope="module")
def spotted(corpus):
    videos = load_long("synth-long", corpus)
    detector = HaarFaceDetector()
    return videos, {v.uid: spot_video(v, SpotConfig(), detector, decoder="opencv") for v in videos}


def test_the_synthetic_truth_is_spotted(corpus, spotted):
    videos, results = spotted
    assert sum(len(v.intervals) for v in videos) == 7  # the fixture holds events of both kinds
    assert {i.kind for v in videos for i in v.intervals} == {"micro", "macro"}
    scores = spotting_scores({v.uid: (results[v.uid].intervals, list(v.intervals)) for v in videos})
    assert scores["micro"].f1 >= 0.8, scores["micro"]
    assert scores["overall"].f1 >= 0.75, scores["overall"]
    # No spotted interval on a blink: each blink's frames overlap no spotted interval's apex.
    for video in videos:
        blinks = [(a, b) for kind, a, b in distractors(corpus)[video.video_id] if kind == "blink"]
        for interval in results[video.uid].intervals:
            assert not any(a <= interval.apex <= b for a, b in blinks), (video.uid, interval)


def test_the_cut_starts_a_new_segment_and_no_interval_spans_it(corpus, spotted):
    videos, results = spotted
    for video in videos:
        (cut,) = [b for kind, _, b in distractors(corpus)[video.video_id] if kind == "cut"]
        result = results[video.uid]
        assert [s.start for s in result.segments] == [0, cut]  # found again right after the cut
        assert result.faceless == 0 and result.n_frames == CONFIG.n_frames
        assert not any(i.onset < cut - 1 and i.offset > cut and i.apex in (cut - 1, cut) for i in result.intervals)


def test_chunk_size_does_not_change_the_result(corpus, spotted):
    videos, results = spotted
    video = videos[0]
    small = spot_video(video, SpotConfig(chunk=7, batch=5), HaarFaceDetector(), decoder="opencv")
    assert small.intervals == results[video.uid].intervals
    for kind in ("micro", "macro"):
        np.testing.assert_allclose(small.curves[kind], results[video.uid].curves[kind], rtol=0, atol=1e-6)


def test_the_peak_method_finds_the_micro_expressions_too(spotted):
    videos, _ = spotted
    config = SpotConfig(params=SpotParams(method="peak"))
    found = {v.uid: spot_video(v, config, HaarFaceDetector(), decoder="opencv").intervals for v in videos}
    scores = spotting_scores({v.uid: (found[v.uid], list(v.intervals)) for v in videos})
    assert scores["micro"].recall >= 0.6, scores["micro"]


def test_image_sequence_intervals_use_the_corpus_frame_numbers(tmp_path, corpus, spotted):
    videos, results = spotted
    video = videos[0]
    capture = cv2.VideoCapture(video.source)
    folder = tmp_path / "frames"
    folder.mkdir()
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"img{index + 101}.png"), frame)  # numbered from 101, lossless
        index += 1
    numbers = tuple(range(101, 101 + index))
    paths = tuple(str(folder / f"img{n}.png") for n in numbers)
    sequence = LongVideo("x", "x/s", "v", str(folder), numbers, paths, fps=video.fps)
    found = spot_video(sequence, SpotConfig(), HaarFaceDetector(), decoder="opencv").intervals
    expected = [(i.onset + 101, i.apex + 101, i.offset + 101, i.kind) for i in results[video.uid].intervals]
    assert [(i.onset, i.apex, i.offset, i.kind) for i in found] == expected


def test_spot_videos_resumes_and_records_errors(tmp_path, corpus):
    videos = load_long("synth-long", corpus)
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all")
    bad = LongVideo("videos", "videos/x", "broken", str(broken), fps=30.0)
    out = tmp_path / "out"
    out.mkdir()
    lines = []
    run = spot_videos([*videos, bad], out, SpotConfig(), HaarFaceDetector(), "haar", decoder="opencv",
                      log=lines.append)
    assert set(run.results) == {v.uid for v in videos} and list(run.errors) == [bad.uid]
    table, metas = read_intervals(out)
    rows = table.to_pylist()
    errors = [r for r in rows if r["kind"] == "error"]
    assert len(errors) == 1 and errors[0]["video"] == bad.uid and "broken.avi" in errors[0]["error"]
    assert metas[videos[0].uid]["status"] == "ok" and metas[bad.uid]["status"] == "error"
    assert sum(r["kind"] in ("micro", "macro") for r in rows) == sum(len(r.intervals) for r in run.results.values())
    # Again: the spotted videos are skipped, the failed one retried.
    again = spot_videos([*videos, bad], out, SpotConfig(), HaarFaceDetector(), "haar", decoder="opencv")
    assert again.skipped == [v.uid for v in videos] and list(again.errors) == [bad.uid]
    # Other settings, or a changed file: spotted again.
    other = spot_videos(videos[:1], out, SpotConfig(params=SpotParams(p_micro=0.5)), HaarFaceDetector(), "haar",
                        decoder="opencv")
    assert other.skipped == []
    copy = tmp_path / "copy.avi"
    shutil.copy(videos[1].source, copy)
    moved = LongVideo(videos[1].dataset, videos[1].subject, videos[1].video_id, str(copy), fps=videos[1].fps)
    assert spot_videos([moved], out, SpotConfig(), HaarFaceDetector(), "haar", decoder="opencv").skipped == []


def test_cli_scores_against_the_truth_and_resumes(tmp_path, corpus):
    runner = CliRunner()
    out = tmp_path / "spots"
    args = ["spot", str(corpus), "-d", "synth-long", "-o", str(out), "--face-detector", "haar", "--decoder", "opencv"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "overall: TP" in result.output and "F1" in result.output
    scores = json.loads((out / "scores.json").read_text())
    assert scores["overall"]["f1"] >= 0.75 and set(scores["per_dataset"]) == {"synth-long"}
    assert json.loads((out / "spot.json").read_text())["format"] == "fastmer-spot"
    table = pq.read_table(out / "intervals")  # the folder reads as one table
    assert set(table.column("kind").to_pylist()) <= {"micro", "macro"}
    result = runner.invoke(main, args)
    assert result.exit_code == 0 and "(2 already spotted)" in result.output
    result = runner.invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0 and "(0 already spotted)" in result.output


def test_cli_refuses_a_folder_that_is_not_its_output_and_reports_failed_videos(tmp_path, corpus):
    runner = CliRunner()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = runner.invoke(main, ["spot", str(corpus), "-d", "synth-long", "-o", str(taken), "--overwrite",
                                  "--face-detector", "haar"])
    assert result.exit_code == 1 and "not a spotting output" in result.output
    assert (taken / "notes.txt").read_text() == "mine"
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "bad.mp4").write_bytes(b"\x00" * 64)
    result = runner.invoke(main, ["spot", str(videos), "-o", str(tmp_path / "o"), "--face-detector", "haar"])
    assert result.exit_code == 3, result.output
    assert "1 video(s) failed" in result.output and "bad.mp4" in result.output
    result = runner.invoke(main, ["spot", str(corpus), str(corpus), "-d", "synth-long", "-o", str(tmp_path / "p")])
    assert result.exit_code == 2 and "reads one corpus folder" in result.output


def test_cli_lists_the_long_video_corpora():
    from fastmer.cli.spot import LONG_DATASETS
    from fastmer.datasets.long import LONG_DATASETS as REGISTRY

    assert tuple(REGISTRY) == LONG_DATASETS


def test_a_face_that_moves_away_is_found_again_in_a_new_segment():
    """No cut (the frames change little from one to the next), but the face slides 2 px a frame:
    at the next re-detection it is more than 10% of its box away, so a new segment starts there
    with a new box, and no flow pair spans the two boxes."""
    from fastmer.datasets.synth_long import plan_video, render_frames

    config = LongSynthConfig(subjects=1, seconds=4, width=320, height=240, min_face_px=130, max_face_px=144,
                             micro_per_minute=0, macro_per_minute=0, blinks_per_minute=0, head_motion_px=0,
                             cut=False, macro_peak_px=(2.0, 3.0), seed=2)
    plan = plan_video(config, 0, 0)
    still = next(render_frames(config, plan)).copy()
    grey = cv2.cvtColor(still, cv2.COLOR_BGR2GRAY)
    shifts = [0] * 40 + [2 * (t + 1) for t in range(20)] + [40] * 40  # slides 40 px over frames 40..59
    frames = np.stack([np.roll(grey, s, axis=1) for s in shifts])
    spotter = VideoSpotter(SpotConfig(), HaarFaceDetector(), fps=30, n_frames=len(frames))
    spotter.feed(frames)
    result = spotter.finish()
    assert [s.start for s in result.segments] == [0, 60]  # re-detected at frame 60 (every 30 frames)
    first, second = result.segments
    assert second.box.x - first.box.x == pytest.approx(40, abs=4)
    assert not np.isfinite(result.motion["micro"][0][60 - 5: 60]).any()  # heads whose pair would cross frame 60
    assert np.isfinite(result.motion["micro"][0][60: 60 + 20]).all()


def test_the_native_tvl1_flow_spots_the_micro_expressions_too(tmp_path):
    """--flow fastmer: the native batched TV-L1 (the path a GPU runs) in the streaming spotter."""
    config = LongSynthConfig(subjects=1, seconds=8, width=320, height=240, min_face_px=130, max_face_px=144,
                             macro_peak_px=(2.2, 3.2), micro_per_minute=30, macro_per_minute=0, blinks_per_minute=10,
                             cut=False, seed=1)
    generate_long(tmp_path / "c", config)
    (video,) = load_long("synth-long", tmp_path / "c")
    assert [(i.kind, i.onset, i.offset) for i in video.intervals] == [("micro", 125, 131), ("micro", 163, 169),
                                                                      ("micro", 189, 199)]
    found = spot_video(video, SpotConfig(flow="fastmer"), HaarFaceDetector(), decoder="opencv").intervals
    scores = spotting_scores({video.uid: (found, list(video.intervals))})
    assert scores["micro"].tp >= 2 and scores["overall"].fp <= 1, (found, scores["overall"])
    assert not any(66 <= i.apex <= 70 for i in found)  # the blink


def test_saved_maps_follow_an_edited_coding(tmp_path, corpus):
    from fastmer.datasets.long import Annotation
    from fastmer.phases.intervals import Interval
    from fastmer.train.spotting import load_maps

    video = load_long("synth-long", corpus)[0]
    out = tmp_path / "out"
    spot_videos([video], out, SpotConfig(), HaarFaceDetector(), "haar", decoder="opencv", save_maps=True)
    assert spot_videos([video], out, SpotConfig(), HaarFaceDetector(), "haar", decoder="opencv",
                       save_maps=True).skipped == [video.uid]
    edited = video.with_annotations((*video.annotations, Annotation(Interval(10, 14, "micro", apex=12))))
    again = spot_videos([edited], out, SpotConfig(), HaarFaceDetector(), "haar", decoder="opencv", save_maps=True)
    assert again.skipped == []
    (maps,) = load_maps(out)
    assert maps.truth == list(edited.intervals) and maps.truth[0] == Interval(10, 14, "micro", apex=12)


def test_overwrite_empties_an_earlier_output_and_nothing_else(tmp_path):
    from fastmer.spot import open_output

    out = open_output(tmp_path / "o")
    (out / "intervals" / "video-a.parquet").write_bytes(b"x")
    (out / "maps").mkdir()
    (out / "maps" / "video-a.safetensors").write_bytes(b"x")
    (out / "scores.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    open_output(out)  # resuming keeps everything
    assert (out / "maps" / "video-a.safetensors").is_file() and (out / "scores.json").is_file()
    open_output(out, overwrite=True)
    assert not any((out / "intervals").iterdir()) and not any((out / "maps").iterdir())
    assert not (out / "scores.json").exists() and (out / "notes.txt").read_text() == "mine"
    assert (out / "spot.json").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not a 'fastmer spot' output"):
        open_output(tmp_path / "other", overwrite=True)
