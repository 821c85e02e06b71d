"""Synthetic micro-expression corpus with exact ground-truth motion, in the CASME II layout.

Why: real ME corpora (CASME II, SAMM, SMIC) are licence-restricted and their motion is
unknown, so neither a CI run nor an optical-flow benchmark can use them. This module renders
a small corpus whose every pixel displacement is known, from the one frontal face photograph
that ships with scikit-image (:func:`skimage.data.astronaut`, NASA, public domain).

Model
-----
*Subjects.* Subject ``i`` sees the photograph ``B`` through its own similarity transform
``S_i`` (scale giving a face box :attr:`SynthConfig.min_face_px`-:attr:`SynthConfig.max_face_px`
wide, a rotation of a few degrees, a position chosen so that the 640x480 frame only samples
the inside of the photograph) and its own photometry (contrast, brightness, per-channel colour
cast, sensor-noise level). An appearance is re-drawn unless OpenCV's frontal-face Haar
cascade finds exactly the real face on neutral frames with a margin (no other candidate even
at ``minNeighbors=3``, the face still found at 7), so that detection at the usual
``minNeighbors=5`` finds exactly one face on every onset frame.

*Clips.* A clip has ``N ~ U{min_frames..max_frames}`` frames numbered ``first..first+N-1``.
Its forward deformation at frame ``t``, in output-pixel coordinates ``p``, is

    ``phi_t(p) = p + D_t(p)``,  ``D_t(p) = drift(t) + a(t) * L(p)``

* ``L`` is the class's local field: a sum of anisotropic Gaussian bumps placed on facial
  landmarks (:data:`SYNTH_EXPRESSIONS`), each pushing along a fixed direction, scaled so that
  ``max_p |L(p)|`` over the pixel grid is exactly the clip's ``peak_px`` ~
  ``U(min_peak_px, max_peak_px)``. It is cut to zero outside a box where every bump has
  fallen below ``exp(-8)`` of its height (< 2e-3 px).
* ``a(t)`` is a raised-cosine profile: 0 up to the onset frame, rising to exactly 1 at the
  apex frame, back to 0 at the offset frame and after.
* ``drift(t) = v * (1 - cos(pi * tau)) / 2``, ``tau = (t - first) / (N - 1)``, is a smooth
  global head translation with ``|v| ~ U(0, max_drift_px)``.

Frame ``t`` is rendered with a single interpolation of the photograph,
``I_t(x) = B(S_i^-1(phi_t^-1(x)))``, where ``phi_t^-1(x)`` is found by the fixed-point
iteration ``q <- x - D_t(q)`` (``D_t`` is a contraction: the config keeps its Lipschitz
constant below ~0.6, so ``phi_t`` is invertible), and the sampling is bilinear by default
(:func:`cv2.remap`; bicubic on request). The frames
thus sample one fixed continuous image, the photo's interpolant, at moving points, so the
motion is exact whichever interpolant is used. Fresh sensor noise is added to every frame,
which is then rounded to uint8 and stored as a 3-channel JPEG, like CASME II.

*Ground truth.* The true displacement from the onset to the apex frame, on the onset frame's
pixel grid, is ``F(p) = phi_apex(phi_onset^-1(p)) - p``: the pixel showing a given point of
the face at ``p`` in the onset frame shows it at ``p + F(p)`` in the apex frame. It is stored
as a Middlebury ``.flo`` (:mod:`fastmer.motion.flo`). Accuracy limits: ``cv2.remap`` snaps
sample positions to 1/32 px, the inverse is solved to 1e-3 px and JPEG/noise perturb
intensities, so the rendered motion matches ``F`` to about 0.02 px, far below any flow
method's error.

Layout (CASME II's, plus ground truth)
--------------------------------------
::

    out_dir/
      README.txt
      CASME2-coding-synthetic.xlsx           # Sheet1: Subject, Filename, OnsetFrame, ApexFrame,
                                             # OffsetFrame, Action Units, Estimated Emotion
      sub01/EP01_03/img46.jpg ... img89.jpg  # frame numbers start at a random offset
      ground_truth/clips.csv                 # one row per clip, all generation parameters
      ground_truth/sub01/EP01_03.flo         # F, onset -> apex, W x H

Clip ``j`` (0-based) of subject ``i`` is named ``EP{j+1:02d}_{take:02d}`` with a random take
number 01-05, and has class ``SYNTH_EXPRESSIONS[(i + j) % 3]`` (classes cycle, so they are
balanced per subject). Everything is drawn from ``numpy.random.SeedSequence(seed, spawn_key=...)``
streams keyed by (purpose, subject, clip), so a corpus is byte-identical whatever the number of
workers, and a subject looks the same whatever ``clips_per_subject`` is.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import math
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fastmer.motion.flo import write_flo

__all__ = [
    "ASTRONAUT_FACE_BOX",
    "ASTRONAUT_LANDMARKS",
    "CLIPS_CSV_COLUMNS",
    "SPREADSHEET_COLUMNS",
    "SPREADSHEET_NAME",
    "SYNTH_EXPRESSIONS",
    "DeformationSite",
    "SynthConfig",
    "SynthExpression",
    "SynthSummary",
    "expression",
    "generate",
]

# --------------------------------------------------------------------------------------
# The photograph and where the face is in it.
# --------------------------------------------------------------------------------------

ASTRONAUT_FACE_BOX: tuple[int, int, int, int] = (174, 64, 99, 99)
"""``(x, y, w, h)`` of the face in ``skimage.data.astronaut()`` (512x512), as OpenCV's
``haarcascade_frontalface_default.xml`` finds it (scaleFactor 1.1, minNeighbors 5)."""

ASTRONAUT_LANDMARKS: dict[str, tuple[float, float]] = {
    # (x, y) in astronaut pixels, measured on 6-10x zooms of the photograph. "left"/"right"
    # are IMAGE left/right (the subject's right/left). The face is tilted ~3 degrees
    # clockwise, hence the right-hand features sit 1-3 px lower.
    "left_brow": (202.0, 89.5),  # centre of the brow arc; it spans x 191-213
    "right_brow": (248.0, 92.5),  # spans x 236-262
    "forehead": (225.0, 82.0),  # skin between the fringe (y ~78) and the brows, on the midline
    "left_eye": (203.0, 101.0),  # pupils (Haar eye detector: (202, 101) and (246.5, 103.5))
    "right_eye": (246.0, 103.0),
    "left_mouth_corner": (204.0, 140.0),  # lip commissures of the smile
    "right_mouth_corner": (243.0, 141.0),
}
"""Facial landmarks in ``skimage.data.astronaut()`` coordinates."""

_FACE_CENTRE = (ASTRONAUT_FACE_BOX[0] + ASTRONAUT_FACE_BOX[2] / 2, ASTRONAUT_FACE_BOX[1] + ASTRONAUT_FACE_BOX[3] / 2)
_PHOTO_SIZE = 512
_HAAR_FILE = "haarcascade_frontalface_default.xml"
_HAAR_LOOSE, _HAAR_STRICT = 3, 7  # minNeighbors margins around the users' 5 (see _face_detectable)


# --------------------------------------------------------------------------------------
# The three classes: ONE table.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeformationSite:
    """One Gaussian bump of a local deformation field, in astronaut-photo coordinates.

    Attributes:
        landmark: key of :data:`ASTRONAUT_LANDMARKS` the bump is centred on.
        direction: ``(dx, dy)`` push direction (x right, y down; normalised when used).
        sigma: ``(sx, sy)`` Gaussian standard deviations along the photo's x and y, in photo px.
        gain: relative height of this bump.
    """

    landmark: str
    direction: tuple[float, float]
    sigma: tuple[float, float]
    gain: float = 1.0


@dataclass(frozen=True)
class SynthExpression:
    """A synthetic expression class.

    Attributes:
        label: 3-class label (``negative``/``positive``/``surprise``), as in CASME II
            3-class protocols (MEGC).
        emotion: CASME II "Estimated Emotion" word written to the spreadsheet.
        action_units: CASME II "Action Units" string (FACS).
        face_half: ``"upper"`` or ``"lower"``: the half of the face box that moves.
        sites: Gaussian bumps whose sum is the local field ``L``.
    """

    label: str
    emotion: str
    action_units: str
    face_half: str
    sites: tuple[DeformationSite, ...]


SYNTH_EXPRESSIONS: tuple[SynthExpression, ...] = (
    # AU4 brow lowerer: both brows move down and slightly toward the midline (x ~225).
    SynthExpression(
        label="negative",
        emotion="disgust",
        action_units="4",
        face_half="upper",
        sites=(
            DeformationSite("left_brow", direction=(0.35, 1.0), sigma=(9.0, 4.0)),
            DeformationSite("right_brow", direction=(-0.35, 1.0), sigma=(9.0, 4.0)),
        ),
    ),
    # AU12 lip-corner puller: the mouth corners move outward and up.
    SynthExpression(
        label="positive",
        emotion="happiness",
        action_units="12",
        face_half="lower",
        sites=(
            DeformationSite("left_mouth_corner", direction=(-0.8, -0.6), sigma=(6.0, 5.0)),
            DeformationSite("right_mouth_corner", direction=(0.8, -0.6), sigma=(6.0, 5.0)),
        ),
    ),
    # AU1+2 inner and outer brow raiser: both brows and the forehead move up.
    SynthExpression(
        label="surprise",
        emotion="surprise",
        action_units="1+2",
        face_half="upper",
        sites=(
            DeformationSite("left_brow", direction=(0.0, -1.0), sigma=(9.0, 4.0)),
            DeformationSite("right_brow", direction=(0.0, -1.0), sigma=(9.0, 4.0)),
            DeformationSite("forehead", direction=(0.0, -1.0), sigma=(14.0, 5.0), gain=0.6),
        ),
    ),
)
"""The synthetic classes, cycled through per subject: clip ``j`` of subject ``i`` (0-based)
shows ``SYNTH_EXPRESSIONS[(i + j) % len(SYNTH_EXPRESSIONS)]``."""

_SITE_CUTOFF_SIGMAS = 4.0  # bumps are cut at 4 sigma: exp(-8) ~ 3e-4 of their height


def expression(label: str) -> SynthExpression:
    """Look up a class of :data:`SYNTH_EXPRESSIONS` by label (``negative``/``positive``/``surprise``)."""
    for expr in SYNTH_EXPRESSIONS:
        if expr.label == label:
            return expr
    raise KeyError(f"unknown synthetic expression {label!r}; known: {[e.label for e in SYNTH_EXPRESSIONS]}")


# --------------------------------------------------------------------------------------
# Configuration and result.
# --------------------------------------------------------------------------------------

SPREADSHEET_NAME = "CASME2-coding-synthetic.xlsx"
SPREADSHEET_COLUMNS = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
)
CLIPS_CSV_COLUMNS = (
    "subject",
    "filename",
    "class",
    "emotion",
    "action_units",
    "first_frame",
    "onset",
    "apex",
    "offset",
    "last_frame",
    "n_frames",
    "peak_px",
    "drift_dx",
    "drift_dy",
    "drift_px",
    "face_x",
    "face_y",
    "face_w",
    "face_h",
    "scale",
    "rotation_deg",
    "contrast",
    "brightness",
    "gain_b",
    "gain_g",
    "gain_r",
    "noise_std",
    "seed",
    "subject_index",
    "clip_index",
)
_INTERPOLATION = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}
_MIN_FRAMES_FLOOR = 9  # 2 lead-in + rise >= 1 + apex + decay >= 1 + offset + 2 tail frames
_MIN_FACE_PX = 100.0  # Haar is run with minSize 80; its box is ~0.9x the photo face box here
_MAX_PEAK_PER_SIGMA = 0.75  # Lipschitz(L) ~ 0.61 peak / sigma per bump; keep it below ~0.6


def _min_site_sigma() -> float:
    """Narrowest Gaussian bump of any class, in photo px."""
    return min(min(site.sigma) for expr in SYNTH_EXPRESSIONS for site in expr.sites)


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"SynthConfig.{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"SynthConfig.{name} must be {rng}, got {value}")


def _check_float(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"SynthConfig.{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise ValueError(f"SynthConfig.{name} must be in {bracket}{lo}, {hi}], got {value}")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. All sizes are in output pixels; invalid values raise ``ValueError``.

    Attributes:
        subjects: number of subjects (``sub01``...), >= 1.
        clips_per_subject: clips per subject, >= 1; classes cycle through them.
        seed: non-negative master seed; the corpus is a pure function of the config.
        width: frame width, >= 128.
        height: frame height, >= 128.
        min_frames: shortest clip, >= 9 (lead-in, rise, apex, decay and tail frames).
        max_frames: longest clip, >= ``min_frames``; lengths are uniform in between.
        min_peak_px: smallest peak of the local deformation, > 0.
        max_peak_px: largest peak, in ``[min_peak_px, 4]`` and at most ``0.75 sigma`` of the
            narrowest bump at the smallest face (3 px at ``min_face_px=100``) so that the
            deformation stays invertible; peaks are uniform in between.
        jpeg_quality: JPEG quality of the frames, 1-100.
        max_drift_px: largest total global head drift over a clip, in ``[0, 2]``; 0 disables it.
        noise_std: largest per-pixel sensor-noise standard deviation in grey levels, in
            ``[0, 20]``; each subject gets ``U(0.5, 1) * noise_std``; 0 renders noise-free.
        min_face_px: smallest width of the face box (the photo's Haar box, scaled). At least
            100 (Haar needs >= 80 px) and large enough that the frame only samples the inside
            of the 512x512 photograph: ``min_face_px * 512 / 99 >= max(width, height)``
            (124 px for 640x480).
        max_face_px: largest face-box width, in ``[min_face_px, 0.6 * min(width, height)]``.
        max_rotation_deg: largest in-plane head rotation per subject, in ``[0, 10]`` degrees.
        interpolation: ``"linear"`` (bilinear) or ``"cubic"`` (bicubic: a slightly sharper
            face, but ~3x the sampling cost, which then dominates generation time) for the
            single photo -> frame resampling. Either way the rendered motion is exact: the
            frames sample one continuous image (the photo's interpolant) at moving points.
    """

    subjects: int = 8
    clips_per_subject: int = 6
    seed: int = 0
    width: int = 640
    height: int = 480
    min_frames: int = 30
    max_frames: int = 60
    min_peak_px: float = 0.3
    max_peak_px: float = 2.0
    jpeg_quality: int = 95
    max_drift_px: float = 0.5
    noise_std: float = 2.0
    min_face_px: float = 170.0
    max_face_px: float = 240.0
    max_rotation_deg: float = 4.0
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        _check_int("subjects", self.subjects, 1, 999)
        _check_int("clips_per_subject", self.clips_per_subject, 1, 99)
        _check_int("seed", self.seed, 0)
        _check_int("width", self.width, 128, 8192)
        _check_int("height", self.height, 128, 8192)
        _check_int("min_frames", self.min_frames, _MIN_FRAMES_FLOOR, 100_000)
        _check_int("max_frames", self.max_frames, self.min_frames, 100_000)
        _check_float("min_peak_px", self.min_peak_px, 0.0, 4.0, lo_open=True)
        _check_float("max_peak_px", self.max_peak_px, self.min_peak_px, 4.0)
        _check_int("jpeg_quality", self.jpeg_quality, 1, 100)
        _check_float("max_drift_px", self.max_drift_px, 0.0, 2.0)
        _check_float("noise_std", self.noise_std, 0.0, 20.0)
        # The frame must sample only the inside of the 512 px photo, and the face must stay
        # above the Haar detector's 80 px minimum and fit the frame.
        need = max(_MIN_FACE_PX, max(self.width, self.height) * ASTRONAUT_FACE_BOX[2] / _PHOTO_SIZE)
        if need > 0.6 * min(self.width, self.height):
            raise ValueError(
                f"SynthConfig.min_face_px: no face size fits a {self.width}x{self.height} frame (width x height): "
                f"it needs >= {need:.1f} px but at most 0.6 * min(width, height) = "
                f"{0.6 * min(self.width, self.height):.1f}; use a frame closer to 4:3 or larger"
            )
        _check_float("min_face_px", self.min_face_px, need, 0.6 * min(self.width, self.height))
        _check_float("max_face_px", self.max_face_px, self.min_face_px, 0.6 * min(self.width, self.height))
        # phi_t must stay invertible (and the fixed point fast): peak / sigma bounded, with
        # sigma the narrowest bump at the smallest face scale.
        limit = round(_MAX_PEAK_PER_SIGMA * _min_site_sigma() * self.min_face_px / ASTRONAUT_FACE_BOX[2], 3)
        if self.max_peak_px > limit:
            raise ValueError(
                f"SynthConfig.max_peak_px {self.max_peak_px} is too large for min_face_px {self.min_face_px}: "
                f"at most {limit} px keeps the deformation smooth and invertible"
            )
        _check_float("max_rotation_deg", self.max_rotation_deg, 0.0, 10.0)
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(
                f"SynthConfig.interpolation must be one of {sorted(_INTERPOLATION)}, got {self.interpolation!r}"
            )


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: the corpus root.
        spreadsheet: the CASME II-style coding spreadsheet.
        clips_csv: the ground-truth table (one row per clip).
        subjects: number of subjects.
        clips: number of clips.
        frames: number of JPEG frames.
        seconds: wall-clock generation time.
        workers: processes used (1 = in-process).
    """

    out_dir: Path
    spreadsheet: Path
    clips_csv: Path
    subjects: int
    clips: int
    frames: int
    seconds: float
    workers: int


# --------------------------------------------------------------------------------------
# Plans: every random choice, made before any pixel is rendered.
# --------------------------------------------------------------------------------------

# SeedSequence spawn keys: (purpose, subject[, clip]); new purposes get new numbers.
_KEY_SUBJECT, _KEY_CLIP, _KEY_NOISE, _KEY_HAAR = 0, 1, 2, 3


def raised_cosine(t: int, onset: int, apex: int, offset: int) -> float:
    """An expression's amplitude at frame ``t``: 0 up to the onset, rising to exactly 1 at the apex,
    back to 0 at the offset and after (half cosines)."""
    if t <= onset or t >= offset:
        return 0.0
    if t <= apex:
        return 0.5 * (1.0 - math.cos(math.pi * (t - onset) / (apex - onset)))
    return 0.5 * (1.0 + math.cos(math.pi * (t - apex) / (offset - apex)))


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of ``(purpose, subject[, item])`` under master ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class SynthSubject:
    """A subject's appearance: where and how the photograph is seen (one per subject; a
    long video's cut switches to another)."""

    index: int  # 0-based
    name: str  # "sub01"
    scale: float
    rotation_deg: float
    centre: tuple[float, float]  # where the photo's face centre lands in the frame
    contrast: float
    brightness: float
    gains: tuple[float, float, float]  # B, G, R
    noise_std: float

    def to_frame(self) -> np.ndarray:
        """2x3 affine photo -> frame (the similarity ``S``)."""
        th = math.radians(self.rotation_deg)
        c, s = math.cos(th) * self.scale, math.sin(th) * self.scale
        a = np.array([[c, -s], [s, c]])
        t = np.asarray(self.centre) - a @ np.asarray(_FACE_CENTRE)
        return np.hstack([a, t[:, None]])

    def to_photo(self) -> np.ndarray:
        """2x3 affine frame -> photo (``S^-1``)."""
        return cv2.invertAffineTransform(self.to_frame())

    def face_box(self) -> tuple[float, float, float, float]:
        """Axis-aligned ``(x, y, w, h)`` of the photo's face box mapped into the frame."""
        x, y, w, h = ASTRONAUT_FACE_BOX
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], float)
        m = self.to_frame()
        pts = corners @ m[:, :2].T + m[:, 2]
        lo, hi = pts.min(0), pts.max(0)
        return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


