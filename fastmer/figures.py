"""fastmer's figures: one matplotlib style, the generic figures, and saving them as PNG, PDF or SVG.

Every figure of fastmer comes from here: training curves and confusion matrices
(:mod:`fastmer.train.plots`, the HTML report), per-dataset and stream-weight bars, the
motion-intensity curve and the image panels of ``fastmer viz`` (flows, magnitude and strain
maps, dynamic images, MESTI, key frames, Grad-CAM overlays, :func:`image_grid_figure`).

Headless and free of global state: figures are :class:`matplotlib.figure.Figure` objects
drawn on an Agg canvas, never ``pyplot`` (no GUI backend, no figure registry, nothing to
close). The style (:data:`STYLE`) is applied with :func:`matplotlib.rc_context` only while
a figure is built or saved. matplotlib is imported inside the functions, so importing this
module costs nothing (``fastmer --help`` and the CLI modules stay free of it), and neither
this module nor matplotlib imports torch.

Example:
    >>> fig = confusion_figure([[5, 1], [2, 4]], ["negative", "positive"])
    >>> figure_bytes(fig, "png")[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastmer.choices import FIGURE_FORMATS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BAND_FOLDS",
    "DPI",
    "FIGURE_FORMATS",
    "MARKER_COLORS",
    "PALETTE",
    "STYLE",
    "Panel",
    "bars_figure",
    "check_format",
    "confusion_figure",
    "curves_figure",
    "figure_bytes",
    "flow_wheel",
    "flow_wheel_panel",
    "image_grid_figure",
    "motion_curve_figure",
    "new_figure",
    "panel_boxes",
    "save_figure",
]

DPI = 150
"""Resolution of PNG figures (dots per inch); PDF and SVG are vector, with images embedded as they are."""

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
"""Series colours: matplotlib's ``tab10`` (distinguishable with the common colour-vision deficiencies)."""

MARKER_COLORS: dict[str, str] = {"onset": "#009E73", "apex": "#D55E00", "offset": "#0072B2"}
"""Colours of the onset, apex and offset markers (Okabe–Ito green, vermillion, blue: colour-blind safe)."""

BAND_FOLDS = 10
""":func:`curves_figure` draws one line per fold up to this many folds, a mean ± std band above."""

STYLE: dict[str, Any] = {
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "figure.titlesize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.0,
    "legend.frameon": False,
    "image.cmap": "viridis",
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.dpi": "figure",
    # Fonts embedded as TrueType (editable in PDF tools, accepted by publishers), SVG ids stable.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "fastmer",
}
"""The one style of fastmer's figures (matplotlib rc parameters), applied while a figure is built and saved."""

# Files differ only when the figure does: no creation dates in PDF and SVG.
_METADATA: dict[str, dict[str, Any]] = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


