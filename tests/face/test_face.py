import math

import cv2
import numpy as np
import pytest
import torch

from fastmer.errors import ClipError
from fastmer.face import (
    Face,
    FaceBox,
    FaceDetector,
    HaarFaceDetector,
    crop_clip,
    locate_face,
    make_detector,
    sample_indices,
    square_box,
    union_box,
)


def test_square_box_keeps_centre_and_stays_inside():
    assert square_box(FaceBox(100, 100, 80, 100), 1.2, 640, 480) == FaceBox(80, 90, 120, 120)
    # Near the border the square is moved inside, not cut.
    box = square_box(FaceBox(600, 440, 40, 40), 2.0, 640, 480)
    assert (box.w, box.h) == (80, 80) and box.x + box.w == 640 and box.y + box.h == 480
    # Larger than the frame: shrunk to the short side.
    assert square_box(FaceBox(0, 0, 600, 600), 2.0, 640, 480).w == 480


def test_union_box_and_contains():
    union = union_box([FaceBox(10, 20, 30, 30), FaceBox(15, 10, 30, 35)])
    assert union == FaceBox(10, 10, 35, 40)
    assert union.contains(FaceBox(10, 10, 35, 40)) and not union.contains(FaceBox(9, 10, 35, 40))
    assert union.contains(FaceBox(9, 10, 35, 40), tolerance=1)
    with pytest.raises(ValueError, match="at least one box"):
        union_box([])


def test_crop_clip_uses_one_box_for_all_frames():
    frames = np.stack([np.full((50, 60), i, np.uint8) for i in range(4)])
    frames[:, 10:30, 20:40] += 100
    crops = crop_clip(frames, FaceBox(20, 10, 20, 20), 8)
    assert crops.shape == (4, 8, 8) and crops.dtype == np.uint8
    assert [int(c.mean()) for c in crops] == [100, 101, 102, 103]
    with pytest.raises(ValueError, match="does not fit"):
        crop_clip(frames, FaceBox(50, 40, 20, 20), 8)
    with pytest.raises(ValueError, match=r"expected frames of shape \(T, H, W\)"):
        crop_clip(frames[0], FaceBox(0, 0, 8, 8), 8)


@pytest.mark.parametrize("side,size", [(200, 128), (150, 64), (96, 128)])
def test_crop_clip_matches_opencv(side, size):
    """Shrinking is INTER_AREA's area average, enlarging bilinear: compare with OpenCV per frame."""
    rng = np.random.default_rng(side)
    frames = cv2.GaussianBlur(rng.integers(0, 256, (3, 240, 320), dtype=np.uint8).astype(np.float32), (0, 0), 2)
    frames = np.stack([cv2.normalize(f, None, 0, 255, cv2.NORM_MINMAX) for f in frames]).astype(np.uint8)
    box = FaceBox(37, 21, side, side)
    crops = crop_clip(frames, box, size)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    for crop, frame in zip(crops, frames, strict=True):
        expected = cv2.resize(frame[21 : 21 + side, 37 : 37 + side], (size, size), interpolation=interpolation)
        assert np.abs(crop.astype(int) - expected).max() <= 1


def test_crop_clip_tensor_in_tensor_out(device):
    frames = torch.randint(0, 256, (5, 60, 80), dtype=torch.uint8, device=device)
    crops = crop_clip(frames, FaceBox(10, 5, 50, 50), 25)
    assert isinstance(crops, torch.Tensor) and crops.device.type == device and crops.shape == (5, 25, 25)
    expected = crop_clip(frames.cpu().numpy(), FaceBox(10, 5, 50, 50), 25)
    np.testing.assert_array_equal(crops.cpu().numpy(), expected)


@pytest.mark.parametrize("degrees", [-8.0, 5.0, 12.0])
def test_rotated_crop_levels_two_dots(degrees):
    """Two dots on a line tilted by ``degrees`` come out on one row after the crop at that angle."""
    frame = np.zeros((200, 200), np.uint8)
    cx, cy, half = 100.0, 100.0, 40.0
    t = math.radians(degrees)
    for sign in (-1, 1):
        centre = (round(16 * (cx + sign * half * math.cos(t))), round(16 * (cy + sign * half * math.sin(t))))
        cv2.circle(frame, centre, 4 * 16, 255, -1, cv2.LINE_AA, shift=4)  # 1/16-px positions

    def rows(image):  # intensity-weighted row of each dot (left and right halves)
        ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
        w = image.astype(float)
        return [(ys * w)[:, s].sum() / w[:, s].sum() for s in (xs[0] < 60, xs[0] >= 60)]

    crop = crop_clip(frame[None], FaceBox(40, 40, 120, 120), 120, angle=degrees)[0]
    left, right = rows(crop)
    assert abs(left - right) <= 0.3  # level
    assert abs((left + right) / 2 - 60) <= 0.3  # on the row of the rotation centre (pixel 100 - box.y 40)
    left, right = rows(crop_clip(frame[None], FaceBox(40, 40, 120, 120), 120)[0])
    assert abs(right - left) == pytest.approx(2 * half * abs(math.sin(t)), abs=0.3)


