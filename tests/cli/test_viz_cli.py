"""fastmer viz: the figures show the store's own pixels, the curve marks the key frames, --format picks
the file type, errors are clear."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import fastmer.store as fstore
from fastmer.cli import main
from fastmer.motion.viz import flow_to_color
from fastmer.viz import MARKER_COLORS, colorize_magnitude, to_uint8


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A real store of 5 rows at 64 px: 2 subjects x 2 clips, plus the first clip again under
    another dataset (so its clip_id names two rows)."""
    from fastmer.config import ExtractConfig
    from fastmer.datasets import load
    from fastmer.datasets.synth import SynthConfig, generate
    from fastmer.extract import extract

    root = tmp_path_factory.mktemp("viz")
    generate(root / "corpus", SynthConfig(subjects=2, clips_per_subject=2, seed=3, min_frames=10, max_frames=12))
    clips = list(load("casme2", root / "corpus"))
    first = clips[0]
    clips.append(replace(first, dataset="copy", subject="copy/" + first.subject.split("/", 1)[1]))
    summary = extract(clips, root / "store", ExtractConfig(face_detector="haar", size=64, workers=2), log=lambda line: None)
    assert summary.n_failed == 0, summary.failures
    return root / "store"


@pytest.fixture(scope="module")
def old_store(store, tmp_path_factory) -> Path:
    """The store without the keyframes and motion_curve columns (as written before store
    format v4) and without cof (a run that did not ask for it)."""
    old = tmp_path_factory.mktemp("viz_old") / "store"
    shutil.copytree(store, old)
    drop = ["keyframes", "motion_curve", "cof"]
    for part in (old / "clips").glob("part-*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns([c for c in drop if c in table.column_names]), part)
    meta = json.loads((old / "store.json").read_text())
    for name in drop:
        meta["representations"].pop(name, None)
    (old / "store.json").write_text(json.dumps(meta))
    return old


def run(*args: str):
    return CliRunner().invoke(main, ["viz", *map(str, args)])


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} does not decode"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def panels(index: dict, filename: str) -> dict[str, dict]:
    entry = next(f for f in index["files"] if f["file"] == filename)
    return {p["name"]: p for p in entry["panels"]}


def crop(image: np.ndarray, panel: dict) -> np.ndarray:
    """The panel's pixels at the array's resolution (each array pixel is a zoom x zoom square in the PNG)."""
    x, y, w, h = panel["box"]
    shown, zoom = image[y:y + h, x:x + w], panel["zoom"]
    small = shown[::zoom, ::zoom]
    np.testing.assert_array_equal(np.repeat(np.repeat(small, zoom, 0), zoom, 1), shown)
    return small


def inferno(values: np.ndarray) -> np.ndarray:
    """matplotlib's inferno of |values| from 0 to their maximum, as uint8 RGB."""
    values = np.abs(values)
    return matplotlib.colormaps["inferno"](values / values.max(), bytes=True)[..., :3]


def test_every_panel_is_written_and_listed(store, tmp_path):
    s = fstore.open(store)
    uid = s.column("uid")[1]
    out = tmp_path / "out"
    result = run(store, "--clip", uid, "-o", out)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    index = json.loads((out / "index.json").read_text())
    expected = ["keyframes.png", "flow_onset_apex.png", "flow_phases.png", "cof.png", "mm_cof.png", "dynamic_images.png",
                "motion_curve.png"]
    assert [f["file"] for f in index["files"]] == expected
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "index.json"])  # no temporary files left
    assert index["format"] == "png" and index["dpi"] == 150
    for entry in index["files"]:
        image = cv2.imread(str(out / entry["file"]))
        assert image is not None and image.shape == (entry["size"][1], entry["size"][0], 3)
        for panel in entry.get("panels", []):
            x, y, w, h = panel["box"]
            assert w >= 64 and h >= 64 and x + w <= image.shape[1] and y + h <= image.shape[0]
    clip = index["clip"]
    row = 1
    for column in ("uid", "dataset", "subject", "clip_id", "onset", "apex", "offset", "apex_source", "labels"):
        assert clip[column] == s.column(column)[row], column
    assert index["skipped"] == [] and index["format_version"] == s.meta["format_version"]
    assert (clip["onset"], clip["apex"], clip["offset"]) == (s.column("onset")[row], s.column("apex")[row],
                                                             s.column("offset")[row])


