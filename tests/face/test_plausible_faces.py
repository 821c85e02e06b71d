"""Issue 17, item 11: ``auto`` is YuNet or an error (never a silent Haar), and a box that is
too small or whose landmarks cannot be a face is a "no face" error, whatever the detector."""

import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.errors import ClipError
from fastmer.face import FaceBox, YuNetFaceDetector, make_detector
from fastmer.face.detect import implausible_landmarks

# A frontal face in a 100 x 120 box at (50, 40): right eye (image left), left eye, nose tip,
# right and left mouth corners, in the proportions YuNet gives real faces.
BOX = FaceBox(50, 40, 100, 120)
UPRIGHT = np.array([[78.0, 85.0], [122.0, 85.0], [100.0, 111.0], [82.0, 133.0], [118.0, 133.0]])


def rotated(points, degrees, about=(100.0, 100.0)):
    a = math.radians(degrees)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - about) @ rotation.T + about


@pytest.mark.parametrize("degrees", [0, 25, -25])
def test_upright_and_tilted_faces_are_plausible(degrees):
    assert implausible_landmarks(rotated(UPRIGHT, degrees), BOX) is None


@pytest.mark.parametrize(("change", "reason"), [
    (lambda p: p * [1, -1] + [0, 2 * 100], "nose -"),  # mirrored top to bottom: nose above the eyes
    (lambda p: np.vstack([p[:2], [[100.0, 133.0], [82.0, 111.0], [118.0, 111.0]]]), "mouth"),  # mouth above the nose
    (lambda p: np.vstack([[98.0, 85.0], [102.0, 85.0], p[2:]]), "eyes 4 px apart"),
    (lambda p: np.vstack([p[:4], [400.0, 133.0]]), "outside the box"),
    (lambda p: np.vstack([p[:2], [100.0, 300.0], p[3:]]), "outside the box"),
    (lambda p: np.vstack([p[:2], [100.0, 86.0], p[3:]]), "nose 0.02"),  # nose on the eye line
    (lambda p: np.where(np.arange(10).reshape(5, 2) == 3, np.nan, p), "not finite"),
])
def test_landmarks_that_are_not_a_face_are_named(change, reason):
    found = implausible_landmarks(change(UPRIGHT.copy()), BOX)
    assert found is not None and reason in found, found


def test_auto_without_a_yunet_model_is_an_error_naming_the_ways_out():
    # conftest points FASTMER_CACHE at an empty folder
    for name in ("auto", "yunet"):
        with pytest.raises(ValueError, match=f"'{name}' is YuNet") as caught:
            make_detector(name)
        message = str(caught.value)
        assert "fastmer models fetch yunet" in message and "--face-model" in message
        assert "--face-detector haar" in message and "--face-detector none" in message
    # Haar only by name
    assert make_detector("haar")[0].name.startswith("opencv-haar")


def test_extract_auto_without_yunet_stops_before_writing(tiny_corpus, tmp_path):
    out = tmp_path / "store"
    result = CliRunner().invoke(main, ["extract", str(tiny_corpus), "-o", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "face detector 'auto' is YuNet" in result.output and "fastmer models fetch yunet" in result.output
    assert not out.exists()


def test_info_says_auto_needs_yunet():
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert "face detector (--face-detector auto): none" in result.output and "fastmer models fetch yunet" in result.output


@pytest.fixture(scope="module")
def real_frame(shared_dir):
    capture = cv2.VideoCapture(str(shared_dir / "data" / "video" / "single_face.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def yunet_model(shared_dir):
    return shared_dir / "models" / "face_detection_yunet_2023mar.onnx"


def test_a_real_face_passes_and_its_landmarks_are_plausible(real_frame, yunet_model):
    face = YuNetFaceDetector(yunet_model).largest(real_frame)
    assert implausible_landmarks(face.landmarks, face.box) is None
    assert face.box.w > 0.3 * real_frame.shape[0]


def test_a_face_too_small_for_the_frame_is_no_face(real_frame, yunet_model):
    """The real face shrunk to a 27-px box in a 720-px frame: YuNet finds it, fastmer refuses it."""
    small = cv2.resize(real_frame, (real_frame.shape[1] // 6, real_frame.shape[0] // 6), interpolation=cv2.INTER_AREA)
    canvas = np.full((real_frame.shape[0] * 2, real_frame.shape[1] * 2, 3), 128, np.uint8)
    canvas[10 : 10 + small.shape[0], 10 : 10 + small.shape[1]] = small
    assert YuNetFaceDetector(yunet_model, min_size_frac=0).detect(canvas), "precondition: YuNet finds the small face"
    detector = YuNetFaceDetector(yunet_model)
    assert detector.detect(canvas) == []
    with pytest.raises(ClipError, match=r"no face in the onset frame .*1 box\(es\) found, none plausible: .*too small") as caught:
        detector.largest(canvas, where="the onset frame")
    assert caught.value.stage == "face"


def test_a_confident_box_with_a_non_face_geometry_is_refused(real_frame, yunet_model, monkeypatch):
    """YuNet's score alone does not make a face: a detection whose landmarks are upside down is dropped."""
    detector = YuNetFaceDetector(yunet_model)
    net = detector._net(real_frame.shape[1], real_frame.shape[0])
    _, found = net.detect(cv2.cvtColor(real_frame, cv2.COLOR_RGB2BGR))
    assert found is not None and len(found) == 1
    row = found[0].copy()
    centre_y = row[1] + row[3] / 2
    row[5:14:2] = 2 * centre_y - row[5:14:2]  # landmark y mirrored about the box centre

    class Net:
        def setInputSize(self, size):  # OpenCV's name
            pass

        def detect(self, image):
            return 1, row[None]

    monkeypatch.setattr(detector, "_net", lambda width, height: Net())
    with pytest.raises(ClipError, match=r"none plausible: box at .* is not a face: nose -"):
        detector.largest(real_frame)
