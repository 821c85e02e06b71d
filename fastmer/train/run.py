"""``fastmer train``: a protocol run over a feature store, with an auditable report.

Writes into the run directory:

* ``report.json``: pooled MEGC scores (UF1, UAR, accuracy; multi-label: macro-UF1 with
  per-class thresholds), per-class scores, the confusion matrix, a per-fold table, the
  label protocol, excluded clips, the recipe, augmentation, seeds, execution and timings.
* ``folds.json``: the exact clip uids of every fold's training and test sets.
* ``predictions.parquet``: one row per tested clip with its fold, true and predicted
  class(es) and scores, as predicted by the model that did not see its subject.
* ``folds/fold-NNN.safetensors`` + ``.json``: each fold's model (the JSON names its fold).
* ``confusion.png`` (pooled) and ``curves.png`` (every fold's losses).
* ``model.safetensors`` + ``model.json``: a final model trained on all clips with the same
  recipe (what ``fastmer export`` ships); evaluation never uses it.

Speed: the store is read once and every clip's network input prepared once. On a GPU
(``device="cuda"``) the inputs live on it, training runs in bfloat16 mixed precision, and
the folds train together as one stacked model (``fold_batch``, :mod:`fastmer.train.batched`):
a LOSO fold alone cannot keep a GPU busy. On a CPU the folds run in parallel worker
processes (``jobs``), each single-threaded: the networks are tiny, so one core per fold
beats several cores per fold. Every fold is seeded on its own (``seed * 1000 + i``), so
the results do not depend on ``jobs`` (and, without dropout, not on ``fold_batch``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastmer import __version__
from fastmer.datasets.labels import LabelProtocol, get_protocol
from fastmer.models import ModelEntry, TrainRecipe, get_entry
from fastmer.models.model import MERModel
from fastmer.store import FeatureStore
from fastmer.store import open as open_store
from fastmer.store.writer import atomic_write_bytes, atomic_write_table
from fastmer.train.metrics import (
    apply_thresholds,
    confusion_matrix,
    fold_averaged,
    multilabel_scores,
    per_group_scores,
    scores,
    tune_thresholds,
)
from fastmer.train.plots import write_run_figures
from fastmer.train.protocols import EXHAUSTIVE_PROTOCOLS, Fold, check_folds, folds_manifest, inner_split, make_folds
from fastmer.train.trainer import History, fit, predict, torch_threads

FINAL_MODEL_SEED_OFFSET = 999
FOLDS_DIR = "folds"  # each fold's weights: folds/fold-000.safetensors + .json
DEVICES = ("auto", "cpu", "cuda")
AUGMENTATIONS = ("flip", "affine", "dual-phase-di")
"""``flip``: mirror with u negated (p = 0.5); ``affine``: rotation ±5° and scale ±5% (flow
vectors turned and scaled with the image); ``dual-phase-di``: each training clip also
contributes its onset→apex and apex→offset dynamic images (models reading ``dynamic_image``).
See :mod:`fastmer.train.augment`."""
AUGMENT_SETTINGS = {"flip": {"p_flip": 0.5}, "affine": {"degrees": 5.0, "scale": 0.05}}
PHASE_DI = "dynamic_image_phases"  # the store column dual-phase-di reads


@dataclass
class _Data:
    """The clips a run uses: network inputs prepared once, labels, and bookkeeping."""

    x: torch.Tensor  # (N, C, h, w) network inputs, normalised as the model's adapter does
    y: torch.Tensor  # (N,) class indices, or (N, K) 0/1 labels (multi-label)
    uids: list[str]
    subjects: list[str]
    datasets: list[str]
    excluded: list[dict[str, Any]]
    raw: torch.Tensor | None = None  # inputs before min-max normalisation, for spatial augmentation
    phases: torch.Tensor | None = None  # (N, 2, C, h, w) onset->apex, apex->offset DIs (dual-phase-di)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in ("x", "y", "raw", "phases") if getattr(self, name) is not None}


@dataclass
class _Shared:
    """What every fold of a run needs: sent once to each worker process."""

    data: _Data
    config: dict[str, Any]  # the MERModel config
    fitter: str
    recipe: TrainRecipe | None
    multilabel: bool
    augment: tuple[str, ...]
    seed: int
    out: Path
    provenance: dict[str, Any]
    threads: int | None
    amp: bool
    channels: tuple[str, ...] = ()  # network input channels (what the augmentation transforms)
    minmax: bool = True  # the input spec's min-max normalisation (re-applied after augmenting)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def _targets(store: FeatureStore, protocol: LabelProtocol) -> tuple[list[int], list[Any], list[dict[str, Any]]]:
    """Clips the protocol keeps (their class index, or 0/1 row when multi-label) and those it excludes."""
    keep, targets, excluded = [], [], []
    uids = store.column("uid")
    for i, clip_labels in enumerate(store.column("labels")):
        classes = protocol.classes_of(tuple(clip_labels))
        if classes is None:
            excluded.append({"uid": uids[i], "labels": clip_labels})
            continue
        keep.append(i)
        if protocol.multilabel:
            targets.append([float(c in classes) for c in protocol.classes])
        else:
            targets.append(protocol.classes.index(classes[0]))
    if not keep:
        raise ValueError(f"no clip of {store.path} has a label in protocol {protocol.name}")
    return keep, targets, excluded


def _prepare(store: FeatureStore, template: MERModel, entry: ModelEntry, protocol: LabelProtocol,
             augment: Sequence[str]) -> _Data:
    """Map labels (listing the clips the protocol excludes) and prepare network inputs once."""
    from fastmer.models.inputs import InputAdapter  # noqa: PLC0415

    keep, targets, excluded = _targets(store, protocol)
    uids, subjects, datasets = store.column("uid"), store.column("subject"), store.column("dataset")
    index = torch.as_tensor(keep)
    adapter = template.adapter  # no parameters: apply it once to every clip
    raw_adapter = None
    if {"flip", "affine"} & set(augment):  # augmentation needs the physical values
        raw_adapter = InputAdapter(replace(adapter.spec, normalization="none"), adapter.stored_channels,
                                   adapter.stored_hw)
    with torch.no_grad():
        stored = store.tensor(entry.input.representation).index_select(0, index)
        data = _Data(adapter(stored), torch.as_tensor(targets), [uids[i] for i in keep], [subjects[i] for i in keep],
                     [datasets[i] for i in keep], excluded)
        if raw_adapter is not None:
            data.raw = raw_adapter(stored)
        if "dual-phase-di" in augment:
            phases = store.tensor(PHASE_DI).index_select(0, index)
            c = len(adapter.stored_channels)  # the phase DIs' channels: onset->apex ones, then apex->offset
            prepare = raw_adapter or adapter
            data.phases = torch.stack([prepare(phases[:, :c]), prepare(phases[:, c:])], dim=1)
    return data


def _check_augment(augment: Sequence[str], entry: ModelEntry, store: FeatureStore,
                   channels: tuple[str, ...]) -> tuple[str, ...]:
    from fastmer.train.augment import Augment  # noqa: PLC0415

    augment = tuple(dict.fromkeys(augment))
    unknown = [a for a in augment if a not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {', '.join(AUGMENTATIONS)}")
    if augment and entry.fitter == "solver":
        raise ValueError(f"{entry.name} is fitted by a solver on fixed features; augmentation does not apply")
    if "dual-phase-di" in augment:
        if entry.input.representation != "dynamic_image":
            raise ValueError(f"--augment dual-phase-di needs a model reading dynamic_image; {entry.name} reads "
                             f"{entry.input.representation}")
        if PHASE_DI not in store.representations:
            raise ValueError(f"--augment dual-phase-di needs the {PHASE_DI} representation, not in store {store.path}")
    spatial = [a for a in augment if a in AUGMENT_SETTINGS]
    if spatial:  # validates the channel names (and u/v pairs for rotations) before any training
        Augment(channels, **_augment_settings(spatial))
    return augment


def _augment_settings(augment: Sequence[str]) -> dict[str, float]:
    settings = {"p_flip": 0.0, "degrees": 0.0, "scale": 0.0}
    for name in augment:
        settings.update(AUGMENT_SETTINGS.get(name, {}))
    return settings


def _training_set(shared: _Shared, train: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Inputs, labels and batch augmentation of a fold's training clips ``train``."""
    from fastmer.train.augment import Augment, dual_phase_di  # noqa: PLC0415

    data = shared.data
    spatial = [a for a in shared.augment if a in AUGMENT_SETTINGS]
    base = data.raw if spatial else data.x
    augment = Augment(shared.channels, minmax=shared.minmax, seed=seed, **_augment_settings(spatial)) if spatial else None
    if data.phases is None:
        index = torch.as_tensor(train, device=base.device)
        return base[index], data.y[index], augment
    # Labels are gathered through `source` below, so multi-label rows work too.
    n = len(base)
    s = dual_phase_di(base, data.phases.flatten(1, 2), torch.arange(n, device=base.device), train)
    return s.x, data.y[s.source], augment


