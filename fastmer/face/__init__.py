"""Face localisation and sequence-wise cropping (one box per clip, reused for every frame)."""

from fastmer.face.crop import FaceBox, crop_clip, square_box, union_box
from fastmer.face.detect import (
    FACE_DETECTORS,
    Face,
    FaceDetector,
    HaarFaceDetector,
    WholeFrameDetector,
    YuNetFaceDetector,
    iou,
    make_detector,
)
from fastmer.face.track import FACE_BOX_MODES, FaceTrack, locate_face, sample_indices

__all__ = [
    "FACE_BOX_MODES",
    "FACE_DETECTORS",
    "Face",
    "FaceBox",
    "FaceDetector",
    "FaceTrack",
    "HaarFaceDetector",
    "WholeFrameDetector",
    "YuNetFaceDetector",
    "crop_clip",
    "iou",
    "locate_face",
    "make_detector",
    "sample_indices",
    "square_box",
    "union_box",
]
