"""Training the learned spotter (``fastmer train SPOT_OUTPUT --task spot``), leave-one-subject-out.

``fastmer spot --save-maps`` keeps, per video, each head frame's flow map at both scales
(:func:`fastmer.phases.regions.flow_map`), its regional motion and the video's coded
intervals (``OUT/maps/*.safetensors``). Training reads those: per scale, a head ``j`` (the
flow ``j -> j + k``) is a positive when ``j..j + k`` overlaps a coded expression of that
scale's kind (SOFTNet's pseudo-labels), and a :class:`~fastmer.models.softnet.SoftNet` learns
them with a class-balanced binary cross-entropy.

Evaluation is leave-one-subject-out: for each subject, both networks are trained on the
other subjects' videos and spot the subject's videos (:func:`~fastmer.phases.flowspot.spot_intervals`,
method ``softnet``); the MEGC metric is computed on all test videos pooled (TP, FP, FN summed).
The spotter saved in the run folder is then trained on every subject.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from fastmer.models.softnet import SoftNet, SpotterModel
from fastmer.phases.flowspot import SpotParams, spot_intervals
from fastmer.phases.intervals import INTERVAL_KINDS, Interval, spotting_scores

MAPS_DIR = "maps"


@dataclass
class VideoMaps:
    """One video's saved maps and motion (what :func:`save_maps` writes)."""

    uid: str
    dataset: str
    subject: str
    fps: float
    n_frames: int
    scales: dict[str, tuple[int, int]]
    maps: dict[str, np.ndarray]  # kind -> (heads, 3, S, S) float16
    near: dict[str, np.ndarray]  # kind -> (heads, R, 4) float32
    truth: list[Interval]
    numbers: list[int]  # frame numbers of the video's frames (empty: 0-based indices)


def save_maps(path: Path, *, uid: str, dataset: str, subject: str, fps: float, n_frames: int,
              scales: dict[str, tuple[int, int]], maps: dict[str, np.ndarray], near: dict[str, np.ndarray],
              truth: Sequence[Interval], numbers: Sequence[int]) -> None:
    """Write one video's maps (safetensors, atomically; the metadata as JSON text)."""
    from safetensors.numpy import save as tensor_bytes  # noqa: PLC0415

    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

    tensors = {}
    for kind in maps:
        tensors[f"maps.{kind}"] = np.ascontiguousarray(maps[kind])
        tensors[f"near.{kind}"] = np.ascontiguousarray(near[kind])
    meta = {"uid": uid, "dataset": dataset, "subject": subject, "fps": fps, "n_frames": n_frames,
            "scales": {kind: list(value) for kind, value in scales.items()},
            "truth": [[i.onset, i.apex, i.offset, i.kind] for i in truth], "numbers": list(numbers)}
    atomic_write_bytes(path, tensor_bytes(tensors, metadata={"fastmer": json.dumps(meta)}))


