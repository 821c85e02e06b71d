"""Figures of one clip of a feature store, for a researcher to inspect (``fastmer viz``).

:func:`render_clip` writes, for one store row, matplotlib figures (:mod:`fastmer.figures`)
as PNG (150 dpi) or, for papers, PDF or SVG (``format``):

* ``keyframes.<fmt>`` — the face crops at onset, apex and offset (the ``keyframes`` column,
  store format v4 and later);
* one figure per flow representation (``flow_onset_apex``, ``flow_phases``, ``cof``,
  ``mm_cof``) — per flow, its Middlebury colour coding (:func:`fastmer.motion.viz.flow_to_color`,
  saturated at the flow's largest magnitude), its magnitude and, where stored, its optical
  strain (``inferno`` colour map from 0 to the map's largest value, with a colour bar), plus
  the colour wheel with its u and v axes (:func:`fastmer.figures.flow_wheel_panel`);
* ``dynamic_images.<fmt>`` — every dynamic-image channel the store has (``dynamic_image``,
  ``dynamic_image_phases``, ``trdi``, ``midi``, ``mesti``), a row per representation, each
  channel in grey from its minimum to its maximum with a colour bar of its values;
* ``motion_curve.<fmt>`` — the motion-intensity curve (the ``motion_curve`` column, one value
  per frame onset..offset) with the onset, apex and offset as vertical lines
  (:func:`fastmer.figures.motion_curve_figure`);
* ``index.json`` — what was drawn and where (below), and what was skipped and why.

Image panels show the stored arrays' pixels exactly: each array pixel is a square of
``zoom`` × ``zoom`` figure pixels (:func:`fastmer.figures.image_grid_figure`), so a panel's
pixels can be read back from the PNG at its ``box``.

``index.json``::

    {"store": ..., "format_version": ..., "clip": {uid, dataset, subject, onset, apex, offset, labels, ...},
     "scale": 1, "format": "png", "dpi": 150,
     "files": [{"file": "flow_phases.png", "kind": "flow", "size": [width, height],
                "panels": [{"name": "onset->apex/flow", "box": [x, y, width, height], "zoom": 3,
                            "source": "flow_phases", "channels": ["u_oa", "v_oa"], "max_flow": 1.7}, ...]},
               {"file": "motion_curve.png", "kind": "motion_curve", "size": [960, 480], "first_frame": 12,
                "values": 9, "markers": {"onset": 12, "apex": 15, "offset": 20},
                "marker_x": {"onset": 101, ...}, "marker_colors": {"onset": "#009E73", ...}}, ...],
     "skipped": [{"name": "cof", "reason": "not in the store"}, ...]}

``size``, ``box`` (from the top left) and ``marker_x`` (the pixel column of each key frame's
line) are pixels of the PNG at ``dpi``; for PDF and SVG, the same numbers in ``1 / dpi`` inch.

A column the store lacks (older stores have no ``keyframes``/``motion_curve``) is skipped
with a warning, not an error. Representations fastmer does not know get one grey panel per
channel. Files are written atomically (temporary name in the folder, then renamed); other
files in the folder are left alone. This module reads one row of the store, never whole
columns; matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from fastmer.figures import DPI, MARKER_COLORS, Panel, check_format
from fastmer.motion.viz import flow_to_color
from fastmer.store.writer import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from fastmer.store import FeatureStore

__all__ = [
    "DYNAMIC_IMAGE_REPRESENTATIONS",
    "FLOW_GROUPS",
    "MARKER_COLORS",
    "Panel",
    "colorize_magnitude",
    "find_clip",
    "render_clip",
    "to_uint8",
    "upscale",
]

FLOW_GROUPS: dict[str, tuple[tuple[str, str, str, str, str | None], ...]] = {
    "flow_onset_apex": (("onset->apex", "u", "v", "magnitude", "strain"),),
    "flow_phases": (("onset->apex", "u_oa", "v_oa", "m_oa", "s_oa"), ("apex->offset", "u_ao", "v_ao", "m_ao", "s_ao")),
    "cof": (("COF", "u_cof", "v_cof", "m_cof", None),),
    "mm_cof": (("MM-COF", "u_mm", "v_mm", "m_cof", None),),
}
"""Flow representation → its flows: ``(label, u channel, v channel, magnitude channel, strain channel or None)``."""

DYNAMIC_IMAGE_REPRESENTATIONS = ("dynamic_image", "dynamic_image_phases", "trdi", "midi", "mesti")
"""Representations drawn together in ``dynamic_images.<fmt>``, one grey panel per channel."""

DYNAMIC_IMAGES_PER_ROW = 4
"""Panels a row of ``dynamic_images.<fmt>`` holds (more when one representation has more channels)."""

KEYFRAMES = "keyframes"
MOTION_CURVE = "motion_curve"
KEYFRAME_NAMES = ("onset", "apex", "offset")


# --------------------------------------------------------------------------- arrays
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
    """Colour map of a non-negative map (flow magnitude, optical strain, a Grad-CAM map) as an array
    (for overlays and video frames; figures map values with matplotlib): ``0`` dark, ``vmax`` bright.

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


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` enlarged ``scale`` times, each pixel repeated (nearest neighbour)."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


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


def _range(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    return [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0]


def _keyframe_panels(store: FeatureStore, row: int, meta: dict[str, Any]) -> list[Panel]:
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
        caption = (f"{label} {meta[label]}",) if meta.get(label) is not None else (label,)
        panels.append(Panel(label, pixels, caption, {"source": KEYFRAMES, "channel": label, "frame": meta.get(label)}))
    return panels


def _flow_panels(name: str, tensor: np.ndarray, channels: tuple[str, ...]) -> list[list[Panel]]:
    from fastmer.figures import flow_wheel_panel  # noqa: PLC0415

    rows = []
    for label, u, v, magnitude, strain in FLOW_GROUPS[name]:
        flow = np.stack([tensor[channels.index(u)], tensor[channels.index(v)]], axis=-1)
        mag = np.hypot(flow[..., 0], flow[..., 1])
        largest = float(mag[np.isfinite(mag)].max()) if np.isfinite(mag).any() else 0.0
        row = [Panel(f"{label}/flow", flow_to_color(flow), (f"{label} flow", f"colour saturates at {_fmt(largest)} px"),
                     {"source": name, "channels": [u, v], "max_flow": largest})]
        for kind, channel in (("magnitude", magnitude), ("strain", strain)):
            if channel is None:
                continue
            values = np.abs(tensor[channels.index(channel)].astype(np.float64))
            top = _range(values)[1]
            row.append(Panel(f"{label}/{kind}", values, (f"{kind} ({channel})",),
                             {"source": name, "channels": [channel], "range": [0.0, top], "colormap": "inferno"},
                             cmap="inferno", vmin=0.0, vmax=top if top > 0 else None, colorbar=True,
                             colorbar_label="px" if kind == "magnitude" else ""))
        rows.append(row)
    rows[0].append(flow_wheel_panel())
    return rows


def _channel_panels(name: str, tensor: np.ndarray, channels: Sequence[str]) -> list[Panel]:
    panels = []
    for i, channel in enumerate(channels):
        values = tensor[i].astype(np.float64)
        panels.append(Panel(f"{name}/{channel}", values, (channel if channel.startswith(name) else f"{name}: {channel}",),
                            {"source": name, "channels": [channel], "range": _range(values), "colormap": "gray"},
                            cmap="gray", colorbar=True))
    return panels


def _marker_columns(fig: Figure, markers: dict[str, int]) -> dict[str, int]:
    """Pixel column of each key frame's line in the figure's PNG."""
    fig.draw_without_rendering()  # the constrained layout places the axes at draw time
    transform = fig.axes[0].transData
    return {name: round(float(transform.transform((frame, 0.0))[0])) for name, frame in markers.items()}


def render_clip(
    store: FeatureStore,
    clip: str | int,
    out_dir: str | Path,
    *,
    scale: int = 1,
    format: str = "png",  # noqa: A002 (the CLI option's name)
    curve_size: tuple[int, int] = (960, 480),
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write the figures of one clip of ``store`` and their ``index.json`` into ``out_dir`` (see the module doc).

    Args:
        store: an opened feature store (:func:`fastmer.store.open`).
        clip: the clip's uid or clip_id (see :func:`find_clip`), or its row number.
        out_dir: folder to write to (created); files of the same names are replaced.
        scale: enlarge image panels by this integer factor (on top of the zoom that makes
            small crops readable; the curve plot keeps ``curve_size``).
        format: ``"png"``, ``"pdf"`` or ``"svg"`` (:data:`fastmer.figures.FIGURE_FORMATS`).
        curve_size: ``(width, height)`` of the motion-curve figure, pixels at 150 dpi.
        log: receives one line per skipped panel (default: stderr).

    Returns:
        The paths written, ``index.json`` last.

    Raises:
        LookupError: ``clip`` matches no row or several (see :func:`find_clip`).
        ValueError: ``scale`` < 1 or an unknown ``format``.

    Example:
        >>> render_clip(fstore.open("store"), "casme2/sub01/EP02_01", "viz", format="svg")  # doctest: +SKIP
        [PosixPath('viz/keyframes.svg'), ..., PosixPath('viz/motion_curve.svg'), PosixPath('viz/index.json')]
    """
    from fastmer.figures import image_grid_figure, motion_curve_figure, panel_boxes, save_figure  # noqa: PLC0415

    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    fmt = check_format(format)
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

    def emit(name: str, kind: str, rows: Sequence[Sequence[Panel]], title: str) -> None:
        fig = image_grid_figure(rows, f"{uid}  {title}", scale=scale)
        info = {p.name: p.info for r in rows for p in r}
        boxes = [{**box, **info[box["name"]]} for box in panel_boxes(fig)]
        written.append(save_figure(fig, out / f"{name}.{fmt}", fmt))
        files.append({"file": written[-1].name, "kind": kind, "size": [int(v) for v in fig.bbox.size],
                      "panels": boxes})

    def skip(name: str, reason: str, warn: bool = True) -> None:
        skipped.append({"name": name, "reason": reason})
        if warn:
            log(f"warning: {uid}: skipped {name}: {reason}")

    def channel_rows(name: str) -> list[list[Panel]] | None:
        tensor = _row_tensor(store, name, row)
        if tensor.ndim != 3:  # one (H, W) map per channel is what a panel shows
            skip(name, f"its clips are {list(tensor.shape)} arrays, not (channels, H, W) maps")
            return None
        return [_channel_panels(name, tensor, store.channels(name))]

    version = store.meta.get("format_version")
    if KEYFRAMES in columns:
        emit("keyframes", "keyframes", [_keyframe_panels(store, row, meta)], "key frames")
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
            if (rows := channel_rows(name)) is not None:
                emit(name, "channels", rows, name)
            continue
        emit(name, "flow", _flow_panels(name, _row_tensor(store, name, row), channels), name)

    dynamic = [n for n in DYNAMIC_IMAGE_REPRESENTATIONS if n in representations]
    if dynamic:
        rows: list[list[Panel]] = [[]]
        for n in dynamic:  # a representation's channels side by side, up to 4 panels a row
            panels = _channel_panels(n, _row_tensor(store, n, row), store.channels(n))
            if rows[-1] and len(rows[-1]) + len(panels) > DYNAMIC_IMAGES_PER_ROW:
                rows.append([])
            rows[-1].extend(panels)
        emit("dynamic_images", "dynamic_images", rows, "dynamic images")
    for name in DYNAMIC_IMAGE_REPRESENTATIONS:
        if name not in representations:
            skip(name, "not in the store", warn=False)

    for name in representations:  # what this module does not know: grey channels
        if name not in FLOW_GROUPS and name not in DYNAMIC_IMAGE_REPRESENTATIONS and (rows := channel_rows(name)):
            emit(name, "channels", rows, name)

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
            markers = {k: int(meta[k]) for k in KEYFRAME_NAMES if meta.get(k) is not None}
            fig = motion_curve_figure(curve, first_frame=meta["onset"], markers=markers,
                                      title=f"{uid}  motion intensity", figsize=(curve_size[0] / DPI, curve_size[1] / DPI))
            columns_x = _marker_columns(fig, markers)
            written.append(save_figure(fig, out / f"motion_curve.{fmt}", fmt))
            files.append({"file": written[-1].name, "kind": "motion_curve", "size": [int(v) for v in fig.bbox.size],
                          "first_frame": meta["onset"], "values": len(curve), "markers": markers,
                          "marker_x": columns_x, "marker_colors": {k: MARKER_COLORS[k] for k in markers}})

    index = {"store": str(store.path), "format_version": version, "clip": meta, "scale": scale, "format": fmt,
             "dpi": DPI, "files": files, "skipped": skipped}
    atomic_write_bytes(out / "index.json", (json.dumps(index, indent=2) + "\n").encode())
    written.append(out / "index.json")
    return written