# --------------------------------------------------------------------------- style, files
@contextmanager
def _styled() -> Iterator[None]:
    import matplotlib  # noqa: PLC0415

    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float, *, dpi: float = DPI, layout: str | None = "constrained") -> Figure:
    """An empty figure of ``width × height`` inches on an Agg canvas (no pyplot, no GUI).

    Build its content inside ``with rc_context(STYLE)`` (as every figure function here does)
    for the fastmer look.

    Example:
        >>> new_figure(3, 2).get_size_inches().tolist()
        [3.0, 2.0]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    with _styled():
        fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def check_format(format: str) -> str:  # noqa: A002 (the option's name)
    """``format`` lower-cased if it is one of :data:`FIGURE_FORMATS`, else a ValueError naming it."""
    fmt = str(format).lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"unknown figure format {format!r}: expected one of {', '.join(FIGURE_FORMATS)}")
    return fmt


def figure_bytes(fig: Figure, format: str = "png") -> bytes:  # noqa: A002
    """The file content of ``fig`` as ``format`` (``"png"`` at the figure's dpi, ``"pdf"``, ``"svg"``).

    Example:
        >>> figure_bytes(new_figure(1, 1), "pdf")[:4]
        b'%PDF'
    """
    fmt = check_format(format)
    buffer = io.BytesIO()
    with _styled():
        fig.savefig(buffer, format=fmt, dpi=fig.dpi, metadata=_METADATA[fmt])
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
    """Write ``fig`` to ``path`` atomically (a temporary file in the folder, then renamed).

    The format is ``format`` when given (``path``'s suffix is then replaced by it when it
    differs), else ``path``'s suffix, else PNG (``.png`` appended).

    Returns:
        The path written.

    Raises:
        ValueError: the format (or the suffix) is not one of :data:`FIGURE_FORMATS`.

    Example:
        >>> save_figure(fig, "out/confusion", "svg")  # doctest: +SKIP
        PosixPath('out/confusion.svg')
    """
    path = Path(path)
    suffix = path.suffix[1:].lower()
    if format is None:
        if not suffix:
            fmt, path = "png", path.with_name(path.name + ".png")
        else:
            try:
                fmt = check_format(suffix)
            except ValueError:
                raise ValueError(f"unknown figure format {suffix!r} (the suffix of {path}): give a path ending in "
                                 f"{', '.join('.' + f for f in FIGURE_FORMATS)} or a format") from None
    else:
        fmt = check_format(format)
        if suffix != fmt:
            path = path.with_name(path.name + "." + fmt) if not suffix else path.with_suffix("." + fmt)
    data = figure_bytes(fig, fmt)
    # Lazily: fastmer.store's package imports its reader (torch); only a write needs it.
    from fastmer.atomic import atomic_write_bytes  # noqa: PLC0415

    atomic_write_bytes(path, data)
    return path


def _finite(values: Any) -> np.ndarray:
    """Float64 copy with non-finite values as NaN (matplotlib leaves a gap there)."""
    array = np.array(values, dtype=np.float64).reshape(-1)
    array[~np.isfinite(array)] = np.nan
    return array


def _fmt(value: float) -> str:
    return f"{value:.3g}" if np.isfinite(value) else "n/a"


# --------------------------------------------------------------------------- confusion matrix
def confusion_figure(cm: Any, classes: Sequence[str], title: str = "") -> Figure:
    """A confusion matrix: rows true, columns predicted, each cell its count.

    The colour is the count over its row's total (the share of the true class; recall on
    the diagonal), so classes of different sizes compare; a row without clips is 0.

    Args:
        cm: ``(K, K)`` counts, ``cm[i, j]`` clips of true class ``i`` predicted ``j``.
        classes: the ``K`` class names (tick labels, rotated when long).
        title: the axes' title (default: the number of clips).

    Raises:
        ValueError: ``cm`` is not ``(len(classes), len(classes))``.

    Example:
        >>> fig = confusion_figure([[3, 1], [0, 4]], ["a", "b"])
        >>> [t.get_text() for t in fig.axes[0].texts]
        ['3', '1', '0', '4']
    """
    counts = np.asarray(cm, dtype=np.float64)
    n = len(classes)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape} for {n} classes (need ({n}, {n}))")
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    long_names = n > 6 or max((len(str(c)) for c in classes), default=0) > 6
    side = 0.45 * n + 1.6
    fig = new_figure(max(3.4, side + 1.2), max(2.8, side + (0.6 if long_names else 0.2)))
    with _styled():
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        size = 8.0 if n <= 8 else max(4.5, 8.0 - 0.25 * (n - 8))
        for i in range(n):
            for j in range(n):
                value = counts[i, j]
                text = str(int(value)) if float(value).is_integer() else f"{value:.3g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=size,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(n), [str(c) for c in classes], rotation=45 if long_names else 0,
                      ha="right" if long_names else "center", rotation_mode="anchor")
        ax.set_yticks(range(n), [str(c) for c in classes])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        ax.set_title(title or f"confusion matrix ({int(counts.sum())} clips)")
        fig.colorbar(image, ax=ax, shrink=0.85, label="share of the true class (recall on the diagonal)")
    return fig


# --------------------------------------------------------------------------- training curves
def _fold_names(histories: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(h.get("fold") or f"fold {k + 1}") for k, h in enumerate(histories)]


def _stack(histories: Sequence[Mapping[str, Any]], key: str, epochs: int) -> np.ndarray:
    """``(folds, epochs)`` of ``key``'s values, NaN where a fold has none (stopped early, non-finite)."""
    table = np.full((len(histories), epochs), np.nan)
    for k, history in enumerate(histories):
        values = _finite(history.get(key) or [])
        table[k, : values.size] = values
    return table


