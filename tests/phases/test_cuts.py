"""Scene cuts and other jumps inside a clip (issue 17, item 13): measured on real video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fastmer.phases.cuts import MIN_CHANGE, ChangeMeter, find_jump, frame_changes


def read_video(path, limit=None) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    return np.stack(frames)


@pytest.fixture(scope="module")
def films(shared_dir):
    folder = shared_dir / "data" / "video"
    return read_video(folder / "WolfgangLanger_Pexels.mp4"), read_video(folder / "single_face.mp4")


def test_continuous_real_footage_has_no_jump(films):
    handheld, static = films
    assert find_jump(handheld) is None and find_jump(static) is None
    assert float(frame_changes(handheld).max()) < MIN_CHANGE


def test_a_cut_between_two_films_is_found_where_it_is(films):
    handheld, static = films
    clip = np.concatenate([handheld[:40], static[:30]])
    jump = find_jump(clip)
    assert jump is not None and jump.index == 39 and jump.change > 5 * jump.threshold
    # colour frames, torch tensors, three frames with the cut in the middle
    assert find_jump(torch.from_numpy(np.repeat(clip[..., None], 3, axis=3))).index == 39
    assert find_jump(clip[38:41]).index == 1


def test_missing_stretch_of_the_same_shot_is_a_jump(films):
    handheld, _ = films
    clip = np.concatenate([handheld[:30], handheld[400:430]])  # 13 s of the same shot skipped
    jump = find_jump(clip)
    assert jump is not None and jump.index == 29


def test_a_micro_expression_clip_has_no_jump(tiny_corpus):
    folder = sorted((tiny_corpus / "sub01").iterdir())[0]
    paths = sorted(folder.glob("img*.jpg"), key=lambda p: int(p.stem.removeprefix("img")))
    frames = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
    assert len(frames) >= 12 and find_jump(frames) is None
    assert find_jump(frames[:1]) is None
    with pytest.raises(ValueError, match="expected"):
        frame_changes(np.zeros((3, 4), np.uint8))


def test_a_video_with_a_cut_is_an_error_row_not_an_apex(films, tmp_path):
    """Issue 17, item 13: on a film clip with cuts the apex was "spotted" on a cut."""
    from click.testing import CliRunner

    import fastmer.store as fstore
    from fastmer.cli import main

    handheld, static = films
    folder = tmp_path / "videos"
    folder.mkdir()
    for name, frames in (("cut", np.concatenate([handheld[:40], static[:30]])), ("continuous", handheld[:70])):
        writer = cv2.VideoWriter(str(folder / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames.shape[2:0:-1])
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()
    result = CliRunner().invoke(main, ["extract", str(folder), "-d", "videos", "-r", "flow_onset_apex", "--face-detector",
                                       "haar", "--no-progress", "-o", str(tmp_path / "store")])
    assert result.exit_code == 3, result.output
    store = fstore.open(tmp_path / "store")
    errors = store.errors.to_pylist()
    assert [e["uid"].rsplit("/", 1)[-1] for e in errors] == ["cut"] and errors[0]["stage"] == "phases"
    assert "jump between frame 39 and 40" in errors[0]["error"] and "scene cut" in errors[0]["error"]
    assert [uid.rsplit("/", 1)[-1] for uid in store.column("uid")] == ["continuous"]


def test_changes_fed_in_chunks_are_the_whole_clips(films):
    """Extraction streams a clip in chunks (issue 17, item 15): the meter must see the changes
    across chunk boundaries, so a cut at a boundary is found as in the whole clip."""
    handheld, static = films
    clip = np.concatenate([handheld[:40], static[:30]])
    whole = frame_changes(clip)
    for sizes in ([40, 30], [1] * 70, [7] * 10, [39, 1, 30], [70]):
        meter = ChangeMeter()
        at = 0
        for size in sizes:
            meter.add(clip[at : at + size])
            at += size
        assert torch.equal(meter.changes(), whole), sizes
        assert meter.jump() == find_jump(clip) and meter.jump().index == 39
    assert ChangeMeter().jump() is None and len(ChangeMeter().changes()) == 0
    meter = ChangeMeter()
    meter.add(clip[:5])
    with pytest.raises(ValueError, match="another size"):
        meter.add(clip[5:9, :, :100])