@dataclass(frozen=True)
class _Clip:
    subject: SynthSubject
    index: int  # 0-based within the subject
    filename: str  # "EP01_03"
    label: str
    first: int
    n_frames: int
    onset: int
    apex: int
    offset: int
    peak_px: float
    drift: tuple[float, float]  # total drift vector v over the clip

    @property
    def last(self) -> int:
        return self.first + self.n_frames - 1

    def profile(self, t: int) -> float:
        """``a(t)``: :func:`raised_cosine` from onset to apex to offset."""
        return raised_cosine(t, self.onset, self.apex, self.offset)

    def drift_at(self, t: int) -> np.ndarray:
        tau = (t - self.first) / (self.n_frames - 1)
        return np.asarray(self.drift) * (0.5 * (1.0 - math.cos(math.pi * tau)))


def _draw_subject(cfg: SynthConfig, index: int, rng: np.random.Generator) -> SynthSubject:
    name = f"sub{index + 1:02d}"  # sub01 ... sub99, sub100: what CASME II readers expect
    face_px = rng.uniform(cfg.min_face_px, cfg.max_face_px)
    scale = face_px / ASTRONAUT_FACE_BOX[2]
    rot = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
    # Place the face so that (a) the frame's footprint lies inside the photograph (no
    # mirrored border that could hold a second face) and (b) the face box plus brow/hair
    # margins lies inside the frame. Rejection sampling over the feasible rectangle.
    w, h = cfg.width, cfg.height
    half = face_px / 2
    best, best_err = None, math.inf
    for _ in range(200):
        cx = rng.uniform(half + 0.05 * w, w - half - 0.05 * w)
        cy = rng.uniform(half + 0.06 * h, h - half - 0.04 * h)
        subj = SynthSubject(index, name, scale, rot, (cx, cy), 1.0, 0.0, (1.0, 1.0, 1.0), 0.0)
        m = subj.to_photo()
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float) @ m[:, :2].T + m[:, 2]
        err = float(np.maximum(0.0, -corners).sum() + np.maximum(0.0, corners - (_PHOTO_SIZE - 1)).sum())
        if err < best_err:
            best, best_err = (cx, cy), err
        if err == 0.0:
            break
    assert best is not None
    return SynthSubject(
        index=index,
        name=name,
        scale=scale,
        rotation_deg=rot,
        centre=best,
        contrast=rng.uniform(0.8, 1.15),
        brightness=rng.uniform(-20.0, 20.0),
        gains=tuple(rng.uniform(0.93, 1.07, size=3)),
        noise_std=cfg.noise_std * rng.uniform(0.5, 1.0),
    )


