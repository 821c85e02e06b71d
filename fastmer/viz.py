"""PNG views of one clip of a feature store, for a researcher to inspect (``fastmer viz``).

:func:`render_clip` writes, for one store row:

* ``keyframes.png`` — the face crops at onset, apex and offset (the ``keyframes`` column,
  store format v4 and later);
* one PNG per flow representation (``flow_onset_apex``, ``flow_phases``, ``cof``,
  ``mm_cof``) — per flow, its Middlebury colour coding (:func:`fastmer.motion.viz.flow_to_color`,
  saturated at the flow's largest magnitude), its magnitude and, where stored, its optical
  strain as :func:`colorize_magnitude` maps (``0`` to the panel's maximum), plus a colour-wheel key;
* ``dynamic_images.png`` — every dynamic-image channel the store has (``dynamic_image``,
  ``dynamic_image_phases``, ``trdi``, ``midi``, ``mesti``), each min–max scaled to 0..255;
* ``motion_curve.png`` — the motion-intensity curve (the ``motion_curve`` column, one value
  per frame onset..offset) with the onset, apex and offset marked (:func:`plot_curve`);
* ``index.json`` — the clip's metadata, every file written with the position and source of
  each of its panels, and what was skipped and why.

A column the store lacks (older stores have no ``keyframes``/``motion_curve``) is skipped
with a warning, not an error. Representations fastmer does not know get one grey panel per
channel. Files are written atomically (temporary name in the folder, then renamed); other
files in the folder are left alone.

Images are RGB ``(H, W, 3)`` uint8 until written. This module imports numpy and OpenCV only
(no torch), and reads one row of the store, never whole columns.
"""

from __future__ import annotations

import difflib
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from fastmer.motion.viz import flow_to_color
from fastmer.store.writer import atomic_write_bytes

if TYPE_CHECKING:
    from fastmer.store import FeatureStore

__all__ = [
    "DYNAMIC_IMAGE_REPRESENTATIONS",
    "FLOW_GROUPS",
    "MARKER_COLORS",
    "Panel",
    "colorize_magnitude",
    "compose",
    "find_clip",
    "flow_key",
    "plot_bars",
    "plot_curve",
    "render_clip",
    "to_uint8",
    "write_png",
]

FLOW_GROUPS: dict[str, tuple[tuple[str, str, str, str, str | None], ...]] = {
    "flow_onset_apex": (("onset->apex", "u", "v", "magnitude", "strain"),),
    "flow_phases": (("onset->apex", "u_oa", "v_oa", "m_oa", "s_oa"), ("apex->offset", "u_ao", "v_ao", "m_ao", "s_ao")),
    "cof": (("COF", "u_cof", "v_cof", "m_cof", None),),
    "mm_cof": (("MM-COF", "u_mm", "v_mm", "m_cof", None),),
}
"""Flow representation → its flows: ``(label, u channel, v channel, magnitude channel, strain channel or None)``."""

DYNAMIC_IMAGE_REPRESENTATIONS = ("dynamic_image", "dynamic_image_phases", "trdi", "midi", "mesti")
"""Representations drawn together in ``dynamic_images.png``, one grey panel per channel."""

KEYFRAMES = "keyframes"
MOTION_CURVE = "motion_curve"
KEYFRAME_NAMES = ("onset", "apex", "offset")

MARKER_COLORS: dict[str, tuple[int, int, int]] = {"onset": (0, 150, 0), "apex": (220, 0, 0), "offset": (0, 80, 230)}
"""RGB colour of the onset, apex and offset markers of :func:`plot_curve`."""
CURVE_COLOR = (30, 30, 30)
AXIS_COLOR = (0, 0, 0)
BACKGROUND = (255, 255, 255)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_LINE = 14  # caption line height, pixels
_GAP = 6  # between panels and around the canvas


