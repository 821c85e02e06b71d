"""Motion representations of the MER papers, batched over clips (names as in ``SPEC.md``).

Stored today:

``flow_onset_apex``: the TV-L1 flow from the onset to the apex frame with the channels
:data:`FLOW_CHANNELS` = horizontal u, vertical v, magnitude M and optical strain (the
u/v/strain input of STSTNet, the H/V/M channels of MicroAttNet).

Flow-based (this module; inputs are the two phase flows, each ``(N, 2, H, W)`` in pixels):

* :func:`phase_flow_features` — u, v, M and strain of each phase (SPEC §1.1, §1.2, §2.2).
* :func:`combined_magnitude`, :func:`cof` — Combined Optical Flow (SPEC §1.3, §4.2).
* :func:`mm_cof` — magnitude-modulated COF of FMANet (SPEC §3.2).

Dynamic images (clips of frames, :mod:`fastmer.motion.dynamic`): :func:`dynamic_images`,
:func:`phase_dynamic_images`, :func:`temporal_ranked_dynamic_images`,
:func:`motion_intensity_dynamic_images`, :func:`mesti`.

:data:`REPRESENTATIONS` maps every representation's name to its channel names (grayscale
clips for the dynamic images) and :data:`REPRESENTATION_INFO` to a one-line description.
"""

from __future__ import annotations

import math

import torch

from fastmer.choices import COLOR_REPRESENTATIONS, FLOW_CHANNELS
from fastmer.motion.dynamic import (
    DI_CHANNELS,
    MESTI_CHANNELS,
    MIDI_CHANNELS,
    PHASE_DI_CHANNELS,
    TRDI_CHANNELS,
    dynamic_images,
    mesti,
    motion_intensity,
    motion_intensity_dynamic_images,
    motion_intensity_order,
    phase_dynamic_images,
    temporal_ranked_dynamic_images,
)
from fastmer.motion.lbptop import PLANES, lbp_top_batch
from fastmer.motion.normalize import MINMAX_EPS, minmax_normalize
from fastmer.ops import flow_magnitude, optical_strain
from fastmer.ops._checks import as_compute_dtype, check_shape

__all__ = [
    "COF_CHANNELS",
    "COF_DIRECTIONS",
    "COF_THETA",
    "COLOR_REPRESENTATIONS",
    "DI_CHANNELS",
    "FLOW_CHANNELS",
    "LBPTOP_CHANNELS",
    "LBPTOP_PARAMS",
    "MESTI_CHANNELS",
    "MIDI_CHANNELS",
    "MM_COF_CHANNELS",
    "MM_COF_MODULATIONS",
    "MM_COF_TAU",
    "PHASE_DI_CHANNELS",
    "PHASE_FLOW_CHANNELS",
    "REPRESENTATIONS",
    "REPRESENTATION_INFO",
    "TRDI_CHANNELS",
    "cof",
    "combined_magnitude",
    "dynamic_images",
    "flow_features",
    "frame_crops",
    "lbptop_features",
    "lbptop_min_frames",
    "mesti",
    "minmax_normalize",
    "mm_cof",
    "modulate_cof",
    "motion_intensity",
    "motion_intensity_dynamic_images",
    "motion_intensity_order",
    "phase_dynamic_images",
    "phase_flow_features",
    "representation_channels",
    "representation_shape",
    "temporal_ranked_dynamic_images",
]

PHASE_FLOW_CHANNELS = ("u_oa", "v_oa", "m_oa", "s_oa", "u_ao", "v_ao", "m_ao", "s_ao")
"""Channels of :func:`phase_flow_features`: u, v, magnitude, strain of onset→apex (``oa``), then apex→offset (``ao``)."""
COF_CHANNELS = ("u_cof", "v_cof", "m_cof")
"""Channels of :func:`cof`: combined direction ``u_c``, ``v_c`` and combined magnitude ``Mc``."""
MM_COF_CHANNELS = ("u_mm", "v_mm", "m_cof")
"""Channels of :func:`mm_cof`: ``u_c ⊙ g``, ``v_c ⊙ g`` and ``Mc``."""