def plan_subject(cfg: SynthConfig, index: int) -> SynthSubject:
    """Draw subject ``index``'s appearance; re-draw until Haar finds exactly its face."""
    rng = seeded_rng(cfg.seed, _KEY_SUBJECT, index)
    haar_rng = seeded_rng(cfg.seed, _KEY_HAAR, index)
    for _ in range(50):
        subj = _draw_subject(cfg, index, rng)
        if _face_detectable(cfg, subj, haar_rng):
            return subj
    raise RuntimeError(f"could not draw a Haar-detectable appearance for subject {index + 1} (seed {cfg.seed})")


def _plan_clips(cfg: SynthConfig, subj: SynthSubject) -> list[_Clip]:
    clips = []
    n_classes = len(SYNTH_EXPRESSIONS)
    for j in range(cfg.clips_per_subject):
        rng = seeded_rng(cfg.seed, _KEY_CLIP, subj.index, j)
        n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
        first = int(rng.integers(1, 151))
        few = max(2, n // 8)
        onset = first + int(rng.integers(2, few + 1))
        offset = first + n - 1 - int(rng.integers(2, few + 1))
        span = offset - onset  # >= 4 since n >= 9
        apex = onset + min(max(round(rng.uniform(0.3, 0.6) * span), 1), span - 1)
        angle = rng.uniform(0.0, 2.0 * math.pi)
        drift_len = rng.uniform(0.0, cfg.max_drift_px)
        clips.append(
            _Clip(
                subject=subj,
                index=j,
                filename=f"EP{j + 1:02d}_{int(rng.integers(1, 6)):02d}",
                label=SYNTH_EXPRESSIONS[(subj.index + j) % n_classes].label,
                first=first,
                n_frames=n,
                onset=onset,
                apex=apex,
                offset=offset,
                peak_px=float(rng.uniform(cfg.min_peak_px, cfg.max_peak_px)),
                drift=(drift_len * math.cos(angle), drift_len * math.sin(angle)),
            )
        )
    return clips


# --------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _photo_bgr() -> np.ndarray:
    """``skimage.data.astronaut()`` as float32 BGR, (512, 512, 3)."""
    # Decode the bundled PNG directly: importing skimage.data costs ~1 s in every worker.
    # PNG is lossless, so this is pixel-identical to skimage.data.astronaut().
    spec = importlib.util.find_spec("skimage")
    for root in (spec.submodule_search_locations or []) if spec else []:
        img = cv2.imread(os.path.join(root, "data", "astronaut.png"), cv2.IMREAD_COLOR)
        if img is not None and img.shape == (_PHOTO_SIZE, _PHOTO_SIZE, 3):
            return img.astype(np.float32)
    from skimage import data  # noqa: PLC0415

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR).astype(np.float32)


