"""The names of fastmer's choices (flow backends, representations, decoders, face
detectors, apex policies...), each tuple written once.

The bottom layer: it imports nothing, so the stages that check a choice (:mod:`fastmer.motion`,
:mod:`fastmer.phases`, :mod:`fastmer.face`, :mod:`fastmer.decode`) and the configuration
that offers them (:mod:`fastmer.config`, which re-exports every extraction choice here, and
the CLI's option defaults; the models and ``fastmer train`` take :data:`ENCODERS`) all take
them from here without importing each other.
"""

from __future__ import annotations

# Optical-flow backends (see fastmer.motion.flow): fastmer's TV-L1 kernels (CUDA when the
# images are on a GPU), its pure-PyTorch reference, OpenCV's TV-L1, and OpenCV's fast
# approximations DIS (medium preset) and Farneback.
FLOW_BACKENDS = ("fastmer", "torch", "opencv", "dis", "farneback")
# TV-L1 parameter presets (fastmer.ops.tvl1.TVL1Params.preset).
TVL1_PRESETS = ("opencv", "ipol")
# Stored precision of feature tensors.
STORE_DTYPES = ("float32", "float16")
# Where extraction's compute stages run: threads on this machine, or Ray Data (fastmer.executors.ray).
EXECUTORS = ("local", "ray")
# Channels of the stored onset->apex flow representation.
FLOW_CHANNELS = ("u", "v", "magnitude", "strain")
# Stored representations (fastmer.motion.representations, which must list the same names):
# onset->apex flow + magnitude + strain; both phases' u, v, magnitude, strain; COF; MM-COF;
# dynamic images of the clip, of each phase, temporal-ranked and motion-intensity ordered; MESTI;
# LBP-TOP histograms; the apex and onset face crops themselves (P7's apex-frame baseline).
REPRESENTATION_NAMES = ("flow_onset_apex", "flow_phases", "cof", "mm_cof", "dynamic_image", "dynamic_image_phases",
                        "trdi", "midi", "mesti", "lbptop", "apex_frame", "onset_frame")
# Asked for by name only: LBP-TOP needs 2 R_T + 1 = 9 frames onset..offset (a shorter clip,
# SMIC at 25 fps, would fail); the frames are baselines. Keeping them out of the default
# also keeps the default's parameters (and so existing stores' hashes) as they were.
ON_REQUEST_REPRESENTATIONS = ("lbptop", "apex_frame", "onset_frame")
# Extracted unless --representations says otherwise: every motion map.
DEFAULT_REPRESENTATIONS = tuple(name for name in REPRESENTATION_NAMES if name not in ON_REQUEST_REPRESENTATIONS)
# What `fastmer extract --color` computes from RGB crops (3 channels per grey channel); the
# flows, COF, LBP-TOP and the apex always come from the grey crops.
COLOR_REPRESENTATIONS = ("dynamic_image", "dynamic_image_phases", "trdi", "midi", "mesti", "apex_frame", "onset_frame")
# The representations computed from optical flow (the others need none).
FLOW_REPRESENTATIONS = frozenset({"flow_onset_apex", "flow_phases", "cof", "mm_cof"})
# Frame decoders (fastmer.decode): auto picks DALI when installed and able, else PyAV for
# video and OpenCV for images; the dali-cpu/dali-gpu variants force where DALI runs.
DECODERS = ("auto", "dali", "pyav", "opencv", "dali-cpu", "dali-gpu")
# Face detectors (fastmer.face): auto = YuNet with the given or cached model (an error without one;
# Haar only by name, "haar");
# none = the frames are face crops already (CASME II's and SAMM's cropped releases): each
# frame is used whole.
FACE_DETECTORS = ("auto", "yunet", "haar", "none")
# One face box per clip: found on the onset frame, or the union over frames sampled across the clip.
FACE_BOX_MODES = ("onset", "union")
# full: each frame is one view; split: side-by-side frames (4DME) become left and right views.
VIEW_MODES = ("full", "split")
# Apex policy (fastmer.phases): auto spots only missing/invalid apexes, spot spots every
# clip, annotation requires a valid annotated apex.
APEX_MODES = ("auto", "spot", "annotation")
# Apex-spotting motion curves (fastmer.phases.spotting), the default first.
APEX_ESTIMATORS = ("pca", "regions", "diff", "flow")

# fastmer's own encoders of the classifier and multi-stream networks (fastmer.models.blocks);
# any other --backbone name is a timm model (fastmer.models.timm_backbone).
ENCODERS = ("compact", "resnet18")

# Spotting methods of long videos (fastmer.phases.flowspot), the default first; softnet is
# learned (fastmer.models.softnet, trained by `fastmer train --task spot`).
SPOT_METHODS = ("mdmd", "peak", "softnet")

# Figure files (fastmer.figures): PNG for screens (150 dpi), PDF and SVG (vector) for papers.
FIGURE_FORMATS = ("png", "pdf", "svg")
