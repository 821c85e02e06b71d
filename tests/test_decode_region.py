"""Extraction decodes only the part of the frames its crops read (``decode_region``): the
plan (:func:`fastmer.pipeline.crop_plan`), and crops, curves and rows identical to decoding
whole frames, for one view and two side by side, grey and colour, aligned or not."""

import os

import cv2
import numpy as np
import pytest

from fastmer import pipeline
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.datasets.synth import SPREADSHEET_NAME
from fastmer.decode import dali as dali_engine
from fastmer.decode.source import FrameSource
from fastmer.face import FaceBox, make_detector


def test_plan_for_one_view_is_the_box():
    region, parts = pipeline.crop_plan({"full": ((0, 0, 640, 480), FaceBox(200, 100, 240, 240), 0.0)})
    assert region == (200, 100, 240, 240)
    assert parts == {"full": ((0, 0, 240, 240), FaceBox(0, 0, 240, 240))}


def test_plan_for_two_views_spans_both_boxes():
    views = {"left": ((0, 0, 320, 240), FaceBox(50, 40, 100, 100), 0.0),
             "right": ((321, 0, 320, 240), FaceBox(150, 60, 100, 100), 0.0)}
    region, parts = pipeline.crop_plan(views)
    assert region == (50, 40, 321 + 150 + 100 - 50, 60 + 100 - 40)
    assert parts == {"left": ((0, 0, 100, 100), FaceBox(0, 0, 100, 100)),
                     "right": ((321 + 150 - 50, 20, 100, 100), FaceBox(0, 0, 100, 100))}


def test_plan_for_a_rotated_crop_is_its_whole_view():
    views = {"left": ((0, 0, 320, 240), FaceBox(50, 40, 100, 100), 4.5),
             "right": ((321, 0, 320, 240), FaceBox(150, 60, 100, 100), 0.0)}
    region, parts = pipeline.crop_plan(views)
    assert region == (0, 0, 321 + 150 + 100, 240)
    assert parts["left"] == ((0, 0, 320, 240), FaceBox(50, 40, 100, 100))
    assert parts["right"] == ((321 + 150, 60, 100, 100), FaceBox(0, 0, 100, 100))


def test_plan_without_region_is_the_views():
    views = {"left": ((0, 0, 320, 240), FaceBox(50, 40, 100, 100), 0.0),
             "right": ((321, 0, 320, 240), FaceBox(150, 60, 100, 100), 0.0)}
    region, parts = pipeline.crop_plan(views, whole=True)
    assert region is None
    assert parts == {"left": ((0, 0, 320, 240), FaceBox(50, 40, 100, 100)),
                     "right": ((321, 0, 320, 240), FaceBox(150, 60, 100, 100))}


@pytest.fixture(scope="module")
def side_by_side(tiny_corpus, tmp_path_factory):
    """Three tiny clips with each frame beside its mirror image (4DME's two views), CASME II layout."""
    root = tmp_path_factory.mktemp("sbs")
    for clip in list(load("casme2", tiny_corpus))[:3]:
        for path in clip.frame_paths:
            frame = cv2.imread(path)
            target = root / os.path.relpath(path, tiny_corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(target), np.concatenate([frame, frame[:, ::-1]], axis=1))
    (root / SPREADSHEET_NAME).write_bytes((tiny_corpus / SPREADSHEET_NAME).read_bytes())
    return root


def decoders():
    return ["opencv", "dali"] if dali_engine.available()[0] else ["opencv"]


@pytest.mark.parametrize("decoder", decoders())
@pytest.mark.parametrize(("corpus", "views", "align", "color"), [
    ("tiny_corpus", "full", False, False), ("tiny_corpus", "full", True, False), ("tiny_corpus", "full", False, True),
    ("side_by_side", "split", False, False), ("side_by_side", "split", False, True)])
def test_decoding_the_region_gives_what_whole_frames_give(request, monkeypatch, decoder, corpus, views, align, color):
    regions = []
    chunks = FrameSource.chunks

    def spy(self, numbers, size, **options):
        regions.append(options.get("region"))
        return chunks(self, numbers, size, **options)

    monkeypatch.setattr(FrameSource, "chunks", spy)
    root = request.getfixturevalue(corpus)
    detector, _ = make_detector("haar")
    clips = list(load("casme2", root))[:3]
    rotated = 0
    for clip in clips:
        results = {}
        for region in (True, False):
            config = ExtractConfig(face_detector="haar", size=48, decoder=decoder, views=views, align=align,
                                   color=color, decode_region=region)
            results[region] = pipeline.process_clip(clip, detector, config)
            assert not results[region].error, results[region].error
        (with_region, whole) = results[True], results[False]
        assert len(with_region.views) == len(whole.views) == (2 if views == "split" else 1)
        for (row_a, crops_a), (row_b, crops_b) in zip(with_region.views, whole.views, strict=True):
            assert row_a == row_b  # boxes, angle, key frames, the motion curve
            np.testing.assert_array_equal(crops_a, crops_b)
        for a, b in zip(with_region.color_crops, whole.color_crops, strict=True):
            np.testing.assert_array_equal(a, b)
        decoded, full = regions[-2], regions[-1]
        assert full is None
        rows = [row for row, _ in with_region.views]
        if align and any(row["face_angle"] for row in rows):
            rotated += 1
            assert decoded == (0, 0, *cv2.imread(str(clip.frame_paths[0])).shape[1::-1])  # the whole (one) view
        elif views == "full":
            assert decoded == tuple(rows[0]["face_box"])  # exactly the face box
        else:  # the two boxes, the right one shifted by the right view's place in the frame
            left, right = rows[0]["face_box"], rows[1]["face_box"]
            width = cv2.imread(str(clip.frame_paths[0])).shape[1]
            x0, x1 = left[0], width - width // 2 + right[0] + right[2]
            assert decoded[0] == x0 and decoded[2] == x1 - x0 and decoded[2] < width
    assert rotated or not align, "no clip was aligned: the rotated case was not exercised"