# --------------------------------------------------------------------------- pixels
def to_uint8(image: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Min–max scale an array to uint8 ``0..255`` for display.

    Args:
        image: any shape, any real dtype; non-finite values show as 0.
        lo: value shown as 0 (default: the smallest finite value).
        hi: value shown as 255 (default: the largest finite value).

    Returns:
        uint8 array of ``image``'s shape; all zeros when ``hi <= lo`` (a constant image).

    Example:
        >>> to_uint8(np.array([1.0, 2.0, 3.0])).tolist()
        [0, 128, 255]
    """
    values = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    lo = float(values[finite].min()) if lo is None else float(lo)
    hi = float(values[finite].max()) if hi is None else float(hi)
    if not hi > lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = np.clip((np.where(finite, values, lo) - lo) / (hi - lo), 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


def colorize_magnitude(magnitude: np.ndarray, vmax: float | None = None, colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    """Colour map of a non-negative map (flow magnitude, optical strain): ``0`` dark, ``vmax`` bright.

    Args:
        magnitude: ``(H, W)``; non-finite values show as 0.
        vmax: value at the top of the colour map (default: the largest finite ``|magnitude|``).
        colormap: an OpenCV colour map (``cv2.COLORMAP_*``).

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Example:
        >>> colorize_magnitude(np.zeros((2, 3))).shape
        (2, 3, 3)
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.ndim != 2:
        raise ValueError(f"colorize_magnitude: expected a (H, W) map, got shape {magnitude.shape}")
    finite = np.isfinite(magnitude)
    top = (float(np.abs(magnitude[finite]).max()) if finite.any() else 0.0) if vmax is None else float(vmax)
    gray = to_uint8(np.abs(magnitude), 0.0, top) if top > 0 else np.zeros(magnitude.shape, np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, colormap), cv2.COLOR_BGR2RGB)


def flow_key(size: int) -> np.ndarray:
    """The Middlebury colour wheel as a ``(size, size, 3)`` uint8 RGB key (white outside the unit circle).

    The centre is zero flow; a pixel at distance ``r`` from it, in direction ``d``, shows the
    colour of a flow of direction ``d`` and ``r / (size / 2)`` times the panel's largest magnitude.
    """
    half = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    field_ = np.stack([(x - half) / max(half, 1), (y - half) / max(half, 1)], axis=-1)
    key = flow_to_color(field_, max_flow=1.0)
    key[np.hypot(field_[..., 0], field_[..., 1]) > 1] = BACKGROUND
    return key


def _gray_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2)


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0]


def _put_text(canvas: np.ndarray, text: str, x: int, baseline: int, color: tuple[int, int, int] = AXIS_COLOR) -> None:
    cv2.putText(canvas, text, (int(x), int(baseline)), _FONT, _FONT_SCALE, color, 1, cv2.LINE_AA)


# --------------------------------------------------------------------------- layout
@dataclass
class Panel:
    """One image of a figure, with its caption lines and what it shows (for ``index.json``).

    Attributes:
        name: unique within its figure, e.g. ``"onset->apex/flow"``.
        image: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` uint8 grey).
        caption: lines drawn above the image (ASCII; OpenCV's fonts have no other glyphs).
        info: what the panel shows (source column, channels, value range), copied into ``index.json``.
    """

    name: str
    image: np.ndarray
    caption: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


