"""``fastmer infer --executor ray``: a pool of Ray actors holding one engine each (one
per GPU of the cluster) scores a feature store's shards, or the clips the Ray executor's
stages extract (:func:`fastmer.executors.ray.stages`) without touching disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastmer.config import ExtractConfig
from fastmer.datasets.clip import Clip
from fastmer.engine.predict import error_row, open_engine, score_samples
from fastmer.executors.ray import object_array, stages, start
from fastmer.pipeline import representation_specs, results_store


class _ScoreStage:
    """Ray actor holding one engine: scores a store's shards, or extracted clips, per call."""

    def __init__(self, engine: str, device: str, batch_size: int, meta: dict[str, Any] | None = None,
                 specs: Any = None, params: dict[str, Any] | None = None) -> None:
        self.engine = open_engine(engine, device=device)
        self.batch_size = batch_size
        self.meta, self.specs, self.params = meta, specs, params

    def _rows(self, store: Any) -> tuple[list[dict[str, Any]], float]:
        return score_samples(self.engine, store, batch_size=self.batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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
        return {"row": object_array(rows or [None]), "engine": np.full(n, busy / n),
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
    two) or the clips ``todo`` (extracted by the two stages of :func:`fastmer.executors.ray.run` with
    ``config``, then scored without touching disk). Each prediction row goes to
    ``out_rows`` as it arrives; returns the engines' busy seconds.

    Args:
        engine: engine path (``.onnx`` or run directory) readable on every node.
        engines: scoring actors [default: one per GPU, else 1].
        gpus_per_engine: GPUs per scoring actor [default: 1 when the cluster has GPUs
            and ``device`` is not ``cpu``, else 0].
    """
    ray = start(address)
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
        dataset = stages(ray, todo, config, workers, decode_actors, feature_actors, None,
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