def _mean_std(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation over folds per epoch, of the folds with a value; NaN where none."""
    present = np.isfinite(table)
    count = present.sum(axis=0)
    filled = np.where(present, table, 0.0)
    mean = np.divide(filled.sum(axis=0), count, out=np.full(count.shape, np.nan), where=count > 0)
    square = np.where(present, (table - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(square, count, out=np.full(count.shape, np.nan), where=count > 0))
    return mean, std


def curves_figure(histories: Sequence[Mapping[str, Any]], *, band: bool | None = None) -> Figure:
    """Loss per epoch of every fold: training solid, validation dashed, the kept epoch marked.

    Up to :data:`BAND_FOLDS` folds (or ``band=False``): a line per fold in its own colour,
    the legend naming the folds. More folds (or ``band=True``): the mean over folds per
    epoch with a ± 1 standard-deviation band (population std of the folds that reached that
    epoch), training and validation, and the median kept epoch. Non-finite losses are gaps.

    Args:
        histories: one dict per fold: ``"train_loss"`` (list, one float per epoch),
            optionally ``"val_loss"`` (list), ``"best_epoch"`` (1-based, 0 = none) and
            ``"fold"`` (its name; default ``"fold k"``, ``k`` from 1).
        band: force the band (True) or the lines (False); None chooses by the number of folds.

    Example:
        >>> fig = curves_figure([{"fold": "sub01", "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.9],
        ...                       "best_epoch": 2}])
        >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        ['sub01', 'training', 'validation', 'kept epoch']
    """
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    fig = new_figure(6.0, 3.4)
    names = _fold_names(histories)
    with _styled():
        ax = fig.add_subplot()
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        epochs = max((len(h.get("train_loss") or []) for h in histories), default=0)
        epochs = max([epochs] + [len(h.get("val_loss") or []) for h in histories])
        if not histories or epochs == 0:
            ax.set_title("loss per epoch")
            ax.text(0.5, 0.5, "no loss curves (no fold trained by epochs)", ha="center", va="center",
                    transform=ax.transAxes)
            return fig
        band = len(histories) > BAND_FOLDS if band is None else band
        x = np.arange(1, epochs + 1)
        has_val = any(h.get("val_loss") for h in histories)
        bests = [int(h.get("best_epoch") or 0) for h in histories]
        if band:
            ax.set_title(f"loss per epoch, mean ± std of {len(histories)} folds")
            for key, color, style, label in (("train_loss", PALETTE[0], "-", "training"),
                                             ("val_loss", PALETTE[1], "--", "validation")):
                if key == "val_loss" and not has_val:
                    continue
                mean, std = _mean_std(_stack(histories, key, epochs))
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, linewidth=0, label=f"{label} ± std")
                ax.plot(x, mean, color=color, linestyle=style, label=f"{label} mean")
            kept = [b for b in bests if b > 0]
            if kept:
                median = float(np.median(kept))
                ax.axvline(median, color="0.3", linestyle=":", linewidth=1.0, label=f"median kept epoch {median:g}")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
            return fig
        ax.set_title(f"loss per epoch, {len(histories)} fold{'s' if len(histories) > 1 else ''}")
        handles = []
        for k, (history, name, best) in enumerate(zip(histories, names, bests, strict=True)):
            color = PALETTE[k % len(PALETTE)]
            train = _finite(history.get("train_loss") or [])
            (line,) = ax.plot(np.arange(1, train.size + 1), train, color=color, label=name)
            handles.append(line)
            val = _finite(history.get("val_loss") or [])
            if val.size:
                ax.plot(np.arange(1, val.size + 1), val, color=color, linestyle="--", linewidth=1.1)
            kept = val if val.size else train
            if 1 <= best <= kept.size and np.isfinite(kept[best - 1]):
                ax.plot([best], [kept[best - 1]], marker="o", markersize=5, linestyle="none", color=color, zorder=3)
        handles.append(Line2D([], [], color="0.35", label="training"))
        if has_val:
            handles.append(Line2D([], [], color="0.35", linestyle="--", linewidth=1.1, label="validation"))
        if any(b > 0 for b in bests):
            handles.append(Line2D([], [], color="0.35", marker="o", markersize=5, linestyle="none", label="kept epoch"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                  ncols=2 if len(handles) > 12 else 1)
    return fig


# --------------------------------------------------------------------------- bars
def bars_figure(names: Sequence[str], values: Sequence[float] | Mapping[str, Sequence[float]], *, title: str = "",
                ylabel: str = "", errors: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                ylim: tuple[float, float] | None = None) -> Figure:
    """Vertical bars, one per name (datasets, streams), each labelled with its value.

    Args:
        names: the ``N`` x tick labels.
        values: ``N`` values, or series name → ``N`` values for grouped bars with a legend
            (e.g. ``{"UF1": [...], "UAR": [...]}``). A non-finite value has no bar and reads ``n/a``.
        title, ylabel: axes title and y label.
        errors: error bars (± this), shaped as ``values`` (a mapping may omit series).
        ylim: the y axis' range (e.g. ``(0, 1)`` for scores and weights).

    Raises:
        ValueError: a series has not ``N`` values.

    Example:
        >>> fig = bars_figure(["casme2", "samm"], {"UF1": [0.7, 0.6], "UAR": [0.72, 0.58]}, ylim=(0, 1))
        >>> len(fig.axes[0].patches)
        4
    """
    names = [str(n) for n in names]
    series = {str(k): list(v) for k, v in values.items()} if isinstance(values, Mapping) else {"": list(values)}
    if errors is None:
        spread: dict[str, list[float]] = {}
    elif isinstance(errors, Mapping):
        spread = {str(k): list(v) for k, v in errors.items()}
    else:
        spread = {next(iter(series)): list(errors)}
    for label, column in [*series.items(), *spread.items()]:
        if len(column) != len(names):
            raise ValueError(f"bars_figure: {len(column)} values{' in ' + repr(label) if label else ''} "
                             f"for {len(names)} names")
    n_series = len(series)
    long_names = max((len(n) for n in names), default=0) > 8
    width = min(9.0, max(3.2, 1.2 + 0.32 * len(names) * max(n_series, 1.5)))
    fig = new_figure(width, 3.0)
    with _styled():
        ax = fig.add_subplot()
        x = np.arange(len(names))
        slot = 0.8 / n_series
        for s, (label, column) in enumerate(series.items()):
            heights = _finite(column)
            err = _finite(spread[label]) if label in spread else None
            bars = ax.bar(x + (s - (n_series - 1) / 2) * slot, np.nan_to_num(heights, nan=0.0), slot * 0.92,
                          yerr=None if err is None else np.nan_to_num(err, nan=0.0), capsize=2,
                          color=PALETTE[s % len(PALETTE)], label=label or None, error_kw={"linewidth": 0.8})
            ax.bar_label(bars, labels=[_fmt(v) for v in heights], padding=2, fontsize=6.5)
        ax.set_xticks(x, names, rotation=30 if long_names else 0, ha="right" if long_names else "center",
                      rotation_mode="anchor")
        ax.grid(True, axis="y")
        if ylim is not None:
            ax.set_ylim(*ylim)
        else:
            ax.margins(y=0.12)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if n_series > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


# --------------------------------------------------------------------------- motion curve
def motion_curve_figure(values: Sequence[float] | np.ndarray, *, first_frame: int, markers: Mapping[str, int],
                        title: str = "", figsize: tuple[float, float] = (6.4, 3.2)) -> Figure:
    """The motion-intensity curve of a clip, one point per frame, with its key frames as vertical lines.

    Args:
        values: ``(T,)`` one value per frame, the first for frame ``first_frame``; non-finite values are gaps.
        first_frame: the frame number of ``values[0]``.
        markers: key frame name → frame number (``{"onset": 10, "apex": 14, "offset": 20}``),
            each a vertical line in its :data:`MARKER_COLORS` colour (others in :data:`PALETTE`'s),
            named in the legend with its frame. A frame outside the curve widens the x axis.
        title: the axes' title.
        figsize: inches (at :data:`DPI`, 960 × 480 pixels by default).

    Raises:
        ValueError: ``values`` is empty.

    Example:
        >>> fig = motion_curve_figure([0, 1, 3, 1], first_frame=10, markers={"onset": 10, "apex": 12, "offset": 13})
        >>> [line.get_xdata()[0] for line in fig.axes[0].lines[1:]]
        [10, 12, 13]
    """
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    curve = _finite(values)
    if curve.size == 0:
        raise ValueError("motion_curve_figure: the curve is empty")
    frames = int(first_frame) + np.arange(curve.size)
    fig = new_figure(*figsize)
    with _styled():
        ax = fig.add_subplot()
        ax.plot(frames, curve, color="0.15", marker="o", markersize=3, label="motion intensity", zorder=3)
        others = iter(PALETTE)
        for name, frame in markers.items():
            color = MARKER_COLORS.get(name) or next(others)
            ax.axvline(int(frame), color=color, linewidth=1.5, label=f"{name} {int(frame)}", zorder=2)
        lo = min([int(frames[0]), *map(int, markers.values())])
        hi = max([int(frames[-1]), *map(int, markers.values())])
        margin = 0.5 if hi > lo else 1.0
        ax.set_xlim(lo - margin, hi + margin)
        if not np.isfinite(curve).any():
            ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("frame")
        ax.set_ylabel("motion intensity")
        ax.grid(True)
        if title:
            ax.set_title(title)
        ax.legend(loc="best")
    return fig


# --------------------------------------------------------------------------- image panels
@dataclass
class Panel:
    """One image of an :func:`image_grid_figure`, with its caption and what it shows.

    How ``image`` is shown:

    * uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB: as pixels, unchanged;
    * any other real ``(H, W)`` map: through the colour map ``cmap`` (default ``"gray"``)
      from ``vmin`` to ``vmax`` (default the finite minimum and maximum; non-finite values
      are left white), with a colour bar when ``colorbar``.

    A panel is drawn at an integer zoom (each image pixel a square of figure pixels, see
    :func:`image_grid_figure`), so the PNG shows the array's pixels exactly, unless ``fit``
    (keys, diagrams), which resamples it to its row's height.

    Attributes:
        name: unique within its figure, e.g. ``"onset->apex/flow"`` (the axes' label).
        image: the array (see above).
        caption: lines above the image.
        info: what the panel shows (source column, channels, value range), for the caller's index.
        cmap, vmin, vmax: colour map of a real-valued map and its range.
        colorbar: draw a colour bar (ticks at ``vmin``, the middle and ``vmax``) right of the image.
        colorbar_label: the colour bar's label.
        extent: ``(left, right, bottom, top)`` data coordinates of the image's edges (matplotlib's).
        axis_labels: ``(x label, y label)``: draw the axes with ticks at the extent's ends and
            middle (keys); None: no axes.
        fit: scale to the row's height (resampled) instead of the integer zoom.
    """

    name: str
    image: np.ndarray
    caption: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    cmap: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    colorbar: bool = False
    colorbar_label: str = ""
    extent: tuple[float, float, float, float] | None = None
    axis_labels: tuple[str, str] | None = None
    fit: bool = False


def flow_wheel(size: int) -> np.ndarray:
    """The Middlebury flow colour wheel, ``(size, size, 3)`` uint8 RGB, white outside the unit disk.

    Pixel ``(i, j)`` shows the colour of the flow ``(u, v)`` at its centre, ``u`` and ``v``
    running from -1 (left, top) to 1 (right, bottom) in units of the largest magnitude
    (:func:`fastmer.motion.viz.flow_to_color` with ``max_flow=1``): white at the centre
    (no motion), red to the right (+u), saturated on the circle.

    Example:
        >>> flow_wheel(64)[32, 63].tolist()[0]
        255
    """
    from fastmer.motion.viz import flow_to_color  # noqa: PLC0415

    centres = (np.arange(size) + 0.5) / size * 2 - 1
    u, v = np.meshgrid(centres, centres)
    wheel = flow_to_color(np.stack([u, v], axis=-1), max_flow=1.0)
    wheel[np.hypot(u, v) > 1] = 255
    return wheel


def flow_wheel_panel(name: str = "key", size: int = 256, caption: Sequence[str] = ("colour key",)) -> Panel:
    """A :class:`Panel` of the flow colour wheel (:func:`flow_wheel`) with u and v axes, for flow figures."""
    return Panel(name, flow_wheel(size), tuple(caption), {"kind": "middlebury colour wheel", "range": [-1.0, 1.0]},
                 extent=(-1.0, 1.0, 1.0, -1.0), axis_labels=("u / max flow", "v / max flow (down)"), fit=True)


# Pixels of the grid's layout, at the figure's dpi.
_PAD, _HGAP, _VGAP, _TITLE_GAP = 10, 18, 14, 6
_CAPTION_PT, _TICK_PT, _LABEL_PT, _TITLE_PT = 7.5, 7.0, 7.5, 9.0
_BAR_GAP, _BAR_WIDTH = 6, 10


def _pixels(image: np.ndarray) -> bool:
    return image.dtype == np.uint8 and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)))


def _range(panel: Panel) -> tuple[float, float]:
    """The panel's colour range: its vmin/vmax, else the finite extremes; a constant map gets ``lo..lo + 1``."""
    values = np.asarray(panel.image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    lo = float(panel.vmin) if panel.vmin is not None else float(finite.min()) if finite.size else 0.0
    hi = float(panel.vmax) if panel.vmax is not None else float(finite.max()) if finite.size else 1.0
    return lo, (hi if hi > lo else lo + 1.0)


def _ticks(lo: float, hi: float) -> list[float]:
    return [lo, (lo + hi) / 2, hi]


@dataclass
class _Cell:
    panel: Panel
    width: int = 0  # image, pixels
    height: int = 0
    left: int = 0  # margins of the image inside the cell (axes ticks and labels, colour bar, a wide caption)
    right: int = 0
    bottom: int = 0
    caption: int = 0  # caption height
    cell: int = 0  # the cell's width: left + width + right


def image_grid_figure(rows: Sequence[Sequence[Panel]], title: str | None = None, *, scale: int = 1,
                      min_size: int = 160, dpi: float = DPI) -> Figure:
    """A grid of image panels, row by row, each under its caption (see :class:`Panel`).

    The layout is in whole pixels at ``dpi``: a panel's image is shown at zoom
    ``scale * ceil(min_size / longest side)`` (at least 1), nearest neighbour, on axes
    exactly that many pixels wide and high, so the PNG holds each array pixel as a square
    of zoom × zoom pixels; :func:`panel_boxes` gives where. Captions sit above the images
    (rows aligned), colour bars to their right; the title is at the top left.

    Args:
        rows: panels, row by row (rows may differ in length).
        title: the figure's title.
        scale: extra integer zoom of every (non-``fit``) panel.
        min_size: the smallest displayed side of a panel, pixels (before ``scale``).
        dpi: the figure's resolution.

    Example:
        >>> fig = image_grid_figure([[Panel("a", np.zeros((8, 8), np.uint8), ("zeros",))]])
        >>> panel_boxes(fig)[0]["zoom"]
        20
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.font_manager import FontProperties  # noqa: PLC0415

    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    measure = FigureCanvasAgg(Figure(dpi=dpi)).get_renderer()

    def text(s: str, points: float) -> tuple[int, int]:
        w, h, _ = measure.get_text_width_height_descent(s, FontProperties(size=points), ismath=False)
        return math.ceil(w), math.ceil(h)

    line = math.ceil(1.25 * text("Ag", _CAPTION_PT)[1])
    tick_length = math.ceil(3.5 * dpi / 72) + math.ceil(3.5 * dpi / 72)  # matplotlib's tick length + label pad
    label_pad = math.ceil(4.0 * dpi / 72)
    grid: list[list[_Cell]] = []
    for row in rows:
        cells = []
        for panel in row:
            image = np.asarray(panel.image)
            if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"panel {panel.name!r}: expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
            h, w = image.shape[:2]
            zoom = scale * max(1, math.ceil(min_size / max(h, w)))
            cell = _Cell(panel, w * zoom, h * zoom)
            if panel.colorbar:
                lo, hi = _range(panel)
                labels = max(text(_fmt(t), _TICK_PT)[0] for t in _ticks(lo, hi))
                cell.right = _BAR_GAP + _BAR_WIDTH + tick_length + labels + 2
                if panel.colorbar_label:
                    cell.right += label_pad + text("Ag", _LABEL_PT)[1]
            if panel.axis_labels is not None:
                ticks = panel.extent or (0, w, h, 0)
                width = max(text(_fmt(t), _TICK_PT)[0] for t in _ticks(ticks[2], ticks[3]))
                cell.left = tick_length + width + label_pad + text("Ag", _LABEL_PT)[1]
                cell.bottom = tick_length + text("0", _TICK_PT)[1] + label_pad + text("Ag", _LABEL_PT)[1]
                cell.right = max(cell.right, text(_fmt(ticks[1]), _TICK_PT)[0] // 2 + 2)
            cell.caption = len(panel.caption) * line + (4 if panel.caption else 0)
            cells.append(cell)
        # Keys (fit) take the height of their row's data panels.
        fixed = [c.height for c in cells if not c.panel.fit]
        height = max(fixed) if fixed else min_size * scale
        for c in cells:
            if c.panel.fit:
                h, w = np.asarray(c.panel.image).shape[:2]
                c.width, c.height = max(1, round(w * height / h)), height
            # The caption is centred on the image: room for half of it each side of the image's centre.
            half = math.ceil(max((text(s, _CAPTION_PT)[0] for s in c.panel.caption), default=0) / 2)
            c.left, c.right = max(c.left, half - c.width // 2), max(c.right, half - (c.width - c.width // 2))
            c.cell = c.left + c.width + c.right
        grid.append(cells)

    title_height = text(title, _TITLE_PT)[1] + _TITLE_GAP if title else 0
    width = max([2 * _PAD + (text(title, _TITLE_PT)[0] if title else 0)]
                + [2 * _PAD + sum(c.cell for c in cells) + _HGAP * (len(cells) - 1) for cells in grid if cells])
    places: list[tuple[_Cell, int, int]] = []  # cell, image x, image y (pixels from the top left)
    y = _PAD + title_height
    for cells in grid:
        caption = max((c.caption for c in cells), default=0)
        x = _PAD
        for c in cells:
            places.append((c, x + c.left, y + caption))
            x += c.cell + _HGAP
        y += caption + max((c.height + c.bottom for c in cells), default=0) + _VGAP
    height = y - _VGAP + _PAD

    # A hair over the pixel count: Agg's canvas takes int(inches * dpi), which must not round down.
    fig = Figure(figsize=((width + 1e-3) / dpi, (height + 1e-3) / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    with _styled():
        if title:
            fig.suptitle(title, x=_PAD / width, y=1 - _PAD / height, ha="left", va="top", fontsize=_TITLE_PT)
        for c, x, y in places:
            _draw_panel(fig, c, x, y, width, height)
    return fig


def _draw_panel(fig: Figure, c: _Cell, x: int, y: int, width: int, height: int) -> None:
    panel = c.panel

    def rect(left: float, top: float, w: float, h: float) -> tuple[float, float, float, float]:
        return left / width, 1 - (top + h) / height, w / width, h / height

    ax: Axes = fig.add_axes(rect(x, y, c.width, c.height), label=panel.name)
    image = np.asarray(panel.image)
    # "none": Agg shows each array pixel as a zoom x zoom square (exact); PDF and SVG embed the array as it is.
    options: dict[str, Any] = {"aspect": "auto", "extent": panel.extent, "interpolation_stage": "rgba",
                               "interpolation": "antialiased" if panel.fit else "none"}
    if _pixels(image):
        shown = ax.imshow(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image, **options)
    else:
        lo, hi = _range(panel)
        values = np.ma.masked_invalid(np.asarray(image, dtype=np.float64))
        shown = ax.imshow(values, cmap=panel.cmap or "gray", vmin=lo, vmax=hi, **options)
    if panel.caption:
        ax.set_title("\n".join(panel.caption), fontsize=_CAPTION_PT, pad=4 * 72 / fig.dpi)
    if panel.axis_labels is None:
        ax.set_axis_off()
    else:
        left, right, bottom, top = panel.extent or (0, image.shape[1], image.shape[0], 0)
        ax.set_xticks(_ticks(left, right), [_fmt(t) for t in _ticks(left, right)])
        ax.set_yticks(_ticks(bottom, top), [_fmt(t) for t in _ticks(bottom, top)])
        ax.set_xlabel(panel.axis_labels[0], fontsize=_LABEL_PT)
        ax.set_ylabel(panel.axis_labels[1], fontsize=_LABEL_PT)
        ax.spines[:].set_visible(True)
    if panel.colorbar:
        cax = fig.add_axes(rect(x + c.width + _BAR_GAP, y, _BAR_WIDTH, c.height), label=f"{panel.name} colour bar")
        bar = fig.colorbar(shown, cax=cax, ticks=_ticks(*_range(panel)), format=_colorbar_format)
        if panel.colorbar_label:
            bar.set_label(panel.colorbar_label, fontsize=_LABEL_PT)


def _colorbar_format(value: float, _position: int) -> str:
    return _fmt(value)


def panel_boxes(fig: Figure) -> list[dict[str, Any]]:
    """Where each panel of an :func:`image_grid_figure` is: its ``name``, ``box`` ``[x, y, width, height]``
    in pixels of the PNG (from the top left; for PDF/SVG, in units of ``1 / dpi`` inch), and
    ``zoom`` (figure pixels per image pixel: an integer unless the panel is ``fit``).

    Example:
        >>> fig = image_grid_figure([[Panel("a", np.zeros((4, 6), np.uint8))]], min_size=12)
        >>> panel_boxes(fig)
        [{'name': 'a', 'box': [10, 10, 12, 8], 'zoom': 2}]
    """
    width, height = (int(v) for v in fig.bbox.size)
    boxes = []
    for ax in fig.axes:
        if not ax.images:  # colour bars
            continue
        x0, y0, w, h = ax.get_position().bounds
        box = [round(x0 * width), round((1 - y0 - h) * height), round(w * width), round(h * height)]
        columns = ax.images[0].get_array().shape[1]
        zoom = box[2] / columns
        boxes.append({"name": ax.get_label(), "box": box, "zoom": int(zoom) if zoom.is_integer() else round(zoom, 4)})
    return boxes
