"""``fastmer train``: a protocol run over a feature store, with an auditable report.

Writes into the run directory:

* ``report.json``: pooled MEGC scores (UF1, UAR, accuracy), per-class scores, the
  confusion matrix, a per-fold table, the label protocol, excluded clips, the recipe,
  seeds and timings.
* ``folds.json``: the exact clip uids of every fold's training and test sets.
* ``predictions.parquet``: one row per clip with its fold, true and predicted class and
  class probabilities, as predicted by the model that did not see its subject.
* ``folds/fold-NNN.safetensors`` + ``.json``: each fold's model (the JSON names its fold).
* ``confusion.png`` (pooled) and ``curves.png`` (every fold's training/validation loss).
* ``model.safetensors`` + ``model.json``: a final model trained on all clips with the same
  recipe (what ``fastmer export`` ships); evaluation never uses it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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
from fastmer.train.metrics import confusion_matrix, fold_averaged, per_group_scores, scores
from fastmer.train.plots import write_run_figures
from fastmer.train.protocols import EXHAUSTIVE_PROTOCOLS, check_folds, folds_manifest, inner_split, make_folds
from fastmer.train.trainer import History, fit, predict, torch_threads

FINAL_MODEL_SEED_OFFSET = 999
FOLDS_DIR = "folds"  # each fold's weights: folds/fold-000.safetensors + .json


@dataclass
class _Data:
    """The clips a run uses: network inputs prepared once, labels, and bookkeeping."""

    x: torch.Tensor  # (N, C, h, w) network inputs
    y: torch.Tensor  # (N,) class indices
    uids: list[str]
    subjects: list[str]
    datasets: list[str]
    excluded: list[dict[str, Any]]


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def _prepare(store: FeatureStore, template: MERModel, entry: ModelEntry, protocol: LabelProtocol) -> _Data:
    """Map labels (listing the clips the protocol excludes) and prepare network inputs."""
    uids, subjects, datasets = store.column("uid"), store.column("subject"), store.column("dataset")
    keep, targets, excluded = [], [], []
    for i, clip_labels in enumerate(store.column("labels")):
        classes = protocol.classes_of(tuple(clip_labels))
        if classes is None:
            excluded.append({"uid": uids[i], "labels": clip_labels})
        else:
            keep.append(i)
            targets.append(protocol.classes.index(classes[0]))
    if not keep:
        raise ValueError(f"no clip of {store.path} has a label in protocol {protocol.name}")
    # The adapter has no parameters: prepare every clip's network input once.
    with torch.no_grad():
        x = template.adapter(store.tensor(entry.input.representation).index_select(0, torch.as_tensor(keep)))
    return _Data(x, torch.as_tensor(targets), [uids[i] for i in keep], [subjects[i] for i in keep],
                 [datasets[i] for i in keep], excluded)


def _fit(net: torch.nn.Module, data: _Data, train: np.ndarray, recipe: TrainRecipe, seed: int,
         num_classes: int) -> History:
    """Fit on the clips ``train``; with early stopping, on an inner split of their subjects."""
    if recipe.patience is None:
        return fit(net, data.x[train], data.y[train], recipe, seed, num_classes=num_classes)
    fit_idx, val_idx = inner_split(train, data.subjects, fraction=recipe.val_fraction, seed=seed)
    return fit(net, data.x[fit_idx], data.y[fit_idx], recipe, seed, num_classes=num_classes,
               val=(data.x[val_idx], data.y[val_idx]))


def train(
    store_path: str | Path,
    out: str | Path,
    *,
    model: str = "ststnet",
    protocol: str = "loso",
    labels: str = "megc2019-3class",
    recipe: TrainRecipe | None = None,
    seed: int = 0,
    k: int = 5,
    test_fraction: float = 0.2,
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
        k: folds of ``protocol="kfold"``.
        test_fraction: share of the subjects held out by ``protocol="holdout"``.
        labels: label protocol name (:data:`fastmer.datasets.labels.LABEL_PROTOCOLS`).
        recipe: training hyper-parameters (default: the model's recipe).
        seed: base seed; fold ``i`` uses ``seed * 1000 + i``, the final model ``seed * 1000 + 999``;
            it also draws the k-fold and hold-out splits.
        threads: torch intra-op threads while training. The networks are small: on a CPU one
            thread per model is fastest (more threads only contend), hence the default 1.
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
    recipe = recipe or entry.recipe
    label_protocol = get_protocol(labels)
    if label_protocol.multilabel:
        raise ValueError(f"label protocol {labels} is multi-label; this trainer is single-label (one class per clip) "
                         "and would drop every clip's other labels")
    store = open_store(store_path)
    if entry.input.representation not in store.representations:
        raise ValueError(f"model {model} needs {entry.input.representation!r}, not in store {store_path}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    spec = store.representations[entry.input.representation]
    template = MERModel.create(model, label_protocol.classes, tuple(spec["channels"]), tuple(spec["shape"]))
    data = _prepare(store, template, entry, label_protocol)
    folds = make_folds(protocol, data.subjects, datasets=data.datasets, k=k, test_fraction=test_fraction, seed=seed)
    check_folds(folds, data.subjects, every_clip_once=protocol in EXHAUSTIVE_PROTOCOLS)
    num_classes = len(label_protocol.classes)

    provenance = {"fastmer_version": __version__, "labels": labels, "recipe": asdict(recipe),
                  "trained_on": {"store": str(store_path), "params_hash": store.meta["params_hash"]}}
    (out / FOLDS_DIR).mkdir(exist_ok=True)
    with torch_threads(threads):
        logits = torch.zeros(len(data.y), num_classes)
        fold_of = [""] * len(data.y)
        fold_rows, fold_cms = [], []
        for i, fold in enumerate(folds):
            torch.manual_seed(seed * 1000 + i)
            fold_model = MERModel(template.config)
            history = _fit(fold_model.net, data, fold.train, recipe, seed * 1000 + i, num_classes)
            logits[fold.test] = predict(fold_model.net, data.x[fold.test])
            weights = Path(FOLDS_DIR) / f"fold-{i:03d}.safetensors"
            fold_model.eval().save(out / weights, (out / weights).with_suffix(".json"),
                                   extra={"fold": fold.name, "fold_index": i, **provenance})
            fold_predicted = logits[fold.test].argmax(1)
            correct = int((fold_predicted == data.y[fold.test]).sum())
            for j in fold.test:
                fold_of[j] = fold.name
            fold_cms.append(confusion_matrix(data.y[fold.test].tolist(), fold_predicted.tolist(), num_classes))
            fold_rows.append({"fold": fold.name, "n_train": len(fold.train), "n_test": len(fold.test),
                              "correct": correct, "accuracy": correct / len(fold.test), "weights": str(weights),
                              **history.to_json()})
            log(f"fold {i + 1}/{len(folds)} {fold.name}: {correct}/{len(fold.test)} correct")
        eval_seconds = time.perf_counter() - start

        # The shipped model: every clip, same recipe; never evaluated here.
        final_seed = seed * 1000 + FINAL_MODEL_SEED_OFFSET
        torch.manual_seed(final_seed)
        final = MERModel(template.config)
        final_history = _fit(final.net, data, np.arange(len(data.y)), recipe, final_seed, num_classes)
    final.eval().save(out / "model.safetensors", out / "model.json",
                      extra={**provenance, "trained_on": {**provenance["trained_on"], "n_clips": len(data.y)}})

    # Only tested clips are scored (every clip, except under hold-out).
    tested = [j for j, name in enumerate(fold_of) if name]
    y_true, predicted = data.y[tested], logits[tested].argmax(1)
    classes = label_protocol.classes
    pooled = scores(confusion_matrix(y_true.tolist(), predicted.tolist(), num_classes), classes)
    metrics: dict[str, Any] = {"pooled": pooled}
    if len(folds) > 1:  # labelled apart: MEGC's scores are the pooled ones
        metrics["fold_averaged"] = fold_averaged(fold_cms, classes, [f.name for f in folds])
    tested_datasets = [data.datasets[j] for j in tested]
    if len(set(tested_datasets)) > 1:  # a composite: each corpus's share of the pooled predictions
        metrics["per_dataset"] = per_group_scores(y_true.tolist(), predicted.tolist(), tested_datasets, classes)
    import pyarrow as pa  # noqa: PLC0415

    atomic_write_table(
        pa.table({
            "uid": [data.uids[j] for j in tested],
            "subject": [data.subjects[j] for j in tested],
            "dataset": tested_datasets,
            "fold": [fold_of[j] for j in tested],
            "true": [classes[j] for j in y_true.tolist()],
            "predicted": [classes[j] for j in predicted.tolist()],
            "probabilities": torch.softmax(logits[tested], dim=1).numpy().astype(np.float32).tolist(),
        }),
        out / "predictions.parquet",
    )
    _write_json(out / "folds.json", folds_manifest(folds, data.uids))
    write_run_figures(out, np.asarray(pooled["confusion_matrix"]), classes, fold_rows,
                      title=f"{model}, {protocol}: pooled UF1 {pooled['uf1']:.3f}, UAR {pooled['uar']:.3f}")
    report = {
        "fastmer_version": __version__,
        "store": str(store_path),
        "store_params_hash": store.meta["params_hash"],
        "model": model,
        "model_reference": entry.reference,
        "protocol": protocol,
        "protocol_options": {"k": k} if protocol == "kfold" else
                            {"test_fraction": test_fraction} if protocol == "holdout" else {},
        "labels": labels,
        "classes": list(label_protocol.classes),
        "n_clips": len(data.y),
        "n_subjects": len(set(data.subjects)),
        "n_folds": len(folds),
        "n_tested": len(tested),
        "excluded_clips": data.excluded,
        "recipe": asdict(recipe),
        "seed": seed,
        "threads": threads,
        "model_selection": (
            "none: fixed epochs, test subjects never used for any choice" if recipe.patience is None else
            f"early stopping (patience {recipe.patience}) on the validation UF1 of an inner split of each fold's "
            f"training subjects ({recipe.val_fraction:.0%} of them, by subject); test subjects never used"),
        "final_model": final_history.to_json(),
        "metrics": metrics,
        "folds": fold_rows,
        "seconds": {"evaluation": eval_seconds, "total": time.perf_counter() - start},
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