def _train_one(shared: _Shared, train: np.ndarray, seed: int) -> tuple[MERModel, History, dict | None]:
    """A model trained on the clips ``train`` (an inner split of them when it needs validation)."""
    data = shared.data
    device = data.x.device
    torch.manual_seed(seed)
    model = MERModel(shared.config).to(device)
    if shared.fitter == "solver":
        index = torch.as_tensor(train, device=device)
        model.net.fit(data.x[index], data.y[index])
        return model.eval(), History(), None
    recipe = shared.recipe
    assert recipe is not None
    fit_idx, val_idx = train, None
    # Early stopping and multi-label thresholds are chosen on held-out *training* subjects.
    if recipe.patience is not None or shared.multilabel:
        fit_idx, val_idx = inner_split(train, data.subjects, fraction=recipe.val_fraction, seed=seed)
    x, y, augment = _training_set(shared, fit_idx, seed)
    val = None
    if val_idx is not None:
        v = torch.as_tensor(val_idx, device=device)
        val = (data.x[v], data.y[v])
    num_classes = len(shared.config["classes"])
    history = fit(model.net, x, y, recipe, seed, num_classes=num_classes, val=val, augment=augment,
                  multilabel=shared.multilabel, amp=shared.amp)
    thresholds = None
    if shared.multilabel:
        assert val is not None
        probs = torch.sigmoid(predict(model.net, val[0], amp=shared.amp)).cpu().numpy()
        thresholds = tune_thresholds(val[1].cpu().numpy().astype(np.int64), probs, shared.config["classes"])
    return model, history, thresholds


