"""Batched TV-L1 optical flow (Zach, Pock & Bischof 2007; Sánchez Pérez et al., IPOL 2013).

:func:`tvl1` computes the flow of a batch of same-size grayscale pairs with the native
kernels (C++/OpenMP on CPU, CUDA on GPU) or with :func:`tvl1_reference`, a pure-PyTorch
implementation of the same algorithm that is the test oracle and the GPU fallback.

Which preset when:

* ``TVL1Params()`` (``preset="opencv"``) reproduces OpenCV's ``DualTVL1OpticalFlow``
  defaults: raw intensities, bilinear 0.8 pyramid, 5x5 median filtering of the flow between
  outer iterations. It is the MER literature's de-facto flow (and the default of
  ``fastmer extract``): use it to match published pipelines and on small, low-texture face
  crops, where the median filter suppresses noise.
* ``TVL1Params.ipol()`` follows the IPOL reference: joint min-max normalisation, Gaussian
  pre-smoothing (sigma 0.8), an anti-aliased 0.5 pyramid down to 16 px and no median
  filter. It is markedly more accurate on large, textured scenes with large motions
  (MPI-Sintel: EPE about 0.25 against OpenCV's 0.70), at a similar cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from fastmer.ops import _native

PYRAMIDS = {"opencv": 0, "ipol": 1}
WARP_BORDERS = {"replicate": 0, "zero": 1}
NORMALIZATIONS = ("none", "minmax")
SCHEMES = {"default": -1, "sweep": 0, "stencil": 1}
_FLT_EPSILON = 1.1920929e-07


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of :func:`tvl1`; the defaults are OpenCV's ``DualTVL1OpticalFlow_create()``.

    Attributes:
        tau: time step of the dual (gradient-ascent) update; the scheme is stable for
            ``tau <= 0.25``.
        lambda_: weight of the data (brightness-constancy, L1) term; larger follows the
            images more closely, smaller gives smoother flow.
        theta: coupling between the flow ``u`` and its auxiliary variable ``v``; small
            values make them nearly equal (a tighter approximation, slower convergence).
        nscales: pyramid levels at most (fewer when the coarsest would drop below ``min_size``).
        warps: re-linearisations of the data term (image warps) per level.
        epsilon: stopping threshold: a level's iterations stop when the mean squared update
            of the flow per iteration is below ``epsilon**2``.
        inner_iterations: iterations between two median filterings.
        outer_iterations: median filterings per warp; at most ``inner_iterations *
            outer_iterations`` iterations run per warp (:attr:`max_iterations`).
        scale_step: size ratio between consecutive pyramid levels, in (0, 1).
        gamma: weight of the illumination variable (0: brightness constancy only; > 0
            models additive illumination changes, Chambolle & Pock 2011).
        median_size: side of the median filter applied to the flow between outer
            iterations: 5 (OpenCV), 3, or 1 (off).
        normalize: ``"none"``: uint8 intensities as they are and float images scaled by 255
            (OpenCV's convention: float input is taken to lie in [0, 1]); ``"minmax"``: both
            images of a pair jointly rescaled to [0, 255] (IPOL).
        presmooth_sigma: Gaussian smoothing of both images before the pyramid (0: none).
        pyramid: ``"opencv"`` (``cv::resize(fx=fy=scale_step)``: bilinear down-sampling with
            half-pixel centres by the factor — a coarse pixel covers ``1 / scale_step`` fine
            pixels, so the level is a hair smaller than the size ratio says —, sides rounded
            half to even; bilinear flow up-sampling to the finer size) or ``"ipol"`` (Gaussian
            anti-aliasing with sigma ``0.6 * sqrt(1 / scale_step**2 - 1)`` and cubic
            decimation, cubic up-sampling).
        cubic_a: parameter of the cubic kernel used for warping (and by the ipol pyramid):
            -0.75 (OpenCV's INTER_CUBIC) or -0.5 (Catmull-Rom, IPOL).
        warp_border: what the warps of I1 and its gradients read outside the image:
            ``"zero"`` (OpenCV: ``cv::remap``'s constant border, tap by tap) or
            ``"replicate"`` (IPOL: the nearest border pixel). Both presets' choices are their
            references' — each moves the EPE by about 1% on real pairs, in either direction.
        min_size: smallest side of the coarsest level, pixels; images smaller than this are
            rejected.
        half_state: keep the iteration state (flow, dual variables, warped image terms) in
            float16 with float32 arithmetic: halves the CUDA kernels' memory traffic at a
            small accuracy cost. Supported on the CPU too (slower; used to test the path).
        scheme: ``"default"`` (CPU: in-place row sweep; CUDA: Jacobi stencil), ``"sweep"``
            (CPU only) or ``"stencil"``. Both compute the same iteration.

    Example:
        >>> TVL1Params().max_iterations
        300
        >>> TVL1Params.ipol().pyramid
        'ipol'
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_size: int = 5
    normalize: str = "none"
    presmooth_sigma: float = 0.0
    pyramid: str = "opencv"
    cubic_a: float = -0.75
    warp_border: str = "zero"
    min_size: int = 16
    half_state: bool = False
    scheme: str = "default"

    def __post_init__(self) -> None:
        positive = {"tau": self.tau, "lambda_": self.lambda_, "theta": self.theta, "epsilon": self.epsilon}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"TVL1Params.{name} must be > 0, got {value}")
        for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"TVL1Params.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.1 <= self.scale_step < 1:
            raise ValueError(f"TVL1Params.scale_step must be in [0.1, 1), got {self.scale_step}")
        if self.median_size not in (1, 3, 5):
            raise ValueError(f"TVL1Params.median_size must be 1 (off), 3 or 5, got {self.median_size}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"TVL1Params.normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.pyramid not in PYRAMIDS:
            raise ValueError(f"TVL1Params.pyramid must be one of {tuple(PYRAMIDS)}, got {self.pyramid!r}")
        if not 0 <= self.presmooth_sigma <= 6.4:
            raise ValueError(f"TVL1Params.presmooth_sigma must be in [0, 6.4], got {self.presmooth_sigma}")
        if self.warp_border not in WARP_BORDERS:
            raise ValueError(f"TVL1Params.warp_border must be one of {tuple(WARP_BORDERS)}, got {self.warp_border!r}")
        if not -1 <= self.cubic_a < 0:
            raise ValueError(f"TVL1Params.cubic_a must be in [-1, 0), got {self.cubic_a}")
        if self.min_size < 4:
            raise ValueError(f"TVL1Params.min_size must be >= 4, got {self.min_size}")
        if self.gamma < 0:
            raise ValueError(f"TVL1Params.gamma must be >= 0, got {self.gamma}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"TVL1Params.scheme must be one of {tuple(SCHEMES)}, got {self.scheme!r}")

    @property
    def max_iterations(self) -> int:
        """Iterations per warp at most."""
        return self.inner_iterations * self.outer_iterations

    @classmethod
    def opencv(cls, **overrides: object) -> TVL1Params:
        """OpenCV's defaults (the same as ``TVL1Params()``)."""
        return cls(**overrides)

    @classmethod
    def ipol(cls, **overrides: object) -> TVL1Params:
        """The IPOL reference's choices (Sánchez Pérez et al. 2013)."""
        base = cls(nscales=100, scale_step=0.5, median_size=1, normalize="minmax", presmooth_sigma=0.8,
                   pyramid="ipol", cubic_a=-0.5, warp_border="replicate")
        return replace(base, **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: object) -> TVL1Params:
        """``"opencv"`` or ``"ipol"``."""
        if name not in PRESETS:
            raise ValueError(f"unknown TV-L1 preset {name!r}; known: {', '.join(PRESETS)}")
        return getattr(cls, name)(**overrides)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = ("opencv", "ipol")