COF_THETA = (0.6, 0.4)
"""Default ``(θ1, θ2)`` (SPEC §1.3 [D]: the papers' values were not recovered; onset→apex weighted more)."""
COF_DIRECTIONS = ("flip", "onset_apex")
"""Direction handling of :func:`cof` (SPEC §3.2 step 2 [D]): (a) sign-flipped phase 2, default; (b) phase 1 only."""
MM_COF_MODULATIONS = ("hard", "soft")
"""Modulation of :func:`mm_cof` (SPEC §3.2 step 3 [D]): ``g = 1[Mc ≥ τ]`` (default) or ``g = Mc``."""
MM_COF_TAU = 0.2
"""Default threshold τ of the hard modulation (SPEC §3.2 [D]; grid {0.1, 0.2, 0.3})."""

LBPTOP_CHANNELS = tuple(plane.lower() for plane in PLANES)
"""Planes of the ``lbptop`` histograms: xy, xt, yt."""
LBPTOP_PARAMS = {"radii": (1, 1, 4), "points": 4, "blocks": (5, 5), "interpolation": "bilinear"}
"""LBP-TOP_{4,4,4,1,1,4} on 5×5 blocks: the CASME II / SMIC baseline's parameters."""

REPRESENTATIONS: dict[str, tuple[str, ...]] = {
    "flow_onset_apex": FLOW_CHANNELS,
    "flow_phases": PHASE_FLOW_CHANNELS,
    "cof": COF_CHANNELS,
    "mm_cof": MM_COF_CHANNELS,
    "dynamic_image": DI_CHANNELS,
    "dynamic_image_phases": PHASE_DI_CHANNELS,
    "trdi": TRDI_CHANNELS,
    "midi": MIDI_CHANNELS,
    "mesti": MESTI_CHANNELS,
    "lbptop": LBPTOP_CHANNELS,
    "apex_frame": ("apex",),
    "onset_frame": ("onset",),
}
"""Representation name → channel names (dynamic images: grayscale clips, one channel per DI)."""

REPRESENTATION_INFO: dict[str, str] = {
    "flow_onset_apex": "TV-L1 flow onset→apex with magnitude and optical strain (STSTNet, MicroAttNet H/V/M); flow_features",
    "flow_phases": "u, v, magnitude and optical strain of the onset→apex and apex→offset flows (SPEC §1.1-1.2, §2.2); "
    "phase_flow_features",
    "cof": "Combined Optical Flow: θ-weighted min–max-normalised phase magnitudes and combined direction (COF, SPEC §1.3, §4.2); "
    "cof",
    "mm_cof": "Magnitude-modulated COF: COF direction gated by the combined magnitude (FMANet, SPEC §3.2); mm_cof",
    "dynamic_image": "dynamic image (approximate rank pooling) of the whole clip onset→offset (SPEC §1.4, P4 baseline); "
    "dynamic_images",
    "dynamic_image_phases": "dynamic images of onset→apex and apex→offset (DIANet, dual-phase DI augmentation; SPEC §5.2, §6.2); "
    "phase_dynamic_images",
    "trdi": "temporal-ranked dynamic image, frames in time order (AFN, SPEC §7.2); temporal_ranked_dynamic_images",
    "midi": "motion-intensity dynamic image, frames sorted by mean |I_t − I_onset| (AFN, SPEC §7.2); "
    "motion_intensity_dynamic_images",
    "mesti": "apex-centred rank pooling: onset→apex plus offset→apex dynamic images (MEGANet's MESTI, SPEC §8.2); mesti",
    "lbptop": "LBP-TOP_{4,4,4,1,1,4} block histograms of the clip onset→offset (XY, XT, YT planes x 25 blocks x 16 bins; "
    "the hand-crafted baseline, fastmer.motion.lbptop); lbptop_features",
    "apex_frame": "the apex frame's face crop, grey levels 0-255 (P7's apex-frame baseline; RGB with --color)",
    "onset_frame": "the onset frame's face crop, grey levels 0-255 (RGB with --color)",
}
"""Representation name → one-line description (paper, SPEC section, function)."""


COLOR_SUFFIXES = ("r", "g", "b")