def _task_seed(shared: _Shared, i: int, fold: Fold | None) -> tuple[int, np.ndarray]:
    """Seed and training clips of fold ``i`` (``fold=None``: the final model, every clip)."""
    if fold is None:
        return shared.seed * 1000 + FINAL_MODEL_SEED_OFFSET, np.arange(len(shared.data.y))
    return shared.seed * 1000 + i, fold.train


def _finish(shared: _Shared, i: int, fold: Fold | None, model: MERModel, history: History, thresholds: dict | None,
            train_seconds: float) -> dict[str, Any]:
    """Predict the test clips of a trained fold and save its weights (or the final model's)."""
    begin = time.perf_counter()
    data = shared.data
    logits = None
    if fold is not None:
        with torch_threads(shared.threads):
            test = torch.as_tensor(fold.test, device=data.x.device)
            logits = predict(model.net, data.x[test], amp=shared.amp).cpu()
    extra = dict(shared.provenance)
    if thresholds is not None:
        extra["thresholds"] = thresholds["thresholds"]
    if fold is None:
        extra["trained_on"] = {**extra["trained_on"], "n_clips": len(data.y)}
        weights = Path("model.safetensors")
        config = Path("model.json")
    else:
        extra.update(fold=fold.name, fold_index=i)
        weights = Path(FOLDS_DIR) / f"fold-{i:03d}.safetensors"
        config = weights.with_suffix(".json")
    model.eval().cpu().save(shared.out / weights, shared.out / config, extra=extra)
    return {"index": i, "logits": logits, "history": history.to_json(), "thresholds": thresholds,
            "weights": str(weights), "seconds": train_seconds + time.perf_counter() - begin}


def _task(shared: _Shared, i: int, fold: Fold | None) -> dict[str, Any]:
    """Train fold ``i`` (or, ``fold=None``, the final model on every clip), save it, predict its test clips."""
    begin = time.perf_counter()
    seed, train = _task_seed(shared, i, fold)
    with torch_threads(shared.threads):
        model, history, thresholds = _train_one(shared, train, seed)
    return _finish(shared, i, fold, model, history, thresholds, time.perf_counter() - begin)


def can_batch_folds(fitter: str, multilabel: bool, augment: Sequence[str]) -> bool:
    """Whether :mod:`fastmer.train.batched` can train these folds together (else: one by one)."""
    return fitter == "gradient" and not multilabel and "dual-phase-di" not in augment


