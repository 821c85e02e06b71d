"""Issue 17, item 15: a clip streams through decode -> crop, so memory grows with its crops
(size^2 bytes a frame), not with its decoded frames; clips beyond --max-frames are refused
before decoding; a batch of long clips is cut short and spent crops are let go."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import fastmer.extract as extraction
import fastmer.pipeline as pipeline
from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.decode import open_clip_frames
from fastmer.decode.source import FrameSource
from fastmer.executors import local
from fastmer.face import crop_clip, locate_face, make_detector
from fastmer.phases import motion_curve
from fastmer.phases.cuts import find_jump

SIZE = 64


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory):
    """Two subjects x one clip of 150-160 frames of 640 x 480 (CASME II layout, JPEG)."""
    from fastmer.datasets.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("long") / "corpus"
    generate(root, SynthConfig(subjects=2, clips_per_subject=1, seed=3, min_frames=150, max_frames=160,
                               width=640, height=480))
    return root


def whole_clip(clip, detector, config):
    """What extraction did before streaming: every frame of the clip decoded at once."""
    onset, _, offset = clip.validate_annotation()
    with open_clip_frames(clip, engine="opencv") as source:
        frames = source.read(range(onset, offset + 1))
    track = locate_face(frames, detector, mode=config.face_box, scale=config.face_scale, align=config.align)
    return frames, track, crop_clip(frames, track.box, config.size, angle=track.angle)


@pytest.mark.parametrize(("face_box", "align"), [("onset", False), ("union", True)])
def test_streamed_clip_equals_the_whole_clip(long_corpus, monkeypatch, face_box, align):
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 1)  # the smallest chunks: 8 frames
    asked = []
    read = FrameSource.read

    def counting_read(self, numbers, **options):
        numbers = list(numbers)
        asked.append(len(numbers))
        return read(self, numbers, **options)

    monkeypatch.setattr(FrameSource, "read", counting_read)
    config = ExtractConfig(face_detector="haar", size=SIZE, decoder="opencv", face_box=face_box, align=align)
    detector, _ = make_detector("haar")
    for clip in load("casme2", long_corpus):
        asked.clear()
        result = pipeline.process_clip(clip, detector, config)
        assert not result.error, result.error
        (row, crops), = result.views
        assert max(asked) == 8 and sum(asked) >= len(crops), asked  # never the whole clip at once
        frames, track, expected = whole_clip(clip, detector, config)
        assert len(frames) == len(crops) > 100
        assert row["face_box"] == track.box.as_list() and row["face_angle"] == track.angle
        assert np.array_equal(crops, expected)
        reference = motion_curve(expected, config.apex_estimator).double().numpy()
        assert np.array_equal(np.asarray(row["motion_curve"], np.float32), reference.astype(np.float32))
        assert find_jump(frames) is None


def test_full_size_frames_are_never_held_whole(long_corpus, monkeypatch):
    """numpy's allocations (decoded frames, crops) are traced: the whole-clip read needs its
    T x 640 x 480 bytes, the streamed extraction one chunk's (16 frames here) and the crops."""
    frame_bytes = 640 * 480
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 16 * frame_bytes)
    config = ExtractConfig(face_detector="haar", size=SIZE, decoder="opencv")
    detector, _ = make_detector("haar")
    clip = load("casme2", long_corpus)[0]
    tracemalloc.start()
    try:
        frames, _, _ = whole_clip(clip, detector, config)
        _, whole_peak = tracemalloc.get_traced_memory()
        n = len(frames)
        del frames
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        result = pipeline.process_clip(clip, detector, config)
        _, streamed_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.error, result.error
    assert whole_peak >= n * frame_bytes  # precondition: the trace sees decoded frames
    # one chunk of frames (and its copies) plus the crops, never the clip's frames
    assert n > 100 and streamed_peak - start < 3 * 16 * frame_bytes + n * SIZE * SIZE + (4 << 20)
    assert streamed_peak - start < 0.5 * n * frame_bytes


def test_a_clip_longer_than_max_frames_is_refused_before_decoding(long_corpus, monkeypatch, tmp_path):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a clip that is over the limit")

    clips = load("casme2", long_corpus)
    config = ExtractConfig(face_detector="haar", size=SIZE, max_frames=100)
    monkeypatch.setattr(pipeline, "open_clip_frames", no_decoding)
    result = pipeline.process_clip(clips[0], make_detector("haar")[0], config)
    assert result.stage == "annotation" and not result.views
    assert f"{len(range(clips[0].onset, clips[0].offset + 1))} frames onset..offset, more than max_frames 100" in result.error
    assert "--max-frames" in result.error
    monkeypatch.undo()
    # the CLI: error rows, exit status 3; the limit is not a feature parameter, so raising it resumes the store
    store = tmp_path / "store"
    command = ["extract", str(long_corpus), "-o", str(store), "--face-detector", "haar", "--size", str(SIZE),
               "--no-progress", "-r", "flow_onset_apex"]
    refused = CliRunner().invoke(main, [*command, "--max-frames", "100"])
    assert refused.exit_code == 3 and "more than max_frames 100" in refused.stderr, refused.output
    retried = CliRunner().invoke(main, command)
    assert retried.exit_code == 0 and "2 of 2 clips extracted" in retried.stdout, retried.output
    with pytest.raises(ValueError, match="max_frames must be >= 1"):
        ExtractConfig(max_frames=0)


def test_long_clips_cut_the_batch_short_and_spent_crops_are_dropped(long_corpus, monkeypatch, tmp_path):
    batches = []
    call = pipeline.FeatureStage.__call__

    def recording(self, results):
        batches.append(len(results))
        out = call(self, results)
        assert all(crops is None for result in results for _, crops in result.views)  # let go once used
        return out

    monkeypatch.setattr(pipeline.FeatureStage, "__call__", recording)
    monkeypatch.setattr(local, "BATCH_CROP_BYTES", 50 * SIZE * SIZE)  # one clip (> 100 frames) fills a batch
    config = ExtractConfig(face_detector="haar", size=SIZE, representations=("flow_onset_apex", "dynamic_image"))
    summary = extraction.extract(load("casme2", long_corpus), tmp_path / "store", config, log=lambda line: None)
    assert summary.n_ok == 2 and batches == [1, 1]
    batches.clear()
    monkeypatch.setattr(local, "BATCH_CROP_BYTES", 10 * 160 * SIZE * SIZE)
    summary = extraction.extract(load("casme2", long_corpus), tmp_path / "store2", config, log=lambda line: None)
    assert summary.n_ok == 2 and batches == [2]  # within the budget: --batch-size decides
