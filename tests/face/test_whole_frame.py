"""--face-detector none: frames that are face crops already (issue 17, item 12).

The most common CASME II and SAMM releases are cropped faces (CASME II
``Cropped/subXX/EPxx/reg_imgN.jpg``); a detector run on them finds a nose or nothing.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.datasets.synth import SPREADSHEET_NAME
from fastmer.face import FaceBox, WholeFrameDetector, locate_face, make_detector


def test_the_whole_frame_is_the_face_and_nothing_is_squared_or_aligned():
    detector, why = make_detector("none")
    assert isinstance(detector, WholeFrameDetector) and detector.name == "none" and "used whole" in why
    frames = np.random.default_rng(0).integers(0, 256, (4, 34, 28), dtype=np.uint8)
    track = locate_face(frames, detector, mode="union", scale=1.25, align=True)
    assert track.box == FaceBox(0, 0, 28, 34) and track.angle == 0.0 and not track.aligned
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(frames.astype(np.float32)[0])


def cropped_release(corpus: Path, root: Path) -> dict[str, tuple[int, int]]:
    """CASME II's cropped layout from a synthetic corpus: ``root/Cropped/subXX/EP/reg_imgN.jpg``
    (each frame cut to the clip's true face box) and the coding sheet beside ``Cropped``."""
    sizes = {}
    with open(corpus / "ground_truth" / "clips.csv") as handle:
        for row in csv.DictReader(handle):
            x, y, side = (int(float(row[k])) for k in ("face_x", "face_y", "face_w"))
            source = corpus / f"sub{row['subject']}" / row["filename"]
            target = root / "Cropped" / f"sub{row['subject']}" / row["filename"]
            target.mkdir(parents=True)
            for frame in source.glob("img*.jpg"):
                image = cv2.imread(str(frame))[y : y + side + 30, x : x + side]  # a little taller than wide
                cv2.imwrite(str(target / f"reg_{frame.name}"), image)
                sizes[f"casme2/sub{row['subject']}/{row['filename']}"] = image.shape[:2]
    shutil.copy(corpus / SPREADSHEET_NAME, root / SPREADSHEET_NAME)
    return sizes


def test_extract_a_cropped_release_with_face_detector_none(tiny_corpus, tmp_path):
    sizes = cropped_release(tiny_corpus, tmp_path / "casme2")
    store_path = tmp_path / "store"
    result = CliRunner().invoke(main, ["extract", str(tmp_path / "casme2" / "Cropped"), "-o", str(store_path),
                                       "--face-detector", "none", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "face detector: none (requested: the frames are face crops" in result.stderr
    store = fstore.open(store_path)
    assert len(store) == 9 and len(store.errors) == 0
    for uid, box in zip(store.column("uid"), store.column("face_box"), strict=True):
        height, width = sizes[uid]
        assert list(box) == [0, 0, width, height]  # the frame as it is, no square, no margin
    assert json.loads((store_path / "store.json").read_text())["params"]["face_detector"] == "none"
    assert store.tensor("flow_onset_apex").abs().sum() > 0
