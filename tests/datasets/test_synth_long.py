"""Synthetic long videos: config checks, the event plan's promises, rendering (stretches equal
the whole, the motion sits at the expression's landmarks and is the planned one, the cut is
a cut), and the corpus on disk read back by ``load_long``.

References independent of the generator: the photograph's landmarks mapped by the subject's
own similarity, OpenCV's Farneback optical flow, frame differences and thumbnails, OpenCV's
video decoder, the csv module.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from fastmer.datasets.long import LongVideo, load_long
from fastmer.datasets.synth import ASTRONAUT_LANDMARKS, SYNTH_EXPRESSIONS, expression
from fastmer.datasets.synth_long import (
    BLINK,
    Event,
    LongSynthConfig,
    generate_long,
    load,
    plan_video,
    render_frames,
)

SMALL = LongSynthConfig(subjects=2, seconds=8, width=320, height=240, min_face_px=130, max_face_px=144,
                        macro_peak_px=(2.0, 3.0), micro_per_minute=20, macro_per_minute=10, blinks_per_minute=20)
#: a still, noise-free variant: frame differences are the expressions' motion only
CLEAN = dataclasses.replace(SMALL, noise_std=0.0, head_motion_px=0.0)

# ------------------------------------------------------------------------------- helpers


def render_all(cfg: LongSynthConfig, plan, start: int = 0, stop: int | None = None) -> np.ndarray:
    return np.stack([frame.copy() for frame in render_frames(cfg, plan, start, stop)])


def thumbnail(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float64)


def landmarks_in_frame(look) -> dict[str, np.ndarray]:
    """The photograph's landmarks where the subject's similarity puts them in the frame."""
    m = look.to_frame()
    return {name: m[:, :2] @ np.asarray(p) + m[:, 2] for name, p in ASTRONAUT_LANDMARKS.items()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def decode(path: Path) -> tuple[list[np.ndarray], float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps, size


# ------------------------------------------------------------------------------- config


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"fps": 19.0}, "fps"),  # a 0.2-s micro-expression would have < 4 frames
    ({"fps": 4.0}, "fps"),
    ({"subjects": 0}, "subjects"),
    ({"videos_per_subject": 1.5}, "videos_per_subject"),
    ({"seconds": 1.0}, "seconds"),
    ({"micro_per_minute": -1.0}, "micro_per_minute"),
    ({"head_motion_px": 50.0}, "head_motion_px"),
    ({"jpeg_quality": 0}, "jpeg_quality"),
    ({"micro_peak_px": (2.0, 1.0)}, "micro_peak_px"),
    ({"macro_peak_px": (0.0, 1.0)}, "macro_peak_px"),
    # 3.95 px > 0.75 * 4 px * 130 / 99 = 3.939 px: the deformation would fold
    ({"macro_peak_px": (3.0, 3.95)}, "macro_peak_px"),
    ({"micro_peak_px": (1.0, 3.95)}, "micro_peak_px"),
    # at 110 px faces the limit is 3.333 px: blinks (up to 3.5 px) do not fit
    ({"min_face_px": 110.0}, "min_face_px"),
    ({"min_face_px": 160.0}, "min_face_px"),  # > 0.6 * 240: does not fit the frame
])
def test_invalid_configs_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"\.{field}\b"):
        dataclasses.replace(SMALL, **kwargs)


def test_small_config_is_valid_and_counts_frames():
    assert SMALL.n_frames == 240
    assert dataclasses.replace(SMALL, fps=20.0, seconds=2.5).n_frames == 50
    dataclasses.replace(SMALL, macro_peak_px=(3.0, 3.93))  # just under the limit


# ------------------------------------------------------------------------------- plan


@pytest.mark.parametrize("fps", [29.97, 30.0, 200.0])
def test_plan_keeps_its_promises(fps):
    cfg = dataclasses.replace(SMALL, seconds=300.0, fps=fps, micro_per_minute=8, macro_per_minute=4,
                              blinks_per_minute=12)
    clearance = 0.5 * fps
    kinds = set()
    for seed in range(3):
        for subject in range(2):
            plan = plan_video(dataclasses.replace(cfg, seed=seed), subject, 0)
            n = plan.n_frames
            assert n == round(300 * fps) and plan.fps == fps
            assert plan.cut is not None and 0.35 * n <= plan.cut <= 0.65 * n
            assert len(plan.looks) == 2 and plan.looks[0] != plan.looks[1]
            assert plan.subject == f"s{subject + 1:02d}" and plan.video == f"s{subject + 1:02d}_01"
            events = plan.events
            assert events, "5 minutes without a single event"
            labels = []
            for e in events:
                kinds.add(e.kind)
                assert e.onset < e.apex < e.offset
                assert e.onset >= clearance and (n - 1) - e.offset >= clearance  # 0.5 s from both ends
                if e.offset < plan.cut:
                    assert (plan.cut - 1) - e.offset >= clearance  # 0.5 s from the last frame before the cut
                else:
                    assert e.onset - plan.cut >= clearance  # and from the first after it
                length = e.offset - e.onset + 1
                if e.kind == "micro":
                    assert 4 <= length <= 0.5 * fps
                    assert cfg.micro_peak_px[0] <= e.peak_px <= cfg.micro_peak_px[1]
                elif e.kind == "macro":
                    assert round(0.8 * fps) <= length <= round(3.0 * fps)
                    assert cfg.macro_peak_px[0] <= e.peak_px <= cfg.macro_peak_px[1]
                else:
                    assert e.kind == "blink" and e.expression == BLINK
                    assert 3 <= length <= 0.25 * fps + 1 and 2.5 <= e.peak_px <= 3.5
                if e.kind != "blink":
                    assert e.expression in SYNTH_EXPRESSIONS
                    labels.append(e.expression.label)
            for a, b in itertools.pairwise(events):
                assert b.onset - a.offset - 1 >= clearance  # apart, in order
            # the expressions cycle through the classes
            names = [x.label for x in SYNTH_EXPRESSIONS]
            for a, b in itertools.pairwise(labels):
                assert names.index(b) == (names.index(a) + 1) % len(names)
            # the head moves smoothly, within head_motion_px per axis
            head = np.array([plan.head_at(t) for t in range(0, n, max(1, int(fps) // 10))])
            assert np.abs(head).max() <= cfg.head_motion_px + 1e-9
            assert np.abs(np.diff(head, axis=0)).max() < 1.0
    assert kinds == {"micro", "macro", "blink"}


def test_plan_without_cut_or_events():
    cfg = dataclasses.replace(SMALL, cut=False, micro_per_minute=0, macro_per_minute=0, blinks_per_minute=0)
    plan = plan_video(cfg, 0, 0)
    assert plan.cut is None and len(plan.looks) == 1 and plan.events == ()
    assert plan.look_at(0) is plan.look_at(plan.n_frames - 1)


def test_plan_is_a_function_of_the_config():
    assert plan_video(SMALL, 1, 0) == plan_video(SMALL, 1, 0)
    other = plan_video(dataclasses.replace(SMALL, seed=1), 1, 0)
    mine = plan_video(SMALL, 1, 0)
    assert (other.cut, other.events, other.head) != (mine.cut, mine.events, mine.head)
    assert plan_video(SMALL, 0, 0) != mine  # subjects differ too


# ------------------------------------------------------------------------------- render


def test_a_stretch_renders_the_same_pixels_as_the_whole():
    plan = plan_video(SMALL, 0, 0)
    whole = render_all(SMALL, plan)
    assert whole.shape == (240, 240, 320, 3) and whole.dtype == np.uint8
    event = next(e for e in plan.events if e.kind != "blink")
    for start, stop in ((event.apex, event.offset + 5), (plan.cut - 3, plan.cut + 3), (0, 2), (235, 240)):
        part = render_all(SMALL, plan, start, stop)
        assert len(part) == stop - start
        np.testing.assert_array_equal(part, whole[start:stop], err_msg=f"frames {start}..{stop - 1}")
    # sensor noise: two renders of one still frame are equal, neighbouring still frames are not
    assert not np.array_equal(whole[1], whole[2])


@pytest.mark.parametrize("label", ["negative", "positive", "surprise", "blink"])
def test_the_motion_is_at_the_expression_landmarks_and_is_the_planned_one(label):
    base = plan_video(CLEAN, 0, 0)
    look = base.looks[0]
    expr = BLINK if label == "blink" else expression(label)
    peak = 3.0
    event = Event("macro", 20, 30, 45, expr, peak)
    plan = dataclasses.replace(base, events=(event,), cut=None, looks=(look,))
    frames = render_all(CLEAN, plan, 18, 31)
    assert np.array_equal(frames[0], frames[2])  # before and at onset: the still face
    onset, apex = frames[2], frames[-1]
    diff = np.abs(onset.astype(int) - apex.astype(int)).max(axis=2)
    landmarks = landmarks_in_frame(look)
    th = math.radians(look.rotation_deg)
    ys, xs = np.mgrid[0:CLEAN.height, 0:CLEAN.width]
    support = np.zeros(diff.shape, bool)
    for site in expr.sites:
        cx, cy = landmarks[site.landmark]
        sx, sy = site.sigma
        # the bumps are cut at 4 sigma (of the photo, scaled and turned into the frame) ...
        hw = 4 * look.scale * math.hypot(sx * math.cos(th), sy * math.sin(th)) + 2
        hh = 4 * look.scale * math.hypot(sx * math.sin(th), sy * math.cos(th)) + 2
        support |= (np.abs(xs - cx) <= hw) & (np.abs(ys - cy) <= hh)
        # ... and move the face clearly within 2 sigma of their landmark
        near = (np.abs(xs - cx) <= 2 * sx * look.scale) & (np.abs(ys - cy) <= 2 * sy * look.scale)
        assert diff[near].max() >= 20, site.landmark
    assert diff.any() and not diff[~support].any()  # nothing changed anywhere else
    # the face parts the expression does not move did not move
    still = {"upper": ("left_mouth_corner", "right_mouth_corner"),
             "lower": ("left_brow", "right_brow", "left_eye", "right_eye")}[expr.face_half]
    for name in still:
        cx, cy = landmarks[name]
        assert not diff[int(cy) - 6: int(cy) + 7, int(cx) - 6: int(cx) + 7].any(), name
    # Farneback's flow onset -> apex at each site goes the site's way, by about its peak
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in (onset, apex)]
    flow = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 9, 5, 5, 1.1, 0)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    for site in expr.sites:
        cx, cy = landmarks[site.landmark]
        measured = flow[int(round(cy)), int(round(cx))].astype(np.float64)
        direction = rot @ (np.asarray(site.direction) / np.linalg.norm(site.direction))
        assert measured @ direction / np.linalg.norm(measured) > 0.9, (site.landmark, measured, direction)
        assert 0.6 * peak * site.gain <= np.linalg.norm(measured) <= 1.2 * peak * site.gain, (site.landmark, measured)


def test_the_cut_changes_the_picture_and_nothing_else_does():
    for subject in range(2):
        plan = plan_video(SMALL, subject, 0)
        thumbs = np.stack([thumbnail(f) for f in render_frames(SMALL, plan)])
        change = np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2, 3))  # change[t]: frame t -> t + 1
        assert change[plan.cut - 1] > 12, change[plan.cut - 1]
        others = np.delete(change, plan.cut - 1)
        assert others.max() < 4, (int(np.argmax(others)), others.max())


# ------------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_long") / "corpus"
    summary = generate_long(root, SMALL)
    plans = [plan_video(SMALL, s, 0) for s in range(2)]
    assert summary.out_dir == root and summary.videos == 2 and summary.frames == 480
    assert summary.micro == sum(e.kind == "micro" for p in plans for e in p.events)
    assert summary.macro == sum(e.kind == "macro" for p in plans for e in p.events)
    assert summary.blinks == sum(e.kind == "blink" for p in plans for e in p.events)
    return root


def test_corpus_layout_and_videos(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == ["README.txt", "distractors.csv", "intervals.csv",
                                                        "synth_long.json", "videos"]
    assert not list(corpus.parent.glob(".corpus*"))  # no temporary folder left beside it
    meta = json.loads((corpus / "synth_long.json").read_text())
    assert meta["config"]["seed"] == 0 and meta["config"]["width"] == 320
    for s in range(2):
        plan = plan_video(SMALL, s, 0)
        path = corpus / "videos" / plan.subject / f"{plan.video}.avi"
        assert meta["videos"][plan.video] == {"subject": plan.subject, "path": f"videos/{plan.subject}/{plan.video}.avi",
                                              "fps": 30.0, "frames": 240, "cut": plan.cut}
        frames, fps, size = decode(path)
        assert len(frames) == plan.n_frames == 240 and size == (320, 240) and fps == pytest.approx(30.0)
        # the video holds the rendered frames (Motion-JPEG at quality 90: a few grey levels off)
        for t in (0, plan.cut, 239, *(e.apex for e in plan.events)):
            rendered = render_all(SMALL, plan, t, t + 1)[0]
            assert np.abs(frames[t].astype(int) - rendered.astype(int)).mean() < 3, t


def test_truth_tables_hold_the_plan(corpus):
    plans = [plan_video(SMALL, s, 0) for s in range(2)]
    rows = read_csv(corpus / "intervals.csv")
    expected = [{"subject": p.subject, "video": p.video, "onset": str(e.onset), "apex": str(e.apex),
                 "offset": str(e.offset), "kind": e.kind, "label": e.expression.label, "emotion": e.expression.emotion,
                 "action_units": e.expression.action_units, "peak_px": f"{e.peak_px:.4f}"}
                for p in plans for e in p.events if e.kind != "blink"]
    assert rows == expected and rows
    distract = read_csv(corpus / "distractors.csv")
    expected = []
    for p in plans:
        items = [(e.onset, "blink", e.offset) for e in p.events if e.kind == "blink"] + [(p.cut - 1, "cut", p.cut)]
        expected += [{"subject": p.subject, "video": p.video, "kind": kind, "onset": str(onset), "offset": str(offset)}
                     for onset, kind, offset in sorted(items)]
    assert distract == expected
    assert sum(r["kind"] == "cut" for r in distract) == 2 and any(r["kind"] == "blink" for r in distract)


def test_load_long_reads_the_truth(corpus):
    videos = load_long("synth-long", corpus)
    assert videos.report.rows == len(read_csv(corpus / "intervals.csv"))
    assert not videos.report.defects
    assert [v.video_id for v in videos] == ["s01_01", "s02_01"]
    for s, video in enumerate(videos):
        plan = plan_video(SMALL, s, 0)
        assert isinstance(video, LongVideo)
        assert video.dataset == "synth-long" and video.subject == f"synth-long/{plan.subject}"
        assert video.fps == 30.0 and video.is_video and Path(video.source).is_file()
        assert Path(video.source) == corpus / "videos" / plan.subject / f"{plan.video}.avi"
        truth = [e for e in plan.events if e.kind != "blink"]
        assert [(i.onset, i.apex, i.offset, i.kind) for i in video.intervals] == [
            (e.onset, e.apex, e.offset, e.kind) for e in truth]
        assert [a.labels for a in video.annotations] == [(e.expression.label,) for e in truth]
        assert [a.action_units for a in video.annotations] == [e.expression.action_units for e in truth]


def test_load_reports_a_missing_video_and_a_missing_corpus(corpus, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("synth_long.json", "intervals.csv", "distractors.csv"):
        (copy / name).write_bytes((corpus / name).read_bytes())
    videos = load(copy)
    assert len(videos) == 2 and all(v.notes == ("folder_missing",) for v in videos)
    assert sorted(videos.report.defects["folder_missing"]) == ["synth-long/s01/s01_01", "synth-long/s02/s02_01"]
    with pytest.raises(FileNotFoundError, match="synth_long.json"):
        load(tmp_path / "nowhere")


def test_generate_refuses_what_is_not_its_corpus(tmp_path):
    tiny = dataclasses.replace(SMALL, subjects=1, seconds=2.0)
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_long(other, tiny)
    with pytest.raises(FileExistsError, match="not a synthetic long-video corpus"):
        generate_long(other, tiny, overwrite=True)
    assert (other / "precious.txt").read_text() == "keep me" and len(list(other.iterdir())) == 1
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        generate_long(a_file, tiny, overwrite=True)
    assert a_file.read_text() == "x"
    with pytest.raises(ValueError, match="workers"):
        generate_long(tmp_path / "new", tiny, workers=0)
    assert not (tmp_path / "new").exists()
    # an empty folder is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_long(empty, tiny)
    assert (empty / "synth_long.json").is_file()


def test_overwrite_replaces_a_corpus(tmp_path):
    tiny = dataclasses.replace(SMALL, subjects=1, seconds=2.0)
    root = tmp_path / "corpus"
    generate_long(root, tiny)
    (root / "stale.txt").write_text("from the last run")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_long(root, dataclasses.replace(tiny, seed=5))
    assert json.loads((root / "synth_long.json").read_text())["config"]["seed"] == 0
    generate_long(root, dataclasses.replace(tiny, seed=5), overwrite=True)
    assert json.loads((root / "synth_long.json").read_text())["config"]["seed"] == 5
    assert not (root / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no .old / .tmp leftovers
    frames, _, size = decode(root / "videos" / "s01" / "s01_01.avi")
    assert len(frames) == 60 and size == (320, 240)


def test_workers_do_not_change_the_output(tmp_path):
    tiny = dataclasses.replace(SMALL, seconds=2.0)
    generate_long(tmp_path / "one", tiny)
    generate_long(tmp_path / "two", tiny, workers=2)
    for name in ("synth_long.json", "intervals.csv", "distractors.csv", "videos/s01/s01_01.avi", "videos/s02/s02_01.avi"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