_thread_state = threading.local()


def _haar() -> cv2.CascadeClassifier:
    # One cascade per thread: cv2.CascadeClassifier is not safe to share between threads.
    cascade = getattr(_thread_state, "haar", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _HAAR_FILE)
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load {_HAAR_FILE} from {cv2.data.haarcascades}")
        _thread_state.haar = cascade
    return cascade


@lru_cache(maxsize=4)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def subject_photo(subj: SynthSubject) -> np.ndarray:
    """The photograph with the subject's photometry: ``((B - 128) c + 128 + b) * gain``."""
    img = (_photo_bgr() - 128.0) * subj.contrast + (128.0 + subj.brightness)
    img *= np.asarray(subj.gains, np.float32)
    return np.clip(img, 0.0, 255.0, out=img)


class LocalField:
    """An expression's local field ``L`` on a subject's face, scaled so ``max |L| = peak_px``
    over the frame's pixel grid: its support box (``x0..x1``, ``y0..y1``) and evaluator."""

    def __init__(self, subj: SynthSubject, expr: SynthExpression, peak_px: float, width: int, height: int) -> None:
        self.to_photo = subj.to_photo()
        th = math.radians(subj.rotation_deg)
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        to_frame = subj.to_frame()
        centres, inv_sig, dirs = [], [], []
        x0, y0, x1, y1 = math.inf, math.inf, -math.inf, -math.inf
        for site in expr.sites:
            c = np.asarray(ASTRONAUT_LANDMARKS[site.landmark])
            d = np.asarray(site.direction, float)
            centres.append(c)
            inv_sig.append(1.0 / np.asarray(site.sigma))
            # Directions are defined on the photo; the subject's head rotation turns them.
            dirs.append(site.gain * (rot @ (d / np.linalg.norm(d))))
            # Frame bounding box of the rotated, scaled cut-off ellipse.
            cf = to_frame[:, :2] @ c + to_frame[:, 2]
            sx, sy = site.sigma
            hw = _SITE_CUTOFF_SIGMAS * subj.scale * math.hypot(sx * math.cos(th), sy * math.sin(th))
            hh = _SITE_CUTOFF_SIGMAS * subj.scale * math.hypot(sx * math.sin(th), sy * math.cos(th))
            x0, x1 = min(x0, cf[0] - hw), max(x1, cf[0] + hw)
            y0, y1 = min(y0, cf[1] - hh), max(y1, cf[1] + hh)
        # Per bump, the Gaussian's exponent coordinates as affine functions of frame points,
        # ex = ((S^-1 q)_x - c_x) / sx (likewise ey), as float32 scalars: a float64 scalar
        # would silently promote every ROI-sized temporary to float64 (NEP 50).
        m = self.to_photo
        self._coef = []
        for c, isg in zip(centres, inv_sig, strict=True):
            row_x = (m[0] - np.array([0.0, 0.0, c[0]])) * isg[0]  # ex = row_x . (qx, qy, 1)
            row_y = (m[1] - np.array([0.0, 0.0, c[1]])) * isg[1]
            self._coef.append(tuple(np.float32(v) for v in (*row_x, *row_y)))
        self._dirs = dirs
        self.x0, self.y0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        self.x1, self.y1 = min(width, math.ceil(x1) + 1), min(height, math.ceil(y1) + 1)
        # float32 throughout: coordinates < 8192 keep ~1e-3 px precision, and exp() is 2x faster.
        ys, xs = np.mgrid[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32)
        self.xs, self.ys = xs, ys  # ROI pixel grid, frame coordinates
        self.gain = np.float32(1.0)
        raw = self(xs, ys)
        self.gain = np.float32(peak_px / float(np.hypot(raw[0], raw[1]).max()))

    def __call__(self, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``L(q)`` for frame points ``q``: two float32 arrays (u, v) shaped like ``qx``."""
        u = np.zeros(qx.shape, np.float32)
        v = np.zeros(qx.shape, np.float32)
        for (a0, a1, a2, b0, b1, b2), d in zip(self._coef, self._dirs, strict=True):
            ex = a0 * qx + a1 * qy + a2
            ey = b0 * qx + b1 * qy + b2
            ex *= ex
            ey *= ey
            ex += ey
            ex *= np.float32(-0.5)
            w = np.exp(ex, out=ex)
            u += np.float32(d[0] * self.gain) * w
            v += np.float32(d[1] * self.gain) * w
        return u, v

    def inverse(
        self,
        shift: np.ndarray,
        a: float,
        prior: tuple[np.ndarray, np.ndarray] | None = None,
        tol: float = 1e-3,
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """``phi^-1(x)`` on the ROI grid for ``phi(q) = q + shift + a L(q)``.

        Fixed point ``q <- x - shift - a L(q)``: ``a L`` is a contraction, with Lipschitz
        constant about ``0.6 peak / sigma`` (~0.2 for the defaults; :class:`SynthConfig` keeps
        it below ~0.6), so a handful of steps reach ``tol`` px. ``prior`` (``L`` at the previous frame's solution,
        as returned) starts the iteration close to the answer, saving about two steps.

        Returns:
            ``(qx, qy, L)``: the ROI-shaped solution and ``L`` near it (None when ``a == 0``).
        """
        bx = self.xs - np.float32(shift[0])
        by = self.ys - np.float32(shift[1])
        if a == 0.0:
            return bx, by, None
        a32 = np.float32(a)
        if prior is None:
            qx, qy = bx, by
        else:
            qx, qy = bx - a32 * prior[0], by - a32 * prior[1]
        for _ in range(30):
            u, v = self(qx, qy)
            nx, ny = bx - a32 * u, by - a32 * v
            step = max(float(np.abs(nx - qx).max()), float(np.abs(ny - qy).max()))
            qx, qy = nx, ny
            if step < tol:
                return qx, qy, (u, v)
        raise RuntimeError("phi^-1 fixed point did not converge; is the local field too strong?")


def noise_counts(gen: np.random.BitGenerator, shape: tuple[int, ...]) -> np.ndarray:
    """Binomial(32, 1/2) counts (mean 16, std sqrt(8)), uint8, one per element of ``shape``.

    Sensor noise is ``(count - 16) * std / sqrt(8)``: the popcount of 32 random bits is
    Gaussian to within the CLT's error and ~6x cheaper than ziggurat normals, which
    otherwise dominated the frame time.
    """
    n = int(np.prod(shape))
    bits = gen.random_raw((n + 1) // 2).view(np.uint32)[:n]
    return np.bitwise_count(bits).reshape(shape)


class _FrameRenderer:
    """Renders one clip's frames into reused buffers (fresh ~4 MB arrays per frame cost
    as much kernel time, in page faults, as the interpolation itself)."""

    def __init__(self, cfg: SynthConfig, clip: _Clip, field: LocalField) -> None:
        self.clip, self.field = clip, field
        self.photo = subject_photo(clip.subject)
        self.m = field.to_photo
        self.base = affine_grid(self.m, cfg.width, cfg.height)
        self.map_x = np.empty_like(self.base[0])
        self.map_y = np.empty_like(self.base[1])
        self.frame = np.empty((cfg.height, cfg.width, 3), np.float32)
        self.image = np.empty((cfg.height, cfg.width, 3), np.uint8)
        self.interp = _INTERPOLATION[cfg.interpolation]
        self.roi = (slice(field.y0, field.y1), slice(field.x0, field.x1))
        self.prior: tuple[np.ndarray, np.ndarray] | None = None  # L at the last solution

    def render(self, t: int) -> np.ndarray:
        """Noise-free float32 BGR frame ``t``: ``B(S^-1(phi_t^-1(x)))`` (a view of a buffer)."""
        m, d = self.m, self.clip.drift_at(t)
        # Outside the local field's box phi_t^-1(x) = x - drift: an affine map of the grid.
        np.add(self.base[0], np.float32(-(m[0, 0] * d[0] + m[0, 1] * d[1])), out=self.map_x)
        np.add(self.base[1], np.float32(-(m[1, 0] * d[0] + m[1, 1] * d[1])), out=self.map_y)
        qx, qy, self.prior = self.field.inverse(d, self.clip.profile(t), self.prior)
        self.map_x[self.roi] = m[0, 0] * qx + m[0, 1] * qy + m[0, 2]
        self.map_y[self.roi] = m[1, 0] * qx + m[1, 1] * qy + m[1, 2]
        return cv2.remap(
            self.photo, self.map_x, self.map_y, self.interp, dst=self.frame, borderMode=cv2.BORDER_REFLECT_101
        )

    def render_uint8(self, t: int, noise: np.random.BitGenerator, std: float) -> np.ndarray:
        """Frame ``t`` with fresh sensor noise of ``std`` grey levels, rounded to uint8."""
        frame = self.render(t)
        if std > 0.0:
            k = std / math.sqrt(8.0)
            counts = noise_counts(noise, frame.shape)
            # round(frame + k (counts - 16)) saturated to uint8, in one pass.
            return cv2.addWeighted(frame, 1.0, counts, k, -16.0 * k, dst=self.image, dtype=cv2.CV_8U)
        return _to_uint8(frame)


def _true_flow(clip: _Clip, field: LocalField, width: int, height: int) -> np.ndarray:
    """``F(p) = phi_apex(phi_onset^-1(p)) - p`` on the full grid, ``(H, W, 2)`` float32."""
    d_on, d_ap = clip.drift_at(clip.onset), clip.drift_at(clip.apex)
    a_on, a_ap = clip.profile(clip.onset), clip.profile(clip.apex)
    flow = np.empty((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = d_ap[0] - d_on[0], d_ap[1] - d_on[1]
    qx, qy, _ = field.inverse(d_on, a_on)
    u, v = field(qx, qy)
    sl = (slice(field.y0, field.y1), slice(field.x0, field.x1))
    flow[sl + (0,)] = qx + d_ap[0] + a_ap * u - field.xs
    flow[sl + (1,)] = qy + d_ap[1] + a_ap * v - field.ys
    return flow


def affine_grid(m: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _grid(width, height)
    bx = np.float32(m[0, 0]) * xs + np.float32(m[0, 1]) * ys + np.float32(m[0, 2])
    by = np.float32(m[1, 0]) * xs + np.float32(m[1, 1]) * ys + np.float32(m[1, 2])
    return bx, by


def _to_uint8(img: np.ndarray) -> np.ndarray:
    np.rint(img, out=img)
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _face_detectable(cfg: SynthConfig, subj: SynthSubject, rng: np.random.Generator) -> bool:
    """Haar (scaleFactor 1.1, minSize 80) finds exactly the real face, with margins.

    Users run the detector with ``minNeighbors=5`` on frames whose noise we cannot all try,
    so we demand more on a noise-free and two noisy neutral JPEG frames: no other
    candidate even at ``minNeighbors=3`` (background clutter between the helmet and the
    shuttle can reach 4-5 neighbours under some noise), and the face still found at
    ``minNeighbors=7``. One raw detection pass, grouped at both thresholds exactly as
    ``detectMultiScale`` groups them.
    """
    # A neutral clip of the subject: no drift, no expression.
    clip = _Clip(subj, 0, "", SYNTH_EXPRESSIONS[0].label, 0, 9, 2, 4, 6, 1e-3, (0.0, 0.0))
    field = LocalField(clip.subject, expression(clip.label), clip.peak_px, cfg.width, cfg.height)
    renderer = _FrameRenderer(cfg, clip, field)
    expected = subj.face_box()
    for std in (0.0, subj.noise_std, subj.noise_std):
        img = renderer.render_uint8(0, rng.bit_generator, std)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        gray = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
        raw = _haar().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=0, minSize=(80, 80))
        raw = np.asarray(raw).reshape(-1, 4).tolist()
        for threshold, want in ((_HAAR_LOOSE, 1), (_HAAR_STRICT, 1)):
            boxes, _ = cv2.groupRectangles(raw, threshold, 0.2)
            if len(boxes) != want or _iou(tuple(float(v) for v in boxes[0]), expected) < 0.5:
                return False
    return True


def _clip_dir(root: Path, clip: _Clip) -> Path:
    return root / clip.subject.name / clip.filename


def _render_clip(cfg: SynthConfig, clip: _Clip, root: str) -> int:
    """Render one clip's JPEGs and its ground-truth ``.flo`` under ``root``; return frames."""
    root_path = Path(root)
    out = _clip_dir(root_path, clip)
    out.mkdir(parents=True)
    gt_dir = root_path / "ground_truth" / clip.subject.name
    gt_dir.mkdir(parents=True, exist_ok=True)

    subj = clip.subject
    field = LocalField(clip.subject, expression(clip.label), clip.peak_px, cfg.width, cfg.height)
    renderer = _FrameRenderer(cfg, clip, field)
    noise_gen = seeded_rng(cfg.seed, _KEY_NOISE, subj.index, clip.index).bit_generator
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    for t in range(clip.first, clip.last + 1):
        img = renderer.render_uint8(t, noise_gen, subj.noise_std)  # fresh noise every frame
        ok, buf = cv2.imencode(".jpg", img, params)
        if not ok:
            raise RuntimeError(f"cv2.imencode failed for {out}/img{t}.jpg")
        (out / f"img{t}.jpg").write_bytes(buf.tobytes())
    write_flo(gt_dir / f"{clip.filename}.flo", _true_flow(clip, field, cfg.width, cfg.height))
    return clip.n_frames