def test_sample_indices():
    assert sample_indices(5, 8) == [0, 1, 2, 3, 4]
    assert sample_indices(100, 4) == [0, 33, 66, 99]


class ScriptedDetector(FaceDetector):
    """Returns preset faces per frame (frames are identified by their first pixel)."""

    name = "scripted"

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces.get(int(image[0, 0]), []))


def test_locate_face_onset_and_union_modes():
    frames = np.zeros((10, 240, 320), np.uint8)
    frames[:, 0, 0] = np.arange(10)
    moving = {i: [Face(FaceBox(100 + 2 * i, 60, 80, 100), 0.9)] for i in range(10)}
    moving[5].append(Face(FaceBox(0, 0, 30, 30), 0.95))  # a far-away second face is ignored
    onset = locate_face(frames, ScriptedDetector(moving), mode="onset", scale=1.0)
    assert onset.box == square_box(FaceBox(100, 60, 80, 100), 1.0, 320, 240) and onset.frames_used == (0,)
    union = locate_face(frames, ScriptedDetector(moving), mode="union", scale=1.0, samples=10)
    assert union.frames_used == tuple(range(10))
    assert union.box == square_box(FaceBox(100, 60, 98, 100), 1.0, 320, 240)
    for faces in moving.values():
        assert union.box.contains(faces[0].box)
    assert union.angle == 0.0 and not union.aligned


def test_locate_face_alignment_angle_is_the_median_eye_angle():
    frames = np.zeros((3, 240, 320), np.uint8)
    frames[:, 0, 0] = np.arange(3)
    eyes = [((130.0, 100.0), (170.0, 100.0 + 40 * math.tan(math.radians(a)))) for a in (2.0, 4.0, 30.0)]
    faces = {i: [Face(FaceBox(100, 60, 100, 100), 0.9, eyes[i])] for i in range(3)}
    track = locate_face(frames, ScriptedDetector(faces), mode="union", samples=3, align=True)
    assert track.aligned and track.angle == pytest.approx(4.0)
    assert locate_face(frames, ScriptedDetector(faces), align=False).angle == 0.0


def test_no_face_is_a_clip_error():
    with pytest.raises(ClipError, match="no face detected in blank") as err:
        HaarFaceDetector().largest(np.full((240, 320), 128, np.uint8), where="blank")
    assert err.value.stage == "face"
    with pytest.raises(ClipError, match="onset frame of casme2/sub01/EP01"):
        locate_face(np.full((3, 240, 320), 128, np.uint8), HaarFaceDetector(), where="casme2/sub01/EP01")
    with pytest.raises(ValueError, match="face box mode must be one of onset, union"):
        locate_face(np.zeros((3, 240, 320), np.uint8), HaarFaceDetector(), mode="each")


def test_make_detector_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMER_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(ValueError, match="'auto' is YuNet, and no YuNet model is given or cached"):
        make_detector("auto")  # never a silent Haar
    detector, why = make_detector("haar")
    assert isinstance(detector, HaarFaceDetector) and why == "requested"
    with pytest.raises(ValueError, match="'yunet' is YuNet, and no YuNet model .*--face-model"):
        make_detector("yunet")
    with pytest.raises(ValueError, match="face detector must be one of auto, yunet, haar"):
        make_detector("dlib")
    with pytest.raises(FileNotFoundError, match="not found"):
        make_detector("yunet", tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load the YuNet model"):
        make_detector("yunet", tmp_path / "bad.onnx")


def test_haar_takes_no_box_without_two_eyes_for_a_face(tiny_corpus):
    """Issue 17, item 11: Haar boxed machinery in a film frame (and a nose on cropped faces) and the crop was scored."""
    import cv2
    import numpy as np

    from fastmer.errors import ClipError
    from fastmer.face import FaceBox, HaarFaceDetector
    from fastmer.face.detect import Face

    frame = cv2.imread(str(sorted(sorted((tiny_corpus / "sub01").iterdir())[0].glob("img*.jpg"))[0]), cv2.IMREAD_GRAYSCALE)
    detector = HaarFaceDetector()
    face = detector.largest(frame, where="a real face")
    assert face.eyes is not None  # returned with its eyes

    class Fooled(HaarFaceDetector):  # a cascade hit on texture: a box where no eye is
        def detect(self, image):
            return [Face(FaceBox(0, 0, 120, 120), 9.0)]

    texture = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
    with pytest.raises(ClipError, match=r"no face in the onset frame of x \(opencv-haar.*\): 1 box\(es\) found, none with "
                                        r"two eyes.*--face-detector none"):
        Fooled().largest(texture, where="the onset frame of x")
