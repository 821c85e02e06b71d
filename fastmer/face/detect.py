"""Face detectors: OpenCV YuNet (with five landmarks) and the bundled Haar cascades.

Both are thread-safe (one OpenCV object per thread, as OpenCV requires) and accept a
grayscale ``(H, W)`` or colour ``(H, W, 3)`` uint8 image. :func:`make_detector` picks one
and says why, so extraction can log it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fastmer.choices import FACE_DETECTORS
from fastmer.errors import ClipError
from fastmer.face.crop import FaceBox

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
#: Eye sizes the eye cascade searches, as fractions of the face box's width. On 59 faces (the
#: real videos of ../shared and synthetic faces) the eyes it finds in a frontal-face box are
#: 0.20-0.27 of its width; searching 0.18-0.35 instead of 0.1-0.5 finds two eyes on the same
#: faces, as close to YuNet's eye landmarks, at half the cost (the smallest windows are the
#: most numerous). tests/face/test_real_faces.py holds the check on the real videos.
EYE_SIZE = (0.18, 0.35)
#: Width (px) at which a larger face box's top is searched for eyes first: its smallest eye
#: window is then the cascade's own 20 px. On the real videos it finds two eyes on all but 4
#: more faces of 109, which the full-resolution search that follows then finds; 2.5x cheaper
#: on the synthetic corpus's 197-px faces.
EYE_SEARCH_WIDTH = 112


@dataclass(frozen=True)
class Face:
    """A detected face.

    Attributes:
        box: the detector's box.
        score: detection confidence (YuNet: in [0, 1]; Haar: the number of neighbours).
        eyes: ``((x, y), (x, y))`` eye centres, image-left eye first, or None when unknown.
        landmarks: YuNet's ``(5, 2)`` landmarks (subject's right eye, left eye, nose tip,
            right and left mouth corners), or None.
    """

    box: FaceBox
    score: float
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    landmarks: np.ndarray | None = None

    @property
    def eye_angle(self) -> float | None:
        """Angle in degrees of the line from the image-left to the image-right eye (image
        coordinates, y down: positive when the right-hand eye is lower), or None."""
        if self.eyes is None:
            return None
        (x0, y0), (x1, y1) = self.eyes
        return math.degrees(math.atan2(y1 - y0, x1 - x0))


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(w, 0) * max(h, 0)
    return inter / (a.area + b.area - inter) if inter else 0.0


def _as_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _as_bgr(image: np.ndarray, rgb: bool) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if rgb else image


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or (
        image.ndim == 3 and image.shape[2] != 3
    ):
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {type(image).__name__} {shape}")


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


class FaceDetector:
    """Common interface: ``detect`` (all faces, best first) and ``largest``."""

    name = "detector"

    def detect(self, image: np.ndarray) -> list[Face]:
        raise NotImplementedError

    def largest(self, image: np.ndarray, *, where: str = "image") -> Face:
        """The largest face; ClipError (stage ``face``) naming ``where`` when there is none."""
        faces = self.detect(image)
        if not faces:
            raise ClipError("face", f"no face detected in {where} ({self.name})")
        return max(faces, key=lambda f: f.box.area)

    def find_eyes(self, image: np.ndarray, face: Face) -> Face:
        """``face`` with its eyes located if the detector did not give them (default: as is)."""
        return face


class WholeFrameDetector(FaceDetector):
    """For frames that are face crops already (``--face-detector none``): the face is the whole
    frame. :func:`~fastmer.face.track.locate_face` then crops nothing (no square, no margin):
    each frame is resized to the crop size as it is, as the papers that use CASME II's and
    SAMM's cropped releases do. No eyes are known, so nothing is aligned."""

    name = "none"

    def detect(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        height, width = image.shape[:2]
        return [Face(FaceBox(0, 0, width, height), 1.0)]


class HaarFaceDetector(FaceDetector):
    """Viola-Jones frontal-face detector with OpenCV's bundled cascade; eyes by the eye cascade.

    Args:
        cascade: file name of a cascade in ``cv2.data.haarcascades``.
        scale_factor, min_neighbors: ``detectMultiScale`` parameters.
        min_size_frac: smallest face side as a fraction of the image's short side.
    """

    name = "opencv-haar"

    def __init__(self, cascade: str = DEFAULT_CASCADE, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size_frac: float = 0.15) -> None:
        self.path = cascade_path(cascade)
        self.eye_path = cascade_path(EYE_CASCADE)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_frac = min_size_frac
        self.name = f"opencv-haar:{Path(cascade).stem}"
        self._local = threading.local()

    def _cascade(self, path: Path) -> cv2.CascadeClassifier:
        cache = self._local.__dict__.setdefault("cascades", {})
        if path not in cache:
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load the cascade {path}")
            cache[path] = cascade
        return cache[path]

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces, largest first (eyes not located; see :meth:`find_eyes`)."""
        _check_image(image)
        gray = _as_gray(image)
        side = int(self.min_size_frac * min(gray.shape))
        found, _, weights = self._cascade(self.path).detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side),
            outputRejectLevels=True,
        )
        faces = [Face(FaceBox(int(x), int(y), int(w), int(h)), float(s))
                 for (x, y, w, h), s in zip(found, np.ravel(weights), strict=True)]
        return sorted(faces, key=lambda f: f.box.area, reverse=True)

    def largest(self, image: np.ndarray, *, where: str = "image") -> Face:
        """The largest box in which the eye cascade finds both eyes (returned with them).

        The frontal-face cascade also fires on textures (machinery in a film frame) and, on
        frames that are face crops already, on the nose alone; a box without two eyes is not
        taken for a face, so no such crop is ever scored.

        Raises:
            ClipError: stage ``face``, naming ``where``: no box, or no box with two eyes.
        """
        faces = self.detect(image)
        if not faces:
            raise ClipError("face", f"no face detected in {where} ({self.name})")
        for face in faces:  # largest first
            with_eyes = self.find_eyes(image, face)
            if with_eyes.eyes is not None:
                return with_eyes
        raise ClipError("face", f"no face in {where} ({self.name}): {len(faces)} box(es) found, none with two eyes "
                                "(not a face; if the frames are face crops already, use --face-detector none)")

    def find_eyes(self, image: np.ndarray, face: Face) -> Face:
        """Eyes from the eye cascade in the upper half of the face box: the largest
        detection in each half (left, right); unchanged when either is missing.

        The box is searched at :data:`EYE_SEARCH_WIDTH` pixels wide first (a fraction of the
        cost on large faces), then, if that does not give two eyes, at full resolution.
        """
        gray = _as_gray(image)
        b = face.box
        top = gray[b.y : b.y + b.h // 2 + b.h // 10, b.x : b.x + b.w]
        eyes = self._eyes(top, EYE_SEARCH_WIDTH) if b.w > EYE_SEARCH_WIDTH else None
        if eyes is None:
            eyes = self._eyes(top, b.w)
        if eyes is None:
            return face
        (x0, y0), (x1, y1) = eyes
        return Face(face.box, face.score, ((b.x + x0, b.y + y0), (b.x + x1, b.y + y1)), face.landmarks)

    def _eyes(self, top: np.ndarray, width: int) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """The two eye centres in ``top`` (in its pixels) searched at ``width`` pixels wide, or None."""
        full_height, full_width = top.shape
        if width < full_width:
            top = cv2.resize(top, (width, max(1, round(full_height * width / full_width))), interpolation=cv2.INTER_AREA)
        back_x, back_y = full_width / top.shape[1], full_height / top.shape[0]
        smallest, largest = max(int(EYE_SIZE[0] * width), 8), max(int(EYE_SIZE[1] * width), 9)
        found = self._cascade(self.eye_path).detectMultiScale(top, scaleFactor=1.05, minNeighbors=4,
                                                              minSize=(smallest, smallest), maxSize=(largest, largest))
        halves: dict[int, tuple[int, tuple[float, float]]] = {}
        for x, y, w, h in found:
            centre = ((x + w / 2) * back_x, (y + h / 2) * back_y)
            half = int(centre[0] >= full_width / 2)
            if w * h > halves.get(half, (0, None))[0]:
                halves[half] = (w * h, centre)
        if len(halves) < 2:
            return None
        return halves[0][1], halves[1][1]


class YuNetFaceDetector(FaceDetector):
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``): faces with five landmarks.

    More robust than Haar to pose and lighting, and its eye landmarks give the alignment
    angle directly. Large images are shrunk so that the long side is at most ``max_side``
    (YuNet finds faces >= ~10 px; micro-expression faces fill much of the frame).

    Args:
        model: the ONNX file (``fastmer models fetch yunet`` puts it in the cache; the cached
            file is checked against its pinned sha256 here, :func:`fastmer.hub.check_cached`).
        score_threshold: minimum confidence.
        nms_threshold: IoU for non-maximum suppression.
        max_side: long side the image is resized to before detection, if larger.
        rgb: colour images are RGB (fastmer's decoders) rather than BGR (OpenCV's).
        min_size_frac: smallest face side as a fraction of the image's short side; smaller
            boxes are not taken (a micro-expression needs the face's pixels).

    Every detection must also pass :func:`implausible_landmarks` (eyes apart and level with
    the box, nose and mouth below them in that order): a box that passes the score but not
    the geometry is not a face.
    """

    def __init__(self, model: str | Path, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 max_side: int = 640, rgb: bool = True,
                 min_size_frac: float = 0.1) -> None:
        from fastmer.hub import check_cached  # noqa: PLC0415

        self.model = Path(model)
        if not self.model.is_file():
            raise FileNotFoundError(f"YuNet model {self.model} not found (fastmer models fetch yunet)")
        check_cached(self.model)  # the cached copy is checked against its pinned sha256 on every load
        if not hasattr(cv2, "FaceDetectorYN"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no FaceDetectorYN (needs OpenCV >= 4.5.4)")
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.rgb = rgb
        self.min_size_frac = min_size_frac
        self.name = f"opencv-yunet:{self.model.stem}"
        self._local = threading.local()
        self._net(64, 64)  # fail now, not in a worker thread, if OpenCV cannot read the file

    def _net(self, width: int, height: int) -> cv2.FaceDetectorYN:
        net = getattr(self._local, "net", None)
        if net is None:
            try:
                net = cv2.FaceDetectorYN.create(str(self.model), "", (width, height), self.score_threshold,
                                                self.nms_threshold, 5000)
            except cv2.error as exc:
                raise ValueError(f"OpenCV cannot load the YuNet model {self.model}: {exc}") from exc
            self._local.net = net
        net.setInputSize((width, height))
        return net

    def detect(self, image: np.ndarray) -> list[Face]:
        """All plausible faces, most confident first, with their landmarks and eyes."""
        return self._detect(image)[0]

    def largest(self, image: np.ndarray, *, where: str = "image") -> Face:
        """The largest plausible face; ClipError (stage ``face``) naming ``where`` and, when
        boxes were found but rejected, why."""
        faces, rejected = self._detect(image)
        if faces:
            return max(faces, key=lambda f: f.box.area)
        if not rejected:
            raise ClipError("face", f"no face detected in {where} ({self.name})")
        raise ClipError("face", f"no face in {where} ({self.name}): {len(rejected)} box(es) found, none plausible: "
                                + "; ".join(rejected[:3]))

    def _detect(self, image: np.ndarray) -> tuple[list[Face], list[str]]:
        _check_image(image)
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        bgr = _as_bgr(image, self.rgb)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        _, found = self._net(bgr.shape[1], bgr.shape[0]).detect(bgr)
        faces, rejected = [], []
        min_side = self.min_size_frac * min(height, width)
        for row in found if found is not None else ():
            x, y, w, h = (row[:4] / scale).tolist()
            x0, y0 = max(int(math.floor(x)), 0), max(int(math.floor(y)), 0)
            x1, y1 = min(int(math.ceil(x + w)), width), min(int(math.ceil(y + h)), height)
            box = FaceBox(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float64)
            if min(box.w, box.h) < min_side:
                rejected.append(f"{box.w}x{box.h} px box at ({box.x}, {box.y}) is too small "
                                f"(under {self.min_size_frac:.0%} of the image's {min(height, width)}-px side)")
                continue
            if (reason := implausible_landmarks(landmarks, box)) is not None:
                rejected.append(f"box at ({box.x}, {box.y}) is not a face: {reason}")
                continue
            # Landmark 0 is the subject's right eye, which is on the image's left.
            eyes = tuple(sorted((tuple(landmarks[0]), tuple(landmarks[1]))))
            faces.append(Face(box, float(row[14]), eyes, landmarks))  # type: ignore[arg-type]
        return sorted(faces, key=lambda f: f.score, reverse=True), rejected


def implausible_landmarks(landmarks: np.ndarray, box: FaceBox) -> str | None:
    """Why five YuNet landmarks (right eye, left eye, nose tip, right and left mouth corners of
    the subject) cannot be a face in ``box``, or None when they can.

    In units of the eye distance ``d``, measured along the normal of the eye line (so a tilted
    head passes): the nose lies 0.1–1.5 d below the eyes and the mouth below the nose, within
    2.5 d; the eyes are at least a fifth of the box apart, and every landmark lies in the box
    grown by a quarter. Real faces, frontal to three-quarter view, measure d ≈ 0.4–0.5 of the
    box, nose 0.5–0.7 d, mouth 0.9–1.35 d (the two videos of ``../shared``).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(points).all():
        return "landmarks are not finite"
    grow_x, grow_y = box.w / 4, box.h / 4
    inside = ((points[:, 0] >= box.x - grow_x) & (points[:, 0] <= box.x + box.w + grow_x)
              & (points[:, 1] >= box.y - grow_y) & (points[:, 1] <= box.y + box.h + grow_y))
    if not inside.all():
        return "landmarks outside the box"
    left, right = sorted((points[0], points[1]), key=lambda p: p[0])
    axis = right - left
    distance = float(np.hypot(*axis))
    if distance < 0.2 * box.w:
        return f"eyes {distance:.0f} px apart in a {box.w:.0f}-px box"
    down = np.array([-axis[1], axis[0]]) / distance  # image y points down
    centre = (left + right) / 2
    nose = float((points[2] - centre) @ down) / distance
    mouth = float(((points[3] + points[4]) / 2 - centre) @ down) / distance
    if not 0.1 <= nose <= 1.5:
        return f"nose {nose:.2f} eye-distances from the eye line"
    if not nose < mouth <= 2.5:
        return f"mouth {mouth:.2f} eye-distances from the eye line (nose {nose:.2f})"
    return None


def default_yunet_model() -> Path | None:
    """The YuNet model in the user cache, if it was fetched."""
    from fastmer.hub import cached  # noqa: PLC0415

    return cached("yunet")


AUTO_NEEDS_YUNET = (
    "face detector 'auto' is YuNet, and no YuNet model is given or cached: run 'fastmer models fetch yunet' "
    "(227 KB, MIT licence, checked against its pinned sha256), or pass --face-model FILE; or choose "
    "--face-detector haar (OpenCV's Haar cascade: frontal faces only, weaker) or --face-detector none "
    "(the frames are face crops already)"
)


def make_detector(name: str = "auto", model: str | Path | None = None) -> tuple[FaceDetector, str]:
    """A face detector and the reason it was chosen.

    ``auto`` and ``yunet``: YuNet with ``model`` if given, else with the cached model
    (``fastmer models fetch yunet``). ``auto`` never falls back to Haar without being asked:
    on real footage the cascade boxes textures and noses, so a missing YuNet model is an error
    that names the three ways out. ``haar`` ignores ``model``; ``none`` (frames already
    cropped to the face) takes each frame whole.

    Raises:
        ValueError: unknown name, no YuNet model (given or cached) for ``auto``/``yunet``, or a
            cached model whose sha256 is not the pinned one (corrupt or replaced).
    """
    if name not in FACE_DETECTORS:
        raise ValueError(f"face detector must be one of {', '.join(FACE_DETECTORS)}, got {name!r}")
    if name == "haar":
        return HaarFaceDetector(), "requested"
    if name == "none":
        return WholeFrameDetector(), "requested: the frames are face crops, each used whole"
    path = Path(model) if model is not None else default_yunet_model()
    if path is None:
        raise ValueError(AUTO_NEEDS_YUNET.replace("'auto'", repr(name)))
    origin = "the given model" if model is not None else f"the cached model {path}"
    return YuNetFaceDetector(path), "requested" if name == "yunet" else f"YuNet with {origin}"