def representation_channels(name: str, color: bool = False) -> tuple[str, ...]:
    """Channel names of ``name``: :data:`REPRESENTATIONS`, or with ``color`` (the dynamic
    images and MESTI) each grey channel as its red, green and blue channels in that order.

    Example:
        >>> representation_channels("dynamic_image_phases", color=True)
        ('di_oa_r', 'di_oa_g', 'di_oa_b', 'di_ao_r', 'di_ao_g', 'di_ao_b')
    """
    channels = REPRESENTATIONS[name]
    if not color or name not in COLOR_REPRESENTATIONS:
        return channels
    return tuple(f"{c}_{suffix}" for c in channels for suffix in COLOR_SUFFIXES)


def representation_shape(name: str, size: int, color: bool = False) -> tuple[int, ...]:
    """Stored shape of one clip's ``name`` for ``size × size`` crops: ``(C, size, size)`` for the
    image representations (``C`` tripled for a colour dynamic image), ``(3, blocks, 2**P)``
    for the LBP-TOP histograms."""
    if name == "lbptop":
        blocks = LBPTOP_PARAMS["blocks"]
        return (len(LBPTOP_CHANNELS), blocks[0] * blocks[1], 2 ** LBPTOP_PARAMS["points"])
    return (len(representation_channels(name, color)), size, size)


def lbptop_min_frames() -> int:
    """Frames onset→offset that LBP-TOP needs (``2·R_T + 1``)."""
    return 2 * LBPTOP_PARAMS["radii"][2] + 1


def lbptop_features(clips: list) -> torch.Tensor:
    """LBP-TOP histograms (:data:`LBPTOP_PARAMS`, numba kernels) of ``(T_i, H, W)`` uint8 clips.

    Returns:
        ``(N, 3, 25, 16)`` float32, planes :data:`LBPTOP_CHANNELS`, each block histogram summing to 1.
    """
    return torch.from_numpy(lbp_top_batch(clips, **LBPTOP_PARAMS))


def frame_crops(clips: list[torch.Tensor], index: list[int]) -> torch.Tensor:
    """``apex_frame`` / ``onset_frame``: frame ``index[i]`` of each clip, as stored values.

    Args:
        clips: ``(T_i, H, W)`` grey or ``(T_i, 3, H, W)`` RGB crops.
        index: one frame index per clip (0 = onset).

    Returns:
        ``(N, C, H, W)`` float32 (``C`` = 1 or 3), the crops' grey levels 0–255.

    Example:
        >>> frame_crops([torch.arange(8.0).view(2, 2, 2)], [1]).flatten().tolist()
        [4.0, 5.0, 6.0, 7.0]
    """
    if len(clips) != len(index):
        raise ValueError(f"frame_crops: {len(clips)} clips but {len(index)} indices")
    return torch.stack([(c[i] if c.dim() == 4 else c[i][None]).float() for c, i in zip(clips, index, strict=True)])


def flow_features(flow: torch.Tensor) -> torch.Tensor:
    """Stack flow with its magnitude and optical strain (native kernels, batched).

    Args:
        flow: ``(N, 2, H, W)`` flow in pixels.

    Returns:
        ``(N, 4, H, W)`` channels ``(u, v, magnitude, strain)``.

    Example:
        >>> flow_features(torch.zeros(3, 2, 8, 8)).shape
        torch.Size([3, 4, 8, 8])
    """
    return torch.cat([flow, flow_magnitude(flow), optical_strain(flow)], dim=1)


# --------------------------------------------------------------------------- helpers
def _phase_flows(flow_onset_apex: torch.Tensor, flow_apex_offset: torch.Tensor, op: str) -> tuple[torch.Tensor, torch.Tensor]:
    check_shape(flow_onset_apex, ("N", 2, "H", "W"), "flow_onset_apex", op)
    check_shape(flow_apex_offset, ("N", 2, "H", "W"), "flow_apex_offset", op)
    if flow_apex_offset.shape != flow_onset_apex.shape:
        raise ValueError(
            f"fastmer.{op}: flow_apex_offset must have the shape of flow_onset_apex {list(flow_onset_apex.shape)}, "
            f"got {list(flow_apex_offset.shape)}"
        )
    if flow_apex_offset.device != flow_onset_apex.device:
        raise ValueError(
            f"fastmer.{op}: flow_onset_apex is on {flow_onset_apex.device} but flow_apex_offset on {flow_apex_offset.device}"
        )
    first = as_compute_dtype(flow_onset_apex, "flow_onset_apex", op)
    second = as_compute_dtype(flow_apex_offset, "flow_apex_offset", op)
    dtype = torch.promote_types(first.dtype, second.dtype)
    return first.to(dtype), second.to(dtype)