def load_maps(folder: str | os.PathLike[str]) -> list[VideoMaps]:
    """Every video's maps in ``SPOT_OUTPUT/maps`` (FileNotFoundError saying how to make them)."""
    from safetensors import safe_open  # noqa: PLC0415

    folder = Path(folder) / MAPS_DIR
    paths = sorted(folder.glob("video-*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"{folder} holds no flow maps: run 'fastmer spot ... --dataset NAME --save-maps -o "
                                f"{folder.parent}' on a corpus with coded intervals first")
    videos = []
    for path in paths:
        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads(handle.metadata()["fastmer"])
            kinds = [name.split(".", 1)[1] for name in handle.keys() if name.startswith("maps.")]  # noqa: SIM118
            maps = {kind: handle.get_tensor(f"maps.{kind}") for kind in kinds}
            near = {kind: handle.get_tensor(f"near.{kind}") for kind in kinds}
        truth = [Interval(on, off, kind, apex=apex) for on, apex, off, kind in meta["truth"]]
        videos.append(VideoMaps(meta["uid"], meta["dataset"], meta["subject"], meta["fps"], meta["n_frames"],
                                {k: tuple(v) for k, v in meta["scales"].items()}, maps, near, truth,
                                meta.get("numbers", [])))
    return videos


def pseudo_labels(n_heads: int, k: int, stride: int, truth: Sequence[Interval], kind: str,
                  numbers: Sequence[int] = ()) -> np.ndarray:
    """1 for heads ``j`` (frame ``j * stride``) whose window ``j..j + k`` overlaps a coded ``kind``
    expression, else 0 (``numbers``: the frame number of each 0-based index, for image sequences)."""
    labels = np.zeros(n_heads, np.float32)
    index_of = {n: i for i, n in enumerate(numbers)} if numbers else None
    for interval in truth:
        if interval.kind != kind:
            continue
        onset = index_of.get(interval.onset, None) if index_of else interval.onset
        offset = index_of.get(interval.offset, None) if index_of else interval.offset
        if onset is None or offset is None:
            continue
        first = max(0, -(-(onset - k) // stride))
        last = min(n_heads - 1, offset // stride)
        labels[first: last + 1] = 1.0
    return labels


@dataclass(frozen=True)
class SpotTraining:
    """How each network is trained. Four epochs: on the development corpus (synthetic seed 1,
    4 subjects, LOSO) 4, 12 and 30 epochs gave overall F1 0.58, 0.50 and 0.44 (it overfits the
    few expressions of the other subjects); bench/RESULTS.md has the held-out figures."""

    epochs: int = 4
    lr: float = 1e-3
    batch_size: int = 256
    seed: int = 0
    max_pos_weight: float = 50.0


def _training_set(videos: Sequence[VideoMaps], kind: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for video in videos:
        k, stride = video.scales[kind]
        maps = video.maps[kind]
        labels = pseudo_labels(len(maps), k, stride, video.truth, kind, video.numbers)
        valid = np.isfinite(maps.reshape(len(maps), -1)).all(axis=1)
        xs.append(maps[valid].astype(np.float32))
        ys.append(labels[valid])
    return np.concatenate(xs), np.concatenate(ys)


def train_net(maps: np.ndarray, labels: np.ndarray, training: SpotTraining, device: torch.device
              ) -> tuple[SoftNet, float, dict]:
    """One :class:`SoftNet` on ``(N, 3, S, S)`` maps; returns it, the maps' scale and a summary."""
    generator = torch.Generator().manual_seed(training.seed)
    torch.manual_seed(training.seed)
    scale = float(np.percentile(np.abs(maps), 99)) or 1.0
    x = torch.from_numpy(maps / scale).float()
    y = torch.from_numpy(labels).float()
    positives = float(y.sum())
    pos_weight = min(training.max_pos_weight, (len(y) - positives) / positives) if positives else 1.0
    net = SoftNet(maps.shape[-1]).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=training.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    losses = []
    for _ in range(training.epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), training.batch_size):
            batch = order[start: start + training.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(net(x[batch].to(device)), y[batch].to(device))
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / max(1, len(x)))
    return net.cpu().eval(), scale, {"samples": len(y), "positives": int(positives), "pos_weight": pos_weight,
                                     "loss": losses}


def train_spotter_model(videos: Sequence[VideoMaps], params: SpotParams, training: SpotTraining,
                        device: torch.device) -> SpotterModel:
    """Both scales' networks trained on ``videos``."""
    nets, scales, info = {}, {}, {}
    for kind in INTERVAL_KINDS:
        maps, labels = _training_set(videos, kind)
        nets[kind], scales[kind], info[kind] = train_net(maps, labels, training, device)
    info["videos"] = len(videos)
    info["subjects"] = sorted({v.subject for v in videos})
    return SpotterModel(nets, asdict(params), scales, info)


def spot_with(model: SpotterModel, video: VideoMaps, params: SpotParams) -> list[Interval]:
    """``video``'s intervals by ``model`` (frame numbers as the video's)."""
    scores = {kind: model.score(kind, torch.from_numpy(np.nan_to_num(video.maps[kind].astype(np.float32)))).numpy()
              for kind in INTERVAL_KINDS}
    for kind in INTERVAL_KINDS:
        missing = ~np.isfinite(video.maps[kind].reshape(len(video.maps[kind]), -1)).all(axis=1)
        scores[kind][missing] = np.nan
    motion = {kind: (video.near[kind], None) for kind in INTERVAL_KINDS}
    intervals, _ = spot_intervals(motion, params, video.fps, video.n_frames, scores)
    if video.numbers:
        numbers = video.numbers
        intervals = [Interval(numbers[i.onset], numbers[i.offset], i.kind, apex=numbers[i.apex], score=i.score)
                     for i in intervals]
    return intervals


def train_spotter(spot_output: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  training: SpotTraining = SpotTraining(), params: SpotParams | None = None, device: str = "cpu",
                  log: Callable[[str], None] = lambda line: None) -> dict:
    """LOSO evaluation and the final spotter (see the module docstring); returns the report.

    Writes ``out/report.json`` (pooled and per-subject MEGC counts, settings), ``out/predictions.json``
    (each test video's intervals) and the spotter trained on every subject (``spotter.safetensors``
    + ``spotter.json``).

    Raises:
        FileNotFoundError: no saved maps; ValueError: fewer than two subjects, or no coded expression.
    """
    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

    start = time.perf_counter()
    params = params or SpotParams(method="softnet")
    if params.method != "softnet":
        raise ValueError(f"the learned spotter spots with method 'softnet', got {params.method!r}")
    videos = load_maps(spot_output)
    subjects = sorted({v.subject for v in videos})
    if len(subjects) < 2:
        raise ValueError(f"leave-one-subject-out needs two subjects or more; {spot_output} has {subjects}")
    if not any(v.truth for v in videos):
        raise ValueError(f"the videos of {spot_output} have no coded intervals to learn from (spot a corpus with "
                         "--dataset)")
    torch_device = torch.device(device)
    predictions, folds = {}, []
    for n, subject in enumerate(subjects, 1):
        train = [v for v in videos if v.subject != subject]
        test = [v for v in videos if v.subject == subject]
        model = train_spotter_model(train, params, training, torch_device)
        found = {v.uid: spot_with(model, v, params) for v in test}
        predictions.update(found)
        fold = spotting_scores({v.uid: (found[v.uid], v.truth) for v in test})
        folds.append({"subject": subject, "videos": [v.uid for v in test],
                      **{kind: fold[kind].to_json() for kind in ("micro", "macro", "overall")}})
        log(f"fold {n}/{len(subjects)} ({subject}): F1 overall {fold['overall'].f1:.3f}")
    pooled = spotting_scores({v.uid: (predictions[v.uid], v.truth) for v in videos},
                             datasets={v.uid: v.dataset for v in videos})
    final = train_spotter_model(videos, params, training, torch_device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    final.save(out)
    report = {
        "task": "spot", "protocol": "loso", "source": str(spot_output), "params": asdict(params),
        "training": asdict(training), "subjects": subjects, "videos": len(videos),
        "pooled": {kind: pooled[kind].to_json() for kind in ("micro", "macro", "overall")},
        "per_dataset": {name: {kind: c.to_json() for kind, c in kinds.items()}
                        for name, kinds in pooled["per_dataset"].items()},
        "folds": folds, "seconds": time.perf_counter() - start,
    }
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(out / "predictions.json", json.dumps(
        {uid: [[i.onset, i.apex, i.offset, i.kind, i.score] for i in found] for uid, found in predictions.items()},
        indent=1).encode())
    return report
