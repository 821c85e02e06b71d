"""Training-set augmentation of motion representations: mirror, small rotation/scale, and
the dual-phase dynamic-image temporal augmentation (SPEC §5.2).

The spatial augmentations act on batches ``(N, C, H, W)`` whose channels are named as in
:data:`fastmer.motion.representations.REPRESENTATIONS`, and transform each channel as
the physical quantity it holds, so that an augmented flow field is the flow of the
augmented pair of frames:

* ``u``, ``u1``, ``u_oa``, ``u_ao`` (horizontal flow, pixels) and ``v``, ``v1``, ``v_oa``, ``v_ao``
  (vertical): mirror flips the map and negates u; rotation R and scale s give ``R·(u, v)·s``
  (a u channel pairs with the v of the same suffix).
* ``u_cof``, ``v_cof``, ``u_mm``, ``v_mm`` (COF / MM-COF directions, normalised): as flow,
  without the factor s.
* ``magnitude``, ``m1``, ``m_oa``, ``m_ao`` (flow magnitude, pixels): mirror flips; rotation
  resamples; scale multiplies by s.
* ``m_cof`` (min–max normalised combined magnitude), ``strain``, ``s_oa``, ``s_ao`` (optical
  strain) and the dynamic images ``di``, ``di_oa``, ``di_ao``, ``trdi``, ``midi``, ``mesti``:
  only flipped / resampled.
* ``<view>/<name>`` (views stacked as channels): as ``<name>``; u pairs with the v of its view.
* any other name raises ``ValueError`` (:func:`channel_kind`).

Why (with ``x`` to the right and ``y`` down, a transform ``p' = A p`` of the image about its
centre moves a point ``p → p + f(p)`` to ``A p → A p + A f(p)``, so the new flow is
``f'(p') = A f(A⁻¹ p')``):

* mirror ``A = diag(−1, 1)``: ``u' = −u`` at the mirrored position, ``v' = v``. The magnitude is
  unchanged. The strain ``|e| = sqrt(e_xx² + e_yy² + 2 e_xy²)`` is too: ``∂u'/∂x' = ∂u/∂x``,
  ``∂v'/∂y' = ∂v/∂y`` and ``e_xy`` only changes sign. The same holds for the discrete
  central/one-sided differences of :func:`fastmer.ops.optical_strain`, exactly.
* rotation/scale ``A = s R``: vectors turn with the image and grow with it, the magnitude
  scales by ``s``. The flow Jacobian becomes ``A J A⁻¹ = R J Rᵀ``: the strain tensor is
  rotated (its Frobenius norm ``|e|`` is rotation invariant) and not scaled (it is
  dimensionless), so the strain map is only resampled. COF directions are divided by the
  largest magnitude and ``m_cof`` is min–max normalised: rotation applies, scale cancels.

Angles are counter-clockwise as seen on screen. In pixel coordinates (``y`` down),
``R(θ) = [[cos θ, sin θ], [−sin θ, cos θ]]``: at ``θ = 90°`` a rightward flow ``(1, 0)``
becomes upward ``(0, −1)`` and the image turns like ``torch.rot90(x, 1, dims=(-2, -1))``.

Apply these to raw values: the stored tensor, or a network input prepared with
``normalization="none"``. Per-map min–max normalisation (the registry's default) must
come after: once a map is min–max scaled its sign and scale are gone (the mirror of a
scaled u is ``1 − u``, not ``−u``, and a rotation mixes u and v in pixels). With
``Augment(normalization=...)`` the batch is normalised after augmentation exactly as
:class:`fastmer.models.inputs.InputAdapter` does (min–max, or ``signed``: scaled by a robust
maximum magnitude, zero kept at zero).

Only ever augment training folds; test clips are used as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "DI_PHASES",
    "Augment",
    "ChannelKind",
    "DualPhaseSet",
    "affine",
    "channel_kind",
    "dual_phase_di",
    "hflip",
    "random_affine",
]


DI_PHASES = ("onset_offset", "onset_apex", "apex_offset")
"""Meaning of :attr:`DualPhaseSet.phase` 0, 1, 2."""

_FLOW_NAME = re.compile(r"^(?P<base>u|v|m|s|magnitude|strain)(?P<suffix>\d+|_[a-z0-9]+)?$")
_IMAGE_NAME = re.compile(r"^(?:di|trdi|midi|mesti|apex|onset)(?:_[a-z0-9]+)?$")  # dynamic images, frame crops
_DIMENSIONLESS = ("_cof", "_mm")
"""Suffixes of COF / MM-COF channels: normalised, no pixel unit, so a scale does not apply."""


class ChannelKind(NamedTuple):
    """How one channel transforms.

    Attributes:
        role: ``"u"``, ``"v"`` (flow vector components), ``"magnitude"`` or ``"scalar"``
            (resampled only).
        pixels: the values are lengths in pixels and scale with the image.
        pair: for ``u``/``v``, the suffix pairing a ``u`` channel with its ``v`` (``"_oa"``).
    """

    role: str
    pixels: bool
    pair: str


def channel_kind(name: str) -> ChannelKind:
    """Kind of a channel by its name (rules in the module docstring).

    Raises:
        ValueError: an unknown name (add it here rather than guess how it transforms).

    Example:
        >>> channel_kind("u_oa")
        ChannelKind(role='u', pixels=True, pair='_oa')
    """
    view, slash, base_name = name.rpartition("/")
    if slash:  # "<view>/<channel>": views stacked as channels; u pairs with v of the same view
        kind = channel_kind(base_name)
        return kind._replace(pair=f"{view}/{kind.pair}") if kind.role in ("u", "v") else kind
    match = _FLOW_NAME.match(name)
    if match:
        base, suffix = match["base"], match["suffix"] or ""
        pixels = suffix not in _DIMENSIONLESS
        if base in ("u", "v"):
            return ChannelKind(base, pixels, suffix)
        if base in ("m", "magnitude"):
            return ChannelKind("magnitude" if pixels else "scalar", pixels, "")
        return ChannelKind("scalar", False, "")  # strain: dimensionless, rotation invariant
    if _IMAGE_NAME.match(name):
        return ChannelKind("scalar", False, "")
    raise ValueError(
        f"fastmer.augment: unknown channel {name!r}: flow components are u/v[digits|_suffix], magnitudes "
        "magnitude/m[...], strains strain/s[...], images di/trdi/midi/mesti/apex/onset[_suffix]"
    )


class _Plan(NamedTuple):
    sign: tuple[float, ...]  # mirror factor per channel
    pairs: tuple[tuple[int, int, bool], ...]  # (u index, v index, scales with the image)
    magnitudes: tuple[int, ...]  # channels multiplied by the scale
    unpaired: tuple[str, ...]  # u or v channels without their partner


@lru_cache(maxsize=64)
def _plan(channels: tuple[str, ...]) -> _Plan:
    kinds = [channel_kind(c) for c in channels]
    u_at = {k.pair: i for i, k in enumerate(kinds) if k.role == "u"}
    v_at = {k.pair: i for i, k in enumerate(kinds) if k.role == "v"}
    pairs = tuple((u_at[p], v_at[p], kinds[u_at[p]].pixels) for p in u_at if p in v_at)
    unpaired = tuple(channels[i] for p, i in [*u_at.items(), *v_at.items()] if not (p in u_at and p in v_at))
    return _Plan(
        sign=tuple(-1.0 if k.role == "u" else 1.0 for k in kinds),
        pairs=pairs,
        magnitudes=tuple(i for i, k in enumerate(kinds) if k.role == "magnitude"),
        unpaired=unpaired,
    )


def _check(x: torch.Tensor, channels: Sequence[str], op: str) -> tuple[str, ...]:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"fastmer.{op}: x must be a floating tensor of shape [N, C, H, W], got {got}")
    channels = tuple(channels)
    if x.shape[1] != len(channels):
        raise ValueError(f"fastmer.{op}: x has {x.shape[1]} channels but {len(channels)} names were given: {channels}")
    return channels


def hflip(x: torch.Tensor, channels: Sequence[str]) -> torch.Tensor:
    """Mirror left–right: every map is flipped along ``W`` and horizontal flow components
    (``u``-kind channels) change sign; everything else keeps its values.

    Args:
        x: ``(N, C, H, W)`` raw (not min–max normalised) values.
        channels: the ``C`` channel names.

    Returns:
        ``(N, C, H, W)``; ``hflip(hflip(x)) == x``.

    Example:
        >>> flow = torch.tensor([[[[1.0, 3.0]], [[2.0, 4.0]]]])  # u, v of a 1×2 image
        >>> hflip(flow, ("u", "v"))[0].tolist()
        [[[-3.0, -1.0]], [[4.0, 2.0]]]
    """
    plan = _plan(_check(x, channels, "hflip"))
    sign = torch.tensor(plan.sign, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.flip(-1) * sign


def affine(
    x: torch.Tensor,
    channels: Sequence[str],
    degrees: float | torch.Tensor,
    scale: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Rotate by ``degrees`` (counter-clockwise on screen) and scale by ``scale`` about the
    image centre, transforming each channel as its quantity (module docstring).

    Maps are resampled bilinearly (``F.grid_sample``, ``align_corners=False``) with border
    padding; then every ``(u, v)`` pair is rotated by ``R(θ)`` and, in pixel units, multiplied
    by ``scale``, and pixel magnitudes are multiplied by ``scale``. Multiples of 90° on a
    square image are exact permutations (up to rounding of ``cos``/``sin``).

    Args:
        x: ``(N, C, H, W)`` raw values.
        channels: the ``C`` channel names; every ``u`` needs its ``v`` and vice versa.
        degrees: angle, one number or ``(N,)`` per sample.
        scale: factor ``> 0`` (``> 1`` zooms in), one number or ``(N,)``.

    Returns:
        ``(N, C, H, W)``.
    """
    channels = _check(x, channels, "affine")
    plan = _plan(channels)
    if plan.unpaired:
        raise ValueError(f"fastmer.affine: flow component(s) {list(plan.unpaired)} lack their u/v partner; "
                         "a vector cannot be rotated from one component")
    n, _, h, w = x.shape
    angle = torch.as_tensor(degrees, dtype=torch.float64).flatten().expand(n) * (math.pi / 180)
    s = torch.as_tensor(scale, dtype=torch.float64).flatten().expand(n)
    if not bool(torch.isfinite(angle).all()) or not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
        raise ValueError("fastmer.affine: degrees must be finite and scale finite and > 0")
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output pixel p' (pixels from the centre, y down) samples the input at A⁻¹ p' with
    # A = s R(θ), R(θ) = [[cos, sin], [−sin, cos]]; in grid coordinates x_n = 2 x / W.
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos / s
    theta[:, 0, 1] = -sin / s * (h / w)
    theta[:, 1, 0] = sin / s * (w / h)
    theta[:, 1, 1] = cos / s
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), [n, len(channels), h, w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if not plan.pairs and not plan.magnitudes:
        return out
    view = (n, 1, 1)
    cos_, sin_, s_ = (t.to(device=x.device, dtype=x.dtype).view(view) for t in (cos, sin, s))
    channels_out = list(out.unbind(1))
    for iu, iv, pixels in plan.pairs:
        u, v = channels_out[iu], channels_out[iv]
        factor = s_ if pixels else 1.0
        channels_out[iu] = (cos_ * u + sin_ * v) * factor
        channels_out[iv] = (cos_ * v - sin_ * u) * factor
    for i in plan.magnitudes:
        channels_out[i] = channels_out[i] * s_
    return torch.stack(channels_out, dim=1)


def _uniform(n: int, half_width: float, generator: torch.Generator | None) -> torch.Tensor:
    return (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * half_width


def random_affine(
    x: torch.Tensor,
    channels: Sequence[str],
    *,
    max_degrees: float = 5.0,
    max_scale: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`affine` with a per-sample angle uniform in ``[−max_degrees, max_degrees]`` and a
    scale uniform in ``[1 − max_scale, 1 + max_scale]``, drawn on the CPU from ``generator``
    (the same seed gives the same batch on any device).

    Args:
        x: ``(N, C, H, W)`` raw values.
        channels: the ``C`` channel names.
        max_degrees: largest rotation ``>= 0`` in degrees.
        max_scale: largest relative scale change, in ``[0, 1)``.
        generator: a seeded CPU ``torch.Generator`` (None: torch's global generator).

    Returns:
        ``(N, C, H, W)``.
    """
    if not (math.isfinite(max_degrees) and max_degrees >= 0) or not 0 <= max_scale < 1:
        raise ValueError(f"fastmer.random_affine: need max_degrees >= 0 and 0 <= max_scale < 1, "
                         f"got {max_degrees!r}, {max_scale!r}")
    _check(x, channels, "random_affine")
    n = x.shape[0]
    degrees = _uniform(n, max_degrees, generator)
    scale = 1 + _uniform(n, max_scale, generator)
    return affine(x, channels, degrees, scale)


class Augment:
    """Random mirror (probability ``p_flip`` per sample), then a random small rotation and
    scale, of training batches; deterministic given ``seed`` (or ``generator``).

    Args:
        channels: channel names of the batches.
        p_flip: probability of :func:`hflip` per sample.
        degrees: ``max_degrees`` of :func:`random_affine` (0 and ``scale`` 0: no affine).
        scale: ``max_scale`` of :func:`random_affine`.
        minmax: min–max normalise every map after augmenting (shorthand for
            ``normalization=("minmax",) * C``).
        normalization: each channel's normalisation after augmenting (``minmax``, ``signed``,
            ``none``), the input adapter's (:func:`fastmer.models.inputs.normalize_channels`).
        seed: seed of a private CPU generator.
        generator: use this generator instead (``seed`` is then ignored).

    Example:
        >>> aug = Augment(("u", "v", "strain"), seed=0)
        >>> aug(torch.randn(4, 3, 28, 28)).shape
        torch.Size([4, 3, 28, 28])
    """

    def __init__(
        self,
        channels: Sequence[str],
        *,
        p_flip: float = 0.5,
        degrees: float = 5.0,
        scale: float = 0.05,
        minmax: bool = False,
        normalization: Sequence[str] | None = None,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.channels = tuple(channels)
        plan = _plan(self.channels)  # validates the names
        if not 0 <= p_flip <= 1:
            raise ValueError(f"fastmer.Augment: p_flip must lie in [0, 1], got {p_flip!r}")
        if not (math.isfinite(degrees) and degrees >= 0) or not 0 <= scale < 1:
            raise ValueError(f"fastmer.Augment: need degrees >= 0 and 0 <= scale < 1, got {degrees!r}, {scale!r}")
        if (degrees > 0 or scale > 0) and plan.unpaired:
            raise ValueError(f"fastmer.Augment: flow component(s) {list(plan.unpaired)} lack their u/v partner; "
                             "rotation needs both (use degrees=0, scale=0 for flips only)")
        self.p_flip, self.degrees, self.scale = p_flip, degrees, scale
        if minmax and normalization is not None:
            raise ValueError("fastmer.Augment: give minmax or normalization, not both")
        modes = tuple(normalization) if normalization is not None else ("minmax" if minmax else "none",) * len(self.channels)
        if len(modes) != len(self.channels) or not set(modes) <= {"minmax", "signed", "none"}:
            raise ValueError(f"fastmer.Augment: normalization must give minmax, signed or none for each of the "
                             f"{len(self.channels)} channels, got {modes}")
        self.normalization = modes
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.channels, "Augment")
        if self.p_flip > 0:
            flip = torch.rand(x.shape[0], generator=self.generator) < self.p_flip
            x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), hflip(x, self.channels), x)
        if self.degrees > 0 or self.scale > 0:
            x = random_affine(x, self.channels, max_degrees=self.degrees, max_scale=self.scale, generator=self.generator)
        if set(self.normalization) != {"none"}:
            from fastmer.models.inputs import normalize_channels  # noqa: PLC0415

            x = normalize_channels(x, self.normalization)
        return x

    def __repr__(self) -> str:
        return (f"Augment(channels={self.channels}, p_flip={self.p_flip}, degrees={self.degrees}, "
                f"scale={self.scale}, normalization={self.normalization})")


class DualPhaseSet(NamedTuple):
    """Training set of :func:`dual_phase_di`.

    Attributes:
        x: ``(M, C, H, W)`` dynamic images.
        y: ``(M,)`` labels (the source clip's).
        source: ``(M,)`` index of the source clip in the inputs.
        phase: ``(M,)`` index into :data:`DI_PHASES` (0 whole clip, 1 onset→apex, 2 apex→offset).
    """

    x: torch.Tensor
    y: torch.Tensor
    source: torch.Tensor
    phase: torch.Tensor


def _index(index: Sequence[int] | torch.Tensor, n: int, name: str) -> torch.Tensor:
    idx = torch.as_tensor(index, dtype=torch.long).flatten()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"fastmer.dual_phase_di: {name} must lie in [0, {n}), got {idx.tolist()}")
    if idx.unique().numel() != idx.numel():
        raise ValueError(f"fastmer.dual_phase_di: {name} has repeated clips")
    return idx


def dual_phase_di(
    whole: torch.Tensor,
    phases: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    train_index: Sequence[int] | torch.Tensor,
    *,
    include_whole: bool = True,
    test_index: Sequence[int] | torch.Tensor | None = None,
    subjects: Sequence[str] | None = None,
) -> DualPhaseSet:
    """Dual-phase dynamic-image temporal augmentation (P4, SPEC §5.2) of one fold's training set.

    Each training clip contributes its whole-clip DI (onset→offset, if ``include_whole``) and
    its two phase DIs (onset→apex, apex→offset) as separate samples with the clip's label.
    Only ``train_index`` clips are used: a test clip's DIs, whole or phase, never enter the
    training set. At test time use the whole-clip DI of the test clips only. Passing
    ``test_index`` (and ``subjects``) checks that no test clip (no test subject's clip) is
    among the training clips.

    Args:
        whole: ``(N, C, H, W)`` whole-clip DIs (``dynamic_image``, channel ``di``).
        phases: ``(N, 2·C, H, W)`` phase DIs, the ``C`` onset→apex channels then the ``C``
            apex→offset ones (``dynamic_image_phases``: ``di_oa, di_ao``), or ``(N, 2, C, H, W)``.
        labels: ``(N,)`` class indices.
        train_index: the fold's training clips.
        include_whole: keep the whole-clip DI among the training samples (SPEC's [D] choice).
        test_index: the fold's test clips, for the disjointness check.
        subjects: ``(N,)`` subject of every clip, for the subject-level check.

    Returns:
        :class:`DualPhaseSet` ordered by phase block (whole DIs of the training clips in
        ``train_index`` order, then their onset→apex DIs, then apex→offset).

    Example:
        >>> s = dual_phase_di(torch.zeros(4, 1, 8, 8), torch.ones(4, 2, 8, 8), [0, 1, 2, 0], [0, 2])
        >>> s.x.shape, s.y.tolist(), s.source.tolist(), s.phase.tolist()
        (torch.Size([6, 1, 8, 8]), [0, 2, 0, 2, 0, 2], [0, 2, 0, 2, 0, 2], [0, 0, 1, 1, 2, 2])
    """
    if not isinstance(whole, torch.Tensor) or whole.dim() != 4:
        raise ValueError("fastmer.dual_phase_di: whole must be a tensor of shape [N, C, H, W]")
    n, c, h, w = whole.shape
    if isinstance(phases, torch.Tensor) and phases.dim() == 5 and phases.shape[1] == 2:
        phases = phases.flatten(1, 2)
    if not isinstance(phases, torch.Tensor) or phases.shape != (n, 2 * c, h, w):
        got = list(phases.shape) if isinstance(phases, torch.Tensor) else type(phases).__name__
        raise ValueError(f"fastmer.dual_phase_di: phases must have shape {[n, 2 * c, h, w]} (or {[n, 2, c, h, w]}), got {got}")
    y = torch.as_tensor(labels).flatten()
    if y.shape != (n,):
        raise ValueError(f"fastmer.dual_phase_di: labels must hold {n} values, got {list(y.shape)}")
    train = _index(train_index, n, "train_index")
    if test_index is not None:
        test = _index(test_index, n, "test_index")
        shared = sorted(set(train.tolist()) & set(test.tolist()))
        if shared:
            raise ValueError(f"fastmer.dual_phase_di: clips {shared} are in both train_index and test_index")
        if subjects is not None:
            if len(subjects) != n:
                raise ValueError(f"fastmer.dual_phase_di: subjects must hold {n} values, got {len(subjects)}")
            leaked = sorted({subjects[i] for i in train.tolist()} & {subjects[i] for i in test.tolist()})
            if leaked:
                raise ValueError(f"fastmer.dual_phase_di: subject(s) {leaked} have clips in both training and test")
    blocks = ([whole] if include_whole else []) + [phases[:, :c], phases[:, c:]]
    first = 0 if include_whole else 1
    device = whole.device
    idx = train.to(device)
    x = torch.cat([b.index_select(0, idx) for b in blocks])
    k = len(blocks)
    return DualPhaseSet(
        x=x,
        y=y.to(device).index_select(0, idx).repeat(k),
        source=idx.repeat(k),
        phase=torch.arange(first, 3, device=device).repeat_interleave(len(idx)),
    )