def compose(rows: Sequence[Sequence[Panel]], title: str | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Lay panels out in rows on a white canvas, each under its caption.

    Every panel keeps its pixels exactly (no resampling); a cell is as wide as the wider of
    its panel and its caption, the panel centred in it.

    Args:
        rows: panels, row by row.
        title: a line drawn above everything.

    Returns:
        ``(canvas, boxes)``: the ``(H, W, 3)`` uint8 RGB canvas and, per panel, a dict with its
        ``name``, ``box`` ``[x, y, width, height]`` of its pixels on the canvas, and its ``info``.
    """
    layout, boxes = [], []
    y = _GAP + (_LINE if title else 0)
    width = 2 * _GAP + (_text_width(title) if title else 0)
    for row in rows:
        n_lines = max((len(p.caption) for p in row), default=0)
        x = _GAP
        row_height = max((p.image.shape[0] for p in row), default=0)
        for panel in row:
            h, w = panel.image.shape[:2]
            cell = max([w] + [_text_width(line) for line in panel.caption])
            px, py = x + (cell - w) // 2, y + n_lines * _LINE + (2 if n_lines else 0)
            layout.append((panel, x, y, px, py))
            boxes.append({"name": panel.name, "box": [px, py, w, h], **panel.info})
            x += cell + _GAP
        width = max(width, x)
        y += n_lines * _LINE + (2 if n_lines else 0) + row_height + _GAP
    canvas = np.full((y, width, 3), BACKGROUND, dtype=np.uint8)
    if title:
        _put_text(canvas, title, _GAP, _GAP + _LINE - 4)
    for panel, x, y0, px, py in layout:
        for i, line in enumerate(panel.caption):
            _put_text(canvas, line, x, y0 + (i + 1) * _LINE - 4)
        image = panel.image if panel.image.ndim == 3 else _gray_rgb(panel.image)
        canvas[py:py + image.shape[0], px:px + image.shape[1]] = image
    return canvas, boxes


# --------------------------------------------------------------------------- motion curve
def _tick_step(span: int, max_ticks: int = 12) -> int:
    step = 1
    while span / step > max_ticks:
        for factor in (2, 5, 10):
            if span / (step * factor) <= max_ticks or factor == 10:
                step *= factor
                break
    return step


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def plot_curve(
    curve: Sequence[float] | np.ndarray,
    onset: int,
    apex: int,
    offset: int,
    *,
    first_frame: int | None = None,
    size: tuple[int, int] = (640, 320),
    markers: dict[str, tuple[int, int, int]] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Line plot of a motion-intensity curve with the onset, apex and offset marked.

    The x axis is frame numbers (ticks labelled), the y axis the curve's values (its minimum
    and maximum labelled). Each key frame is a one-pixel vertical line of its
    :data:`MARKER_COLORS` colour across the plot area, labelled above it (``"apex 47"``);
    the curve is drawn over the markers with a dot per frame.

    Args:
        curve: ``(T,)`` one value per frame, the first for frame ``first_frame``.
        onset, apex, offset: frame numbers of the key frames.
        first_frame: frame of ``curve[0]`` (default: ``onset``).
        size: ``(width, height)`` of the image, pixels.
        markers: colour per key frame (default :data:`MARKER_COLORS`).

    Returns:
        ``(image, x)``: the ``(height, width, 3)`` uint8 RGB plot and the pixel column of each
        key frame's marker (``{"onset": ..., "apex": ..., "offset": ...}``; a key frame outside
        the curve's frames is clamped to the plot's edge).
    """
    values = np.asarray(curve, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("plot_curve: the curve is empty")
    markers = markers or MARKER_COLORS
    width, height = size
    first = onset if first_frame is None else int(first_frame)
    frames = first + np.arange(values.size)
    lo_frame, hi_frame = min(first, onset), max(int(frames[-1]), offset)
    left, right, top, bottom = 64, 24, 3 * _LINE + 10, 44
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    inset = 12
    if x1 - x0 < 2 * inset + 10 or y1 - y0 < 10:
        raise ValueError(f"plot_curve: size {size} leaves no room for the plot")

    def x_of(frame: float) -> int:
        if hi_frame == lo_frame:
            return (x0 + x1) // 2
        # An inset keeps the onset and offset markers off the axis and the frame.
        a, b = x0 + inset, x1 - inset
        return int(round(a + (min(max(frame, lo_frame), hi_frame) - lo_frame) / (hi_frame - lo_frame) * (b - a)))

    finite = np.isfinite(values)
    vmin = float(values[finite].min()) if finite.any() else 0.0
    vmax = float(values[finite].max()) if finite.any() else 0.0
    pad = (vmax - vmin) * 0.08

    def y_of(value: float) -> int:
        if vmax == vmin:
            return (y0 + y1) // 2
        return int(round(y1 - (value - (vmin - pad)) / (vmax - vmin + 2 * pad) * (y1 - y0)))

    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    # Key frames first, so the curve stays readable where it crosses them.
    positions = {}
    for row, (name, frame) in enumerate((("onset", onset), ("apex", apex), ("offset", offset))):
        x = x_of(frame)
        positions[name] = x
        cv2.line(image, (x, y0), (x, y1), markers[name], 1, cv2.LINE_8)
        label = f"{name} {frame}"
        tx = min(max(x - _text_width(label) // 2, 2), width - _text_width(label) - 2)
        _put_text(image, label, tx, (row + 1) * _LINE, markers[name])
    # Axes, frame ticks and value labels.
    cv2.line(image, (x0, y1), (x1, y1), AXIS_COLOR, 1)
    cv2.line(image, (x0, y0), (x0, y1), AXIS_COLOR, 1)
    step = _tick_step(hi_frame - lo_frame)
    for frame in range(-(-lo_frame // step) * step, hi_frame + 1, step):
        x = x_of(frame)
        cv2.line(image, (x, y1), (x, y1 + 4), AXIS_COLOR, 1)
        _put_text(image, str(frame), x - _text_width(str(frame)) // 2, y1 + 17)
    _put_text(image, "frame", (x0 + x1 - _text_width("frame")) // 2, height - 8)
    for value in {vmin, vmax}:
        y = y_of(value)
        cv2.line(image, (x0 - 4, y), (x0, y), AXIS_COLOR, 1)
        _put_text(image, _fmt(value), max(x0 - 6 - _text_width(_fmt(value)), 2), y + 4)
    # The curve (gaps at non-finite values).
    points = [(x_of(f), y_of(v)) if ok else None
              for f, v, ok in zip(frames.tolist(), values.tolist(), finite.tolist(), strict=True)]
    for a, b in itertools.pairwise(points):
        if a is not None and b is not None:
            cv2.line(image, a, b, CURVE_COLOR, 2, cv2.LINE_AA)
    for p in points:
        if p is not None:
            cv2.circle(image, p, 3, CURVE_COLOR, -1, cv2.LINE_AA)
    return image, positions


# --------------------------------------------------------------------------- writing
def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB ``(H, W, 3)`` (or grey ``(H, W)``) uint8 image as PNG, atomically."""
    path = Path(path)
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_png: expected uint8 pixels, got {image.dtype}")
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, data.tobytes())
    return path


# --------------------------------------------------------------------------- the store
def find_clip(store: FeatureStore, clip: str) -> int:
    """Row of ``store`` whose ``uid`` is ``clip``, or else whose ``clip_id`` is (when that names one row).

    Raises:
        LookupError: no row matches (the message suggests close uids), or ``clip`` is the
            ``clip_id`` of several rows (views, datasets; the message lists their uids).
    """
    uids = store.column("uid")
    if clip in uids:
        return uids.index(clip)
    clip_ids = store.column("clip_id")
    rows = [i for i, c in enumerate(clip_ids) if c == clip]
    if len(rows) == 1:
        return rows[0]
    if rows:
        raise LookupError(f"{clip!r} is the clip_id of {len(rows)} clips; give one of their uids: "
                          + ", ".join(uids[i] for i in rows))
    close = difflib.get_close_matches(clip, uids, n=5, cutoff=0.6)
    for near in difflib.get_close_matches(clip, sorted(set(clip_ids)), n=5, cutoff=0.6):
        close += [u for u, c in zip(uids, clip_ids, strict=True) if c == near and u not in close]
    hint = f"; did you mean {', '.join(close[:5])}?" if close else f" (its uids look like {uids[0]!r})" if uids else ""
    raise LookupError(f"no clip {clip!r} in {store.path} ({len(uids)} clips, matched by uid or clip_id){hint}")


def _row_value(store: FeatureStore, name: str, row: int) -> Any:
    return store.table.slice(row, 1).column(name).to_pylist()[0]


def _row_tensor(store: FeatureStore, name: str, row: int) -> np.ndarray:
    """One row of a fixed-shape tensor column, without converting the whole column."""
    chunks = [c for c in store.table.slice(row, 1).column(name).chunks if len(c)]
    return chunks[0].to_numpy_ndarray()[0]


def column_channels(store: FeatureStore, name: str) -> tuple[str, ...] | None:
    """The channel names of column ``name`` (a representation's, or recorded in its field metadata), or None."""
    if name in store.representations:
        return store.channels(name)
    metadata = store.table.schema.field(name).metadata or {}
    if b"channels" in metadata:
        return tuple(json.loads(metadata[b"channels"]))
    return None


def clip_metadata(store: FeatureStore, row: int) -> dict[str, Any]:
    """Row ``row``'s identity and key frames (uid, dataset, ..., apex, labels, face box...), as the store has them."""
    names = ("uid", "dataset", "subject", "clip_id", "view", "onset", "apex", "offset", "apex_source", "labels",
             "action_units", "face_box", "face_angle", "decoder", "source")
    present = [n for n in names if n in store.table.column_names]
    values = store.table.slice(row, 1).select(present).to_pylist()[0]
    return {"row": row, **values}


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` enlarged ``scale`` times, each pixel repeated (nearest neighbour)."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _range(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    return [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0]


def _keyframe_panels(store: FeatureStore, row: int, meta: dict[str, Any], scale: int) -> list[Panel]:
    frames = _row_tensor(store, KEYFRAMES, row)
    if frames.ndim == 2:
        frames = frames[None]
    names = column_channels(store, KEYFRAMES) or KEYFRAME_NAMES[: len(frames)]
    if len(names) != len(frames):
        names = tuple(f"frame{i}" for i in range(len(frames)))
    order = [names.index(n) for n in KEYFRAME_NAMES if n in names] or list(range(len(frames)))
    panels = []
    for i in order:
        image = frames[i]
        if image.ndim == 3:  # (C, H, W) colour crops
            image = np.moveaxis(image, 0, -1)
            image = image[..., 0] if image.shape[-1] == 1 else image
        pixels = image if image.dtype == np.uint8 else to_uint8(image)
        label = names[i]
        caption = (f"{label} {meta[label]}",) if label in meta else (label,)
        panels.append(Panel(label, upscale(pixels, scale), caption,
                            {"source": KEYFRAMES, "channel": label, "frame": meta.get(label)}))
    return panels


def _flow_panels(name: str, tensor: np.ndarray, channels: tuple[str, ...], scale: int) -> list[list[Panel]]:
    rows = []
    for label, u, v, magnitude, strain in FLOW_GROUPS[name]:
        flow = np.stack([tensor[channels.index(u)], tensor[channels.index(v)]], axis=-1)
        mag = np.hypot(flow[..., 0], flow[..., 1])
        largest = float(mag[np.isfinite(mag)].max()) if np.isfinite(mag).any() else 0.0
        row = [Panel(f"{label}/flow", upscale(flow_to_color(flow), scale), (f"{label} flow", f"max {_fmt(largest)}"),
                     {"source": name, "channels": [u, v], "max_flow": largest})]
        for kind, channel in (("magnitude", magnitude), ("strain", strain)):
            if channel is None:
                continue
            values = tensor[channels.index(channel)].astype(np.float64)
            top = _range(np.abs(values))[1]
            row.append(Panel(f"{label}/{kind}", upscale(colorize_magnitude(values), scale),
                             (f"{kind} ({channel})", f"0..{_fmt(top)}"), {"source": name, "channels": [channel],
                                                                         "range": [0.0, top], "colormap": "inferno"}))
        rows.append(row)
    size = rows[0][0].image.shape[0]
    rows[0].append(Panel("key", flow_key(size), ("colour key", "(direction)"), {"kind": "middlebury colour wheel"}))
    return rows


def _channel_panels(name: str, tensor: np.ndarray, channels: Sequence[str], scale: int, *, prefix: bool) -> list[Panel]:
    panels = []
    for i, channel in enumerate(channels):
        values = tensor[i].astype(np.float64)
        lo, hi = _range(values)
        caption = (f"{name}/{channel}" if prefix else channel, f"{_fmt(lo)}..{_fmt(hi)}")
        panels.append(Panel(f"{name}/{channel}", upscale(to_uint8(values), scale), caption,
                            {"source": name, "channels": [channel], "range": [lo, hi], "colormap": "gray"}))
    return panels


def render_clip(
    store: FeatureStore,
    clip: str | int,
    out_dir: str | Path,
    *,
    scale: int = 1,
    curve_size: tuple[int, int] = (640, 320),
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the PNGs of one clip of ``store`` and their ``index.json`` into ``out_dir`` (see the module doc).

    Args:
        store: an opened feature store (:func:`fastmer.store.open`).
        clip: the clip's uid or clip_id (see :func:`find_clip`), or its row number.
        out_dir: folder to write to (created); files of the same names are replaced.
        scale: enlarge image panels by this integer factor (nearest neighbour; the curve
            plot keeps ``curve_size``).
        curve_size: ``(width, height)`` of the motion-curve plot, pixels.
        log: receives one line per skipped panel (default: stderr).

    Returns:
        The paths written, ``index.json`` last.

    Raises:
        LookupError: ``clip`` matches no row or several (see :func:`find_clip`).
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    log = log or (lambda line: print(line, file=sys.stderr))
    row = clip if isinstance(clip, int) else find_clip(store, clip)
    if not 0 <= row < len(store):
        raise LookupError(f"row {row} out of range: {store.path} has {len(store)} clips")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = clip_metadata(store, row)
    uid = meta["uid"]
    columns = set(store.table.column_names)
    written: list[Path] = []
    files: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []

    def emit(filename: str, kind: str, rows: Sequence[Sequence[Panel]], title: str) -> None:
        canvas, boxes = compose(rows, f"{uid}  {title}")
        written.append(write_png(out / filename, canvas))
        files.append({"file": filename, "kind": kind, "size": [canvas.shape[1], canvas.shape[0]], "panels": boxes})

    def skip(name: str, reason: str, warn: bool = True) -> None:
        skipped.append({"name": name, "reason": reason})
        if warn:
            log(f"warning: {uid}: skipped {name}: {reason}")

    version = store.meta.get("format_version")
    if KEYFRAMES in columns:
        emit("keyframes.png", "keyframes", [_keyframe_panels(store, row, meta, scale)], "key frames")
    else:
        skip(KEYFRAMES, f"the store has no {KEYFRAMES} column (stores before format v4 lack it; re-extract to get the crops)")

    representations = [n for n in store.representations if n != KEYFRAMES]
    for name in FLOW_GROUPS:
        if name not in representations:
            skip(name, "not in the store", warn=False)
            continue
        channels = store.channels(name)
        needed = {c for group in FLOW_GROUPS[name] for c in group[1:] if c is not None}
        if needed - set(channels):
            log(f"warning: {uid}: {name} has channels {list(channels)}, not the expected {sorted(needed)}; "
                "drawn channel by channel")
            emit(f"{name}.png", "channels", [_channel_panels(name, _row_tensor(store, name, row), channels, scale,
                                                             prefix=False)], name)
            continue
        emit(f"{name}.png", "flow", _flow_panels(name, _row_tensor(store, name, row), channels, scale), name)

    dynamic = [n for n in DYNAMIC_IMAGE_REPRESENTATIONS if n in representations]
    if dynamic:
        panels = [p for n in dynamic for p in _channel_panels(n, _row_tensor(store, n, row), store.channels(n), scale,
                                                              prefix=False)]
        emit("dynamic_images.png", "dynamic_images", [panels], "dynamic images (min-max per panel)")
    for name in DYNAMIC_IMAGE_REPRESENTATIONS:
        if name not in representations:
            skip(name, "not in the store", warn=False)

    for name in representations:  # what this module does not know: grey channels
        if name not in FLOW_GROUPS and name not in DYNAMIC_IMAGE_REPRESENTATIONS:
            emit(f"{name}.png", "channels", [_channel_panels(name, _row_tensor(store, name, row), store.channels(name),
                                                             scale, prefix=False)], name)

    if MOTION_CURVE not in columns:
        skip(MOTION_CURVE, f"the store has no {MOTION_CURVE} column (stores before format v4 lack it; re-extract to get it)")
    else:
        curve = _row_value(store, MOTION_CURVE, row)
        if not curve:
            skip(MOTION_CURVE, "this clip's curve is empty")
        elif meta.get("onset") is None or meta.get("offset") is None:  # imported features without frame numbers
            skip(MOTION_CURVE, "this clip has no onset/offset frame numbers to plot the curve against")
        else:
            expected = meta["offset"] - meta["onset"] + 1
            if len(curve) != expected:
                log(f"warning: {uid}: {MOTION_CURVE} has {len(curve)} values for the {expected} frames "
                    f"{meta['onset']}..{meta['offset']}; plotted from the onset on")
            image, x = plot_curve(curve, meta["onset"], meta["apex"], meta["offset"], size=curve_size)
            written.append(write_png(out / "motion_curve.png", image))
            files.append({"file": "motion_curve.png", "kind": "motion_curve", "size": list(curve_size),
                          "first_frame": meta["onset"], "values": len(curve), "marker_x": x,
                          "marker_colors": {k: list(v) for k, v in MARKER_COLORS.items()}})

    index = {"store": str(store.path), "format_version": version, "clip": meta, "scale": scale,
             "files": files, "skipped": skipped}
    atomic_write_bytes(out / "index.json", (json.dumps(index, indent=2) + "\n").encode())
    written.append(out / "index.json")
    return written


# --------------------------------------------------------------------------- bar chart
def plot_bars(
    values: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    *,
    size: tuple[int, int] = (360, 240),
    vmax: float | None = None,
    color: tuple[int, int, int] = (40, 90, 200),
) -> tuple[np.ndarray, list[list[int]]]:
    """Vertical bar chart of a few non-negative values (fusion weights, probabilities).

    Each bar is labelled below with its label and above with its value (3 significant digits);
    the y axis runs from 0 to ``vmax``.

    Args:
        values: ``(K,)`` values, each ``>= 0``.
        labels: ``K`` ASCII labels.
        size: ``(width, height)`` of the image, pixels.
        vmax: value at the top of the axis (default: the largest value, or 1 when all are 0).
        color: RGB of the bars.

    Returns:
        ``(image, boxes)``: the ``(height, width, 3)`` uint8 RGB chart and each bar's
        ``[x, y, width, height]`` in pixels (height 0 for a value of 0).

    Example:
        >>> image, boxes = plot_bars([0.2, 0.5, 0.3], ["u", "v", "M"])
        >>> image.shape, boxes[1][3] > boxes[0][3]
        ((240, 360, 3), True)
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(labels) != values.size or values.size == 0:
        raise ValueError(f"plot_bars: {values.size} values but {len(labels)} labels (need as many, at least one)")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"plot_bars: values must be finite and >= 0, got {values.tolist()}")
    width, height = size
    top = float(values.max()) if vmax is None else float(vmax)
    top = top if top > 0 else 1.0
    x0, x1, y0, y1 = 48, width - 12, 2 * _LINE, height - 2 * _LINE
    if x1 - x0 < 4 * values.size or y1 - y0 < 10:
        raise ValueError(f"plot_bars: size {size} leaves no room for {values.size} bars")
    image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    cv2.line(image, (x0, y1), (x1, y1), AXIS_COLOR, 1)
    cv2.line(image, (x0, y0), (x0, y1), AXIS_COLOR, 1)
    for value in (0.0, top):
        y = y1 - int(round(value / top * (y1 - y0)))
        cv2.line(image, (x0 - 4, y), (x0, y), AXIS_COLOR, 1)
        _put_text(image, _fmt(value), max(x0 - 6 - _text_width(_fmt(value)), 2), y + 4)
    slot = (x1 - x0) / values.size
    boxes = []
    for i, (value, label) in enumerate(zip(values.tolist(), labels, strict=True)):
        bar = max(int(slot * 0.6), 2)
        bx = int(round(x0 + i * slot + (slot - bar) / 2))
        bh = int(round(min(value, top) / top * (y1 - y0)))
        if bh:
            cv2.rectangle(image, (bx, y1 - bh), (bx + bar - 1, y1 - 1), color, -1)
        boxes.append([bx, y1 - bh, bar, bh])
        centre = bx + bar // 2
        _put_text(image, _fmt(value), centre - _text_width(_fmt(value)) // 2, y1 - bh - 4)
        _put_text(image, label, centre - _text_width(label) // 2, y1 + _LINE + 2)
    return image, boxes
