"""``fastmer extract --executor ray``: the extraction's two compute stages on Ray Data.

The clips become a Ray dataset; two ``map_batches`` stages with an actor pool each do
what the local executor's threads do:

1. *clips* (``decode_actors`` CPU actors, one clip per call): decode, views, face box,
   crop, motion curve and apex (:func:`fastmer.extract.process_clip`); each actor builds
   its face detector once. These actors hold no GPU, so they decode on the CPU (DALI's
   CPU decoders, PyAV or OpenCV).
2. *features* (``feature_actors`` actors, ``gpus_per_actor`` GPUs each, ``batch_size``
   clips per call): one TV-L1 call for all the batch's pairs and every representation
   (:class:`fastmer.extract.FeatureStage`), on the actor's GPU when it has one.

Ray Data streams blocks between the stages with backpressure, so memory stays bounded,
and keeps the clips' order (``preserve_order``): the driver receives the results in
corpus order and writes them with the same :class:`~fastmer.store.writer.StoreWriter`
as the local executor: the same atomic shards, the same resume, the same store.

On a cluster: start Ray on every machine (``ray start --head`` on one,
``ray start --address=HEAD:6379`` on the others), install fastmer (built against the
cluster's torch) on each, make the corpus readable at the same path everywhere (shared
or object-store-backed filesystem), run ``fastmer extract ... --executor ray
--ray-address auto`` on the head (or ``ray://HEAD:10001`` from outside), and write the
store on a filesystem the driver can fsync. GPUs are found from the cluster's resources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from fastmer.config import ExtractConfig

if TYPE_CHECKING:
    from fastmer.datasets.clip import Clip
    from fastmer.extract import _ClipResult


def _import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415
        import ray.data  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError("--executor ray needs Ray Data: pip install 'fastmer[ray]' (or 'ray[data]')") from exc
    return ray


class _ClipStage:
    """Ray actor: stage 1 for one clip per call."""

    def __init__(self, clips: Any, config: ExtractConfig) -> None:
        from fastmer.face import make_detector  # noqa: PLC0415

        # The run's (index, clip) list, put once in the object store; rows carry positions.
        self.clips: list[tuple[int, Clip]] = _import_ray().get(clips)
        self.config = config
        self.detector, _ = make_detector(config.face_detector, config.face_model)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from fastmer.extract import process_clip  # noqa: PLC0415

        todo = [self.clips[int(k)] for k in batch["id"]]
        results = [process_clip(clip, self.detector, self.config, "cpu") for _, clip in todo]
        return {"index": np.array([index for index, _ in todo], np.int64), "result": _objects(results)}


class _FeatureStage:
    """Ray actor: stage 2 for a batch of clips; the crops are dropped once used."""

    def __init__(self, config: ExtractConfig, device: str, threads: int) -> None:
        from fastmer.extract import FeatureStage, resolve_device  # noqa: PLC0415

        self.stage = FeatureStage(config, resolve_device(device), threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = list(batch["result"])
        begin = time.perf_counter()
        pairs, seconds = self.stage(results)  # drops the crops: the driver gets rows and features
        n = len(results)
        # The batch's totals ride on its first row, so the driver adds each batch once.
        first = np.zeros(n, bool)
        first[0] = True
        return {"index": batch["index"], "result": _objects(results), "first": first,
                "pairs": np.full(n, pairs), "flow": np.full(n, seconds["flow"]),
                "representations": np.full(n, seconds["representations"]),
                "elapsed": np.full(n, time.perf_counter() - begin)}


def _objects(items: list[Any]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _start(address: str | None) -> Any:
    """Ray, initialised (a local instance, or the cluster at ``address``), quiet."""
    ray = _import_ray()
    # Ray Data's own INFO lines and bars would interleave with fastmer's progress bar.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=False,
                 configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # corpus order, as the local executor writes it
    context.enable_progress_bars = False  # fastmer's own bar counts clips
    return ray


def _extraction(
    ray: Any,
    todo: dict[int, Clip],
    config: ExtractConfig,
    workers: int,
    decode_actors: int | None,
    feature_actors: int | None,
    gpus_per_actor: float | None,
    reserved_cpus: int = 0,
) -> Any:
    """The Ray dataset of stages 1 and 2 (see :func:`run`); ``reserved_cpus``: held by a
    later stage's actors, so the CPU actors here must leave them free."""
    for name, value in (("decode_actors", decode_actors), ("feature_actors", feature_actors)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if gpus_per_actor is not None and gpus_per_actor < 0:
        raise ValueError(f"gpus_per_actor must be >= 0, got {gpus_per_actor}")
    resources = ray.cluster_resources()
    cluster_gpus = int(resources.get("GPU", 0))
    if gpus_per_actor is None:
        # The cluster's GPUs count, not the driver's: a head node without one still uses them.
        gpus_per_actor = 1.0 if cluster_gpus and config.device != "cpu" else 0.0
    feature_actors = feature_actors or (max(1, int(cluster_gpus / gpus_per_actor)) if gpus_per_actor else 1)
    cpus = int(resources.get("CPU", 1))
    # Actors hold their CPUs for their lifetime; with a third stage (scoring) a pipeline
    # whose actors take every CPU starves Ray Data's read tasks and waits forever, so one
    # CPU stays free and what cannot fit is refused.
    spare = 1 if reserved_cpus else 0
    decode_actors = decode_actors or max(1, cpus - feature_actors - reserved_cpus - spare)
    feature_device = "cuda" if gpus_per_actor else "cpu"
    feature_cpus = 1 if gpus_per_actor else min(workers, max(1, cpus))
    if reserved_cpus:
        feature_cpus = 1 if gpus_per_actor else max(1, min(workers, cpus - decode_actors - reserved_cpus - spare))
        needed = decode_actors + feature_actors * feature_cpus + reserved_cpus + spare
        if needed > cpus:
            raise ValueError(f"the Ray cluster has {cpus} CPUs; {decode_actors} decode actor(s), {feature_actors} "
                             f"feature actor(s) of {feature_cpus} CPU(s), {reserved_cpus} CPU(s) for the engines and "
                             f"one for Ray Data's reads need {needed}: use fewer actors or engines, or a larger cluster")
    clips = ray.put(list(todo.items()))
    return (
        ray.data.range(len(todo), override_num_blocks=min(len(todo), 1024))
        .map_batches(_ClipStage, batch_size=1,
                     fn_constructor_kwargs={"clips": clips, "config": config},
                     compute=ray.data.ActorPoolStrategy(size=decode_actors), num_cpus=1)
        .map_batches(_FeatureStage, batch_size=config.batch_size,
                     fn_constructor_kwargs={"config": config, "device": feature_device, "threads": workers},
                     compute=ray.data.ActorPoolStrategy(size=feature_actors), num_gpus=gpus_per_actor,
                     num_cpus=feature_cpus)
    )


def run(
    todo: dict[int, Clip],
    config: ExtractConfig,
    workers: int,
    on_batch: Callable[[int, dict[str, float]], None],
    *,
    address: str | None = None,
    decode_actors: int | None = None,
    feature_actors: int | None = None,
    gpus_per_actor: float | None = None,
) -> Iterator[tuple[int, _ClipResult]]:
    """Stages 1 and 2 of :func:`fastmer.extract.extract` on Ray Data, results in corpus order.

    Args:
        todo: corpus index -> clip, the clips to process.
        config: extraction parameters (``batch_size`` clips per feature call; actors build
            the same face detector; ``device="cpu"`` keeps them off GPUs).
        workers: CPU threads for a feature actor's native ops on a CPU-only actor.
        on_batch: receives each feature batch's ``(pairs, {"flow": s, "representations": s})``.
        address: Ray cluster (``"auto"``, ``"ray://host:10001"``); None starts a local
            instance (or joins the one this process already runs).
        decode_actors: clip-stage actors [default: the cluster's CPUs minus one per
            feature actor, at least 1].
        feature_actors: feature-stage actors [default: one per GPU, else 1].
        gpus_per_actor: GPUs per feature actor [default: 1 when the cluster has GPUs and
            ``config.device`` is not ``cpu``, else 0].

    Raises:
        RuntimeError: Ray is not installed.
        ValueError: a bad actor count or GPU share.
    """
    ray = _start(address)
    if not todo:
        return
    dataset = _extraction(ray, todo, config, workers, decode_actors, feature_actors, gpus_per_actor)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        for k in range(len(batch["index"])):
            if batch["first"][k]:
                on_batch(int(batch["pairs"][k]), {"flow": float(batch["flow"][k]),
                                                  "representations": float(batch["representations"][k])})
            yield int(batch["index"][k]), batch["result"][k]


# --- fastmer infer --executor ray ------------------------------------------------------------

class _ScoreStage:
    """Ray actor holding one engine: scores a store's shards, or extracted clips, per call."""

    def __init__(self, engine: str, device: str, batch_size: int, meta: dict[str, Any] | None = None,
                 specs: Any = None, params: dict[str, Any] | None = None) -> None:
        from fastmer.engine.score import open_engine  # noqa: PLC0415

        self.engine = open_engine(engine, device=device)
        self.batch_size = batch_size
        self.meta, self.specs, self.params = meta, specs, params

    def _rows(self, store: Any) -> tuple[list[dict[str, Any]], float]:
        from fastmer.engine.score import score_samples  # noqa: PLC0415

        return score_samples(self.engine, store, batch_size=self.batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from fastmer.engine.score import error_row  # noqa: PLC0415
        from fastmer.extract import results_store  # noqa: PLC0415

        begin = time.perf_counter()
        if "shard" in batch:  # a feature store's shard files
            import pyarrow.parquet as pq  # noqa: PLC0415

            from fastmer.store.reader import FeatureStore  # noqa: PLC0415

            rows, busy = [], 0.0
            for shard in batch["shard"]:
                scored, seconds = self._rows(FeatureStore.from_table(pq.read_table(shard), self.meta, shard))
                rows += scored
                busy += seconds
        else:  # clips extracted by the stages before
            pairs = list(zip(batch["index"].tolist(), batch["result"], strict=True))
            rows = [error_row(r.row, r.stage, r.error, i) for i, r in pairs if not r.views]
            good = [(i, r) for i, r in pairs if r.views]
            busy = 0.0
            if good:
                scored, busy = self._rows(results_store(good, self.specs, self.params, f"<{len(good)} clips>"))
                rows += scored
        n = max(1, len(rows))
        return {"row": _objects(rows or [None]), "engine": np.full(n, busy / n),
                "elapsed": np.full(n, (time.perf_counter() - begin) / n)}


def score(
    engine: str,
    out_rows: Callable[[dict[str, Any]], None],
    *,
    store: Any = None,
    todo: dict[int, Clip] | None = None,
    config: ExtractConfig | None = None,
    params: dict[str, Any] | None = None,
    device: str = "auto",
    batch_size: int = 256,
    workers: int = 1,
    address: str | None = None,
    engines: int | None = None,
    gpus_per_engine: float | None = None,
    decode_actors: int | None = None,
    feature_actors: int | None = None,
) -> float:
    """``fastmer infer --executor ray``: one engine per actor (per GPU on a GPU cluster).

    Scores a feature ``store`` (its shards are the tasks; the views of a clip never span
    two) or the clips ``todo`` (extracted by the two stages of :func:`run` with
    ``config``, then scored without touching disk). Each prediction row goes to
    ``out_rows`` as it arrives; returns the engines' busy seconds.

    Args:
        engine: engine path (``.onnx`` or run directory) readable on every node.
        engines: scoring actors [default: one per GPU, else 1].
        gpus_per_engine: GPUs per scoring actor [default: 1 when the cluster has GPUs
            and ``device`` is not ``cpu``, else 0].
    """
    ray = _start(address)
    if engines is not None and engines < 1:
        raise ValueError(f"engines must be >= 1, got {engines}")
    resources = ray.cluster_resources()
    cluster_gpus = int(resources.get("GPU", 0))
    if gpus_per_engine is None:
        gpus_per_engine = 1.0 if cluster_gpus and device != "cpu" else 0.0
    engines = engines or (max(1, int(cluster_gpus / gpus_per_engine)) if gpus_per_engine else 1)
    engine_device = "cuda" if gpus_per_engine else "cpu"
    kwargs: dict[str, Any] = {"engine": str(engine), "device": engine_device, "batch_size": batch_size}
    if store is not None:
        from fastmer.store import schema  # noqa: PLC0415

        shards = sorted(str(p) for p in (store.path / schema.CLIPS_DIR).glob("part-*.parquet"))
        if not shards:
            return 0.0
        dataset = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=len(shards))
        kwargs["meta"] = store.meta
        per_call = 1
    else:
        if not todo:
            return 0.0
        from fastmer.extract import representation_specs  # noqa: PLC0415

        dataset = _extraction(ray, todo, config, workers, decode_actors, feature_actors, None,
                              reserved_cpus=0 if gpus_per_engine else engines)
        kwargs.update(specs=representation_specs(config), params=params)
        per_call = config.batch_size
    dataset = dataset.map_batches(_ScoreStage, batch_size=per_call, fn_constructor_kwargs=kwargs,
                                  compute=ray.data.ActorPoolStrategy(size=engines), num_gpus=gpus_per_engine,
                                  num_cpus=0 if gpus_per_engine else 1)
    busy = 0.0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        busy += float(batch["engine"].sum())
        for row in batch["row"]:
            if row is not None:
                out_rows(row)
    return busy
