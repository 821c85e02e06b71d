"""User-facing configuration with its defaults, in one light module (no torch/OpenCV import).

The CLI reads its option defaults from here, so ``fastmer <command> --help`` stays instant
and a default is written once. The names of the choices are :mod:`fastmer.choices`'s
(re-exported here); :class:`ExtractConfig` checks its knobs and records its parameters with
the motion stages' help (imported when needed, which is why those stages take the names from
:mod:`fastmer.choices`, not from here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fastmer.choices import (
    APEX_ESTIMATORS,
    APEX_MODES,
    COLOR_REPRESENTATIONS,
    DECODERS,
    DEFAULT_REPRESENTATIONS,
    EXECUTORS,
    FACE_BOX_MODES,
    FACE_DETECTORS,
    FLOW_BACKENDS,
    FLOW_CHANNELS,
    FLOW_REPRESENTATIONS,
    ON_REQUEST_REPRESENTATIONS,
    REPRESENTATION_NAMES,
    STORE_DTYPES,
    TVL1_PRESETS,
    VIEW_MODES,
)

#: The choices (:mod:`fastmer.choices`) are offered here too, beside the configuration that uses them.
__all__ = ["APEX_ESTIMATORS", "APEX_MODES", "COLOR_REPRESENTATIONS", "DECODERS", "DEFAULT_REPRESENTATIONS", "EXECUTORS",
           "FACE_BOX_MODES", "FACE_DETECTORS", "FLOW_BACKENDS", "FLOW_CHANNELS", "FLOW_REPRESENTATIONS",
           "ON_REQUEST_REPRESENTATIONS", "REPRESENTATION_NAMES", "STORE_DTYPES", "TVL1_PRESETS", "VIEW_MODES",
           "ExtractConfig"]


#: ExtractConfig fields that do not change the features (how frames are decoded and where
#: things run: the decoders agree, see tests/decode; the model path is machine-specific), so
#: they are neither in a store's parameters nor its hash.
RUNTIME_SETTINGS = ("device", "workers", "batch_size", "decoder", "decode_region", "face_model", "max_frames")


@dataclass(frozen=True)
class ExtractConfig:
    """Parameters of an extraction; all but ``workers``/``batch_size``/``shard_size`` shape the features.

    Attributes:
        size: side of the square face crop the flow is computed on, in pixels.
        dtype: stored precision of the tensors (``float32`` or ``float16``).
        face_scale: crop side as a multiple of the detector's box side.
        flow_backend: one of :data:`FLOW_BACKENDS`.
        flow_preset: TV-L1 parameters, one of :data:`TVL1_PRESETS` (TV-L1 backends only).
        decoder: frame decoder, one of :data:`DECODERS`.
        face_detector: one of :data:`FACE_DETECTORS`.
        face_model: YuNet ONNX file (default: the one ``fastmer models fetch yunet`` cached).
        face_box: one of :data:`FACE_BOX_MODES`.
        align: rotate each clip's crop so that the eyes are level.
        views: one of :data:`VIEW_MODES`.
        apex: apex policy, one of :data:`APEX_MODES`.
        apex_estimator: spotting curve, one of :data:`APEX_ESTIMATORS`.
        representations: what to compute and store, a subset of :data:`REPRESENTATION_NAMES`
            (default: :data:`DEFAULT_REPRESENTATIONS`, all but :data:`ON_REQUEST_REPRESENTATIONS`:
            ``lbptop``, whose clips need at least 9 frames onset..offset (shorter ones become
            error rows), and the ``apex_frame``/``onset_frame`` crops).
        device: where fastmer's TV-L1 runs: ``"auto"`` (CUDA when available), ``"cpu"`` or
            ``"cuda"``.
        workers: clips decoded (and, for OpenCV backends, flows computed) in parallel
            (default: CPU count).
        batch_size: clips gathered into one batch of the flow and representation stage (one
            TV-L1 call for all their pairs); on a GPU, larger batches keep it busier.
        shard_size: clips per Parquet shard.
        representation_options: the papers' ablation knobs, ``{representation: {knob: value}}``
            (:data:`fastmer.motion.options.REPRESENTATION_OPTIONS`: COF θ and direction, MM-COF
            modulation and τ, rank-pooling coefficients, MI-DI intensity, MESTI weighting);
            unset knobs keep their defaults. Only values that differ from the defaults are
            recorded in the feature parameters.
        color: compute the dynamic images and MESTI from RGB crops, 3 channels per grey
            channel (:data:`fastmer.motion.representations.COLOR_REPRESENTATIONS`); the flows,
            COF, LBP-TOP, the apex and the key frames come from the grey crops (the luma of the
            RGB frames, ``cv2.COLOR_RGB2GRAY``, in this mode).
        decode_region: once a clip's face box is known, decode only the part of each frame
            its crops read (DALI's region decoders skip the rest of each JPEG; the other
            engines decode whole frames and cut): the same crops, bit for bit. False decodes
            whole frames, for comparison. With ``align`` each view is decoded whole (the
            rotated crop samples the view's edges).
        max_frames: clips longer than this onset..offset are error rows (stage
            ``annotation``), before anything is decoded. A clip is streamed through decoding
            and cropping, so its full-size frames are never held, but its crops, its motion
            curve's (T x T) Gram matrix and its dynamic images grow with T (see
            bench/RESULTS.md: peak memory by clip length).
    """

    size: int = 128
    dtype: str = "float32"
    face_scale: float = 1.25
    flow_backend: str = "fastmer"
    flow_preset: str = "opencv"
    decoder: str = "auto"
    face_detector: str = "auto"
    face_model: str | None = None
    face_box: str = "onset"
    align: bool = False
    views: str = "full"
    apex: str = "auto"
    apex_estimator: str = "pca"
    representations: tuple[str, ...] = DEFAULT_REPRESENTATIONS
    device: str = "auto"
    workers: int | None = None
    batch_size: int = 64
    shard_size: int = 256
    max_frames: int = 5000
    decode_region: bool = True
    color: bool = False
    representation_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 1024:
            raise ValueError(f"size must be in [16, 1024], got {self.size}")
        if self.dtype not in STORE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(STORE_DTYPES)}, got {self.dtype!r}")
        if not 0.5 <= self.face_scale <= 3:
            raise ValueError(f"face_scale must be in [0.5, 3], got {self.face_scale}")
        if self.flow_backend not in FLOW_BACKENDS:
            raise ValueError(f"flow_backend must be one of {', '.join(FLOW_BACKENDS)}, got {self.flow_backend!r}")
        if self.flow_preset not in TVL1_PRESETS:
            raise ValueError(f"flow_preset must be one of {', '.join(TVL1_PRESETS)}, got {self.flow_preset!r}")
        for name, allowed in (("decoder", DECODERS), ("face_detector", FACE_DETECTORS), ("face_box", FACE_BOX_MODES),
                              ("views", VIEW_MODES), ("apex", APEX_MODES), ("apex_estimator", APEX_ESTIMATORS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        unknown = [r for r in self.representations if r not in REPRESENTATION_NAMES]
        if unknown or not self.representations or len(set(self.representations)) != len(self.representations):
            raise ValueError(f"representations must be distinct names among {', '.join(REPRESENTATION_NAMES)}, "
                             f"got {list(self.representations)}")
        if self.representation_options:  # (imports torch: not for the defaults, so `--help` stays instant)
            from fastmer.motion.options import resolve_options  # noqa: PLC0415

            resolve_options(self.representation_options, self.representations)  # unknown knobs, bad values
        if self.color and not set(self.representations) & set(COLOR_REPRESENTATIONS):
            raise ValueError(f"color changes only {', '.join(COLOR_REPRESENTATIONS)}; none of them is among the "
                             f"representations ({', '.join(self.representations)})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("batch_size", "shard_size", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """Every knob of the chosen representations, defaults filled in (see :mod:`fastmer.motion.options`)."""
        from fastmer.motion.options import resolve_options  # noqa: PLC0415

        return resolve_options(self.representation_options, self.representations)

    def feature_params(self, face_detector: str) -> dict[str, Any]:
        """What determines the stored features (hashed into every row).

        Args:
            face_detector: the name of the detector actually used (``"auto"`` resolves
                differently on different machines, so the resolved name is what counts).
        """
        params = asdict(self)
        for runtime_only in (*RUNTIME_SETTINGS, "shard_size"):
            params.pop(runtime_only)
        from fastmer.motion.representations import representation_channels  # noqa: PLC0415  (torch: only when extracting)

        params.update(face_detector=face_detector,
                      representations={name: list(representation_channels(name, self.color))
                                       for name in self.representations})
        if not self.color:  # grey, as every store was before colour existed: same parameters, same hash
            params.pop("color")
        from fastmer.motion.options import non_default  # noqa: PLC0415

        params.pop("representation_options")
        changed = non_default(self.resolved_options())
        if changed:  # default knobs are not recorded: such stores keep the parameters (and hash) they had
            params["representation_options"] = changed
        if "lbptop" in self.representations:
            from fastmer.motion.representations import LBPTOP_PARAMS  # noqa: PLC0415

            params["lbptop"] = dict(LBPTOP_PARAMS)
        if not set(self.representations) & FLOW_REPRESENTATIONS:  # no flow computed: its settings do not count
            for name in ("flow_backend", "flow_preset"):
                params.pop(name)
            return params
        if self.flow_backend in ("fastmer", "torch", "opencv"):
            from fastmer.ops.tvl1 import TVL1Params  # noqa: PLC0415  (torch: only when extracting)

            params["tvl1"] = TVL1Params.preset(self.flow_preset).to_dict()
        else:
            params.pop("flow_preset")
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any], representations: tuple[str, ...] | None = None,
                    **runtime: Any) -> ExtractConfig:
        """The configuration that reproduces recorded :meth:`feature_params` (a store's, or
        the ones a trained model's features were extracted with).

        Args:
            params: recorded feature parameters.
            representations: compute only these (default: every recorded one); each
                representation is computed the same way whatever else is computed.
            runtime: settings that do not change the features (:data:`RUNTIME_SETTINGS`).

        Raises:
            ValueError: ``params`` cannot be reproduced by this fastmer: a representation,
                its channels, the TV-L1 or LBP-TOP parameters differ from what this version
                computes (named), or a setting is missing.
        """
        unknown = set(runtime) - set(RUNTIME_SETTINGS)
        if unknown:
            raise ValueError(f"not runtime settings: {', '.join(sorted(unknown))}")
        recorded = params.get("representations") or {}
        wanted = tuple(representations or recorded)
        missing = [name for name in wanted if name not in recorded]
        if missing:
            raise ValueError(f"representation(s) {', '.join(missing)} were not extracted (recorded: "
                             f"{', '.join(recorded) or 'none'})")
        fields = ("size", "dtype", "face_scale", "face_detector", "face_box", "align", "views", "apex",
                  "apex_estimator")
        absent = [name for name in fields if name not in params]
        if absent:
            raise ValueError(f"the recorded extraction parameters lack {', '.join(absent)}")
        values = {name: params[name] for name in fields}
        values["color"] = bool(params.get("color", False))
        recorded_options = params.get("representation_options") or {}
        values["representation_options"] = {name: dict(knobs) for name, knobs in recorded_options.items() if name in wanted}
        # Recorded is the detector that ran ("opencv-haar:<cascade>", "opencv-yunet:<model>").
        kind = str(values["face_detector"]).split(":", 1)[0].removeprefix("opencv-")
        if kind not in FACE_DETECTORS or kind == "auto":
            raise ValueError(f"unknown face detector {values['face_detector']!r} in the recorded parameters")
        values["face_detector"] = kind
        if set(wanted) & FLOW_REPRESENTATIONS:
            values["flow_backend"] = params.get("flow_backend", "fastmer")
            if "flow_preset" in params:
                values["flow_preset"] = params["flow_preset"]
        config = cls(representations=wanted, **values, **runtime)
        # This fastmer must compute what was recorded: same channels, same TV-L1 and LBP-TOP settings.
        current = config.feature_params(params["face_detector"])
        for name in wanted:
            if list(recorded[name]) != current["representations"][name]:
                raise ValueError(f"{name} was extracted with channels {list(recorded[name])}; this fastmer computes "
                                 f"{current['representations'][name]}")
        for key in ("tvl1", "lbptop"):
            if key in current and params.get(key) != current[key]:
                raise ValueError(f"the features were extracted with {key} parameters {params.get(key)}; this fastmer's "
                                 f"are {current[key]}")
        return config


