"""An engine's predictions for an opened feature store: the engines (a training run in
PyTorch, optionally ``torch.compile``; an exported ``.onnx``; a TensorRT ``.plan``) and
the prediction rows of their logits.

Every engine exposes ``config`` (the model's JSON: classes, input, thresholds of a
multi-label model) and ``run(features) -> logits``. :func:`score_samples` turns logits into
probabilities (softmax, or sigmoid with the model's per-class thresholds), merges the views
of a clip by max when the model scores views one at a time, and keeps going when a batch
fails: its rows carry the error. Whoever drives the scoring (:mod:`fastmer.engine.score`
on this machine, :mod:`fastmer.engine.ray` on Ray actors) calls these.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


class TorchEngine:
    """A ``fastmer train`` run's final model in PyTorch.

    Args:
        run: the run directory.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        compile: wrap the model in ``torch.compile`` (batch dimension dynamic after the first
            new batch size).
    """

    def __init__(self, run: str | Path, *, device: str = "auto", compile: bool = False) -> None:  # noqa: A002
        import torch  # noqa: PLC0415

        from fastmer.engine.onnx import load_run_model  # noqa: PLC0415
        from fastmer.train.run import resolve_device  # noqa: PLC0415

        self.path = Path(run)
        self.device = resolve_device(device)
        self.model = load_run_model(run).to(self.device).eval()
        self.config: dict[str, Any] = self.model.config
        self.classes = tuple(self.config["classes"])
        # dynamic=None: static shapes first; a new batch size makes only the batch dimension
        # symbolic (dynamic=True would make H and W symbolic too, which inductor cannot lower
        # for adaptive pooling).
        self.forward = torch.compile(self.model) if compile else self.model
        self.providers = [f"torch-{self.device.type}" + ("-compile" if compile else "")]

    def run(self, features: np.ndarray) -> np.ndarray:
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
            return self.forward(x).float().cpu().numpy()


def open_engine(path: str | Path, *, device: str = "auto", compile: bool = False,  # noqa: A002
                providers: list[str] | None = None) -> Any:
    """The engine at ``path``: a run directory (PyTorch), an ``.onnx`` file (ONNX Runtime) or a
    ``.plan`` (TensorRT, :class:`~fastmer.engine.tensorrt.TensorRTEngine`).

    Every kind is checked against the sha256 recorded when it was written (a run's
    ``model.json``, an ONNX file's sidecar or metadata, a plan's sidecar) before it runs.

    Raises:
        FileNotFoundError: no engine at ``path``.
        ValueError: not an engine fastmer wrote, or one that is corrupt or was replaced.
    """
    from fastmer.engine.onnx import OnnxEngine  # noqa: PLC0415

    path = Path(path)
    if path.is_dir():
        return TorchEngine(path, device=device, compile=compile)
    if path.suffix == ".onnx":
        return OnnxEngine(path, providers=providers)
    if path.suffix == ".plan":
        from fastmer.engine.tensorrt import TensorRTEngine  # noqa: PLC0415  (TensorRT: only for plans)

        return TensorRTEngine(path)
    raise ValueError(f"engine {path} is neither a training run directory, an .onnx file nor a TensorRT .plan")


def _probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Sigmoid (multi-label) or softmax over classes of ``(N, C)`` logits, in their dtype
    (float32 from the engines), without overflow for logits far from 0."""
    from scipy.special import expit, softmax  # noqa: PLC0415  (scipy: only when scoring)

    return expit(logits) if multilabel else softmax(logits, axis=1)


def _unit_row(rows: list[int], names: list[str], uid: str, columns: dict[str, list[Any]]) -> dict[str, Any]:
    first = rows[0]
    return {"uid": uid, **{name: columns[name][first] for name in ("dataset", "subject", "clip_id", "labels")},
            "views": names, "predicted": None, "probabilities": None, "view_probabilities": None, "error": None,
            "corpus_index": columns["corpus_index"][first]}