# ---------------------------------------------------------------------------------------
# Boundary: validation and preparation of the images


def _as_batch(image: object, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"fastmer.tvl1: {name} must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() == 4 and image.shape[1] == 1:
        image = image[:, 0]
    if image.dim() != 3:
        raise ValueError(f"fastmer.tvl1: expected {name} of shape [N, H, W] or [N, 1, H, W], got {list(image.shape)}")
    if image.dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"fastmer.tvl1: {name} must be uint8 or float32, got {image.dtype}")
    if not image.is_contiguous():
        raise ValueError(f"fastmer.tvl1: {name} must be contiguous (call .contiguous() first)")
    return image


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """Level sizes: previous * scale_step rounded (half to even for the opencv pyramid, as
    cv::resize; half up for ipol) until a side would drop below min_size."""
    step = float(torch.tensor(params.scale_step, dtype=torch.float32))  # the kernels' float32 step

    def side(previous: int) -> int:
        return round(previous * step) if params.pyramid == "opencv" else int(previous * step + 0.5)

    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        h, w = side(sizes[-1][0]), side(sizes[-1][1])
        if h < params.min_size or w < params.min_size:
            break
        sizes.append((h, w))
    return sizes


def prepare_images(I0: object, I1: object, params: TVL1Params) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch of pairs and turn it into float32 ``(N, H, W)`` intensities in 0..255.

    Raises:
        TypeError, ValueError: naming the argument, before any kernel runs.
    """
    I0, I1 = _as_batch(I0, "I0"), _as_batch(I1, "I1")
    if I0.shape != I1.shape:
        raise ValueError(f"fastmer.tvl1: I0 has shape {list(I0.shape)} but I1 has {list(I1.shape)}")
    if I0.dtype != I1.dtype:
        raise ValueError(f"fastmer.tvl1: I0 is {I0.dtype} but I1 is {I1.dtype}")
    if I0.device != I1.device:
        raise ValueError(f"fastmer.tvl1: I0 is on {I0.device} but I1 on {I1.device}")
    _, height, width = I0.shape
    if height < params.min_size or width < params.min_size:
        raise ValueError(f"fastmer.tvl1: images of {height}x{width} are smaller than the coarsest pyramid level "
                         f"({params.min_size}x{params.min_size} px)")
    if I0.dtype == torch.float32:
        for name, image in (("I0", I0), ("I1", I1)):
            if not torch.isfinite(image).all():
                raise ValueError(f"fastmer.tvl1: {name} contains NaN or infinite values")
    a, b = I0.float(), I1.float()
    if params.normalize == "minmax":
        lo = torch.minimum(a.amin(dim=(1, 2)), b.amin(dim=(1, 2))).view(-1, 1, 1)
        hi = torch.maximum(a.amax(dim=(1, 2)), b.amax(dim=(1, 2))).view(-1, 1, 1)
        scale = torch.where(hi > lo, 255.0 / (hi - lo), torch.ones_like(hi))
        a, b = (a - lo) * scale, (b - lo) * scale
    elif I0.dtype == torch.float32:
        a, b = a * 255.0, b * 255.0
    return a.contiguous(), b.contiguous()


# ---------------------------------------------------------------------------------------
# The pure-PyTorch reference (same formulas as csrc/ops/common/tvl1.h)


def _cubic_weights(t: torch.Tensor, a: float) -> list[torch.Tensor]:
    x0, x1, x2, x3 = t + 1, t, 1 - t, 2 - t
    return [
        ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a,
        ((a + 2) * x1 - (a + 3)) * x1 * x1 + 1,
        ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1,
        ((a * x3 - 5 * a) * x3 + 8 * a) * x3 - 4 * a,
    ]


def _cubic_sample(images: list[torch.Tensor], fx: torch.Tensor, fy: torch.Tensor, a: float,
                  border: str = "replicate") -> list[torch.Tensor]:
    """Cubic samples of same-size ``(N, h, w)`` images at ``(fx, fy)`` ``(N, H, W)``; taps
    outside read the nearest border pixel (``"replicate"``) or zero (``"zero"``)."""
    n, h, w = images[0].shape
    fx = fx.clamp(-2.0, w + 1.0)
    fy = fy.clamp(-2.0, h + 1.0)
    x0, y0 = fx.floor(), fy.floor()
    wx, wy = _cubic_weights(fx - x0, a), _cubic_weights(fy - y0, a)
    taps_x = [x0.long() - 1 + k for k in range(4)]
    taps_y = [y0.long() - 1 + k for k in range(4)]
    xs = [t.clamp(0, w - 1) for t in taps_x]
    ys = [t.clamp(0, h - 1) for t in taps_y]
    if border == "zero":
        wx = [torch.where(t == c, wk, 0.0) for t, c, wk in zip(taps_x, xs, wx, strict=True)]
        wy = [torch.where(t == c, wk, 0.0) for t, c, wk in zip(taps_y, ys, wy, strict=True)]
    flat = [img.reshape(n, -1) for img in images]
    out = [torch.zeros_like(fx) for _ in images]
    for j in range(4):
        rows = [torch.zeros_like(fx) for _ in images]
        for k in range(4):
            index = (ys[j] * w + xs[k]).reshape(n, -1)
            for r, f in zip(rows, flat, strict=True):
                r.add_(wx[k] * f.gather(1, index).view_as(fx))
        for o, r in zip(out, rows, strict=True):
            o.add_(wy[j] * r)
    return out


def _bilinear_resize(image: torch.Tensor, height: int, width: int, scale: float | None = None) -> torch.Tensor:
    """Half-pixel-centre bilinear resampling with clamped sources (cv::resize INTER_LINEAR):
    sources at ``(x + 0.5) * scale - 0.5``, ``scale`` the size ratio unless given."""
    n, h, w = image.shape
    scale_y = torch.tensor(h / height if scale is None else scale, dtype=torch.float32)
    scale_x = torch.tensor(w / width if scale is None else scale, dtype=torch.float32)
    sy = (scale_y * (torch.arange(height, dtype=torch.float32, device=image.device) + 0.5) - 0.5).clamp(0, h - 1)
    sx = (scale_x * (torch.arange(width, dtype=torch.float32, device=image.device) + 0.5) - 0.5).clamp(0, w - 1)
    y0, x0 = sy.long(), sx.long()
    y1, x1 = y0 + (y0 < h - 1).long(), x0 + (x0 < w - 1).long()
    ly, lx = (sy - y0).view(1, -1, 1), (sx - x0).view(1, 1, -1)
    top = image[:, y0][:, :, x0] * (1 - lx) + image[:, y0][:, :, x1] * lx
    bottom = image[:, y1][:, :, x0] * (1 - lx) + image[:, y1][:, :, x1] * lx
    return (1 - ly) * top + ly * bottom


def _gaussian_weights(sigma: float) -> list[float]:
    radius = int(5.0 * float(torch.tensor(sigma, dtype=torch.float32)))
    w = [math.exp(-0.5 * i * i / (sigma * sigma)) for i in range(radius + 1)]
    norm = w[0] + 2 * sum(w[1:])
    return [float(torch.tensor(v / norm, dtype=torch.float32)) for v in w]


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    while bool(((index < 0) | (index >= n)).any()):
        index = torch.where(index < 0, -index - 1, index)
        index = torch.where(index >= n, 2 * n - index - 1, index)
    return index


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """IPOL's separable Gaussian (radius floor(5 sigma), symmetric border)."""
    weights = _gaussian_weights(sigma)
    _, h, w = image.shape
    out = image
    for dim, n in ((2, w), (1, h)):
        base = torch.arange(n, device=image.device)
        acc = weights[0] * out
        for k in range(1, len(weights)):
            acc = acc + weights[k] * (out.index_select(dim, _reflect(base - k, n)) + out.index_select(dim, _reflect(base + k, n)))
        out = acc
    return out


