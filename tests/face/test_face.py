import cv2
import numpy as np
import pytest

from fastmer.errors import ClipError
from fastmer.face import FaceBox, HaarFaceDetector, crop_sequence, square_box


def test_square_box_keeps_centre_and_stays_inside():
    assert square_box(FaceBox(100, 100, 80, 100), 1.2, 640, 480) == FaceBox(80, 90, 120, 120)
    # Near the border the square is moved inside, not cut.
    box = square_box(FaceBox(600, 440, 40, 40), 2.0, 640, 480)
    assert (box.w, box.h) == (80, 80) and box.x + box.w == 640 and box.y + box.h == 480
    # Larger than the frame: shrunk to the short side.
    assert square_box(FaceBox(0, 0, 600, 600), 2.0, 640, 480).w == 480


def test_crop_sequence_uses_one_box_for_all_frames():
    frames = np.stack([np.full((50, 60), i, np.uint8) for i in range(4)])
    frames[:, 10:30, 20:40] += 100
    crops = crop_sequence(frames, FaceBox(20, 10, 20, 20), 8)
    assert crops.shape == (4, 8, 8)
    assert [int(c.mean()) for c in crops] == [100, 101, 102, 103]
    with pytest.raises(ValueError, match="does not fit"):
        crop_sequence(frames, FaceBox(50, 40, 20, 20), 8)


def test_detects_the_face_in_a_real_video(shared_dir):
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "single_face.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok, "could not decode single_face.mp4"
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    box = HaarFaceDetector().largest(gray)
    # One frontal face in a 640x360 frame: a plausible size, away from the corners.
    assert 60 <= box.w <= 300 and box.x > 0 and box.y >= 0
    h, w = gray.shape
    assert 0.2 * w < box.x + box.w / 2 < 0.8 * w


def test_no_face_is_a_clip_error():
    with pytest.raises(ClipError, match="no face detected in blank") as err:
        HaarFaceDetector().largest(np.full((240, 320), 128, np.uint8), where="blank")
    assert err.value.stage == "face"