def _check_theta(theta1: float, theta2: float, eps: float, op: str) -> None:
    for name, value in (("theta1", theta1), ("theta2", theta2)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"fastmer.{op}: {name} must be a finite number >= 0, got {value!r}")
    if not eps >= 0:
        raise ValueError(f"fastmer.{op}: eps must be >= 0, got {eps!r}")


# --------------------------------------------------------------------------- flow representations
def phase_flow_features(flow_onset_apex: torch.Tensor, flow_apex_offset: torch.Tensor) -> torch.Tensor:
    """Per-phase flow channels: u, v, magnitude ``M = sqrt(u² + v²)`` and optical strain.

    For each phase ``k`` (onset→apex, apex→offset; SPEC §1.1) the channels ``u_k, v_k, M_k``
    (SPEC §1.2, the H/V/M of Dual-View MicroAttNet §2.2 and FMANet's ``X_k = [u_k, v_k, M_k]``)
    plus the optical strain ``|e| = sqrt(e_xx² + e_yy² + 2 e_xy²)`` (:func:`fastmer.ops.optical_strain`).
    No normalisation. Both phases go through one batched native call.

    Args:
        flow_onset_apex: ``(N, 2, H, W)`` flow onset→apex in pixels.
        flow_apex_offset: ``(N, 2, H, W)`` flow apex→offset in pixels.

    Returns:
        ``(N, 8, H, W)``, channels :data:`PHASE_FLOW_CHANNELS`
        ``(u_oa, v_oa, m_oa, s_oa, u_ao, v_ao, m_ao, s_ao)``.

    Example:
        >>> oa = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
        >>> phase_flow_features(oa, -oa)[0, :, 0, 0].tolist()
        [3.0, 4.0, 5.0, 0.0, -3.0, -4.0, 5.0, 0.0]
    """
    first, second = _phase_flows(flow_onset_apex, flow_apex_offset, "phase_flow_features")
    n = first.shape[0]
    features = flow_features(torch.cat([first, second]))  # (2N, 4, H, W)
    return torch.cat([features[:n], features[n:]], dim=1)


def combined_magnitude(
    flow_onset_apex: torch.Tensor,
    flow_apex_offset: torch.Tensor,
    *,
    theta1: float = COF_THETA[0],
    theta2: float = COF_THETA[1],
    eps: float = MINMAX_EPS,
) -> torch.Tensor:
    """Combined Optical Flow magnitude ``Mc = θ1·M1n + θ2·M2n`` (COF, SPEC §1.3).

    ``M_k = sqrt(u_k² + v_k²)`` of phase ``k`` (1: onset→apex, 2: apex→offset), min–max
    normalised over the pixels of that one map (per clip, per phase),
    ``M_kn = (M_k − min M_k) / (max M_k − min M_k + ε)``, then weighted. The θ were "set
    empirically" and not recovered: the defaults θ1 = 0.6, θ2 = 0.4 are SPEC's [D] choice
    (SPEC suggests a per-dataset grid θ1 ∈ {0.3, ..., 0.7}, θ2 = 1 − θ1).

    Args:
        flow_onset_apex: ``(N, 2, H, W)`` flow onset→apex.
        flow_apex_offset: ``(N, 2, H, W)`` flow apex→offset.
        theta1, theta2: weights ``>= 0`` of the two phases.
        eps: ε added to the min–max denominator (SPEC: 1e-8).

    Returns:
        ``(N, 1, H, W)`` combined magnitude in ``[0, θ1 + θ2]``.

    Example:
        >>> oa = torch.zeros(1, 2, 1, 2); oa[0, 0, 0, 1] = 2.0      # M1 = (0, 2) -> (0, 1)
        >>> ao = torch.zeros(1, 2, 1, 2); ao[0, 1, 0, 0] = -5.0     # M2 = (5, 0) -> (1, 0)
        >>> combined_magnitude(oa, ao, eps=0).flatten().tolist()
        [0.4000000059604645, 0.6000000238418579]
    """
    _check_theta(theta1, theta2, eps, "combined_magnitude")
    first, second = _phase_flows(flow_onset_apex, flow_apex_offset, "combined_magnitude")
    n = first.shape[0]
    normalised = minmax_normalize(flow_magnitude(torch.cat([first, second])), eps=eps)
    return theta1 * normalised[:n] + theta2 * normalised[n:]