def test_keyframe_panels_are_the_stored_crops(store, tmp_path):
    s = fstore.open(store)
    assert "keyframes" in s.table.column_names and s.channels("keyframes") == ("onset", "apex", "offset")
    keyframes = s.numpy("keyframes")
    for scale in (1, 3):
        out = tmp_path / f"x{scale}"
        assert run(store, "--clip", s.column("uid")[2], "-o", out, "--scale", scale).exit_code == 0
        image = read_rgb(out / "keyframes.png")
        boxes = panels(json.loads((out / "index.json").read_text()), "keyframes.png")
        assert list(boxes) == ["onset", "apex", "offset"]
        for i, name in enumerate(("onset", "apex", "offset")):
            assert boxes[name]["zoom"] == 3 * scale and boxes[name]["box"][2:] == [192 * scale, 192 * scale]
            pixels = crop(image, boxes[name])
            want = keyframes[2, i]
            assert pixels.shape[:2] == (64, 64)
            for channel in range(3):  # grey crops: R = G = B = the stored pixel
                np.testing.assert_array_equal(pixels[..., channel], want)
        # the three crops differ (the face moves between onset and apex)
        assert not np.array_equal(keyframes[2, 0], keyframes[2, 1])


def test_flow_panels_are_the_stored_flows(store, tmp_path):
    s = fstore.open(store)
    row, out = 0, tmp_path / "out"
    assert run(store, "--clip", s.column("uid")[row], "-o", out).exit_code == 0
    index = json.loads((out / "index.json").read_text())

    channels = s.channels("flow_onset_apex")
    flow = s.numpy("flow_onset_apex")[row]
    image, boxes = read_rgb(out / "flow_onset_apex.png"), panels(index, "flow_onset_apex.png")
    uv = np.stack([flow[channels.index("u")], flow[channels.index("v")]], axis=-1)
    np.testing.assert_array_equal(crop(image, boxes["onset->apex/flow"]), flow_to_color(uv))
    for kind in ("magnitude", "strain"):  # inferno from 0 to the map's largest value, with a colour bar
        values = flow[channels.index(kind)]
        np.testing.assert_allclose(crop(image, boxes[f"onset->apex/{kind}"]).astype(int), inferno(values), atol=1)
        assert boxes[f"onset->apex/{kind}"]["range"] == [0.0, pytest.approx(float(np.abs(values).max()))]
    assert boxes["onset->apex/flow"]["max_flow"] == pytest.approx(float(np.hypot(uv[..., 0], uv[..., 1]).max()))
    # the colour key is white at its corners, near-white at its centre (zero flow), red on the right (+u)
    x, y, w, h = boxes["key"]["box"]
    key = image[y:y + h, x:x + w]
    assert h == boxes["onset->apex/flow"]["box"][3]
    assert key[1, 1].tolist() == [255, 255, 255] and key[h // 2, w // 2].min() >= 230
    assert key[h // 2, w - 3, 0] >= 240 and key[h // 2, w - 3, 1:].max() < 60

    channels = s.channels("flow_phases")
    phases = s.numpy("flow_phases")[row]
    image, boxes = read_rgb(out / "flow_phases.png"), panels(index, "flow_phases.png")
    assert boxes["apex->offset/flow"]["channels"] == ["u_ao", "v_ao"]
    second = np.stack([phases[channels.index("u_ao")], phases[channels.index("v_ao")]], axis=-1)
    np.testing.assert_array_equal(crop(image, boxes["apex->offset/flow"]), flow_to_color(second))
    np.testing.assert_allclose(crop(image, boxes["apex->offset/magnitude"]).astype(int),
                               inferno(phases[channels.index("m_ao")]), atol=1)

    for name, u, v in (("cof", "u_cof", "v_cof"), ("mm_cof", "u_mm", "v_mm")):
        channels, values = s.channels(name), s.numpy(name)[row]
        image = read_rgb(out / f"{name}.png")
        flow_panel = next(p for p in panels(index, f"{name}.png").values() if p["name"].endswith("/flow"))
        uv = np.stack([values[channels.index(u)], values[channels.index(v)]], axis=-1)
        np.testing.assert_array_equal(crop(image, flow_panel), flow_to_color(uv))


def test_dynamic_images_are_minmax_scaled_channels(store, tmp_path):
    s = fstore.open(store)
    out = tmp_path / "out"
    assert run(store, "--clip", s.column("uid")[3], "-o", out).exit_code == 0
    image = read_rgb(out / "dynamic_images.png")
    boxes = panels(json.loads((out / "index.json").read_text()), "dynamic_images.png")
    names = [f"{rep}/{c}" for rep in ("dynamic_image", "dynamic_image_phases", "trdi", "midi", "mesti") for c in s.channels(rep)]
    assert list(boxes) == names
    for name in names:
        rep, channel = name.split("/")
        values = s.numpy(rep)[3, s.channels(rep).index(channel)]
        pixels = crop(image, boxes[name])[..., 0]
        # grey from the channel's minimum to its maximum: matplotlib's 256-level grey, within 2 of to_uint8
        lo, hi = float(values.min()), float(values.max())
        grey = matplotlib.colormaps["gray"]((values.astype(np.float64) - lo) / (hi - lo), bytes=True)[..., 0]
        np.testing.assert_allclose(pixels.astype(int), grey, atol=1)
        assert np.abs(pixels.astype(int) - to_uint8(values)).max() <= 2
        assert pixels.min() == 0 and pixels.max() == 255
        assert boxes[name]["range"] == [pytest.approx(float(values.min())), pytest.approx(float(values.max()))]
    # a representation's channels side by side in one row, at most 4 panels a row when they fit
    tops = {rep: {boxes[n]["box"][1] for n in names if n.startswith(rep + "/")}
            for rep in ("dynamic_image", "dynamic_image_phases", "trdi", "midi", "mesti")}
    assert all(len(t) == 1 for t in tops.values())
    for top in {top for t in tops.values() for top in t}:
        in_row = [rep for rep, t in tops.items() if top in t]
        assert len(in_row) == 1 or sum(len(s.channels(rep)) for rep in in_row) <= 4


def marker_columns(image: np.ndarray, color: str) -> np.ndarray:
    """Pixels near ``color`` (a hex colour) per column."""
    rgb = np.array(matplotlib.colors.to_rgb(color)) * 255
    return (np.abs(image.astype(float) - rgb).max(axis=2) < 40).sum(axis=0)


def test_motion_curve_marks_onset_apex_offset(store, tmp_path):
    s = fstore.open(store)
    curves = s.column("motion_curve")
    for row in range(3):
        onset, apex, offset = (s.column(c)[row] for c in ("onset", "apex", "offset"))
        assert len(curves[row]) == offset - onset + 1
        out = tmp_path / f"row{row}"
        assert run(store, "--clip", s.column("uid")[row], "-o", out).exit_code == 0
        image = read_rgb(out / "motion_curve.png")
        entry = next(f for f in json.loads((out / "index.json").read_text())["files"] if f["file"] == "motion_curve.png")
        assert image.shape == (entry["size"][1], entry["size"][0], 3) == (480, 960, 3)
        assert entry["markers"] == {"onset": onset, "apex": apex, "offset": offset}
        assert entry["marker_colors"] == MARKER_COLORS
        x = {}
        for name, color in MARKER_COLORS.items():
            counts = marker_columns(image, color)
            x[name] = int(counts.argmax())
            assert counts[x[name]] > 0.5 * image.shape[0], name  # a line across the plot, not just a legend swatch
            assert abs(x[name] - entry["marker_x"][name]) <= 1
        assert x["onset"] < x["apex"] <= x["offset"]
        # the apex is where it falls between onset and offset, to a pixel or two
        fraction = (apex - onset) / (offset - onset)
        assert abs(x["onset"] + fraction * (x["offset"] - x["onset"]) - x["apex"]) <= 2


def test_format_svg_writes_svg_figures(store, tmp_path):
    s = fstore.open(store)
    out = tmp_path / "svg"
    result = run(store, "--clip", s.column("uid")[0], "-o", out, "--format", "svg")
    assert result.exit_code == 0, result.output
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "svg"
    names = [f["file"] for f in index["files"]]
    assert names == ["keyframes.svg", "flow_onset_apex.svg", "flow_phases.svg", "cof.svg", "mm_cof.svg",
                     "dynamic_images.svg", "motion_curve.svg"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "index.json"])
    for name in names:
        head = (out / name).read_bytes()[:2000]
        assert head.startswith(b"<?xml") and b"<svg" in head
    result = run(store, "--clip", s.column("uid")[0], "-o", out, "--format", "jpeg")
    assert result.exit_code == 2 and "--format" in result.output


def test_to_uint8_and_colorize():
    assert to_uint8(np.array([[np.nan, 0.0], [1.0, 2.0]])).tolist() == [[0, 0], [128, 255]]
    assert to_uint8(np.full((2, 2), 7.0)).tolist() == [[0, 0], [0, 0]]
    ramp = colorize_magnitude(np.array([[0.0, 1.0, 2.0]]))
    inferno = cv2.cvtColor(cv2.applyColorMap(np.array([[0, 128, 255]], np.uint8), cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(ramp, inferno)


def test_clip_selected_by_clip_id(store, tmp_path):
    s = fstore.open(store)
    uid, clip_id = s.column("uid")[1], s.column("clip_id")[1]
    assert s.column("clip_id").count(clip_id) == 1
    result = run(store, "--clip", clip_id, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "index.json").read_text())["clip"]["uid"] == uid


def test_ambiguous_clip_id_lists_the_uids(store, tmp_path):
    s = fstore.open(store)
    clip_id = s.column("clip_id")[0]
    uids = [u for u, c in zip(s.column("uid"), s.column("clip_id")) if c == clip_id]
    assert len(uids) == 2
    result = run(store, "--clip", clip_id, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "--clip" in result.output and all(u in result.output for u in uids)
    assert not (tmp_path / "out").exists()


def test_unknown_clip_is_a_usage_error_with_suggestions(store, tmp_path):
    uid = fstore.open(store).column("uid")[1]
    result = run(store, "--clip", uid[:-1] + "9", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "--clip" in result.output and "no clip" in result.output and uid in result.output
    result = run(store, "--clip", "nothing-like-it", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "--clip" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_columns_are_skipped_with_a_warning(old_store, tmp_path):
    s = fstore.open(old_store)
    assert "keyframes" not in s.table.column_names and "motion_curve" not in s.table.column_names
    out = tmp_path / "out"
    result = run(old_store, "--clip", s.column("uid")[0], "-o", out)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "skipped keyframes" in warnings[0] and "skipped motion_curve" in warnings[1]
    index = json.loads((out / "index.json").read_text())
    skipped = {entry["name"]: entry["reason"] for entry in index["skipped"]}
    assert {"keyframes", "motion_curve", "cof"} <= set(skipped)
    assert "no keyframes column" in skipped["keyframes"]
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(["flow_onset_apex.png", "flow_phases.png", "mm_cof.png", "dynamic_images.png", "index.json"])
    assert written == sorted([f["file"] for f in index["files"]] + ["index.json"])


def test_existing_files_are_replaced_one_by_one(store, tmp_path):
    s = fstore.open(store)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "keyframes.png").write_bytes(b"stale")
    result = run(store, "--clip", s.column("uid")[0], "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert cv2.imread(str(tmp_path / "keyframes.png")) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_not_a_store(tmp_path):
    result = run(tmp_path, "--clip", "x", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "is not a fastmer feature store" in result.output
    result = run(tmp_path / "absent", "--clip", "x", "-o", tmp_path / "out")
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["viz", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--clip" in result.output
