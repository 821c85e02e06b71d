"""LBP-TOP: local binary patterns on three orthogonal planes, the classic hand-crafted MER baseline.

Zhao & Pietikäinen, "Dynamic Texture Recognition Using Local Binary Patterns with an Application to
Facial Expressions", IEEE TPAMI 29(6):915–928, 2007. The CASME II / SMIC baselines use
LBP-TOP_{4,4,4,1,1,4} (``P = 4`` neighbours on every plane, radii ``R_X = R_Y = 1``, ``R_T = 4``)
on a 5×5 grid of spatial blocks, then an SVM, linear or with a χ² kernel (:class:`fastmer.models.svm.LinearSVM`,
:class:`fastmer.models.svm.KernelSVM`; the ``lbptop-svm`` model).

**Definition implemented** (exactly the same in the numba kernel :func:`lbp_top` and the NumPy
reference :func:`lbp_top_reference`). The volume is ``V[t, y, x]`` of shape ``(T, H, W)``; ``y``
grows downwards (image rows), ``t`` forwards in time. For every centre voxel ``c = (t, y, x)``
and every plane, neighbour ``p = 0..P-1`` sits at angle ``θ_p = 2πp/P`` on an ellipse whose
semi-axes are the radii of the plane's two axes, *as in the authors' reference code*
(``LBPTOP.m`` and its C++ port)::

    XY plane (R_X, R_Y):  x + R_X cos θ_p,   y − R_Y sin θ_p,   t
    XT plane (R_X, R_T):  x + R_X cos θ_p,   y,                 t + R_T sin θ_p
    YT plane (R_Y, R_T):  x,                 y − R_Y sin θ_p,   t + R_T cos θ_p

So neighbour 0 is at angle 0 and the order is counter-clockwise as an image is displayed:
in XY, bit 0 = right, 1 = up, 2 = left, 3 = down for ``P = 4`` (the order of
``skimage.feature.local_binary_pattern``, which the XY codes equal frame by frame); in XT,
bit 0 = right, 1 = later (+R_T), 2 = left, 3 = earlier; in YT, bit 0 = later, 1 = up,
2 = earlier, 3 = down. The code is ``Σ_p s(g_p − g_c) 2^p`` with ``s(u) = 1`` if ``u ≥ 0``
(so a flat neighbourhood gives ``2^P − 1``).

Offsets ``R cos θ``, ``R sin θ`` are rounded to 5 decimals (as scikit-image does) so that
axis-aligned neighbours are exact integers. Non-integer positions are sampled by bilinear
interpolation in the plane (``interpolation="bilinear"``, the default; computed in float64 with
fixed weights, ``w00·g00 + w10·g10 + w01·g01 + w11·g11``); ``interpolation="nearest"``
rounds them, ``floor(u + 0.5)``, like the authors' code. With ``P = 4`` every neighbour is on
the grid and the two are identical.

**Valid voxels and blocks.** A code is computed at every voxel whose neighbours all lie in the
volume: ``t ∈ [R_T, T−1−R_T]``, ``y ∈ [R_Y, H−1−R_Y]``, ``x ∈ [R_X, W−1−R_X]`` (needs
``T ≥ 2R_T + 1``). The ``H × W`` image is cut into a ``blocks_y × blocks_x`` grid with edges at
``floor(k·H / blocks_y)`` and ``floor(k·W / blocks_x)`` (any size; blocks differ by at most a
pixel), block index ``by·blocks_x + bx`` (row-major). Each valid voxel counts in the block
holding its centre (neighbours may lie in the next block), over all valid times. Each plane's
``2^P``-bin histogram of each block is divided by its number of voxels, so it sums to 1.

Result: ``(3, blocks_y·blocks_x, 2^P)`` float32, planes in the order XY, XT, YT; ``.reshape(-1)``
gives the usual feature vector (1200 values for the default parameters).

**Inputs.** ``(T, H, W)`` grayscale, any integer or floating dtype (not bool/complex); uint8 is
the fast path, other integers are compared as int64 and floats as float64 (they must be
finite). LBP codes are invariant to adding a constant (and to any increasing map of the grey
levels with ``P = 4``).

The numba kernels are compiled on first call (``cache=True``: later processes load them from
numba's cache), never at import; without numba, :func:`lbp_top` raises a RuntimeError while
:func:`lbp_top_reference` still works. They run the valid time steps of a clip in parallel on
numba's threads (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``); calling them from several
Python threads at once needs numba's ``omp`` or ``tbb`` threading layer (not ``workqueue``).
Speed: about 2–3 ms per 50×128×128 uint8 clip on one core, ~40× the NumPy reference
(``bench/bench_lbptop.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency
    numba = None

__all__ = ["PLANES", "lbp_top", "lbp_top_batch", "lbp_top_reference"]

PLANES = ("XY", "XT", "YT")
INTERPOLATIONS = ("bilinear", "nearest")


def _jit(**options):
    """``numba.njit(cache=True, **options)``, lazily compiled; the plain function without numba."""
    if numba is None:  # pragma: no cover
        return lambda fn: fn
    return numba.njit(cache=True, **options)


_prange = numba.prange if numba is not None else range


# --------------------------------------------------------------------------------------------
# Geometry shared by both implementations.


def _plane_offsets(radii: tuple[int, int, int], points: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """Sampling corners of every neighbour: ``offsets (3, P, 4, 3)`` int64 as ``(dt, dy, dx)`` and
    ``weights (3, P, 4)`` float64, corners in the order ``00, 10, 01, 11`` of the plane's
    (first, second) axis. A corner of weight 0 repeats the ``00`` offset (never out of bounds)."""
    rx, ry, rt = radii
    theta = 2.0 * np.pi * np.arange(points) / points
    cos, sin = np.round(np.cos(theta), 12), np.round(np.sin(theta), 12)
    # (first-axis displacement, second-axis displacement) in (dt, dy, dx) index space per plane.
    planes = [
        # XY: first axis x (+R_X cos), second axis y (−R_Y sin)
        ((2, np.round(rx * cos, 5)), (1, np.round(-ry * sin, 5))),
        # XT: first axis x (+R_X cos), second axis t (+R_T sin)
        ((2, np.round(rx * cos, 5)), (0, np.round(rt * sin, 5))),
        # YT: first axis y (−R_Y sin), second axis t (+R_T cos)
        ((1, np.round(-ry * sin, 5)), (0, np.round(rt * cos, 5))),
    ]
    offsets = np.zeros((3, points, 4, 3), np.int64)
    weights = np.zeros((3, points, 4), np.float64)
    for k, ((axis_a, da), (axis_b, db)) in enumerate(planes):
        for p in range(points):
            if interpolation == "nearest":
                a0, b0 = math.floor(da[p] + 0.5), math.floor(db[p] + 0.5)
                fa = fb = 0.0
            else:
                a0, b0 = math.floor(da[p]), math.floor(db[p])
                fa, fb = float(da[p] - a0), float(db[p] - b0)
            corners = ((0, 0, (1 - fa) * (1 - fb)), (1, 0, fa * (1 - fb)), (0, 1, (1 - fa) * fb), (1, 1, fa * fb))
            for j, (ia, ib, w) in enumerate(corners):
                if w == 0.0:
                    ia = ib = 0
                offsets[k, p, j, axis_a] += a0 + ia
                offsets[k, p, j, axis_b] += b0 + ib
                weights[k, p, j] = w
    return offsets, weights


def _block_index(size: int, blocks: int) -> np.ndarray:
    """Block of every row (column) of a ``size``-long axis cut at ``floor(k·size/blocks)``."""
    edges = (np.arange(blocks + 1) * size) // blocks
    return (np.searchsorted(edges, np.arange(size), side="right") - 1).astype(np.int64)


def _check_params(radii, points, blocks, interpolation) -> tuple[tuple[int, int, int], int, tuple[int, int]]:
    radii = tuple(radii)
    if len(radii) != 3 or not all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 1 for r in radii):
        raise ValueError(f"radii must be three integers >= 1 (R_X, R_Y, R_T), got {radii!r}")
    if not isinstance(points, (int, np.integer)) or isinstance(points, bool) or not 1 <= points <= 16:
        raise ValueError(f"points must be an integer in [1, 16] (2**points histogram bins), got {points!r}")
    blocks = tuple(blocks)
    if len(blocks) != 2 or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1 for b in blocks):
        raise ValueError(f"blocks must be two integers >= 1 (blocks_y, blocks_x), got {blocks!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    return tuple(int(r) for r in radii), int(points), (int(blocks[0]), int(blocks[1]))


def _prepare(volume, radii, points, blocks, interpolation):
    """Validated volume (uint8, int64 or float64, C-contiguous) and everything both implementations need."""
    radii, points, blocks = _check_params(radii, points, blocks, interpolation)
    if not isinstance(volume, np.ndarray):
        volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be (T, H, W) grayscale, got shape {volume.shape}")
    kind = volume.dtype.kind
    if kind == "u" and volume.dtype.itemsize == 1:
        data = np.ascontiguousarray(volume)
    elif kind in "iu":
        if volume.dtype == np.uint64 and volume.size and volume.max() > np.iinfo(np.int64).max:
            raise ValueError("uint64 volume has values beyond int64")
        data = np.ascontiguousarray(volume, dtype=np.int64)
    elif kind == "f":
        data = np.ascontiguousarray(volume, dtype=np.float64)
        if not np.isfinite(data).all():
            raise ValueError("volume has NaN or infinite values")
    else:
        raise ValueError(f"volume must have an integer or floating dtype, got {volume.dtype}")
    t, h, w = data.shape
    rx, ry, rt = radii
    if t < 2 * rt + 1:
        raise ValueError(f"LBP-TOP with R_T={rt} needs at least {2 * rt + 1} frames, got T={t}")
    if h < 2 * ry + 1 or w < 2 * rx + 1:
        raise ValueError(f"frames of {h}x{w} are too small for radii R_Y={ry}, R_X={rx} (need >= {2 * ry + 1}x{2 * rx + 1})")
    by, bx = blocks
    if by > h or bx > w:
        raise ValueError(f"blocks {blocks} larger than the {h}x{w} image")
    row_block, col_block = _block_index(h, by), _block_index(w, bx)
    rows = np.bincount(row_block[ry : h - ry], minlength=by)
    cols = np.bincount(col_block[rx : w - rx], minlength=bx)
    if (rows == 0).any() or (cols == 0).any():
        raise ValueError(
            f"blocks {blocks} too fine for a {h}x{w} image with radii (R_X, R_Y)=({rx}, {ry}): "
            "a border block holds no valid centre pixel"
        )
    voxels = (t - 2 * rt) * (rows[:, None] * cols[None, :]).reshape(-1).astype(np.float64)
    offsets, weights = _plane_offsets(radii, points, interpolation)
    return data, radii, points, blocks, row_block, col_block, voxels, offsets, weights


def _normalise(counts: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    return (counts / voxels[None, :, None]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# numba kernels (compiled on first call).


# Each thread takes one time step; per row, every plane's codes are built bit by bit over
# contiguous row slices (so LLVM vectorises the comparisons), then counted per block.


@_jit(parallel=True, nogil=True)
def _kernel_grid(vol, offs, points, radii, row_block, col_block, nbx, nblocks):  # pragma: no cover - jitted
    """Every neighbour on the grid (``offs (3, P, 3)``): compared in the volume's own dtype."""
    nt, h, w = vol.shape
    rx, ry, rt = radii[0], radii[1], radii[2]
    t_count = nt - 2 * rt
    n = w - 2 * rx
    counts = np.zeros((t_count, 3, nblocks, 1 << points), np.int64)
    cols = col_block[rx : w - rx]
    for ti in _prange(t_count):
        t = ti + rt
        code = np.zeros((3, n), np.uint16)
        hist = counts[ti]
        for y in range(ry, h - ry):
            row = row_block[y] * nbx
            centre = vol[t, y, rx : w - rx]
            for k in range(3):
                ck = code[k]
                ck[:] = 0
                for p in range(points):
                    x0 = rx + offs[k, p, 2]
                    src = vol[t + offs[k, p, 0], y + offs[k, p, 1], x0 : x0 + n]
                    bit = np.uint16(1 << p)
                    for x in range(n):
                        ck[x] |= np.uint16(src[x] >= centre[x]) * bit
            _count_row(hist, code, row, cols, n)
    return counts.sum(axis=0)