def _combined(
    first: torch.Tensor, second: torch.Tensor, theta1: float, theta2: float, direction: str, eps: float
) -> torch.Tensor:
    """``[u_c, v_c, Mc]`` of SPEC §3.2 steps 1-2 and §1.3 (inputs already validated)."""
    n = first.shape[0]
    both = torch.cat([first, second])
    magnitude = flow_magnitude(both)  # (2N, 1, H, W)
    combined = minmax_normalize(magnitude, eps=eps)
    combined = theta1 * combined[:n] + theta2 * combined[n:]
    # step 1: direction-preserving scale, ũ_k = u_k / (max M_k + ε)
    peak = magnitude.flatten(1).amax(1).view(-1, 1, 1, 1) + eps
    scaled = both / torch.where(peak > 0, peak, torch.ones_like(peak))  # an all-zero flow stays zero (eps = 0)
    if direction == "flip":
        uv = theta1 * scaled[:n] - theta2 * scaled[n:]
    else:
        uv = scaled[:n]
    return torch.cat([uv, combined], dim=1)


def cof(
    flow_onset_apex: torch.Tensor,
    flow_apex_offset: torch.Tensor,
    *,
    theta1: float = COF_THETA[0],
    theta2: float = COF_THETA[1],
    direction: str = "flip",
    eps: float = MINMAX_EPS,
) -> torch.Tensor:
    """Combined Optical Flow image ``[u_c, v_c, Mc]`` (COF, SPEC §4.2 [D] with §1.3 and §3.2).

    * ``Mc = θ1·M1n + θ2·M2n``: :func:`combined_magnitude` (SPEC §1.3).
    * Each phase's flow scaled by its largest magnitude, keeping its direction (SPEC §3.2
      step 1 [D]): ``ũ_k = u_k / (max M_k + ε)``, ``ṽ_k = v_k / (max M_k + ε)``.
    * Direction (SPEC §3.2 step 2 [D]; apex→offset flow points back, so a plain sum would
      cancel): ``direction="flip"`` (default, (a)) ``u_c = θ1 ũ1 − θ2 ũ2``, ``v_c = θ1 ṽ1 − θ2 ṽ2``;
      ``direction="onset_apex"`` ((b)) ``u_c = ũ1``, ``v_c = ṽ1``.

    P3's own merge equation was not recovered; this is SPEC's [D] reading (same group, and P2
    presents COF as the non-modulated part of MM-COF). Not rescaled: multiply ``Mc`` and map
    ``u_c, v_c`` from ``[−(θ1 + θ2), θ1 + θ2]`` yourself for an 8-bit image.

    Args:
        flow_onset_apex: ``(N, 2, H, W)`` flow onset→apex in pixels.
        flow_apex_offset: ``(N, 2, H, W)`` flow apex→offset in pixels.
        theta1, theta2: phase weights ``>= 0`` (default :data:`COF_THETA` = (0.6, 0.4), [D]).
        direction: one of :data:`COF_DIRECTIONS`.
        eps: ε of the denominators (SPEC: 1e-8).

    Returns:
        ``(N, 3, H, W)``, channels :data:`COF_CHANNELS` ``(u_cof, v_cof, m_cof)``.

    Example:
        >>> oa = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
        >>> out = cof(oa, -oa, eps=0)  # the face moves right and comes back: u_c = 0.6 + 0.4
        >>> out[0, :, 0, 0].tolist()   # Mc is 0: constant magnitude maps normalise to 0
        [1.0, 0.0, 0.0]
    """
    _check_theta(theta1, theta2, eps, "cof")
    if direction not in COF_DIRECTIONS:
        raise ValueError(f"fastmer.cof: direction must be one of {COF_DIRECTIONS}, got {direction!r}")
    first, second = _phase_flows(flow_onset_apex, flow_apex_offset, "cof")
    return _combined(first, second, theta1, theta2, direction, eps)


