"""Dynamic images of micro-expression clips by approximate rank pooling, batched over clips.

A dynamic image (DI) summarises a frame sequence ``I_1..I_T`` (time order) in one image
(Bilen et al., "Dynamic Image Networks for Action Recognition", CVPR 2016; SPEC §1.4)::

    DI = Σ_t α_t I_t,   α_t = Σ_{j=t..T} (2j − T − 1) / j = 2(T − t + 1) − (T + 1)(H_T − H_{t−1}),

``H_k = Σ_{i≤k} 1/i`` (the hbilen form, SPEC §1.4 [D], not LEARNet's off-by-one variant), computed
by the native kernel :func:`fastmer.ops.rank_pool`. The representations of the papers:

* :func:`dynamic_images` — one DI over the whole clip onset→offset (the baseline of P4;
  the "Dynamic Image" input of P7).
* :func:`phase_dynamic_images` — the phase-aware pair DI(onset→apex), DI(apex→offset)
  (DIANet, SPEC §6.2; the dual-phase augmentation of P4, SPEC §5.2).
* :func:`temporal_ranked_dynamic_images` and :func:`motion_intensity_dynamic_images` — TRDI and
  MIDI of AFN (SPEC §7.2), the latter with the frames reordered by :func:`motion_intensity`.
* :func:`mesti` — MEGANet's apex-centred spatio-temporal image (SPEC §8.2 [D]).

**Clips of different lengths.** Every function takes either a list of ``N`` clips, each
``(T_i, H, W)`` (grayscale) or ``(T_i, C, H, W)``, or a padded ``(N, T, H, W)`` /
``(N, T, C, H, W)`` tensor with ``lengths`` (``(N,)``, frames past ``lengths[i]`` ignored). The
sequences to pool are *grouped by length* and every group is one batched
:func:`~fastmer.ops.rank_pool` call, so each clip's result is exactly what pooling it alone
gives (no padding enters any sum). The output is always ``(N, C', H, W)`` with ``C = 1`` for
grayscale clips; gradients flow to the frames.

**Single-frame sequences** (a phase whose apex is its onset or offset): SPEC §1.4 follows
the authors' MATLAB code, ``T = 1 → α_1 = 1`` (the DI is the frame itself), which is the default
``single_frame="frame"``; ``single_frame="zeros"`` gives the defining sum's value 0 instead
(what :func:`fastmer.ops.rank_pool` returns).

**Normalisation.** With ``normalize="minmax"`` (default) every DI is min–max scaled to
``[0, 1]`` per clip and per channel, ``(DI − min) / (max − min + 1e-8)`` (SPEC §1.4 rescales
each channel to ``[0, 255]`` before an ImageNet CNN; multiply by 255 for that).
``normalize=None`` returns the raw weighted sums.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastmer.motion.normalize import MINMAX_EPS, minmax_normalize
from fastmer.ops import rank_pool
from fastmer.phases.spotting import difference_curve

__all__ = [
    "DI_CHANNELS",
    "DI_NORMALIZATIONS",
    "MESTI_CHANNELS",
    "MESTI_WEIGHTINGS",
    "MIDI_CHANNELS",
    "PHASE_DI_CHANNELS",
    "RANK_POOL_COEFFICIENTS",
    "SINGLE_FRAME_MODES",
    "TRDI_CHANNELS",
    "dynamic_images",
    "mesti",
    "motion_intensity",
    "motion_intensity_dynamic_images",
    "motion_intensity_order",
    "phase_dynamic_images",
    "temporal_ranked_dynamic_images",
]

DI_CHANNELS = ("di",)
"""Channel of :func:`dynamic_images` for grayscale clips: the onset→offset DI."""
PHASE_DI_CHANNELS = ("di_oa", "di_ao")
"""Channels of :func:`phase_dynamic_images` for grayscale clips: DI(onset→apex), DI(apex→offset)."""
TRDI_CHANNELS = ("trdi",)
"""Channel of :func:`temporal_ranked_dynamic_images` (AFN's TRDI) for grayscale clips."""
MIDI_CHANNELS = ("midi",)
"""Channel of :func:`motion_intensity_dynamic_images` (AFN's MIDI) for grayscale clips."""
MESTI_CHANNELS = ("mesti",)
"""Channel of :func:`mesti` for grayscale clips."""

DI_NORMALIZATIONS = ("minmax", None)
"""``normalize`` choices: per-clip, per-channel min–max to ``[0, 1]``, or none."""
SINGLE_FRAME_MODES = ("frame", "zeros")
"""``single_frame`` choices: the DI of one frame is that frame (SPEC §1.4, hbilen) or zeros."""
RANK_POOL_COEFFICIENTS = ("harmonic", "linear")
"""Weights of approximate rank pooling: Bilen et al.'s ``α_t = Σ_{j≥t} (2j − T − 1)/j``
(``"harmonic"``, default, :func:`fastmer.ops.rank_pool`) or the simpler linear ``α_t = 2t − T − 1``
(``"linear"``; also zero-sum, the first-order approximation some papers' code uses)."""
MESTI_WEIGHTINGS = ("rank_pool", "triangular")
"""``weighting`` choices of :func:`mesti`: apex-centred rank pooling (default) or SPEC's triangular alternative."""

Clips = torch.Tensor | Sequence[torch.Tensor]


# --------------------------------------------------------------------------- input checks
def _clip_list(clips: Clips, lengths: torch.Tensor | Sequence[int] | None, op: str) -> list[torch.Tensor]:
    """Validate ``clips`` (list or padded tensor + lengths) into a list of ``(T_i, C, H, W)`` float tensors."""
    if isinstance(clips, torch.Tensor):
        if clips.dim() not in (4, 5):
            raise ValueError(
                f"fastmer.{op}: expected padded clips of shape [N, T, H, W] or [N, T, C, H, W], got {list(clips.shape)}"
            )
        padded = clips if clips.dim() == 5 else clips.unsqueeze(2)
        n, t_max = padded.shape[:2]
        if lengths is None:
            lens = [t_max] * n
        else:
            lens_t = torch.as_tensor(lengths)
            if lens_t.dim() != 1 or lens_t.shape[0] != n or lens_t.is_floating_point() or lens_t.is_complex():
                raise ValueError(
                    f"fastmer.{op}: expected lengths as N = {n} integers (shape [{n}]), "
                    f"got {lens_t.dtype} of shape {list(lens_t.shape)}"
                )
            lens = [int(v) for v in lens_t.tolist()]
        for i, length in enumerate(lens):
            if not 1 <= length <= t_max:
                raise ValueError(f"fastmer.{op}: lengths[{i}] = {length} is outside [1, T = {t_max}]")
        items = [padded[i, :length] for i, length in enumerate(lens)]
        name = "clips[{}] (padded)"
    else:
        if lengths is not None:
            raise ValueError(f"fastmer.{op}: lengths is only used with a padded clips tensor, not a list of clips")
        if isinstance(clips, (str, bytes)) or not isinstance(clips, Sequence):
            raise ValueError(
                f"fastmer.{op}: clips must be a list of (T_i, H, W) / (T_i, C, H, W) tensors "
                f"or a padded tensor, got {type(clips).__name__}"
            )
        if len(clips) == 0:
            raise ValueError(f"fastmer.{op}: clips is empty; expected at least one (T_i, H, W) clip")
        items = []
        for i, clip in enumerate(clips):
            if not isinstance(clip, torch.Tensor) or clip.dim() not in (3, 4):
                got = list(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
                raise ValueError(f"fastmer.{op}: expected clips[{i}] of shape [T, H, W] or [T, C, H, W], got {got}")
            items.append(clip if clip.dim() == 4 else clip.unsqueeze(1))
        name = "clips[{}]"
        dims = {clip.dim() for clip in clips}
        if len(dims) > 1:
            raise ValueError(f"fastmer.{op}: clips mix [T, H, W] and [T, C, H, W] tensors; use one layout for all")
    first = items[0]
    out = []
    for i, clip in enumerate(items):
        if clip.shape[0] < 1:
            raise ValueError(f"fastmer.{op}: {name.format(i)} has no frames (T >= 1 needed), got shape {list(clip.shape)}")
        if clip.shape[1:] != first.shape[1:]:
            raise ValueError(
                f"fastmer.{op}: every clip must have the frame shape of clips[0] (C, H, W = {list(first.shape[1:])}), "
                f"got {list(clip.shape[1:])} for {name.format(i)}"
            )
        if clip.device != first.device:
            raise ValueError(f"fastmer.{op}: {name.format(i)} is on {clip.device}, clips[0] on {first.device}")
        if clip.is_complex() or clip.dtype == torch.bool:
            raise ValueError(f"fastmer.{op}: {name.format(i)} must be a real tensor, got {clip.dtype}")
        out.append(clip)
    dtype = first.dtype if first.dtype in (torch.float32, torch.float64) else torch.float32
    for clip in out[1:]:
        dtype = torch.promote_types(dtype, clip.dtype if clip.dtype in (torch.float32, torch.float64) else torch.float32)
    return [clip.to(dtype) for clip in out]


def _apex_list(apex: torch.Tensor | Sequence[int], clips: list[torch.Tensor], op: str) -> list[int]:
    apex_t = torch.as_tensor(apex)
    n = len(clips)
    if apex_t.dim() != 1 or apex_t.shape[0] != n or apex_t.is_floating_point() or apex_t.is_complex():
        raise ValueError(
            f"fastmer.{op}: expected apex as N = {n} integer frame indices (shape [{n}], 0 = onset), "
            f"got {apex_t.dtype} of shape {list(apex_t.shape)}"
        )
    values = [int(v) for v in apex_t.tolist()]
    for i, (a, clip) in enumerate(zip(values, clips, strict=True)):
        if not 0 <= a < clip.shape[0]:
            raise ValueError(
                f"fastmer.{op}: apex[{i}] = {a} is outside the clip's frames [0, {clip.shape[0] - 1}] "
                "(0 = onset, T_i - 1 = offset)"
            )
    return values


def _check_options(op: str, normalize: str | None, single_frame: str, coefficients: str = "harmonic") -> None:
    if coefficients not in RANK_POOL_COEFFICIENTS:
        raise ValueError(f"fastmer.{op}: coefficients must be one of {RANK_POOL_COEFFICIENTS}, got {coefficients!r}")
    if normalize not in DI_NORMALIZATIONS:
        raise ValueError(f"fastmer.{op}: normalize must be one of {DI_NORMALIZATIONS}, got {normalize!r}")
    if single_frame not in SINGLE_FRAME_MODES:
        raise ValueError(f"fastmer.{op}: single_frame must be one of {SINGLE_FRAME_MODES}, got {single_frame!r}")


# --------------------------------------------------------------------------- ragged rank pooling
def _linear_rank_pool(batch: torch.Tensor) -> torch.Tensor:
    """``Σ_t (2t − T − 1) I_t`` of ``(n, T, C, H, W)`` (t = 1..T)."""
    t = batch.shape[1]
    alpha = 2 * torch.arange(1, t + 1, dtype=batch.dtype, device=batch.device) - t - 1
    return torch.einsum("t,ntchw->nchw", alpha, batch)


def _rank_pool_ragged(sequences: list[torch.Tensor], single_frame: str, coefficients: str = "harmonic") -> torch.Tensor:
    """DI of each ``(T_i, C, H, W)`` sequence, grouped by ``T_i`` (one :func:`rank_pool` per group) -> ``(N, C, H, W)``."""
    groups: dict[int, list[int]] = {}
    for i, seq in enumerate(sequences):
        groups.setdefault(seq.shape[0], []).append(i)
    order: list[int] = []
    pooled = []
    for length, idx in groups.items():
        # (n, T, C, H, W); one sequence (long clips come alone) is a view, not a copy
        batch = sequences[idx[0]].unsqueeze(0) if len(idx) == 1 else torch.stack([sequences[i] for i in idx])
        if length == 1:
            pooled.append(batch[:, 0] if single_frame == "frame" else torch.zeros_like(batch[:, 0]))
        else:
            pooled.append(rank_pool(batch) if coefficients == "harmonic" else _linear_rank_pool(batch))
        order.extend(idx)
    out = torch.cat(pooled)
    if order != sorted(order):
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        out = out[inverse.to(out.device)]
    return out


def _finish(images: torch.Tensor, normalize: str | None) -> torch.Tensor:
    return minmax_normalize(images, eps=MINMAX_EPS) if normalize == "minmax" else images


# --------------------------------------------------------------------------- representations
def dynamic_images(
    clips: Clips,
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    normalize: str | None = "minmax",
    single_frame: str = "frame",
    coefficients: str = "harmonic",
) -> torch.Tensor:
    """Dynamic image of each whole clip, onset→offset, by approximate rank pooling.

    ``DI = Σ_{t=1..T} α_t I_t`` with ``α_t = 2(T − t + 1) − (T + 1)(H_T − H_{t−1})`` over all
    frames in time order (Bilen et al. 2016; SPEC §1.4). The single-DI baseline of P4
    (Dual-phase DI augmentation, SPEC §5.2) and the "Dynamic Image" input P7 compares with.
    Clips of different lengths are grouped by length (exact; see the module docstring).

    Args:
        clips: list of ``N`` clips ``(T_i, H, W)`` or ``(T_i, C, H, W)``, onset first and offset
            last; or a padded ``(N, T, H, W)`` / ``(N, T, C, H, W)`` tensor.
        lengths: ``(N,)`` frame counts of a padded tensor (default: all ``T``).
        normalize: ``"minmax"`` (per clip and channel to ``[0, 1]``) or None (raw sums).
        single_frame: DI of a 1-frame clip: ``"frame"`` (SPEC §1.4) or ``"zeros"``.
        coefficients: rank-pooling weights, one of :data:`RANK_POOL_COEFFICIENTS`.

    Returns:
        ``(N, C, H, W)`` (``C = 1`` for grayscale clips; channel :data:`DI_CHANNELS`), float32
        unless the clips are float64.

    Example:
        >>> clip = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])  # T = 2: DI = (I_2 − I_1) / 2
        >>> dynamic_images([clip], normalize=None).flatten().tolist()
        [0.5, 0.5, 0.5, 0.5]
        >>> dynamic_images([torch.rand(5, 8, 8), torch.rand(9, 8, 8)]).shape
        torch.Size([2, 1, 8, 8])
    """
    _check_options("dynamic_images", normalize, single_frame, coefficients)
    items = _clip_list(clips, lengths, "dynamic_images")
    return _finish(_rank_pool_ragged(items, single_frame, coefficients), normalize)


def temporal_ranked_dynamic_images(
    clips: Clips,
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    normalize: str | None = "minmax",
    single_frame: str = "frame",
    coefficients: str = "harmonic",
) -> torch.Tensor:
    """AFN's temporal-ranked dynamic image (TRDI): rank pooling of the frames in time order.

    ``TRDI = Σ_t α_t I_t`` over onset→offset in chronological order, the §1.4 coefficients —
    SPEC §7.2 [D] reading (P6, AFN: "a DI that emphasises temporal progression"), hence the
    same values as :func:`dynamic_images`. Arguments, batching and normalisation as there.

    Returns:
        ``(N, C, H, W)``; channel :data:`TRDI_CHANNELS` for grayscale clips.

    Example:
        >>> temporal_ranked_dynamic_images(torch.rand(3, 6, 8, 8), lengths=[6, 4, 2]).shape
        torch.Size([3, 1, 8, 8])
    """
    _check_options("temporal_ranked_dynamic_images", normalize, single_frame, coefficients)
    items = _clip_list(clips, lengths, "temporal_ranked_dynamic_images")
    return _finish(_rank_pool_ragged(items, single_frame, coefficients), normalize)


def phase_dynamic_images(
    clips: Clips,
    apex: torch.Tensor | Sequence[int],
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    normalize: str | None = "minmax",
    single_frame: str = "frame",
    coefficients: str = "harmonic",
) -> torch.Tensor:
    """Phase-aware pair of dynamic images: DI(onset→apex) and DI(apex→offset).

    ``DI_oa = RP(I_onset..I_apex)``, ``DI_ao = RP(I_apex..I_offset)``, ``RP`` the approximate rank
    pooling of SPEC §1.4 over each phase's frames in chronological order (SPEC §5.2 [D]); the
    apex frame belongs to both phases (SPEC §5.2 [D]). The two DI streams of DIANet (P5,
    SPEC §6.2) and the temporal augmentation of P4 (SPEC §5.2: train on
    ``{DI(onset→offset), DI_oa, DI_ao}``, i.e. this plus :func:`dynamic_images`). All ``2N``
    phase sequences are pooled grouped by length (exact). ``apex == 0`` or ``apex == T_i − 1``
    gives a 1-frame phase (see ``single_frame``).

    Args:
        clips: list of ``N`` clips ``(T_i, H, W)`` / ``(T_i, C, H, W)``, onset first, offset last;
            or a padded ``(N, T, [C,] H, W)`` tensor with ``lengths``.
        apex: ``(N,)`` apex index in each clip, ``0 <= apex[i] <= T_i − 1`` (0 = onset).
        lengths: ``(N,)`` frame counts of a padded tensor.
        normalize: ``"minmax"`` (each DI per clip and channel to ``[0, 1]``) or None.
        single_frame: DI of a 1-frame phase: ``"frame"`` (SPEC §1.4) or ``"zeros"``.
        coefficients: rank-pooling weights, one of :data:`RANK_POOL_COEFFICIENTS`.

    Returns:
        ``(N, 2C, H, W)``: the ``C`` channels of DI_oa then the ``C`` channels of DI_ao
        (:data:`PHASE_DI_CHANNELS` for grayscale clips).

    Example:
        >>> clip = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0]).view(5, 1, 1).expand(5, 2, 2)
        >>> phase_dynamic_images([clip], apex=[2], normalize=None)[0, :, 0, 0].tolist()  # RP(0,1,2), RP(2,1,0)
        [2.0, -2.0]
    """
    _check_options("phase_dynamic_images", normalize, single_frame, coefficients)
    items = _clip_list(clips, lengths, "phase_dynamic_images")
    apexes = _apex_list(apex, items, "phase_dynamic_images")
    n = len(items)
    sequences = [clip[: a + 1] for clip, a in zip(items, apexes, strict=True)]
    sequences += [clip[a:] for clip, a in zip(items, apexes, strict=True)]
    pooled = _finish(_rank_pool_ragged(sequences, single_frame, coefficients), normalize)
    return torch.cat([pooled[:n], pooled[n:]], dim=1)


def motion_intensity(
    clips: Clips,
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    sigma: float = 0.0,
) -> list[torch.Tensor]:
    """Per-frame motion intensity ``m_t = mean_{x,y,c} |I_t(x, y) − I_onset(x, y)|`` of each clip.

    The AFN MIDI criterion as read in SPEC §7.2 [D] (mean absolute intensity difference from
    the onset frame; config alternative there: mean flow magnitude onset→t, which callers
    can pass to :func:`motion_intensity_dynamic_images` as ``intensity``). Computed by
    :func:`fastmer.phases.spotting.difference_curve` per clip and channel (averaged over
    channels); ``sigma = 0`` (default) is SPEC's plain difference, ``sigma > 0`` blurs the
    frames first (Gaussian, px) as the apex spotter does.

    Args:
        clips: list of ``N`` clips ``(T_i, H, W)`` / ``(T_i, C, H, W)`` (onset first) or a padded
            ``(N, T, [C,] H, W)`` tensor with ``lengths``.
        lengths: ``(N,)`` frame counts of a padded tensor.
        sigma: Gaussian blur in pixels before differencing (0 = none).

    Returns:
        ``N`` float32 tensors ``(T_i,)`` on the clips' device, ``m_0 = 0``.

    Example:
        >>> clip = torch.tensor([0.0, 2.0, 1.0]).view(3, 1, 1).expand(3, 4, 4)
        >>> motion_intensity([clip])[0].tolist()
        [0.0, 2.0, 1.0]
    """
    if sigma < 0:
        raise ValueError(f"fastmer.motion_intensity: sigma must be >= 0, got {sigma}")
    items = _clip_list(clips, lengths, "motion_intensity")
    curves = []
    for clip in items:
        if clip.shape[0] == 1:
            curves.append(torch.zeros(1, dtype=torch.float32, device=clip.device))
            continue
        per_channel = [difference_curve(clip[:, c], sigma=sigma) for c in range(clip.shape[1])]
        curves.append(torch.stack(per_channel).mean(0).float())
    return curves


def motion_intensity_order(
    clips: Clips,
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    intensity: Sequence[torch.Tensor] | torch.Tensor | None = None,
    sigma: float = 0.0,
) -> list[torch.Tensor]:
    """Frame order of AFN's MIDI: frames sorted by ascending motion intensity.

    ``π = argsort(m)`` (stable, ties kept in time order), ``m`` from :func:`motion_intensity` or
    given; the most intense frame comes last so that it receives the large late-rank weights
    (SPEC §7.2 [D]: sort direction ascending).

    Args:
        clips, lengths, sigma: as :func:`motion_intensity`.
        intensity: optional per-frame intensities instead: ``N`` tensors ``(T_i,)`` or a padded
            ``(N, T)`` tensor (e.g. the mean flow magnitude onset→t).

    Returns:
        ``N`` long tensors ``(T_i,)``: ``clip[order]`` is the reordered clip.

    Example:
        >>> clip = torch.tensor([0.0, 3.0, 1.0, 2.0]).view(4, 1, 1).expand(4, 2, 2)
        >>> motion_intensity_order([clip])[0].tolist()
        [0, 2, 3, 1]
    """
    items = _clip_list(clips, lengths, "motion_intensity_order")
    if intensity is None:
        curves = motion_intensity(items, sigma=sigma)
    else:
        curves = _intensity_list(intensity, items, "motion_intensity_order")
    return [torch.sort(curve, stable=True).indices for curve in curves]


def _intensity_list(intensity: Sequence[torch.Tensor] | torch.Tensor, items: list[torch.Tensor], op: str) -> list[torch.Tensor]:
    n = len(items)
    if isinstance(intensity, torch.Tensor):
        if intensity.dim() != 2 or intensity.shape[0] != n:
            raise ValueError(f"fastmer.{op}: expected padded intensity of shape [N = {n}, T], got {list(intensity.shape)}")
        rows = list(intensity)
    else:
        rows = list(intensity)
        if len(rows) != n:
            raise ValueError(f"fastmer.{op}: expected intensity for N = {n} clips, got {len(rows)}")
    out = []
    for i, (row, clip) in enumerate(zip(rows, items, strict=True)):
        row = torch.as_tensor(row)
        t = clip.shape[0]
        if row.dim() != 1 or row.shape[0] < t or (not isinstance(intensity, torch.Tensor) and row.shape[0] != t):
            raise ValueError(f"fastmer.{op}: expected intensity[{i}] of shape [T_i = {t}], got {list(row.shape)}")
        out.append(row[:t])
    return out


def motion_intensity_dynamic_images(
    clips: Clips,
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    intensity: Sequence[torch.Tensor] | torch.Tensor | None = None,
    sigma: float = 0.0,
    normalize: str | None = "minmax",
    single_frame: str = "frame",
    coefficients: str = "harmonic",
) -> torch.Tensor:
    """AFN's motion-intensity dynamic image (MIDI): rank pooling of the frames reordered by motion intensity.

    ``MIDI = Σ_k α_k I_{π(k)}`` with ``π`` the frames sorted by ascending motion intensity
    ``m_t = mean |I_t − I_onset|`` (:func:`motion_intensity_order`) and ``α`` the §1.4
    coefficients — SPEC §7.2 [D] reading of P6 (AFN): "reordering the frames according to
    motion intensity before rank pooling". Batching (grouped by length, exact) and
    normalisation as :func:`dynamic_images`.

    Args:
        clips: list of ``N`` clips ``(T_i, H, W)`` / ``(T_i, C, H, W)``, onset first; or a padded
            tensor with ``lengths``.
        lengths: ``(N,)`` frame counts of a padded tensor.
        intensity: optional per-frame intensities replacing ``m_t`` (``N`` tensors ``(T_i,)`` or
            padded ``(N, T)``), e.g. SPEC's alternative, the mean flow magnitude onset→t.
        sigma: blur (px) for the intensity difference (0 = SPEC's plain difference).
        normalize: ``"minmax"`` (per clip and channel to ``[0, 1]``) or None.
        single_frame: DI of a 1-frame clip: ``"frame"`` (SPEC §1.4) or ``"zeros"``.
        coefficients: rank-pooling weights, one of :data:`RANK_POOL_COEFFICIENTS`.

    Returns:
        ``(N, C, H, W)``; channel :data:`MIDI_CHANNELS` for grayscale clips.

    Example:
        >>> clip = torch.tensor([0.0, 2.0, 1.0]).view(3, 1, 1).expand(3, 2, 2)
        >>> # order 0, 2, 1 -> frames (0, 1, 2); α = (−4/3, 2/3, 2/3) gives 2
        >>> round(motion_intensity_dynamic_images([clip], normalize=None)[0, 0, 0, 0].item(), 6)
        2.0
    """
    _check_options("motion_intensity_dynamic_images", normalize, single_frame, coefficients)
    items = _clip_list(clips, lengths, "motion_intensity_dynamic_images")
    orders = motion_intensity_order(items, intensity=intensity, sigma=sigma)
    reordered = [clip[order.to(clip.device)] for clip, order in zip(items, orders, strict=True)]
    return _finish(_rank_pool_ragged(reordered, single_frame, coefficients), normalize)


def mesti(
    clips: Clips,
    apex: torch.Tensor | Sequence[int],
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    weighting: str = "rank_pool",
    normalize: str | None = "minmax",
    single_frame: str = "frame",
    coefficients: str = "harmonic",
) -> torch.Tensor:
    """MEGANet's micro-expression spatio-temporal image (MESTI), apex-centred rank pooling.

    SPEC §8.2 [D] reading of P7 ("apex-centred spatio-temporal rank pooling")::

        MESTI = Σ_{t ∈ [onset, apex]} α⁽¹⁾_t I_t + Σ_{t ∈ [apex, offset]} α⁽²⁾_t I_t

    ``α⁽¹⁾`` are the §1.4 coefficients over onset→apex in chronological order and ``α⁽²⁾`` the
    same coefficients over apex→offset taken in *reversed* order (offset→apex), so both halves
    rank towards the apex; i.e. ``MESTI = RP(I_onset..I_apex) + RP(I_offset..I_apex)`` (the apex
    frame is in both). ``weighting="triangular"`` is SPEC's alternative
    ``Σ_t w_t (I_t − I_onset)``, ``w_t = 1 − |t − apex| / max(apex − onset, offset − apex)``
    (all zeros for a 1-frame clip). Rank pooling runs grouped by length (exact).

    Args:
        clips: list of ``N`` clips ``(T_i, H, W)`` / ``(T_i, C, H, W)``, onset first, offset last;
            or a padded tensor with ``lengths``.
        apex: ``(N,)`` apex index per clip, ``0 <= apex[i] <= T_i − 1``.
        lengths: ``(N,)`` frame counts of a padded tensor.
        weighting: ``"rank_pool"`` (default) or ``"triangular"``.
        normalize: ``"minmax"`` (per clip and channel to ``[0, 1]``; SPEC rescales to [0, 255]) or None.
        single_frame: DI of a 1-frame half (apex at onset or offset): ``"frame"`` or ``"zeros"``.
        coefficients: rank-pooling weights, one of :data:`RANK_POOL_COEFFICIENTS`.

    Returns:
        ``(N, C, H, W)``; channel :data:`MESTI_CHANNELS` for grayscale clips.

    Example:
        >>> clip = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.0]).view(5, 1, 1).expand(5, 2, 2)
        >>> mesti([clip], apex=[2], normalize=None)[0, 0, 0, 0].item()  # RP(0,1,2) + RP(0,1,2)
        4.0
    """
    _check_options("mesti", normalize, single_frame, coefficients)
    if weighting not in MESTI_WEIGHTINGS:
        raise ValueError(f"fastmer.mesti: weighting must be one of {MESTI_WEIGHTINGS}, got {weighting!r}")
    items = _clip_list(clips, lengths, "mesti")
    apexes = _apex_list(apex, items, "mesti")
    n = len(items)
    if weighting == "rank_pool":
        sequences = [clip[: a + 1] for clip, a in zip(items, apexes, strict=True)]
        sequences += [clip[a:].flip(0) for clip, a in zip(items, apexes, strict=True)]
        pooled = _rank_pool_ragged(sequences, single_frame, coefficients)
        images = pooled[:n] + pooled[n:]
    else:
        out = []
        for clip, a in zip(items, apexes, strict=True):
            t = clip.shape[0]
            span = max(a, t - 1 - a)
            if span == 0:
                out.append(torch.zeros_like(clip[0]))
                continue
            w = 1 - (torch.arange(t, dtype=clip.dtype, device=clip.device) - a).abs() / span
            out.append(torch.einsum("t,tchw->chw", w, clip - clip[:1]))
        images = torch.stack(out)
    return _finish(images, normalize)
