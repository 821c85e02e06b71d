"""Scoring a feature store with any engine: a training run (PyTorch, optionally
``torch.compile``) or an exported ``.onnx`` (ONNX Runtime).

Every engine exposes ``config`` (the model's JSON: classes, input, thresholds of a
multi-label model) and ``run(features) -> logits``. :func:`score_store` turns logits into
probabilities (softmax, or sigmoid with the model's per-class thresholds), merges the views
of a clip by max when the model scores views one at a time, and keeps going when a batch
fails: its rows carry the error.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fastmer.config import EXECUTORS

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


def write_predictions(rows: list[dict[str, Any]], out: str | Path, config: dict[str, Any],
                      metadata: dict[str, str] | None = None) -> None:
    """One Parquet file of prediction rows, in corpus order, written atomically; ``metadata``
    (e.g. the face detector of on-the-fly extraction) goes into the file's schema metadata."""
    import pyarrow as pa  # noqa: PLC0415

    from fastmer.store.writer import atomic_write_table  # noqa: PLC0415

    classes = list(config["classes"])
    multilabel = config.get("thresholds") is not None
    rows = sorted(rows, key=lambda r: r["corpus_index"])  # stable: a clip's views stay in order
    columns = ("uid", "dataset", "subject", "clip_id", "labels", "views", "probabilities", "view_probabilities",
               "error")
    types = {"uid": pa.string(), "dataset": pa.string(), "subject": pa.string(), "clip_id": pa.string(),
             "labels": pa.list_(pa.string()), "views": pa.list_(pa.string()), "probabilities": pa.list_(pa.float32()),
             "view_probabilities": pa.list_(pa.list_(pa.float32())), "error": pa.string()}
    table = pa.table({name: pa.array([r[name] for r in rows], type=types[name]) for name in columns})
    predicted_type = pa.list_(pa.string()) if multilabel else pa.string()
    table = table.append_column("predicted", pa.array([r["predicted"] for r in rows], type=predicted_type))
    table = table.replace_schema_metadata({"fastmer_classes": ",".join(classes),
                                           "fastmer_multilabel": str(multilabel).lower(), **(metadata or {})})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_table(table, out)


def _summary(rows: list[dict[str, Any]], seconds: float, engine: Any) -> ScoreSummary:
    failed = [r["error"] for r in rows if r["error"] is not None]
    return ScoreSummary(len(rows) - len(failed), len(failed), seconds, list(engine.providers), sorted(set(failed)))


def _check_executor(executor: str, engine: Any) -> None:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "ray" and getattr(engine, "path", None) is None:
        raise ValueError("--executor ray opens the engine on every worker: give it as a file or run directory")


def score_store(engine: Any, store_path: str | Path, out: str | Path, *, batch_size: int = 256,
                executor: str = "local", ray_options: dict[str, Any] | None = None) -> ScoreSummary:
    """Score every clip of a feature store (:func:`score_samples`); write the rows as Parquet
    (atomically), in corpus order.

    Args:
        executor: ``"local"``, or ``"ray"``: the store's shards scored by a pool of Ray
            actors holding one engine each (one per GPU of the cluster), see
            :func:`fastmer.executors.ray.score` (``ray_options``: ``address``,
            ``engines``, ``gpus_per_engine``, ``device``). The store must be readable by
            every node.

    Raises:
        ValueError: the store does not hold the input the engine expects (named).
    """
    from fastmer.models.inputs import clip_of, model_input  # noqa: PLC0415
    from fastmer.store import open as open_store  # noqa: PLC0415
    from fastmer.store.reader import FeatureStore  # noqa: PLC0415

    _check_executor(executor, engine)
    store = open_store(store_path)
    if executor == "ray":
        from fastmer.executors.ray import score as score_ray  # noqa: PLC0415

        if len(store):  # a mismatching store is named here (on its first clip), not in every worker
            uids = store.table.column("uid").slice(0, 8).to_pylist()
            first = [i for i, uid in enumerate(uids) if clip_of(uid) == clip_of(uids[0])]
            model_input(FeatureStore.from_table(store.table.take(first), store.meta, store.path), engine.config)
        rows: list[dict[str, Any]] = []
        seconds = score_ray(str(engine.path), rows.append, store=store, batch_size=batch_size, **(ray_options or {}))
    else:
        rows, seconds = score_samples(engine, store, batch_size=batch_size)
    write_predictions(rows, out, engine.config)
    return _summary(rows, seconds, engine)


def extraction_config(engine: Any, **runtime: Any) -> tuple[Any, dict[str, Any]]:
    """The extraction settings that reproduce the features ``engine`` was trained on, for
    the representations it reads, and the recorded parameters.

    Raises:
        ValueError: the engine does not record them (a run trained before fastmer recorded
            them, whose training store is gone), or this fastmer cannot reproduce them.
    """
    from fastmer.config import ExtractConfig  # noqa: PLC0415
    from fastmer.engine.onnx import extraction_params  # noqa: PLC0415
    from fastmer.models.inputs import InputSpec  # noqa: PLC0415

    params = extraction_params(engine.config) or getattr(engine, "sidecar", {}).get("extraction", {}).get("params")
    if not params:
        raise ValueError(f"engine {engine.path} does not record the extraction parameters of its features (and its "
                         "training store is gone): extract a feature store with the training store's settings and "
                         "score that")
    spec = InputSpec.from_json(engine.config["input"])
    try:
        return ExtractConfig.from_params(params, spec.representations, **runtime), params
    except ValueError as exc:
        raise ValueError(f"engine {engine.path}: {exc}") from exc