@_jit(parallel=True, nogil=True)
def _kernel_bilinear(vol, offs, wts, points, radii, row_block, col_block, nbx, nblocks):  # pragma: no cover - jitted
    """General case (``offs (3, P, 4, 3)``, ``wts (3, P, 4)``): each neighbour is
    ``((w0·g0 + w1·g1) + w2·g2) + w3·g3`` over its 4 corners, in float64."""
    nt, h, w = vol.shape
    rx, ry, rt = radii[0], radii[1], radii[2]
    t_count = nt - 2 * rt
    n = w - 2 * rx
    counts = np.zeros((t_count, 3, nblocks, 1 << points), np.int64)
    cols = col_block[rx : w - rx]
    for ti in _prange(t_count):
        t = ti + rt
        code = np.zeros((3, n), np.uint16)
        centre = np.empty(n, np.float64)
        g = np.empty(n, np.float64)
        hist = counts[ti]
        for y in range(ry, h - ry):
            row = row_block[y] * nbx
            src = vol[t, y, rx : w - rx]
            for x in range(n):
                centre[x] = np.float64(src[x])
            for k in range(3):
                ck = code[k]
                ck[:] = 0
                for p in range(points):
                    x0 = rx + offs[k, p, 0, 2]
                    src = vol[t + offs[k, p, 0, 0], y + offs[k, p, 0, 1], x0 : x0 + n]
                    wj = wts[k, p, 0]
                    for x in range(n):
                        g[x] = wj * np.float64(src[x])
                    for j in range(1, 4):
                        x0 = rx + offs[k, p, j, 2]
                        src = vol[t + offs[k, p, j, 0], y + offs[k, p, j, 1], x0 : x0 + n]
                        wj = wts[k, p, j]
                        for x in range(n):
                            g[x] = g[x] + wj * np.float64(src[x])
                    bit = np.uint16(1 << p)
                    for x in range(n):
                        ck[x] |= np.uint16(g[x] >= centre[x]) * bit
            _count_row(hist, code, row, cols, n)
    return counts.sum(axis=0)