def _downscale(image: torch.Tensor, height: int, width: int, params: TVL1Params) -> torch.Tensor:
    if params.pyramid == "opencv":  # by the factor, as cv::resize(fx=fy=scale_step)
        step = torch.tensor(params.scale_step, dtype=torch.float32)
        return _bilinear_resize(image, height, width, scale=float(1.0 / step))
    _, h, w = image.shape
    step = float(torch.tensor(params.scale_step, dtype=torch.float32))
    sigma = 0.6 * math.sqrt(1.0 / (params.scale_step * params.scale_step) - 1.0)
    blurred = _gaussian(image, float(torch.tensor(sigma, dtype=torch.float32)))
    ys, xs = torch.meshgrid(torch.arange(height, device=image.device, dtype=torch.float32),
                            torch.arange(width, device=image.device, dtype=torch.float32), indexing="ij")
    grid = (xs / step).expand(image.shape[0], -1, -1), (ys / step).expand(image.shape[0], -1, -1)
    return _cubic_sample([blurred], grid[0], grid[1], params.cubic_a)[0]


def _upsample(flow: torch.Tensor, height: int, width: int, params: TVL1Params) -> torch.Tensor:
    if params.pyramid == "opencv":
        return _bilinear_resize(flow, height, width)
    n, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=flow.device, dtype=torch.float32),
                            torch.arange(width, device=flow.device, dtype=torch.float32), indexing="ij")
    fx = (xs * (w / width)).expand(n, -1, -1)
    fy = (ys * (h / height)).expand(n, -1, -1)
    return _cubic_sample([flow], fx, fy, params.cubic_a)[0]


