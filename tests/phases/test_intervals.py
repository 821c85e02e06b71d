"""The MEGC spotting metric against cases computed by hand."""

import pytest

from fastmer.phases.intervals import Counts, Interval, iou, match, spotting_scores, video_counts


def test_iou_counts_frames_inclusively():
    # [10, 19] and [12, 21]: 8 shared frames (12..19) of 12 (10..21)
    assert iou(Interval(10, 19), Interval(12, 21)) == pytest.approx(8 / 12)
    # [10, 20] and [15, 25]: 6 of 16
    assert iou(Interval(10, 20), Interval(15, 25)) == pytest.approx(6 / 16)
    assert iou(Interval(10, 20), Interval(21, 30)) == 0.0  # adjacent, no shared frame
    assert iou(Interval(10, 20), Interval(20, 30)) == pytest.approx(1 / 21)  # one shared frame
    assert iou(Interval(5, 5), Interval(5, 5)) == 1.0
    assert iou(Interval(0, 9), Interval(0, 4)) == 0.5


def test_threshold_is_inclusive_and_kinds_must_agree():
    truth = [Interval(0, 9, "micro")]
    assert match([Interval(0, 4, "micro")], truth) == [(0, 0, 0.5)]  # IoU exactly 0.5 counts
    assert match([Interval(0, 3, "micro")], truth) == []  # 0.4
    assert match([Interval(0, 9, "macro")], truth) == []  # a macro interval never matches a micro one


def test_each_interval_is_matched_once():
    # one spotted interval over two ground truths that overlap: one TP, one FN
    truth = [Interval(10, 29), Interval(12, 31)]
    counts = video_counts([Interval(11, 30)], truth)["micro"]
    assert counts == Counts(tp=1, fp=0, fn=1)
    # two spotted intervals on one ground truth: the better one is the TP, the other an FP
    pairs = match([Interval(10, 25), Interval(10, 29)], [Interval(10, 29)])
    assert pairs == [(1, 0, 1.0)]
    assert video_counts([Interval(10, 25), Interval(10, 29)], [Interval(10, 29)])["micro"] == Counts(1, 1, 0)


def test_scores_summed_over_videos_kinds_and_datasets():
    """Two videos of two datasets, counted by hand:

    v1 (casme2): micro truth [100,110], [300,312]; macro truth [500,560].
        spotted micro [101,111] (IoU 10/12 -> TP), micro [200,210] (FP), macro [505,570]
        (IoU 56/71 -> TP). micro: TP 1, FP 1, FN 1; macro: TP 1.
    v2 (samm): micro truth [40,60]; macro truth [0,30], [900,1000].
        spotted micro [45,80] (IoU 16/41 < 0.5 -> FP), macro [0,29] (IoU 30/31 -> TP).
        micro: TP 0, FP 1, FN 1; macro: TP 1, FN 1.
    micro: TP 1, FP 2, FN 2 -> P 1/3, R 1/3, F1 1/3.  macro: TP 2, FP 0, FN 1 -> P 1, R 2/3,
    F1 0.8.  overall: TP 3, FP 2, FN 3 -> P 3/5, R 1/2, F1 6/11.
    """
    videos = {
        "v1": ([Interval(101, 111), Interval(200, 210), Interval(505, 570, "macro")],
               [Interval(100, 110), Interval(300, 312), Interval(500, 560, "macro")]),
        "v2": ([Interval(45, 80), Interval(0, 29, "macro")],
               [Interval(40, 60), Interval(0, 30, "macro"), Interval(900, 1000, "macro")]),
    }
    scores = spotting_scores(videos, datasets={"v1": "casme2", "v2": "samm"})
    assert scores["micro"] == Counts(1, 2, 2)
    assert scores["micro"].precision == pytest.approx(1 / 3) and scores["micro"].f1 == pytest.approx(1 / 3)
    assert scores["macro"] == Counts(2, 0, 1) and scores["macro"].f1 == pytest.approx(0.8)
    assert scores["overall"] == Counts(3, 2, 3)
    assert scores["overall"].precision == pytest.approx(0.6) and scores["overall"].recall == pytest.approx(0.5)
    assert scores["overall"].f1 == pytest.approx(6 / 11)
    assert scores["per_dataset"]["casme2"]["micro"] == Counts(1, 1, 1)
    assert scores["per_dataset"]["samm"]["macro"] == Counts(1, 0, 1)
    assert scores["per_dataset"]["samm"]["overall"] == Counts(1, 1, 2)
    assert scores["per_video"]["v2"]["micro"] == Counts(0, 1, 1)


def test_nothing_spotted_or_nothing_to_spot():
    assert spotting_scores({"v": ([], [Interval(0, 9)])})["micro"].to_json() == {
        "tp": 0, "fp": 0, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert spotting_scores({"v": ([Interval(0, 9)], [])})["micro"] == Counts(0, 1, 0)


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError, match="offset 4 is before its onset 5"):
        Interval(5, 4)
    with pytest.raises(ValueError, match="kind must be one of"):
        Interval(0, 4, "nano")
    with pytest.raises(ValueError, match="apex 9 is outside"):
        Interval(0, 4, apex=9)
    with pytest.raises(ValueError, match="threshold"):
        match([], [], threshold=0)