def _task_group(shared: _Shared, tasks: Sequence[tuple[int, Fold | None]]) -> list[dict[str, Any]]:
    """Train several folds at once as one stacked model (:func:`fastmer.train.batched.fit_folds`)."""
    from fastmer.train.augment import Augment  # noqa: PLC0415
    from fastmer.train.batched import fit_folds  # noqa: PLC0415

    data, recipe = shared.data, shared.recipe
    assert recipe is not None
    device = data.x.device
    begin = time.perf_counter()
    models, seeds, trains, vals = [], [], [], []
    for i, fold in tasks:
        seed, train = _task_seed(shared, i, fold)
        torch.manual_seed(seed)
        models.append(MERModel(shared.config).to(device))
        val = None
        if recipe.patience is not None:
            train, val_idx = inner_split(train, data.subjects, fraction=recipe.val_fraction, seed=seed)
            v = torch.as_tensor(val_idx, device=device)
            val = (data.x[v], data.y[v])
        seeds.append(seed)
        trains.append(torch.as_tensor(train, device=device))
        vals.append(val)
    spatial = [a for a in shared.augment if a in AUGMENT_SETTINGS]
    augment = (Augment(shared.channels, minmax=shared.minmax, seed=seeds[0], **_augment_settings(spatial))
               if spatial else None)
    with torch_threads(shared.threads):
        histories = fit_folds([m.net for m in models], data.raw if spatial else data.x, data.y, trains, recipe, seeds,
                              num_classes=len(shared.config["classes"]), val=vals, augment=augment, amp=shared.amp)
    seconds = (time.perf_counter() - begin) / len(tasks)  # shared: each fold is charged its share
    return [_finish(shared, i, fold, model, history, None, seconds)
            for (i, fold), model, history in zip(tasks, models, histories, strict=True)]


# --- worker processes (CPU) -------------------------------------------------------------------
_WORKER: _Shared | None = None


def _init_worker(shared: _Shared) -> None:
    global _WORKER
    _WORKER = shared


def _worker_task(i: int, fold: Fold | None) -> dict[str, Any]:
    assert _WORKER is not None, "worker not initialised"
    return _task(_WORKER, i, fold)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but torch sees no CUDA GPU (torch.cuda.is_available() is False)")
    return torch.device(device)