# --------------------------------------------------------------------------------------
# Orchestration.
# --------------------------------------------------------------------------------------


def _init_worker() -> None:
    # One process per core already; OpenCV's own threads would only oversubscribe.
    cv2.setNumThreads(1)


def _main_is_reimportable() -> bool:
    """Whether spawned workers can re-run the caller's main module (not so for a script
    read from stdin or an embedded interpreter's pseudo-file)."""
    import __main__  # noqa: PLC0415

    path = getattr(__main__, "__file__", None)
    return path is None or Path(path).is_file()


def _make_pool(workers: int):
    """Processes when possible (rendering holds the GIL in numpy), else threads."""
    if _main_is_reimportable():
        from fastmer.interrupt import new_process_pool  # noqa: PLC0415

        # spawn (its default): forking a parent that runs OpenCV/torch threads can deadlock.
        return new_process_pool(workers, initializer=_init_worker)
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    _init_worker()  # threads share the process: OpenCV's own pool off for the run
    return ThreadPoolExecutor(workers)


def _map(pool, fn, *iterables) -> Iterator:
    return pool.map(fn, *iterables) if pool is not None else map(fn, *iterables)


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if _is_nonempty_dir(out_dir):
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
        if not _is_corpus(out_dir):
            # Refuse to delete a directory that is not a synthetic corpus (a typo'd path).
            raise FileExistsError(
                f"{out_dir} is not empty and does not look like a synthetic corpus "
                f"(no {SPREADSHEET_NAME} or README.txt of ours); refusing to overwrite it"
            )


