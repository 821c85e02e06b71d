"""Face detection with OpenCV's Haar cascade (bundled with opencv-contrib-python-headless 4.x)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from fastmer.errors import ClipError
from fastmer.face.crop import FaceBox

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def cascade_path(name: str = DEFAULT_CASCADE) -> Path:
    """Path of a bundled cascade; FileNotFoundError explains the OpenCV 5 removal."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / name
    if folder is None or not path.is_file():
        raise FileNotFoundError(
            f"Haar cascade {name} not found in OpenCV {cv2.__version__}: install "
            "opencv-contrib-python-headless<5 (OpenCV 5 no longer ships the cascades)"
        )
    return path


class HaarFaceDetector:
    """Frontal-face detector; thread-safe (one cascade per thread, as OpenCV requires).

    Args:
        cascade: file name of a cascade in ``cv2.data.haarcascades``.
        scale_factor, min_neighbors: ``detectMultiScale`` parameters.
        min_size_frac: smallest face side as a fraction of the image's short side.
    """

    def __init__(
        self,
        cascade: str = DEFAULT_CASCADE,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size_frac: float = 0.15,
    ) -> None:
        self.path = cascade_path(cascade)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_frac = min_size_frac
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(str(self.path))
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load the cascade {self.path}")
            self._local.cascade = cascade
        return cascade

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        """All faces in an ``(H, W)`` uint8 image, largest first."""
        side = int(self.min_size_frac * min(gray.shape))
        found = self._cascade().detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [FaceBox(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def largest(self, gray: np.ndarray, *, where: str = "image") -> FaceBox:
        """The largest face; ClipError (stage ``face``) naming ``where`` when there is none."""
        boxes = self.detect(gray)
        if not boxes:
            raise ClipError("face", f"no face detected in {where}")
        return boxes[0]