def score_clips(engine: Any, clips: Any, out: str | Path, *, batch_size: int = 256, device: str = "auto",
                workers: int | None = None, decoder: str = "auto", face_model: str | None = None,
                face_detector: str | None = None, extract_batch_size: int | None = None, progress: bool = False,
                log: Any = None, executor: str = "local", ray_options: dict[str, Any] | None = None) -> ScoreSummary:
    """Score clips straight from their frames: extraction runs on the fly, exactly as the
    engine's training store was extracted (same crop size, face detector, apex policy,
    TV-L1 preset, stored precision), for the representations the engine reads, and its
    features go to the engine without touching disk.

    A clip that cannot be extracted (unreadable video, no face...) is a row with the error;
    the others are scored. Memory stays bounded: one extraction batch at a time.

    Args:
        clips: :class:`~fastmer.datasets.clip.Clip` list (``fastmer.datasets.load``,
            e.g. ``load("videos", folder)``).
        batch_size: samples per engine call.
        device, workers, decoder, face_model: extraction runtime (see ``fastmer extract``).
        face_detector: a detector other than the training store's (one of
            :data:`~fastmer.config.FACE_DETECTORS`); ``face_model`` alone means YuNet with that
            model. An explicit choice that differs from the training store's is honoured with
            a warning in the log; the detector used, and the training one, are recorded in the
            predictions file's metadata (``fastmer_face_detector``, ``fastmer_face_detector_trained``).
        extract_batch_size: clips per flow batch (default: the extraction default).
        log: receives the run's choices (face detector, decoder); default: nothing.
        executor: ``"local"``, or ``"ray"``: extraction on the Ray actor pools of
            ``fastmer extract --executor ray``, then a pool of scoring actors with one engine
            each (:func:`fastmer.executors.ray.score`; ``ray_options``: ``address``,
            ``engines``, ``gpus_per_engine``, ``decode_actors``, ``feature_actors``).

    Raises:
        ValueError: the engine lacks its extraction parameters, or they cannot be
            reproduced (e.g. its YuNet detector without a model file).
    """
    from tqdm import tqdm  # noqa: PLC0415

    from fastmer.extract import FeatureStage, _run_local, representation_specs, resolve_device, results_store  # noqa: PLC0415
    from fastmer.face import make_detector  # noqa: PLC0415

    _check_executor(executor, engine)
    log = log or (lambda line: None)
    runtime: dict[str, Any] = {"device": device, "workers": workers, "decoder": decoder, "face_model": face_model}
    if extract_batch_size is not None:
        runtime["batch_size"] = extract_batch_size
    config, params = extraction_config(engine, **runtime)
    chosen = face_detector or ("yunet" if face_model is not None and config.face_detector != "yunet" else None)
    if chosen is not None:
        config = replace(config, face_detector=chosen)
    detector, why = make_detector(config.face_detector, config.face_model)
    if detector.name != params["face_detector"]:
        if chosen is None:
            raise ValueError(f"engine {engine.path}: its features were extracted with face detector "
                             f"{params['face_detector']}, this run would use {detector.name} (pass --face-model, "
                             "or choose a detector with --face-detector)")
        log(f"warning: the engine's features were extracted with face detector {params['face_detector']}; scoring "
            f"with {detector.name} as asked: the crops, and so the predictions, may differ from the training data's")
    log(f"extracting on the fly as the engine's training store: {', '.join(config.representations)} at "
        f"{config.size}x{config.size}, {detector.name} face boxes ({why})")
    recorded = {"fastmer_face_detector": detector.name, "fastmer_face_detector_trained": str(params["face_detector"])}
    n_workers = config.workers or os.cpu_count() or 1
    if executor == "ray":
        from fastmer.executors.ray import score as score_ray  # noqa: PLC0415

        rows: list[dict[str, Any]] = []
        seconds = score_ray(str(engine.path), rows.append, todo=dict(enumerate(clips)), config=config, params=params,
                            device=device, batch_size=batch_size, workers=n_workers, **(ray_options or {}))
        write_predictions(rows, out, engine.config, recorded)
        return _summary(rows, seconds, engine)
    torch_device = resolve_device(config.device)
    stage = FeatureStage(config, torch_device, n_workers)
    specs = representation_specs(config)
    todo = dict(enumerate(clips))
    rows = []
    seconds = 0.0
    pending: list[tuple[int, Any]] = []

    def score_pending() -> None:
        nonlocal seconds
        good = [(i, r) for i, r in pending if r.views]
        for i, r in pending:
            if not r.views:
                rows.append(error_row(r.row, r.stage, r.error, i))
        if good:
            store = results_store(good, specs, params, f"<{len(good)} clips extracted on the fly>")
            scored, busy = score_samples(engine, store, batch_size=batch_size)
            rows.extend(scored)
            seconds += busy
        pending.clear()

    decode_device = "cuda" if torch_device.type == "cuda" else "cpu"
    with tqdm(total=len(todo), unit="clip", disable=not progress, desc="infer", file=sys.stderr) as bar:
        for index, result in _run_local(todo, detector, config, stage, n_workers, decode_device, lambda *_: None):
            pending.append((index, result))
            bar.update()
            if sum(len(r.views) for _, r in pending) >= config.batch_size:
                score_pending()
        score_pending()
    write_predictions(rows, out, engine.config, recorded)
    return _summary(rows, seconds, engine)