@_jit(nogil=True)
def _count_row(hist, code, row, cols, n):  # pragma: no cover - jitted
    h0, h1, h2 = hist[0], hist[1], hist[2]
    c0, c1, c2 = code[0], code[1], code[2]
    for x in range(n):
        b = row + cols[x]
        h0[b, c0[x]] += 1
        h1[b, c1[x]] += 1
        h2[b, c2[x]] += 1


def _require_numba() -> None:
    if numba is None:
        raise RuntimeError("fastmer.motion.lbptop.lbp_top needs numba: pip install numba (or use lbp_top_reference)")


def lbp_top(
    volume: np.ndarray,
    *,
    radii: tuple[int, int, int] = (1, 1, 4),
    points: int = 4,
    blocks: tuple[int, int] = (5, 5),
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Block LBP-TOP histograms of one clip (numba kernel, parallel over time).

    Args:
        volume: ``(T, H, W)`` grayscale clip (uint8 is the fast path; see the module docstring).
        radii: ``(R_X, R_Y, R_T)``.
        points: neighbours per plane ``P`` (the same on the three planes); ``2**P`` bins.
        blocks: ``(blocks_y, blocks_x)`` spatial grid.
        interpolation: ``"bilinear"`` or ``"nearest"`` for off-grid neighbours (same for ``P = 4``).

    Returns:
        ``(3, blocks_y * blocks_x, 2**P)`` float32, planes XY, XT, YT, each histogram summing to 1.

    Raises:
        ValueError: bad shape/dtype/parameters, ``T < 2·R_T + 1``, or blocks too fine for the image.
        RuntimeError: numba is not installed.
    """
    _require_numba()
    data, radii, points, blocks, row_block, col_block, voxels, offsets, weights = _prepare(
        volume, radii, points, blocks, interpolation
    )
    nblocks = blocks[0] * blocks[1]
    radii_arr = np.asarray(radii, np.int64)
    if (weights[..., 0] == 1.0).all():
        counts = _kernel_grid(
            data, np.ascontiguousarray(offsets[:, :, 0, :]), points, radii_arr, row_block, col_block, blocks[1], nblocks
        )
    else:
        counts = _kernel_bilinear(data, offsets, weights, points, radii_arr, row_block, col_block, blocks[1], nblocks)
    return _normalise(counts, voxels)


def lbp_top_batch(
    volumes: Sequence[np.ndarray] | np.ndarray,
    *,
    radii: tuple[int, int, int] = (1, 1, 4),
    points: int = 4,
    blocks: tuple[int, int] = (5, 5),
    interpolation: str = "bilinear",
) -> np.ndarray:
    """:func:`lbp_top` of ``N`` clips: a list of ``(T_i, H_i, W_i)`` volumes (lengths and sizes may
    differ) or an ``(N, T, H, W)`` array. Returns ``(N, 3, blocks_y * blocks_x, 2**P)`` float32."""
    if isinstance(volumes, np.ndarray) and volumes.ndim != 4:
        raise ValueError(f"a batch array must be (N, T, H, W), got shape {volumes.shape}")
    if len(volumes) == 0:
        raise ValueError("lbp_top_batch needs at least one volume")
    out = []
    for i, volume in enumerate(volumes):
        try:
            out.append(lbp_top(volume, radii=radii, points=points, blocks=blocks, interpolation=interpolation))
        except ValueError as exc:
            raise ValueError(f"volume {i}: {exc}") from exc
    return np.stack(out)


# --------------------------------------------------------------------------------------------
# NumPy reference.


def lbp_top_reference(
    volume: np.ndarray,
    *,
    radii: tuple[int, int, int] = (1, 1, 4),
    points: int = 4,
    blocks: tuple[int, int] = (5, 5),
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Pure NumPy (vectorised, float64) :func:`lbp_top`: the same definition, for tests and checks."""
    data, radii, points, blocks, row_block, col_block, voxels, offsets, weights = _prepare(
        volume, radii, points, blocks, interpolation
    )
    rx, ry, rt = radii
    nt, h, w = data.shape
    vol = data.astype(np.float64)

    def shifted(dt: int, dy: int, dx: int) -> np.ndarray:
        return vol[rt + dt : nt - rt + dt, ry + dy : h - ry + dy, rx + dx : w - rx + dx]

    centre = shifted(0, 0, 0)
    block = (row_block[ry : h - ry, None] * blocks[1] + col_block[None, rx : w - rx])[None]
    nblocks, bins = blocks[0] * blocks[1], 1 << points
    counts = np.zeros((3, nblocks, bins), np.int64)
    for k in range(3):
        code = np.zeros(centre.shape, np.int64)
        for p in range(points):
            g = weights[k, p, 0] * shifted(*offsets[k, p, 0])
            for j in range(1, 4):
                g = g + weights[k, p, j] * shifted(*offsets[k, p, j])
            code |= (g >= centre).astype(np.int64) << p
        flat = np.broadcast_to(block, code.shape) * bins + code
        counts[k] = np.bincount(flat.ravel(), minlength=nblocks * bins).reshape(nblocks, bins)
    return _normalise(counts, voxels)
