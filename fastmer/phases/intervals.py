"""Expression intervals in long videos and the MEGC spotting metric.

A spotted interval is a true positive when its intersection over union with a ground-truth
interval of the same kind (micro- or macro-expression) is at least ``threshold`` (0.5 in
every MEGC since 2019), frames counted inclusively; each ground truth and each spotted
interval is matched at most once (pairs taken by decreasing IoU, so a spotted interval that
covers two ground truths counts once). Precision, recall and F1 come from the true
positives, false positives (spotted, unmatched) and false negatives (ground truth,
unmatched) summed over all videos — per kind, and overall (both kinds summed), as MEGC
reports them — and per dataset.

Example:
    >>> truth = [Interval(10, 19, "micro")]
    >>> round(iou(Interval(12, 21), truth[0]), 3)
    0.667
    >>> spotting_scores({"v": ([Interval(12, 21)], truth)})["micro"].f1
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Interval kinds, as the long-video corpora code them.
INTERVAL_KINDS = ("micro", "macro")
#: MEGC's IoU threshold for a true positive.
IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Interval:
    """Frames ``onset..offset`` (inclusive) of one expression.

    Attributes:
        onset, offset: first and last frame, in the video's numbering (0-based indices for a
            video file, the corpus's frame numbers for an image sequence).
        kind: one of :data:`INTERVAL_KINDS`.
        apex: the apex frame, if known (inside the interval).
        score: a spotter's confidence (1 for ground truth).
    """

    onset: int
    offset: int
    kind: str = "micro"
    apex: int | None = None
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in INTERVAL_KINDS:
            raise ValueError(f"interval kind must be one of {INTERVAL_KINDS}, got {self.kind!r}")
        if self.offset < self.onset:
            raise ValueError(f"interval offset {self.offset} is before its onset {self.onset}")
        if self.apex is not None and not self.onset <= self.apex <= self.offset:
            raise ValueError(f"apex {self.apex} is outside the interval {self.onset}..{self.offset}")

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two intervals' frame sets (kinds ignored)."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / (a.length + b.length - inter)


def match(spotted: Sequence[Interval], truth: Sequence[Interval], threshold: float = IOU_THRESHOLD
          ) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(spotted index, truth index, IoU)`` of the same kind with IoU >= ``threshold``.

    Pairs are taken by decreasing IoU (ties: earlier ground truth, then earlier spotted
    interval), each interval at most once.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    candidates = [(iou(s, t), j, i) for i, s in enumerate(spotted) for j, t in enumerate(truth)
                  if s.kind == t.kind]
    candidates = [c for c in candidates if c[0] >= threshold]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_spotted, used_truth, pairs = set(), set(), []
    for overlap, j, i in candidates:
        if i in used_spotted or j in used_truth:
            continue
        used_spotted.add(i)
        used_truth.add(j)
        pairs.append((i, j, overlap))
    return sorted(pairs)


@dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives, and the scores from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        """TP / spotted; 0 when nothing was spotted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """TP / ground truth; 0 when there is no ground truth."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall; 0 when both are 0."""
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}


def video_counts(spotted: Sequence[Interval], truth: Sequence[Interval], threshold: float = IOU_THRESHOLD
                 ) -> dict[str, Counts]:
    """Per kind, the counts of one video."""
    pairs = match(spotted, truth, threshold)
    matched_spotted = {i for i, _, _ in pairs}
    matched_truth = {j for _, j, _ in pairs}
    out = {}
    for kind in INTERVAL_KINDS:
        tp = sum(1 for i, _, _ in pairs if spotted[i].kind == kind)
        fp = sum(1 for i, s in enumerate(spotted) if s.kind == kind and i not in matched_spotted)
        fn = sum(1 for j, t in enumerate(truth) if t.kind == kind and j not in matched_truth)
        out[kind] = Counts(tp, fp, fn)
    return out


def spotting_scores(videos: Mapping[str, tuple[Sequence[Interval], Sequence[Interval]]],
                    datasets: Mapping[str, str] | None = None, threshold: float = IOU_THRESHOLD) -> dict:
    """MEGC spotting scores of ``{video: (spotted, truth)}``.

    Args:
        videos: each video's spotted and ground-truth intervals.
        datasets: video -> dataset name, for the per-dataset scores (default: one dataset).
        threshold: IoU for a true positive.

    Returns:
        ``{"micro": Counts, "macro": Counts, "overall": Counts, "per_dataset": {name:
        {"micro", "macro", "overall"}}, "per_video": {video: {"micro", "macro"}}}``; counts
        summed over videos (and, for ``overall``, over both kinds).
    """
    per_video = {video: video_counts(spotted, truth, threshold) for video, (spotted, truth) in videos.items()}
    per_dataset: dict[str, dict[str, Counts]] = {}
    for video, counts in per_video.items():
        name = (datasets or {}).get(video, "all")
        totals = per_dataset.setdefault(name, {kind: Counts() for kind in INTERVAL_KINDS})
        for kind in INTERVAL_KINDS:
            totals[kind] = totals[kind] + counts[kind]
    for totals in per_dataset.values():
        totals["overall"] = totals["micro"] + totals["macro"]
    summed = {kind: sum((c[kind] for c in per_video.values()), Counts()) for kind in INTERVAL_KINDS}
    return {**summed, "overall": summed["micro"] + summed["macro"], "per_dataset": per_dataset,
            "per_video": per_video}
