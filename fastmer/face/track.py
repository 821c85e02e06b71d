"""One face box (and one rotation) per clip.

Micro-expressions move the face by a pixel or two, so a crop box that follows per-frame
detections (which jitter by several pixels) would drown them in box motion. fastmer finds
one box per clip: on the onset frame, or the union of the detections over frames sampled
across the clip (so a face that drifts stays inside the crop), squared with a margin. The
optional alignment angle levels the eyes; it too is one value per clip.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastmer.choices import FACE_BOX_MODES
from fastmer.errors import ClipError
from fastmer.face.crop import FaceBox, square_box, union_box
from fastmer.face.detect import Face, FaceDetector, WholeFrameDetector, iou


@dataclass(frozen=True)
class FaceTrack:
    """Where a clip's face is.

    Attributes:
        box: the square crop box used for every frame.
        angle: rotation in degrees applied about the box centre (0 without alignment).
        faces: the detections the box was built from, one per frame used.
        frames_used: indices (into the frames given) of those detections.
        aligned: whether ``angle`` comes from located eyes (False: alignment off, or no eyes found).
    """

    box: FaceBox
    angle: float
    faces: tuple[Face, ...]
    frames_used: tuple[int, ...]
    aligned: bool


def sample_indices(n: int, samples: int) -> list[int]:
    """``samples`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= samples:
        return list(range(n))
    return sorted({round(i * (n - 1) / (samples - 1)) for i in range(samples)})


def locate_face(
    frames: Sequence[np.ndarray] | np.ndarray,
    detector: FaceDetector,
    *,
    mode: str = "onset",
    scale: float = 1.25,
    samples: int = 8,
    align: bool = False,
    where: str = "clip",
) -> FaceTrack:
    """The clip's face box from its frames.

    Args:
        frames: the clip's frames, onset first: ``(T, H, W)`` or ``(T, H, W, 3)`` uint8.
        detector: a :class:`~fastmer.face.detect.FaceDetector`.
        mode: ``"onset"``: the box found on the onset frame; ``"union"``: the union of the
            boxes found on ``samples`` frames spread over the clip (the same person: the
            detection overlapping the onset face most).
        scale: side of the square crop as a multiple of the (union) box's larger side.
        samples: frames examined in ``union`` mode.
        align: find the eyes and return the angle that levels them (the median over the
            frames used); without eyes the angle is 0 and ``aligned`` False.
        where: names the clip in error messages.

    Raises:
        ClipError: stage ``face`` when no face is found on the onset frame.
    """
    if mode not in FACE_BOX_MODES:
        raise ValueError(f"face box mode must be one of {', '.join(FACE_BOX_MODES)}, got {mode!r}")
    if len(frames) == 0:
        raise ValueError("locate_face needs at least one frame")
    height, width = frames[0].shape[:2]
    reference = detector.largest(frames[0], where=f"the onset frame of {where}")
    if isinstance(detector, WholeFrameDetector):  # already a face crop: the frame as it is
        return FaceTrack(reference.box, 0.0, (reference,), (0,), False)
    faces, used = [reference], [0]
    if mode == "union":
        for i in sample_indices(len(frames), samples)[1:]:
            candidates = [(iou(f.box, reference.box), f) for f in detector.detect(frames[i])]
            overlap, face = max(candidates, key=lambda c: c[0], default=(0.0, None))
            if face is not None and overlap >= 0.3:
                faces.append(face)
                used.append(i)
    angle, aligned = 0.0, False
    if align:
        angles = [a for f, i in zip(faces, used, strict=True)
                  if (a := detector.find_eyes(frames[i], f).eye_angle) is not None]
        if angles:
            angle, aligned = float(statistics.median(angles)), True
    box = square_box(union_box([f.box for f in faces]), scale, width, height)
    if box.w < 8:
        raise ClipError("face", f"face box in {where} is only {box.w} px wide")
    return FaceTrack(box, angle, tuple(faces), tuple(used), aligned)
