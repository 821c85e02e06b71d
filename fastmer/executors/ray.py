"""``fastmer extract --executor ray``: the extraction's two compute stages on Ray Data.

The clips become a Ray dataset; two ``map_batches`` stages with an actor pool each do
what the local executor's threads do (:mod:`fastmer.executors.local`):

1. *clips* (``decode_actors`` CPU actors, one clip per call): decode, views, face box,
   crop, motion curve and apex (:func:`fastmer.pipeline.process_clip`); each actor builds
   its face detector once. These actors hold no GPU, so they decode on the CPU (DALI's
   CPU decoders, PyAV or OpenCV).
2. *features* (``feature_actors`` actors, ``gpus_per_actor`` GPUs each, ``batch_size``
   clips per call): one TV-L1 call for all the batch's pairs and every representation
   (:class:`fastmer.pipeline.FeatureStage`), on the actor's GPU when it has one.

Ray Data streams blocks between the stages with backpressure, so memory stays bounded,
and keeps the clips' order (``preserve_order``): the driver receives the results in
corpus order and writes them with the same :class:`~fastmer.store.writer.StoreWriter`
as the local executor: the same atomic shards, the same resume, the same store.
``fastmer infer --executor ray`` adds a third, scoring stage to the same dataset
(:func:`stages`; :mod:`fastmer.engine.ray`).

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
    from fastmer.pipeline import ClipResult


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
        from fastmer.pipeline import process_clip  # noqa: PLC0415

        todo = [self.clips[int(k)] for k in batch["id"]]
        results = [process_clip(clip, self.detector, self.config, "cpu") for _, clip in todo]
        return {"index": np.array([index for index, _ in todo], np.int64), "result": object_array(results)}


class _FeatureStage:
    """Ray actor: stage 2 for a batch of clips; the crops are dropped once used."""

    def __init__(self, config: ExtractConfig, device: str, threads: int) -> None:
        from fastmer.pipeline import FeatureStage, resolve_device  # noqa: PLC0415

        self.stage = FeatureStage(config, resolve_device(device), threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = list(batch["result"])
        begin = time.perf_counter()
        pairs, seconds = self.stage(results)  # drops the crops: the driver gets rows and features
        n = len(results)
        # The batch's totals ride on its first row, so the driver adds each batch once.
        first = np.zeros(n, bool)
        first[0] = True
        return {"index": batch["index"], "result": object_array(results), "first": first,
                "pairs": np.full(n, pairs), "flow": np.full(n, seconds["flow"]),
                "representations": np.full(n, seconds["representations"]),
                "elapsed": np.full(n, time.perf_counter() - begin)}


def object_array(items: list[Any]) -> np.ndarray:
    """``items`` as a 1-D object array (a column of Python objects in a Ray Data batch)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def start(address: str | None) -> Any:
    """Ray, initialised (a local instance, or the cluster at ``address``), quiet."""
    ray = _import_ray()
    # Ray Data's own INFO lines and bars would interleave with fastmer's progress bar.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if not ray.is_initialized():
        from fastmer.interrupt import signals_reclaimed  # noqa: PLC0415

        with signals_reclaimed():  # Ray's own SIGTERM handler would end the driver, orphaning Ray's processes
            ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=False,
                     configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # corpus order, as the local executor writes it
    context.enable_progress_bars = False  # fastmer's own bar counts clips
    return ray


def stages(
    ray: Any,
    todo: dict[int, Clip],
    config: ExtractConfig,
    workers: int,
    decode_actors: int | None,
    feature_actors: int | None,
    gpus_per_actor: float | None,
    reserved_cpus: int = 0,
) -> Any:
    """The Ray dataset of stages 1 and 2 (see :func:`run`), for :func:`run` or a later stage
    (:mod:`fastmer.engine.ray` scores it); ``reserved_cpus``: held by a later stage's actors,
    so the CPU actors here must leave them free."""
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
) -> Iterator[tuple[int, ClipResult]]:
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
    ray = start(address)
    if not todo:
        return
    dataset = stages(ray, todo, config, workers, decode_actors, feature_actors, gpus_per_actor)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        for k in range(len(batch["index"])):
            if batch["first"][k]:
                on_batch(int(batch["pairs"][k]), {"flow": float(batch["flow"][k]),
                                                  "representations": float(batch["representations"][k])})
            yield int(batch["index"][k]), batch["result"][k]
