"""Scoring a feature store with any engine: a training run (PyTorch, optionally
``torch.compile``) or an exported ``.onnx`` (ONNX Runtime).

Every engine exposes ``config`` (the model's JSON: classes, input, thresholds of a
multi-label model) and ``run(features) -> logits``. :func:`score_store` turns logits into
probabilities (softmax, or sigmoid with the model's per-class thresholds), merges the views
of a clip by max when the model scores views one at a time, and keeps going when a batch
fails: its rows carry the error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ENGINE_KINDS = ("run", "onnx")


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
    """The engine at ``path``: a run directory (PyTorch) or an ``.onnx`` file (ONNX Runtime)."""
    from fastmer.engine.onnx import OnnxEngine  # noqa: PLC0415

    path = Path(path)
    if path.is_dir():
        return TorchEngine(path, device=device, compile=compile)
    if path.suffix == ".onnx":
        return OnnxEngine(path, providers=providers)
    if path.suffix == ".plan":
        raise ValueError(f"{path}: fastmer has no TensorRT runtime yet; score the .onnx the engine was built from "
                         "(ONNX Runtime uses its CUDA provider when installed)")
    raise ValueError(f"engine {path} is neither a training run directory nor an .onnx file")


@dataclass
class ScoreSummary:
    n_scored: int
    n_failed: int
    seconds: float
    providers: list[str]
    errors: list[str] = field(default_factory=list)

    @property
    def clips_per_s(self) -> float:
        return self.n_scored / self.seconds if self.seconds > 0 else 0.0


def _probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def score_store(engine: Any, store_path: str | Path, out: str | Path, *, batch_size: int = 256) -> ScoreSummary:
    """Score every sample of a feature store; write one row per clip as Parquet (atomically).

    Rows: uid (the clip's, when views are merged or stacked), dataset, subject, clip_id,
    annotated labels, ``views`` (the store rows scored), predicted class (multi-label: the
    classes whose probability reaches the model's threshold), probabilities, and
    ``error`` (None, or why the clip could not be scored). A model that scores views one at
    a time on a store of split views gives each clip the max of its views' probabilities
    (the 4DME practice); a model with views stacked takes each clip's views together.

    Raises:
        ValueError: the store does not hold the input the engine expects (named).
    """
    import pyarrow as pa  # noqa: PLC0415

    from fastmer.models.inputs import clip_of, model_input  # noqa: PLC0415
    from fastmer.store import open as open_store  # noqa: PLC0415
    from fastmer.store.writer import atomic_write_table  # noqa: PLC0415

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    store = open_store(store_path)
    config = engine.config
    classes = list(config["classes"])
    thresholds = config.get("thresholds")
    multilabel = thresholds is not None
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

    # Views scored one at a time: one row per clip, the max over its views.
    uids, views = store.column("uid"), store.column("view")
    if not config.get("views") and any(v != "full" for v in views):
        grouped: dict[str, list[int]] = {}
        for j, name in enumerate(names):
            grouped.setdefault(clip_of(name), []).append(j)
        units = list(grouped.items())
    else:
        units = [(name, [j]) for j, name in enumerate(names)]
    column = {name: store.column(name) for name in ("dataset", "subject", "clip_id", "labels")}
    table: dict[str, list[Any]] = {k: [] for k in ("uid", "dataset", "subject", "clip_id", "labels", "views",
                                                   "predicted", "probabilities", "error")}
    for uid, samples in units:
        first_row = rows[samples[0]][0]
        failed = [errors[j] for j in samples if errors[j] is not None]
        p = probs[samples].max(axis=0) if not failed else None
        if p is None:
            predicted = None
        elif multilabel:
            predicted = [c for c, v, t in zip(classes, p, thresholds, strict=True) if v >= t]
        else:
            predicted = classes[int(p.argmax())]
        table["uid"].append(uid)
        for name in ("dataset", "subject", "clip_id", "labels"):
            table[name].append(column[name][first_row])
        table["views"].append([uids[r] for j in samples for r in rows[j]])
        table["predicted"].append(predicted)
        table["probabilities"].append(None if p is None else p.astype(np.float32).tolist())
        table["error"].append(failed[0] if failed else None)
    predicted_type = pa.list_(pa.string()) if multilabel else pa.string()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.table({**{k: v for k, v in table.items() if k != "predicted"},
                      "predicted": pa.array(table["predicted"], type=predicted_type)})
    arrow = arrow.replace_schema_metadata({"fastmer_classes": ",".join(classes),
                                           "fastmer_multilabel": str(multilabel).lower()})
    atomic_write_table(arrow, out)
    n_failed = sum(e is not None for e in table["error"])
    return ScoreSummary(len(units) - n_failed, n_failed, seconds, list(engine.providers),
                        sorted({e for e in table["error"] if e}))
