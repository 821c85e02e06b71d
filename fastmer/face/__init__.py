"""Face localisation and sequence-wise cropping (one box per clip, reused for every frame)."""

from fastmer.face.crop import FaceBox, crop_sequence, square_box
from fastmer.face.detect import HaarFaceDetector

__all__ = ["FaceBox", "HaarFaceDetector", "crop_sequence", "square_box"]