def _centered_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pad_x = torch.cat([image[:, :, :1], image, image[:, :, -1:]], dim=2)
    pad_y = torch.cat([image[:, :1], image, image[:, -1:]], dim=1)
    return 0.5 * (pad_x[:, :, 2:] - pad_x[:, :, :-2]), 0.5 * (pad_y[:, 2:] - pad_y[:, :-2])


def _forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ux = torch.zeros_like(u)
    uy = torch.zeros_like(u)
    ux[:, :, :-1] = u[:, :, 1:] - u[:, :, :-1]
    uy[:, :-1] = u[:, 1:] - u[:, :-1]
    return ux, uy


def _divergence(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    div = p1 + p2
    div[:, :, 1:] -= p1[:, :, :-1]
    div[:, 1:] -= p2[:, :-1]
    return div


def _median(u: torch.Tensor, size: int) -> torch.Tensor:
    n, h, w = u.shape
    r = size // 2
    padded = F.pad(u.unsqueeze(1), (r, r, r, r), mode="replicate")
    return padded.unfold(2, size, 1).unfold(3, size, 1).reshape(n, h, w, size * size).median(dim=-1).values


def _solve_level(I0: torch.Tensor, I1: torch.Tensor, u: list[torch.Tensor], params: TVL1Params) -> list[torch.Tensor]:
    n, h, w = I0.shape
    use_gamma = params.gamma != 0
    I1x, I1y = _centered_gradient(I1)
    p = [torch.zeros_like(I0) for _ in range(6 if use_gamma else 4)]
    scaled_epsilon = params.epsilon * params.epsilon * h * w
    l_t, taut = params.lambda_ * params.theta, params.tau / params.theta
    ys, xs = torch.meshgrid(torch.arange(h, device=I0.device, dtype=torch.float32),
                            torch.arange(w, device=I0.device, dtype=torch.float32), indexing="ij")
    for _ in range(params.warps):
        I1w, I1wx, I1wy = _cubic_sample([I1, I1x, I1y], xs + u[0], ys + u[1], params.cubic_a, params.warp_border)
        grad = I1wx * I1wx + I1wy * I1wy
        rho_c = I1w - I1wx * u[0] - I1wy * u[1] - I0
        flat = grad <= _FLT_EPSILON
        active = torch.ones(n, dtype=torch.bool, device=I0.device)
        for _ in range(params.outer_iterations):
            if not bool(active.any()):
                break
            if params.median_size > 1:
                keep = active.view(-1, 1, 1)
                u[0] = torch.where(keep, _median(u[0], params.median_size), u[0])
                u[1] = torch.where(keep, _median(u[1], params.median_size), u[1])
            for _ in range(params.inner_iterations):
                if not bool(active.any()):
                    break
                # primal: TH of the data term, then u = v + theta div p
                rho = rho_c + I1wx * u[0] + I1wy * u[1] + (params.gamma * u[2] if use_gamma else 0)
                lg = l_t * grad
                fi = -rho / torch.where(flat, torch.ones_like(grad), grad)
                coef = torch.where(rho < -lg, l_t, torch.where(rho > lg, -l_t, torch.where(flat, 0.0, fi)))
                new = [u[0] + coef * I1wx + params.theta * _divergence(p[0], p[1]),
                       u[1] + coef * I1wy + params.theta * _divergence(p[2], p[3])]
                if use_gamma:
                    new.append(u[2] + coef * params.gamma + params.theta * _divergence(p[4], p[5]))
                error = sum(((a - b).double() ** 2).sum(dim=(1, 2)) for a, b in zip(new, u, strict=True))
                # dual: p = (p + taut grad u) / (1 + taut |grad u|), from the new u
                new_p = []
                for k, component in enumerate(new):
                    gx, gy = _forward_gradient(component)
                    ng = 1 + taut * torch.sqrt(gx * gx + gy * gy)
                    new_p += [(p[2 * k] + taut * gx) / ng, (p[2 * k + 1] + taut * gy) / ng]
                keep = active.view(-1, 1, 1)
                u = [torch.where(keep, a, b) for a, b in zip(new, u, strict=True)]
                p = [torch.where(keep, a, b) for a, b in zip(new_p, p, strict=True)]
                active = active & (error > scaled_epsilon)
    return u


def tvl1_reference(I0: torch.Tensor, I1: torch.Tensor, params: TVL1Params | None = None) -> torch.Tensor:
    """Pure-PyTorch TV-L1 on prepared images (see :func:`prepare_images`): the oracle and GPU fallback.

    Args:
        I0, I1: ``(N, H, W)`` float32 intensities on the same device.
        params: solver parameters (``half_state`` and ``scheme`` do not apply here).

    Returns:
        ``(N, 2, H, W)`` float32 flow from I0 to I1.
    """
    params = params or TVL1Params()
    n, height, width = I0.shape
    sizes = pyramid_sizes(height, width, params)
    pyramid0, pyramid1 = [I0.float()], [I1.float()]
    if params.presmooth_sigma > 0:
        pyramid0[0], pyramid1[0] = _gaussian(pyramid0[0], params.presmooth_sigma), _gaussian(pyramid1[0], params.presmooth_sigma)
    for h, w in sizes[1:]:
        pyramid0.append(_downscale(pyramid0[-1], h, w, params))
        pyramid1.append(_downscale(pyramid1[-1], h, w, params))
    h, w = sizes[-1]
    u = [torch.zeros(n, h, w, device=I0.device) for _ in range(3 if params.gamma != 0 else 2)]
    step = float(torch.tensor(params.scale_step, dtype=torch.float32))
    for s in range(len(sizes) - 1, -1, -1):
        u = _solve_level(pyramid0[s], pyramid1[s], u, params)
        if s > 0:
            h, w = sizes[s - 1]
            u = [_upsample(c, h, w, params) * (1.0 / step if k < 2 else 1.0) for k, c in enumerate(u)]
    return torch.stack(u[:2], dim=1)


def tvl1(I0: torch.Tensor, I1: torch.Tensor, params: TVL1Params | None = None, *, backend: str = "auto") -> torch.Tensor:
    """TV-L1 optical flow from ``I0`` to ``I1`` for a batch of grayscale pairs.

    Args:
        I0, I1: ``(N, H, W)`` or ``(N, 1, H, W)``, uint8 (0..255) or float32 (0..1, unless
            ``params.normalize == "minmax"``), contiguous, finite, on one device, at least
            ``params.min_size`` pixels on each side.
        params: :class:`TVL1Params` (default: OpenCV's defaults).
        backend: ``"auto"`` (native CPU/CUDA kernel, else the reference with a warning),
            ``"native"`` or ``"reference"``.

    Returns:
        ``(N, 2, H, W)`` float32 flow (u: horizontal, v: vertical, pixels): a point at
        ``x`` in I0 is at ``x + flow(x)`` in I1. A pair's result does not depend on the
        other pairs of the batch.

    Raises:
        TypeError, ValueError: bad images or parameters, before any kernel runs.

    Example:
        >>> I0 = torch.rand(4, 64, 64)
        >>> tvl1(I0, torch.roll(I0, 1, dims=2)).shape
        torch.Size([4, 2, 64, 64])
    """
    params = params or TVL1Params()
    if not isinstance(params, TVL1Params):
        raise TypeError(f"fastmer.tvl1: params must be a TVL1Params, got {type(params).__name__}")
    a, b = prepare_images(I0, I1, params)
    if params.scheme == "sweep" and a.device.type != "cpu":
        raise ValueError("fastmer.tvl1: scheme='sweep' is CPU-only; use 'default' or 'stencil' on a GPU")
    if _native.use_native("tvl1", a.device, backend):
        return torch.ops.fastmer.tvl1(
            a, b, params.tau, params.lambda_, params.theta, params.gamma, params.epsilon, params.scale_step,
            params.presmooth_sigma, params.cubic_a, params.nscales, params.warps, params.inner_iterations,
            params.outer_iterations, params.median_size, params.min_size, PYRAMIDS[params.pyramid],
            WARP_BORDERS[params.warp_border], params.half_state,
            SCHEMES[params.scheme],
        )
    return tvl1_reference(a, b, params)
