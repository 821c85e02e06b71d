"""fastmer.figures: each figure shows its data (read back from the artists and the PNG), files are
written atomically in the asked format, and no figure of fastmer is drawn with OpenCV."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb

import fastmer
from fastmer.figures import (
    FIGURE_FORMATS,
    MARKER_COLORS,
    Panel,
    bars_figure,
    confusion_figure,
    curves_figure,
    figure_bytes,
    flow_wheel,
    flow_wheel_panel,
    image_grid_figure,
    motion_curve_figure,
    panel_boxes,
    save_figure,
)
from fastmer.motion.viz import flow_to_color
from fastmer.train.plots import write_run_figures

MAGIC = {"png": (b"\x89PNG",), "pdf": (b"%PDF",), "svg": (b"<?xml", b"<svg")}


def rgb_of(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------- confusion matrix
def test_confusion_figure_shows_counts_and_row_shares():
    cm = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 0]])  # the last class has no clips
    classes = ["negative", "positive", "surprise"]
    fig = confusion_figure(cm, classes, title="run A")
    ax, bar = fig.axes
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells == {(i, j): str(cm[i, j]) for i in range(3) for j in range(3)}
    expected = np.array([[5 / 6, 1 / 6, 0], [0.2, 0.6, 0.2], [0, 0, 0]])
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert "share of the true class" in bar.get_ylabel()
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "run A")
    assert [t.get_text() for t in ax.get_xticklabels()] == classes == [t.get_text() for t in ax.get_yticklabels()]
    assert ax.get_xticklabels()[0].get_rotation() == 45  # long names are turned
    # dark cells get white text
    assert {t.get_text(): t.get_color() for t in ax.texts}["5"] == "white"
    with pytest.raises(ValueError, match=r"shape \(3, 3\) for 2 classes"):
        confusion_figure(cm, classes[:2])


# --------------------------------------------------------------------------- training curves
HISTORIES = [
    {"fold": "sub01", "train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.9], "best_epoch": 2},
    {"train_loss": [0.9, float("inf"), 0.3, 0.2], "val_loss": [1.0, 0.7, 0.6, 0.65], "best_epoch": 3},
    {"fold": "sub03", "train_loss": [1.2, 0.7], "val_loss": [], "best_epoch": 0},
]


def test_curves_figure_draws_each_fold():
    fig = curves_figure(HISTORIES)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["sub01", "fold 2", "sub03", "training", "validation", "kept epoch"]
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(solid) == 3 and len(dashed) == 2 and len(markers) == 2
    for line, history in zip(solid, HISTORIES, strict=True):
        want = np.array(history["train_loss"], dtype=float)
        want[~np.isfinite(want)] = np.nan  # a gap, not a spike
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, want.size + 1))
        np.testing.assert_array_equal(line.get_ydata(), want)
    for line, history in zip(dashed, HISTORIES[:2], strict=True):
        np.testing.assert_array_equal(line.get_ydata(), history["val_loss"])
    # each fold in its own colour, its validation and kept epoch in the same one
    assert len({line.get_color() for line in solid}) == 3
    assert [d.get_color() for d in dashed] == [s.get_color() for s in solid[:2]] == [m.get_color() for m in markers]
    # the kept epoch sits on the validation curve
    assert [(m.get_xdata()[0], m.get_ydata()[0]) for m in markers] == [(2, 0.8), (3, 0.6)]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "loss")
    assert ax.xaxis.get_gridlines()[0].get_visible()


def _ragged(histories, key):
    epochs = max(len(h[key]) for h in histories)
    table = np.full((len(histories), epochs), np.nan)
    for k, h in enumerate(histories):
        table[k, : len(h[key])] = h[key]
    return table


def test_curves_figure_band_is_mean_plus_minus_std():
    rng = np.random.default_rng(0)
    histories = [{"train_loss": list(1 + rng.random(8 - k % 3)), "val_loss": list(2 + rng.random(8 - k % 3)),
                  "best_epoch": 3 + k % 2} for k in range(12)]
    fig = curves_figure(histories)  # more than 10 folds: the band
    ax = fig.axes[0]
    assert len(ax.collections) == 2 and ax.get_legend() is not None
    assert not any(line.get_marker() == "o" for line in ax.lines)
    for band, key in zip(ax.collections, ("train_loss", "val_loss"), strict=True):
        table = _ragged(histories, key)  # folds that stopped early count only where they have a value
        mean, std = np.nanmean(table, axis=0), np.nanstd(table, axis=0)
        vertices = band.get_paths()[0].vertices
        for epoch in range(1, table.shape[1] + 1):
            ys = vertices[np.isclose(vertices[:, 0], epoch), 1]
            assert ys.min() == pytest.approx(mean[epoch - 1] - std[epoch - 1])
            assert ys.max() == pytest.approx(mean[epoch - 1] + std[epoch - 1])
    means = [line for line in ax.lines if "mean" in line.get_label()]
    np.testing.assert_allclose(means[0].get_ydata(), np.nanmean(_ragged(histories, "train_loss"), axis=0))
    (median,) = [line for line in ax.lines if "kept epoch" in line.get_label()]
    assert median.get_xdata()[0] == np.median([h["best_epoch"] for h in histories])
    # forced either way
    assert len(curves_figure(HISTORIES, band=True).axes[0].collections) == 2
    assert len(curves_figure(histories, band=False).axes[0].collections) == 0


def test_curves_figure_without_history():
    ax = curves_figure([]).axes[0]
    assert "no loss curves" in ax.texts[0].get_text()


# --------------------------------------------------------------------------- bars
def test_bars_figure_grouped_and_single():
    names = ["casme2", "samm", "smic"]
    fig = bars_figure(names, {"UF1": [0.7, 0.6, float("nan")], "UAR": [0.72, 0.58, 0.5]},
                      errors={"UAR": [0.05, 0.02, 0.01]}, ylabel="score", ylim=(0, 1), title="per dataset")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.7, 0.6, 0.0, 0.72, 0.58, 0.5]
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert centres[0] < 0 < centres[3] and centres[1] < 1 < centres[4]  # series side by side around each name
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["UF1", "UAR"]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["0.7", "0.6", "n/a", "0.72", "0.58", "0.5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert ax.get_ylim() == (0, 1) and ax.get_ylabel() == "score" and ax.get_title() == "per dataset"
    single = bars_figure(["u", "v", "M"], [0.2, 0.5, 0.3]).axes[0]
    assert [p.get_height() for p in single.patches] == [0.2, 0.5, 0.3] and single.get_legend() is None
    with pytest.raises(ValueError, match="2 values in 'UAR' for 3 names"):
        bars_figure(names, {"UF1": [1, 2, 3], "UAR": [1, 2]})


# --------------------------------------------------------------------------- motion curve
def test_motion_curve_marks_key_frames():
    values = [0.0, 1.0, 4.0, float("nan"), 0.5]
    markers = {"onset": 10, "apex": 12, "offset": 14}
    fig = motion_curve_figure(values, first_frame=10, markers=markers, title="clip")
    ax = fig.axes[0]
    curve = ax.lines[0]
    np.testing.assert_array_equal(curve.get_xdata(), [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(curve.get_ydata(), [0.0, 1.0, 4.0, np.nan, 0.5])
    for line, (name, frame) in zip(ax.lines[1:], markers.items(), strict=True):
        assert list(line.get_xdata()) == [frame, frame]  # vertical: constant x, across the axes
        assert to_rgb(line.get_color()) == to_rgb(MARKER_COLORS[name])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["motion intensity", "onset 10", "apex 12", "offset 14"]
    assert ax.get_xlabel() == "frame"
    # in the PNG, each marker is a column of its colour at the frame's x
    image = rgb_of(figure_bytes(fig, "png"))
    transform = ax.transData
    for name, frame in markers.items():
        color = np.array(to_rgb(MARKER_COLORS[name])) * 255
        near = (np.abs(image.astype(float) - color).max(axis=2) < 40).sum(axis=0)
        assert abs(int(near.argmax()) - transform.transform((frame, 0))[0]) <= 2, name
        assert near.max() > 0.5 * image.shape[0]
    # a key frame outside the curve widens the axis
    wide = motion_curve_figure([1.0, 2.0], first_frame=5, markers={"onset": 3, "apex": 5, "offset": 9}).axes[0]
    assert wide.get_xlim() == (2.5, 9.5)
    with pytest.raises(ValueError, match="empty"):
        motion_curve_figure([], first_frame=0, markers={})


# --------------------------------------------------------------------------- image grids
def test_image_grid_shows_the_arrays_pixels():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    values = rng.random((16, 16)) * 3
    rows = [[Panel("rgb", rgb, ("an RGB", "two lines")), Panel("grey", grey, ("grey",))],
            [Panel("map", values, ("map",), cmap="inferno", vmin=0.0, vmax=3.0, colorbar=True, colorbar_label="px")]]
    fig = image_grid_figure(rows, "title")
    boxes = {b["name"]: b for b in panel_boxes(fig)}
    assert [b["zoom"] for b in boxes.values()] == [6, 4, 10]  # ceil(160 / longest side)
    image = rgb_of(figure_bytes(fig, "png"))
    assert image.shape[:2] == (round(fig.bbox.height), round(fig.bbox.width))

    def shown(name):
        x, y, w, h = boxes[name]["box"]
        return image[y : y + h, x : x + w]

    zoom = boxes["rgb"]["zoom"]
    np.testing.assert_array_equal(shown("rgb"), np.repeat(np.repeat(rgb, zoom, 0), zoom, 1))
    np.testing.assert_array_equal(shown("grey"), np.repeat(np.repeat(np.repeat(grey[..., None], 3, 2), 4, 0), 4, 1))
    inferno = matplotlib.colormaps["inferno"](values / 3.0, bytes=True)[..., :3].astype(int)
    np.testing.assert_allclose(shown("map")[::10, ::10].astype(int), inferno, atol=1)
    # captions and the colour bar
    titles = {ax.get_label(): ax.get_title() for ax in fig.axes if ax.images}
    assert titles == {"rgb": "an RGB\ntwo lines", "grey": "grey", "map": "map"}
    (bar,) = [ax for ax in fig.axes if not ax.images]
    assert bar.get_ylabel() == "px" and bar.get_ylim() == (0.0, 3.0)
    assert fig.get_suptitle() == "title"
    # a caption wider than its panel stays inside the figure and clear of its neighbours
    wide = image_grid_figure([[Panel("a", grey, ("a caption much wider than the panel it names",), colorbar=True),
                               Panel("b", grey, ("another caption wider than its panel",))]])
    wide.draw_without_rendering()
    extents = [ax.title.get_window_extent() for ax in wide.axes if ax.images]
    assert extents[0].x0 >= 0 and extents[0].x1 < extents[1].x0 and extents[1].x1 <= wide.bbox.width
    # scale doubles the zoom
    assert [b["zoom"] for b in panel_boxes(image_grid_figure(rows, scale=2))] == [12, 8, 20]
    with pytest.raises(ValueError, match="expected an"):
        image_grid_figure([[Panel("line", np.zeros(5))]])


def test_flow_wheel_is_the_middlebury_coding():
    wheel = flow_wheel(64)
    assert wheel.shape == (64, 64, 3) and wheel.dtype == np.uint8
    assert wheel[0, 0].tolist() == [255, 255, 255]  # outside the disk
    centres = (np.arange(64) + 0.5) / 32 - 1
    for i, j in ((32, 63), (10, 40), (50, 12)):  # pixel (row, column) -> flow (u, v) at its centre
        flow = np.array([[[centres[j], centres[i]]]])
        np.testing.assert_array_equal(wheel[i, j], flow_to_color(flow, max_flow=1.0)[0, 0])
    assert wheel[32, 63, 0] == 255 and wheel[32, 63, 1:].max() < 40  # +u is red
    panel = flow_wheel_panel()
    fig = image_grid_figure([[Panel("flow", np.zeros((64, 64, 3), np.uint8)), panel]])
    (ax,) = [a for a in fig.axes if a.get_label() == "key"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("u / max flow", "v / max flow (down)")
    assert ax.get_ylim() == (1.0, -1.0)  # v grows downwards, as in images
    assert panel_boxes(fig)[1]["box"][3] == panel_boxes(fig)[0]["box"][3]  # as high as its row


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("fmt", FIGURE_FORMATS)
def test_save_figure_formats(tmp_path, fmt):
    fig = bars_figure(["a", "b"], [1.0, 2.0])
    path = save_figure(fig, tmp_path / f"bars.{fmt}")
    assert path == tmp_path / f"bars.{fmt}"
    assert path.read_bytes().startswith(MAGIC[fmt])
    if fmt == "svg":
        assert b"<svg" in path.read_bytes()[:1000]
    # the format argument wins over the suffix, which follows it
    other = save_figure(fig, tmp_path / "other.png", fmt)
    assert other == tmp_path / f"other.{fmt}" and other.read_bytes().startswith(MAGIC[fmt])
    # reproducible: no dates in the files
    assert figure_bytes(fig, fmt) == figure_bytes(fig, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({f"bars.{fmt}", f"other.{fmt}"})  # no temporary files


def test_save_figure_defaults_and_errors(tmp_path):
    fig = bars_figure(["a"], [1.0])
    assert save_figure(fig, tmp_path / "plain") == tmp_path / "plain.png"
    assert (tmp_path / "plain.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="'jpeg'"):
        save_figure(fig, tmp_path / "x.png", "jpeg")
    with pytest.raises(ValueError, match=r"'gif'.*\.png, \.pdf, \.svg"):
        save_figure(fig, tmp_path / "x.gif")
    with pytest.raises(ValueError, match="'tiff'"):
        figure_bytes(fig, "tiff")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.png"]


def test_write_run_figures_in_svg(tmp_path):
    paths = write_run_figures(tmp_path, np.array([[3, 1], [0, 2]]), ["a", "b"], HISTORIES, title="t", format="svg")
    assert paths == [tmp_path / "confusion.svg", tmp_path / "curves.svg"]
    for path in paths:
        assert path.read_bytes().startswith(MAGIC["svg"])
    assert [p.name for p in write_run_figures(tmp_path, np.eye(2), ["a", "b"], [])] == ["confusion.png", "curves.png"]


# --------------------------------------------------------------------------- the code
def test_no_figure_is_drawn_with_opencv():
    drawing = re.compile(r"putText|getTextSize|cv2\.(line|rectangle|circle|arrowedLine|polylines)\b")
    root = Path(fastmer.__file__).parent
    found = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if drawing.search(line)]
    assert found == []


def test_figures_and_the_cli_import_no_matplotlib_or_torch():
    code = ("import sys, fastmer.figures, fastmer.cli.viz; "
            "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