def _is_corpus(path: Path) -> bool:
    if (path / SPREADSHEET_NAME).is_file():
        return True
    try:
        return (path / "README.txt").read_text(encoding="utf-8", errors="replace").startswith(_README[:60])
    except OSError:
        return False


def _write_clips_csv(path: Path, cfg: SynthConfig, clips: Iterable[_Clip]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CLIPS_CSV_COLUMNS)
        for c in clips:
            s = c.subject
            expr = expression(c.label)
            fx, fy, fw, fh_ = s.face_box()
            writer.writerow(
                [
                    s.name[3:],
                    c.filename,
                    c.label,
                    expr.emotion,
                    expr.action_units,
                    c.first,
                    c.onset,
                    c.apex,
                    c.offset,
                    c.last,
                    c.n_frames,
                    f"{c.peak_px:.6f}",
                    f"{c.drift[0]:.6f}",
                    f"{c.drift[1]:.6f}",
                    f"{math.hypot(*c.drift):.6f}",
                    f"{fx:.2f}",
                    f"{fy:.2f}",
                    f"{fw:.2f}",
                    f"{fh_:.2f}",
                    f"{s.scale:.6f}",
                    f"{s.rotation_deg:.4f}",
                    f"{s.contrast:.4f}",
                    f"{s.brightness:.4f}",
                    *(f"{g:.4f}" for g in s.gains),
                    f"{s.noise_std:.4f}",
                    cfg.seed,
                    s.index,
                    c.index,
                ]
            )


