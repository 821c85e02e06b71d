"""Scoring with any engine (:mod:`fastmer.engine.predict`): a feature store
(:func:`score_store`), or raw clips extracted on the fly by the pipeline's stages and
scored without touching disk (:func:`score_clips`); on this machine, or on Ray actors
(:mod:`fastmer.engine.ray`). The predictions are written as one Parquet file, in corpus
order (:func:`write_predictions`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastmer.config import EXECUTORS
from fastmer.engine.predict import TorchEngine, error_row, open_engine, score_samples

#: ``TorchEngine``, ``open_engine``, ``score_samples`` and ``error_row`` are
#: :mod:`fastmer.engine.predict`'s, offered here too.
__all__ = ["ENGINE_KINDS", "ScoreSummary", "TorchEngine", "error_row", "extraction_config", "open_engine",
           "score_clips", "score_samples", "score_store", "write_predictions"]

ENGINE_KINDS = ("run", "onnx")


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
            :func:`fastmer.engine.ray.score` (``ray_options``: ``address``,
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
        from fastmer.engine.ray import score as score_ray  # noqa: PLC0415

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
            each (:func:`fastmer.engine.ray.score`; ``ray_options``: ``address``,
            ``engines``, ``gpus_per_engine``, ``decode_actors``, ``feature_actors``).

    Raises:
        ValueError: the engine lacks its extraction parameters, or they cannot be
            reproduced (e.g. its YuNet detector without a model file).
    """
    from tqdm import tqdm  # noqa: PLC0415

    from fastmer.executors import local  # noqa: PLC0415
    from fastmer.face import make_detector  # noqa: PLC0415
    from fastmer.pipeline import FeatureStage, representation_specs, resolve_device, results_store  # noqa: PLC0415

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
        from fastmer.engine.ray import score as score_ray  # noqa: PLC0415

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
        for index, result in local.run(todo, detector, config, stage, n_workers, decode_device, lambda *_: None):
            pending.append((index, result))
            bar.update()
            if sum(len(r.views) for _, r in pending) >= config.batch_size:
                score_pending()
        score_pending()
    write_predictions(rows, out, engine.config, recorded)
    return _summary(rows, seconds, engine)