def mm_cof(
    flow_onset_apex: torch.Tensor,
    flow_apex_offset: torch.Tensor,
    *,
    theta1: float = COF_THETA[0],
    theta2: float = COF_THETA[1],
    direction: str = "flip",
    modulation: str = "hard",
    tau: float = MM_COF_TAU,
    eps: float = MINMAX_EPS,
) -> torch.Tensor:
    """Magnitude-modulated Combined Optical Flow ``[u_c ⊙ g, v_c ⊙ g, Mc]`` (MM-COF, FMANet, SPEC §3.2 [D]).

    ``u_c, v_c, Mc`` as in :func:`cof`; the direction is gated per pixel by the combined
    magnitude (SPEC §3.2 step 3 [D]): ``modulation="hard"`` (default) ``g = 1[Mc ≥ τ]``
    (threshold-based, as described for the hand-crafted MM-COF; τ default 0.2, SPEC grid
    {0.1, 0.2, 0.3}), ``modulation="soft"`` ``g = Mc``. Step 4: the 3-channel image
    ``[u_c ⊙ g, v_c ⊙ g, Mc]``, not rescaled (SPEC maps it to [0, 255] for ImageNet CNNs).
    θ defaults (0.6, 0.4) are SPEC's [D] choice; the papers' values were not recovered.

    Args:
        flow_onset_apex: ``(N, 2, H, W)`` flow onset→apex in pixels.
        flow_apex_offset: ``(N, 2, H, W)`` flow apex→offset in pixels.
        theta1, theta2: phase weights ``>= 0`` (default :data:`COF_THETA`).
        direction: one of :data:`COF_DIRECTIONS` (see :func:`cof`).
        modulation: one of :data:`MM_COF_MODULATIONS`.
        tau: threshold of the hard modulation (default :data:`MM_COF_TAU`).
        eps: ε of the denominators.

    Returns:
        ``(N, 3, H, W)``, channels :data:`MM_COF_CHANNELS` ``(u_mm, v_mm, m_cof)``.

    Example:
        >>> oa = torch.zeros(1, 2, 1, 3); oa[0, 0, 0] = torch.tensor([0.0, 0.1, 1.0])
        >>> out = mm_cof(oa, torch.zeros_like(oa), theta1=1.0, theta2=0.0, eps=0)
        >>> out[0, 0].flatten().tolist()  # Mc = (0, 0.1, 1): 0.1 < τ = 0.2 is gated off
        [0.0, 0.0, 1.0]
    """
    _check_theta(theta1, theta2, eps, "mm_cof")
    if direction not in COF_DIRECTIONS:
        raise ValueError(f"fastmer.mm_cof: direction must be one of {COF_DIRECTIONS}, got {direction!r}")
    if modulation not in MM_COF_MODULATIONS:
        raise ValueError(f"fastmer.mm_cof: modulation must be one of {MM_COF_MODULATIONS}, got {modulation!r}")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau)):
        raise ValueError(f"fastmer.mm_cof: tau must be a finite number, got {tau!r}")
    first, second = _phase_flows(flow_onset_apex, flow_apex_offset, "mm_cof")
    return modulate_cof(_combined(first, second, theta1, theta2, direction, eps), modulation=modulation, tau=tau)


def modulate_cof(cof_image: torch.Tensor, *, modulation: str = "hard", tau: float = MM_COF_TAU) -> torch.Tensor:
    """MM-COF from a COF image: ``[u_c ⊙ g, v_c ⊙ g, Mc]`` with the gate ``g`` of :func:`mm_cof`.

    For callers that store both COF and MM-COF: the combined flow is computed once.

    Args:
        cof_image: ``(N, 3, H, W)`` output of :func:`cof`.
        modulation: one of :data:`MM_COF_MODULATIONS`.
        tau: threshold of the hard modulation.

    Returns:
        ``(N, 3, H, W)``, channels :data:`MM_COF_CHANNELS`.
    """
    check_shape(cof_image, ("N", 3, "H", "W"), "cof_image", "modulate_cof")
    if modulation not in MM_COF_MODULATIONS:
        raise ValueError(f"fastmer.modulate_cof: modulation must be one of {MM_COF_MODULATIONS}, got {modulation!r}")
    magnitude = cof_image[:, 2:3]
    gate = (magnitude >= tau).to(magnitude.dtype) if modulation == "hard" else magnitude
    return torch.cat([cof_image[:, :2] * gate, magnitude], dim=1)