def _write_spreadsheet(path: Path, clips: Iterable[_Clip]) -> None:
    from openpyxl import Workbook  # lazy: only needed here  # noqa: PLC0415

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(list(SPREADSHEET_COLUMNS))
    for c in clips:
        expr = expression(c.label)
        ws.append([c.subject.name[3:], c.filename, c.onset, c.apex, c.offset, expr.action_units, expr.emotion])
        for col in (1, 6):  # keep '01' and '4' as text, as typed in CASME II's sheet
            ws.cell(row=ws.max_row, column=col).number_format = "@"
    wb.save(path)


_README = """\
Synthetic micro-expression corpus (fastmer.datasets.synth) -- NOT real data.

Every frame is rendered from one photograph: scikit-image's skimage.data.astronaut()
(astronaut Eileen Collins, NASA, public domain), seen through a per-subject similarity
transform and photometry, with a small, smooth, known deformation that rises from the onset
to the apex frame and decays to the offset frame, a slight global drift and sensor noise.

Classes (3-class protocol): negative = AU4 brow lowering ("disgust"),
positive = AU12 lip-corner pull ("happiness"), surprise = AU1+2 brow raising ("surprise").

Layout follows CASME II: subXX/EPxx_yy/imgN.jpg and {spreadsheet}.
ground_truth/clips.csv lists every clip's parameters; ground_truth/subXX/EPxx_yy.flo is the
exact displacement from the onset to the apex frame on the onset frame's pixel grid
(Middlebury .flo: u, v in pixels).

Config: {config}
"""