def _run_tasks(shared: _Shared, folds: list[Fold], jobs: int, on_done: Callable[[dict[str, Any]], None],
               fold_batch: int = 1) -> None:
    """Every fold and the final model (index ``len(folds)``): in this process (``fold_batch`` of
    them stacked at a time), or on ``jobs`` workers."""
    tasks: list[tuple[int, Fold | None]] = [*enumerate(folds), (len(folds), None)]
    if fold_batch > 1:
        for start in range(0, len(tasks), fold_batch):
            for result in _task_group(shared, tasks[start : start + fold_batch]):
                on_done(result)
        return
    if jobs <= 1:
        for i, fold in tasks:
            on_done(_task(shared, i, fold))
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: PLC0415

    import torch.multiprocessing as mp  # noqa: PLC0415  (tensors travel through shared memory)

    for tensor in shared.data.tensors().values():
        tensor.share_memory_()
    # spawn, not fork: a forked child of a process that has used OpenMP threads can hang.
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(shared,)) as pool:
        futures = [pool.submit(_worker_task, i, fold) for i, fold in tasks]
        try:
            for future in as_completed(futures):
                on_done(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def train(
    store_path: str | Path,
    out: str | Path,
    *,
    model: str = "ststnet",
    protocol: str = "loso",
    labels: str = "megc2019-3class",
    recipe: TrainRecipe | None = None,
    model_options: dict[str, Any] | None = None,
    augment: Sequence[str] = (),
    seed: int = 0,
    k: int = 5,
    test_fraction: float = 0.2,
    device: str = "cpu",
    jobs: int | None = 1,
    fold_batch: int | None = None,
    amp: bool | None = None,
    threads: int | None = 1,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on the store under ``protocol`` and train the final model.

    Args:
        store_path: feature store written by ``fastmer extract``.
        out: run directory (created; must be empty unless ``overwrite``).
        model: name in :data:`fastmer.models.MODELS`.
        protocol: one of :data:`fastmer.train.protocols.PROTOCOLS` (all split by subject).
        labels: label protocol name (:data:`fastmer.datasets.labels.LABEL_PROTOCOLS`); a
            multi-label one (``4dme-multilabel``) trains one sigmoid output per class, and
            each fold's per-class thresholds are tuned on an inner split of its training
            subjects (``recipe.val_fraction``), never on its test subject.
        recipe: training hyper-parameters (default: the model's recipe; solver-fitted models
            such as ``lbptop-svm`` have none).
        model_options: constructor options of the model (default: the registry's), recorded.
        augment: names in :data:`AUGMENTATIONS`, applied to training clips only.
        seed: base seed; fold ``i`` uses ``seed * 1000 + i``, the final model ``seed * 1000 + 999``;
            it also draws the k-fold and hold-out splits.
        k: folds of ``protocol="kfold"``.
        test_fraction: share of the subjects held out by ``protocol="holdout"``.
        device: ``"cpu"``, ``"cuda"`` (inputs are moved to the GPU once) or ``"auto"``.
        jobs: CPU worker processes training folds in parallel (None: one per usable core;
            1: in this process). Not used with ``fold_batch`` > 1.
        fold_batch: folds trained together as one stacked model (:mod:`fastmer.train.batched`):
            None = every fold at once on CUDA, one at a time on the CPU (where processes are
            faster). Models solved exactly, multi-label runs and dual-phase-di train one fold
            at a time.
        amp: bfloat16 mixed precision (None: on for CUDA, off on the CPU).
        threads: torch intra-op threads per fold. The networks are small: on a CPU one
            thread per fold is fastest (more threads only contend), hence the default 1.
        overwrite: allow a non-empty ``out``.
        log: callable receiving progress lines.

    Returns:
        The report (also written to ``out/report.json``).
    """
    log = log or (lambda line: None)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"run directory {out} is not empty (use --overwrite)")
    entry = get_entry(model)
    if entry.fitter == "solver" and recipe is not None:
        raise ValueError(f"{model} is fitted by a solver, not by gradient descent: it takes no training recipe")
    recipe = recipe or entry.recipe
    label_protocol = get_protocol(labels)
    multilabel = label_protocol.multilabel
    if multilabel and entry.fitter == "solver":
        raise ValueError(f"{model} is single-label; label protocol {labels} is multi-label")
    torch_device = resolve_device(device)
    amp = torch_device.type == "cuda" if amp is None else amp
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1 (or None: one per core), got {jobs}")
    store = open_store(store_path)
    if entry.input.representation not in store.representations:
        raise ValueError(f"model {model} needs {entry.input.representation!r}, not in store {store_path}")
    spec = store.representations[entry.input.representation]
    template = MERModel.create(model, label_protocol.classes, tuple(spec["channels"]), tuple(spec["shape"]),
                               **(model_options or {}))
    augment = _check_augment(augment, entry, store, tuple(entry.input.channels))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = _prepare(store, template, entry, label_protocol, augment)
    folds = make_folds(protocol, data.subjects, datasets=data.datasets, k=k, test_fraction=test_fraction, seed=seed)
    check_folds(folds, data.subjects, every_clip_once=protocol in EXHAUSTIVE_PROTOCOLS)
    classes = label_protocol.classes
    num_classes = len(classes)
    if fold_batch is not None and fold_batch < 1:
        raise ValueError(f"fold_batch must be >= 1 (or None), got {fold_batch}")
    if fold_batch is None:
        fold_batch = len(folds) + 1 if torch_device.type == "cuda" else 1
    if not can_batch_folds(entry.fitter, multilabel, augment):
        fold_batch = 1
    fold_batch = min(fold_batch, len(folds) + 1)
    if torch_device.type == "cuda" or fold_batch > 1:
        jobs = 1
    else:
        jobs = min(jobs or usable_cores(), len(folds) + 1)
    if torch_device.type == "cuda":
        for name, tensor in data.tensors().items():  # the whole training set lives on the GPU
            setattr(data, name, tensor.to(torch_device))
    log(f"{len(folds)} folds + the final model on {torch_device.type}"
        + (f", {jobs} worker processes" if jobs > 1 else "")
        + (f", {fold_batch} folds stacked per step" if fold_batch > 1 else "")
        + (", bfloat16 mixed precision" if amp else ""))

    provenance = {"fastmer_version": __version__, "labels": labels,
                  "recipe": asdict(recipe) if recipe is not None else None,
                  "trained_on": {"store": str(store_path), "params_hash": store.meta["params_hash"]}}
    (out / FOLDS_DIR).mkdir(exist_ok=True)
    shared = _Shared(data, template.config, entry.fitter, recipe, multilabel, augment, seed, out, provenance,
                     threads, amp, tuple(entry.input.channels), entry.input.normalization == "minmax")
    results: dict[int, dict[str, Any]] = {}
    done = 0

    def on_done(result: dict[str, Any]) -> None:
        nonlocal done
        results[result["index"]] = result
        done += 1
        name = folds[result["index"]].name if result["index"] < len(folds) else "final model (all clips)"
        log(f"[{done}/{len(folds) + 1}] {name} trained in {result['seconds']:.1f} s")

    _run_tasks(shared, folds, jobs, on_done, fold_batch)
    seconds = time.perf_counter() - start
    final = results.pop(len(folds))

    # Assemble the test predictions; only tested clips are scored (every clip, except under hold-out).
    logits = torch.zeros(len(data.y), num_classes)
    predicted = torch.zeros(data.y.shape, dtype=torch.long)  # class index, or 0/1 per class
    y = data.y.cpu()
    fold_of = [""] * len(y)
    fold_rows, fold_cms = [], []
    for i, fold in enumerate(folds):
        result = results[i]
        logits[fold.test] = result["logits"]
        if multilabel:
            probs = torch.sigmoid(result["logits"]).numpy()
            predicted[fold.test] = torch.from_numpy(apply_thresholds(probs, result["thresholds"]))
            correct = int((predicted[fold.test] == y[fold.test].long()).all(1).sum())  # exact label sets
        else:
            predicted[fold.test] = result["logits"].argmax(1)
            correct = int((predicted[fold.test] == y[fold.test]).sum())
            fold_cms.append(confusion_matrix(y[fold.test].tolist(), predicted[fold.test].tolist(), num_classes))
        for j in fold.test:
            fold_of[j] = fold.name
        row = {"fold": fold.name, "n_train": len(fold.train), "n_test": len(fold.test), "correct": correct,
               "accuracy": correct / len(fold.test), "weights": result["weights"], "seconds": result["seconds"],
               **result["history"]}
        if multilabel:
            row["thresholds"] = result["thresholds"]["thresholds"]
        fold_rows.append(row)
    tested = [j for j, name in enumerate(fold_of) if name]
    y_true, y_pred = y[tested], predicted[tested]
    tested_datasets = [data.datasets[j] for j in tested]
    metrics: dict[str, Any] = {}
    if multilabel:
        pooled = multilabel_scores(y_true.long().numpy(), y_pred.numpy(), classes)
        # The table's columns, named as for single-label runs (definitions below).
        pooled.update(uf1=pooled["macro_uf1"], accuracy=pooled["exact_match"],
                      uar=float(np.mean([c["recall"] for c in pooled["per_class"].values()])),
                      definitions="multi-label: uf1 = macro-UF1 (mean over classes of each class's F1 over all tested "
                                  "clips), uar = mean per-class recall, accuracy = exact label-set match; each fold's "
                                  "per-class thresholds were tuned on an inner split of its training subjects")
        cm = (y_true.long().t() @ y_pred).numpy()  # true class x predicted class co-occurrences
        figure_title = f"{model}, {protocol}: macro-UF1 {pooled['uf1']:.3f} (rows: true labels, columns: predicted)"
    else:
        cm = confusion_matrix(y_true.tolist(), y_pred.tolist(), num_classes)
        pooled = scores(cm, classes)
        figure_title = f"{model}, {protocol}: pooled UF1 {pooled['uf1']:.3f}, UAR {pooled['uar']:.3f}"
        if len(folds) > 1:  # labelled apart: MEGC's scores are the pooled ones
            metrics["fold_averaged"] = fold_averaged(fold_cms, classes, [f.name for f in folds])
        if len(set(tested_datasets)) > 1:  # a composite: each corpus's share of the pooled predictions
            metrics["per_dataset"] = per_group_scores(y_true.tolist(), y_pred.tolist(), tested_datasets, classes)
    metrics = {"pooled": pooled, **metrics}

    import pyarrow as pa  # noqa: PLC0415

    def names(row: torch.Tensor) -> Any:
        return [classes[c] for c in torch.nonzero(row).flatten().tolist()] if multilabel else classes[int(row)]

    columns: dict[str, Any] = {
        "uid": [data.uids[j] for j in tested],
        "subject": [data.subjects[j] for j in tested],
        "dataset": tested_datasets,
        "fold": [fold_of[j] for j in tested],
        "true": [names(r) for r in y_true],
        "predicted": [names(r) for r in y_pred],
    }
    if entry.fitter == "solver":  # decision values are not probabilities
        columns["decision_values"] = logits[tested].numpy().astype(np.float32).tolist()
    else:
        probs = torch.sigmoid(logits[tested]) if multilabel else torch.softmax(logits[tested], dim=1)
        columns["probabilities"] = probs.numpy().astype(np.float32).tolist()
    atomic_write_table(pa.table(columns), out / "predictions.parquet")
    _write_json(out / "folds.json", folds_manifest(folds, data.uids))
    write_run_figures(out, np.asarray(cm), classes, [r for r in fold_rows if r["train_loss"]], title=figure_title)
    if recipe is None:
        selection = "none: a convex problem solved exactly on each fold's training clips"
    elif recipe.patience is None:
        selection = "none: fixed epochs, test subjects never used for any choice"
    else:
        selection = (f"early stopping (patience {recipe.patience}) on the validation UF1 of an inner split of each "
                     f"fold's training subjects ({recipe.val_fraction:.0%} of them, by subject); test subjects never used")
    if multilabel:
        selection += (f"; per-class thresholds tuned on an inner split of each fold's training subjects "
                      f"({recipe.val_fraction:.0%} of them, by subject)")
    report = {
        "fastmer_version": __version__,
        "torch_version": torch.__version__,
        "store": str(store_path),
        "store_params_hash": store.meta["params_hash"],
        "model": model,
        "model_reference": entry.reference,
        "model_options": template.config["options"],
        "fitter": entry.fitter,
        "protocol": protocol,
        "protocol_options": {"k": k} if protocol == "kfold" else
                            {"test_fraction": test_fraction} if protocol == "holdout" else {},
        "labels": labels,
        "multilabel": multilabel,
        "classes": list(classes),
        "n_clips": len(y),
        "n_subjects": len(set(data.subjects)),
        "n_folds": len(folds),
        "n_tested": len(tested),
        "excluded_clips": data.excluded,
        "recipe": asdict(recipe) if recipe is not None else None,
        "augment": list(augment),
        "seed": seed,
        "execution": {"device": str(torch_device), "jobs": jobs, "fold_batch": fold_batch, "threads": threads,
                      "amp": amp},
        "model_selection": selection,
        "final_model": {**final["history"], **({"thresholds": final["thresholds"]["thresholds"]} if multilabel else {})},
        "metrics": metrics,
        "folds": fold_rows,
        "seconds": {"total": time.perf_counter() - start, "training": seconds,
                    "fold_sum": sum(r["seconds"] for r in fold_rows), "final_model": final["seconds"]},
    }
    _write_json(out / "report.json", report)
    return report


def train_seeds(store_path: str | Path, out: str | Path, seeds: Sequence[int], *, overwrite: bool = False,
                log: Callable[[str], None] | None = None, **options: Any) -> dict[str, Any]:
    """:func:`train` once per seed into ``out/seed-<s>/``; ``out/report.json`` gives mean ± std.

    The standard deviation is the sample one (``n - 1``) over the seeds' pooled scores.
    """
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be at least two distinct integers, got {list(seeds)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"run directory {out} is not empty (use --overwrite)")
    log = log or (lambda line: None)
    reports = {}
    for seed in seeds:
        log(f"seed {seed}")
        reports[seed] = train(store_path, out / f"seed-{seed}", seed=seed, overwrite=overwrite, log=log, **options)
    first = reports[seeds[0]]
    across = {}
    for name in ("uf1", "uar", "accuracy"):
        values = [reports[s]["metrics"]["pooled"][name] for s in seeds]
        across[name] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "values": values}
    report = {key: first[key] for key in ("fastmer_version", "store", "store_params_hash", "model", "model_reference",
                                          "protocol", "protocol_options", "labels", "classes", "n_clips", "n_subjects",
                                          "n_folds", "n_tested", "recipe", "model_selection")}
    report.update(seeds=list(seeds), runs=[f"seed-{s}" for s in seeds],
                  metrics={"across_seeds": across, "per_seed": {str(s): reports[s]["metrics"]["pooled"] for s in seeds}})
    _write_json(out / "report.json", report)
    return report