def score_samples(engine: Any, store: Any, *, batch_size: int = 256) -> tuple[list[dict[str, Any]], float]:
    """Prediction rows for every clip of an opened store (on disk, one shard, or features
    computed on the fly), and the engine's busy seconds.

    Rows: uid (the clip's, when views are merged or stacked), dataset, subject, clip_id,
    annotated labels, ``views`` (the store rows scored), predicted class (multi-label: the
    classes whose probability reaches the model's threshold), probabilities,
    ``view_probabilities`` (views scored one at a time: each view's, aligned with
    ``views``), ``error`` (None, or why the clip could not be scored) and ``corpus_index``. A model that scores
    views one at a time on split views gives each clip the max of its views'
    probabilities (the 4DME practice); a model with views stacked takes each clip's views
    together, and a clip lacking one of them is an error row.

    Raises:
        ValueError: the store does not hold the input the engine expects (named).
    """
    from fastmer.models.inputs import clip_of, group_views, model_input  # noqa: PLC0415

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    config = engine.config
    classes = list(config["classes"])
    thresholds = config.get("thresholds")
    multilabel = thresholds is not None
    if len(store) == 0:
        return [], 0.0
    inputs, names, rows = model_input(store, config)  # raises, naming the mismatch
    features = inputs.float().numpy()
    probs = np.full((len(features), len(classes)), np.nan, np.float32)
    errors: list[str | None] = [None] * len(features)
    start = time.perf_counter()
    for i in range(0, len(features), batch_size):
        try:
            probs[i : i + batch_size] = _probabilities(engine.run(features[i : i + batch_size]), multilabel)
        except Exception as exc:  # noqa: BLE001  (one bad batch is reported; the others are scored)
            errors[i : i + batch_size] = [f"{type(exc).__name__}: {exc}"] * len(features[i : i + batch_size])
    seconds = time.perf_counter() - start

    uids, views = store.column("uid"), store.column("view")
    columns = {name: store.column(name) for name in ("dataset", "subject", "clip_id", "labels", "corpus_index")}
    # Views scored one at a time: one row per clip, the max over its views.
    per_view = not config.get("views") and any(v != "full" for v in views)
    if per_view:
        grouped: dict[str, list[int]] = {}
        for j, name in enumerate(names):
            grouped.setdefault(clip_of(name), []).append(j)
        units = list(grouped.items())
    else:
        units = [(name, [j]) for j, name in enumerate(names)]
    out: list[dict[str, Any]] = []
    for uid, samples in units:
        row = _unit_row([r for j in samples for r in rows[j]], [uids[r] for j in samples for r in rows[j]], uid,
                        columns)
        failed = [errors[j] for j in samples if errors[j] is not None]
        if failed:
            row["error"] = failed[0]
        else:
            p = probs[samples].max(axis=0)
            row["probabilities"] = p.astype(np.float32).tolist()
            if per_view:  # each view's own, aligned with `views`
                row["view_probabilities"] = probs[samples].astype(np.float32).tolist()
            row["predicted"] = ([c for c, v, t in zip(classes, p, thresholds, strict=True) if v >= t] if multilabel
                                else classes[int(p.argmax())])
        out.append(row)
    if config.get("views"):  # stacked views: a clip lacking one cannot be scored
        needed = tuple(config["views"])
        _, _, incomplete = group_views(uids, views, needed)
        rows_of: dict[str, list[int]] = {}
        for r, uid in enumerate(uids):
            rows_of.setdefault(clip_of(uid), []).append(r)
        for clip in incomplete:
            mine = rows_of[clip]
            row = _unit_row(mine, [uids[r] for r in mine], clip, columns)
            have = sorted({views[r] for r in mine})
            row["error"] = f"{clip}: the model takes views {', '.join(needed)}; the clip has {', '.join(have)}"
            out.append(row)
    return out, seconds


def error_row(row: dict[str, Any], stage: str, error: str, corpus_index: int) -> dict[str, Any]:
    """The prediction row of a clip that could not be extracted."""
    uid = row["uid"].split("@", 1)[0]
    return {"uid": uid, "dataset": row.get("dataset"), "subject": row.get("subject"), "clip_id": row.get("clip_id"),
            "labels": list(row.get("labels") or []), "views": [], "predicted": None, "probabilities": None,
            "view_probabilities": None, "error": f"extract [{stage}]: {error}", "corpus_index": corpus_index}