def generate(
    out_dir: str | os.PathLike[str],
    config: SynthConfig | None = None,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> SynthSummary:
    """Render a synthetic micro-expression corpus with ground-truth flow (see module doc).

    The corpus is written to a sibling temporary directory and renamed into place at the
    end, so an interrupted run never leaves a complete-looking ``out_dir``.

    Args:
        out_dir: corpus root; must be absent or empty unless ``overwrite``.
        config: what to generate; ``SynthConfig()`` (8 subjects x 6 clips of 640x480) if None.
        workers: clips rendered in parallel; ``None`` = ``os.cpu_count()``, 1 = in this
            process. The output does not depend on it. Workers are *spawned* processes
            (forking a process with OpenCV/torch threads can deadlock), so a script calling
            this at import time must do so under ``if __name__ == "__main__":``; where the
            caller's main module cannot be re-run (a script read from stdin), threads are
            used instead.
        overwrite: replace an existing corpus in ``out_dir``. A non-empty directory that is
            not a synthetic corpus (no coding spreadsheet or ``ground_truth/``) is never deleted.
        progress: show a tqdm progress bar over clips.

    Returns:
        :class:`SynthSummary` with the paths written, counts and the wall-clock time.

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty directory and not ``overwrite``.
        ValueError: ``workers`` < 1 (config values are checked by :class:`SynthConfig`).

    Example:
        >>> s = generate("/tmp/synth", SynthConfig(subjects=2, clips_per_subject=3))  # doctest: +SKIP
        >>> s.clips, sorted(p.name for p in s.out_dir.iterdir())  # doctest: +SKIP
        (6, ['CASME2-coding-synthetic.xlsx', 'README.txt', 'ground_truth', 'sub01', 'sub02'])
    """
    start = time.perf_counter()
    cfg = SynthConfig() if config is None else config
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"config must be a SynthConfig, got {type(cfg).__name__}")
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    out_dir = Path(out_dir).absolute()
    _check_destination(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    n_clips = cfg.subjects * cfg.clips_per_subject
    workers = min(workers, n_clips)
    cv_threads = cv2.getNumThreads()
    pool = None
    old: Path | None = None  # a replaced corpus, moved aside until the new one is in place
    try:
        if workers > 1:
            pool = _make_pool(workers)
        subjects = list(_map(pool, plan_subject, [cfg] * cfg.subjects, range(cfg.subjects)))
        clips = [c for s in subjects for c in _plan_clips(cfg, s)]
        jobs = _map(pool, _render_clip, [cfg] * len(clips), clips, [str(tmp)] * len(clips))
        if progress:
            from tqdm import tqdm  # noqa: PLC0415

            jobs = tqdm(jobs, total=len(clips), desc="synth clips", unit="clip")
        n_frames = sum(jobs)

        gt = tmp / "ground_truth"
        gt.mkdir(exist_ok=True)
        _write_clips_csv(gt / "clips.csv", cfg, clips)
        (tmp / "README.txt").write_text(
            _README.format(spreadsheet=SPREADSHEET_NAME, config=dataclasses.asdict(cfg)), encoding="utf-8"
        )
        # The coding spreadsheet is what readers look for: it is written last.
        _write_spreadsheet(tmp / SPREADSHEET_NAME, clips)

        _check_destination(out_dir, overwrite)  # again: someone may have written there meanwhile
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if pool is not None:  # stop the workers first: they would re-create what we delete
            from fastmer.interrupt import stop_pool  # noqa: PLC0415

            stop_pool(pool)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not out_dir.exists():
            os.replace(old, out_dir)  # interrupted between the two renames: put it back
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        cv2.setNumThreads(cv_threads)  # a thread pool switched OpenCV's own threads off

    return SynthSummary(
        out_dir=out_dir,
        spreadsheet=out_dir / SPREADSHEET_NAME,
        clips_csv=out_dir / "ground_truth" / "clips.csv",
        subjects=cfg.subjects,
        clips=len(clips),
        frames=n_frames,
        seconds=time.perf_counter() - start,
        workers=workers,
    )
