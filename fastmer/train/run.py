"""``fastmer train``: a protocol run over a feature store, with an auditable report.

Writes into the run directory:

* ``report.json``: pooled MEGC scores (UF1, UAR, accuracy; multi-label: macro-UF1 with
  per-class thresholds), per-dataset scores (composite stores, cross-dataset runs),
  per-class scores, the confusion matrix, a per-fold table, the label protocol (or the
  AU task's action units), excluded clips, the recipe, augmentation, seeds, execution and timings.
* ``folds.json``: the exact clip uids of every fold's training and test sets (and, for
  ``cross-dataset``, the datasets each fold trains and tests on).

Tasks: ``"emotion"`` (the label protocol's classes) or ``"au"``: multi-label action-unit
detection from the clips' annotated FACS codes (:func:`fastmer.datasets.labels.split_action_units`
is the one parsing rule), one sigmoid per chosen AU with per-AU thresholds tuned on an
inner split of each fold's training subjects, exactly as the 4DME multi-label path.
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

import hashlib
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
from fastmer.datasets.labels import AU_RULE, LabelProtocol, au_name, get_protocol, split_action_units
from fastmer.models import MODELS, NORMALIZATIONS, ModelEntry, TrainRecipe, get_entry
from fastmer.models.model import MERModel
from fastmer.outputs import check_not_an_input, check_output_dir, is_run
from fastmer.store import FeatureStore
from fastmer.store import open as open_store
from fastmer.store.writer import atomic_write_bytes, atomic_write_table
from fastmer.train.metrics import (
    apply_thresholds,
    confusion_matrix,
    fold_averaged,
    multilabel_scores,
    per_group_multilabel_scores,
    per_group_scores,
    scores,
    tune_thresholds,
)
from fastmer.train.plots import write_run_figures
from fastmer.train.protocols import Fold, check_folds, folds_manifest, inner_split, is_exhaustive, make_folds
from fastmer.train.trainer import History, fit, predict, torch_threads

FINAL_MODEL_SEED_OFFSET = 999
FOLDS_DIR = "folds"  # each fold's weights: folds/fold-000.safetensors + .json
RUN_SETTINGS = "run.json"  # written first: what decides the run's results (a resumed run must match them)
DONE_SUFFIX = ".done.json"  # beside each finished fold's weights: its predictions, history and timing
RUN_FORMAT = "fastmer-run"


def read_settings(out: Path) -> dict[str, Any]:
    """The settings ``run.json`` of the run in ``out`` (to resume it)."""
    try:
        settings = json.loads((out / RUN_SETTINGS).read_text())
        if settings.get("format") != RUN_FORMAT:
            raise ValueError(f"format {settings.get('format')!r}")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"run directory {out} holds no resumable fastmer run ({out / RUN_SETTINGS}: {exc}); "
                         "use another run directory, or --overwrite to replace it") from exc
    return settings


def settings_differences(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: then X, now Y`` for each setting that differs (nested keys dotted)."""
    lines = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += settings_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: then {json.dumps(a)}, now {json.dumps(b)}")
    return lines
DEVICES = ("auto", "cpu", "cuda")
TASKS = ("emotion", "au")
"""``emotion``: the classes of a label protocol (``labels``); ``au``: multi-label action-unit detection."""
DEFAULT_MIN_AU_CLIPS = 10
AUGMENTATIONS = ("flip", "affine", "dual-phase-di")
"""``flip``: mirror with u negated (p = 0.5); ``affine``: rotation ±5° and scale ±5% (flow
vectors turned and scaled with the image); ``dual-phase-di``: each training clip also
contributes its onset→apex and apex→offset dynamic images (models reading ``dynamic_image``).
See :mod:`fastmer.train.augment`."""
AUGMENT_SETTINGS = {"flip": {"p_flip": 0.5}, "affine": {"degrees": 5.0, "scale": 0.05}}
PHASE_DI = "dynamic_image_phases"  # the store column dual-phase-di reads
VIEW_LAYOUTS = ("stack", "separate")
"""Stores of split views (``fastmer extract --views split``, 4DME): ``stack`` joins a clip's
views as channels of one sample (SPEC §2.2); ``separate`` trains each view as a sample and
merges the views' probabilities per clip by max (the 4DME challenge practice)."""


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
    clips: list[str] | None = None  # view layout "separate": each sample's clip (its uid without @view)

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
    normalization: tuple[str, ...] = ()  # each input channel's normalisation (re-applied after augmenting)
    initial: dict[str, torch.Tensor] | None = None  # --weights: tensors every fold starts from
    final_train: np.ndarray | None = None  # the final model's clips (None: every clip of the store)


def _new_model(shared: _Shared, device: torch.device) -> MERModel:
    """A freshly initialised model (from the run's starting weights, if any)."""
    model = MERModel(shared.config)
    if shared.initial:
        model.net.load_state_dict(shared.initial, strict=False)
    return model.to(device)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def _targets(store: FeatureStore, protocol: LabelProtocol) -> tuple[list[int], list[Any], list[dict[str, Any]]]:
    """Clips the protocol keeps (their class index, or 0/1 row when multi-label) and those it excludes."""
    keep, targets, excluded = [], [], []
    uids = store.column("uid")
    for i, clip_labels in enumerate(store.column("labels")):
        classes = protocol.classes_of(tuple(clip_labels))
        if classes is None:
            excluded.append({"uid": uids[i], "labels": clip_labels, "reason": f"no class of {protocol.name}"})
            continue
        keep.append(i)
        if protocol.multilabel:
            targets.append([float(c in classes) for c in protocol.classes])
        else:
            targets.append(protocol.classes.index(classes[0]))
    if not keep:
        raise ValueError(f"no clip of {store.path} has a label in protocol {protocol.name}")
    return keep, targets, excluded


def parse_aus(aus: Sequence[int | str] | str) -> list[int]:
    """``--aus`` values (``"1,2,AU4"`` or a sequence) -> AU numbers, in the given order."""
    items = aus.split(",") if isinstance(aus, str) else list(aus)
    numbers = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        parsed, ignored = split_action_units(text)
        if ignored or len(parsed) != 1:
            raise ValueError(f"aus: {text!r} is not an action unit (e.g. 4 or AU4)")
        numbers.append(parsed[0])
    if not numbers:
        raise ValueError("aus: no action unit given")
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        raise ValueError(f"aus: listed twice: {', '.join(au_name(n) for n in repeated)}")
    return numbers


def au_targets(store: FeatureStore, aus: Sequence[int | str] | str | None,
                min_clips: int) -> tuple[LabelProtocol, tuple[list[int], list[Any], list[dict[str, Any]]], dict]:
    """The AU task: its classes, each kept row's 0/1 row over them, and what was chosen how.

    Clips without an annotated AU (empty cell) are excluded and listed; a clip whose AUs are
    all outside the chosen ones is kept as a negative for every chosen AU. Counts are of
    clips (a clip's views count once) over the whole store, before any fold: like a label
    protocol's classes, the AU list is fixed for every fold.
    """
    from fastmer.models.inputs import clip_of  # noqa: PLC0415

    if isinstance(min_clips, bool) or not isinstance(min_clips, int) or min_clips < 1:
        raise ValueError(f"min_au_clips must be an integer >= 1, got {min_clips!r}")
    uids, cells = store.column("uid"), store.column("action_units")
    parsed, ignored = [], {}
    for cell in cells:
        numbers, unknown = split_action_units(cell)
        parsed.append(numbers)
        for part in unknown:
            ignored[part] = ignored.get(part, 0) + 1
    annotated = [i for i, numbers in enumerate(parsed) if numbers]
    if not annotated:
        raise ValueError(f"no clip of {store.path} has an annotated action unit (column action_units); the AU task "
                         "needs them")
    clips_of: dict[int, set[str]] = {}
    for i in annotated:
        for number in parsed[i]:
            clips_of.setdefault(number, set()).add(clip_of(uids[i]))
    positives = {au_name(n): len(clips_of[n]) for n in sorted(clips_of)}
    if aus is not None:
        chosen = parse_aus(aus)
        missing = [au_name(n) for n in chosen if n not in clips_of]
        if missing:
            raise ValueError(f"aus: {', '.join(missing)} has no positive clip in {store.path}; annotated AUs (clips): "
                             + ", ".join(f"{k} ({v})" for k, v in positives.items()))
        selection = "given (--aus)"
    else:
        chosen = [n for n in sorted(clips_of) if len(clips_of[n]) >= min_clips]
        if not chosen:
            raise ValueError(f"min_au_clips: no action unit of {store.path} has {min_clips} positive clips or more; "
                             "annotated AUs (clips): " + ", ".join(f"{k} ({v})" for k, v in positives.items()))
        selection = f"every AU with at least {min_clips} positive clips in the store"
    classes = tuple(au_name(n) for n in chosen)
    keep, targets, excluded = [], [], []
    for i, numbers in enumerate(parsed):
        if not numbers:
            excluded.append({"uid": uids[i], "action_units": cells[i],
                             "reason": "no action unit annotated"})
            continue
        keep.append(i)
        targets.append([float(n in numbers) for n in chosen])
    protocol = LabelProtocol("au", classes, {}, f"action-unit detection: {', '.join(classes)}", multilabel=True)
    info = {"aus": list(classes), "selection": selection, "min_au_clips": None if aus is not None else min_clips,
            "positive_clips": {c: positives[c] for c in classes}, "annotated_aus": positives,
            "n_annotated_clips": len({clip_of(uids[i]) for i in annotated}), "rule": AU_RULE,
            "ignored_parts": dict(sorted(ignored.items()))}
    return protocol, (keep, targets, excluded), info


def _stack_views(keep: list[int], targets: list[Any], excluded: list[dict[str, Any]], uids: list[str],
                 views: list[str]) -> tuple[list[list[int]], list[Any]]:
    """Rows of each clip's views (in :data:`VIEW_ORDER`) for the kept clips that have all of them."""
    from fastmer.models.inputs import VIEW_ORDER, group_views  # noqa: PLC0415

    target_of = dict(zip(keep, targets, strict=True))
    clips, rows, incomplete = group_views([uids[i] for i in keep], [views[i] for i in keep], VIEW_ORDER)
    for clip in incomplete:
        excluded.append({"uid": clip, "reason": "a view is missing (views stacked as channels)"})
    groups = [[keep[j] for j in clip_rows] for clip_rows in rows]
    return groups, [target_of[group[0]] for group in groups]


def _prepare(store: FeatureStore, template: MERModel, entry: ModelEntry, protocol: LabelProtocol,
             augment: Sequence[str], view_layout: str | None,
             targets: tuple[list[int], list[Any], list[dict[str, Any]]] | None = None) -> _Data:
    """Map labels (listing the clips the protocol excludes) and prepare network inputs once.

    ``targets``: the kept rows, their targets and the excluded clips when already computed
    (the AU task, :func:`au_targets`); default: ``protocol``'s mapping of the stored labels."""
    from fastmer.models.inputs import InputAdapter, clip_of, gather_stored  # noqa: PLC0415

    keep, targets, excluded = targets if targets is not None else _targets(store, protocol)
    uids, subjects, datasets = store.column("uid"), store.column("subject"), store.column("dataset")
    adapter = template.adapter  # no parameters: apply it once to every clip
    raw_adapter = None
    if {"flip", "affine"} & set(augment):  # augmentation needs the physical values
        raw_adapter = InputAdapter(replace(adapter.spec, normalization="none"), adapter.stored_channels,
                                   adapter.stored_hw, adapter.views)
    stored_all, _ = gather_stored(store, entry.input)
    phases_all = store.tensor(PHASE_DI) if "dual-phase-di" in augment else None
    if view_layout == "stack":
        groups, targets = _stack_views(keep, targets, excluded, uids, store.column("view"))
        if not groups:
            raise ValueError(f"no clip of {store.path} has all its views (--view-layout stack)")
        by_view = torch.as_tensor(groups).t()  # (views, clips)
        stored = torch.cat([stored_all.index_select(0, rows) for rows in by_view], dim=1)
        phases = None if phases_all is None else torch.cat([phases_all.index_select(0, rows) for rows in by_view], 1)
        first = by_view[0].tolist()
        names = [clip_of(uids[i]) for i in first]
    else:
        index = torch.as_tensor(keep)
        stored = stored_all.index_select(0, index)
        phases = None if phases_all is None else phases_all.index_select(0, index)
        first = keep
        names = [uids[i] for i in keep]
    with torch.no_grad():
        data = _Data(adapter(stored), torch.as_tensor(targets), names, [subjects[i] for i in first],
                     [datasets[i] for i in first], excluded)
        if view_layout == "separate":
            data.clips = [clip_of(uid) for uid in names]
        if raw_adapter is not None:
            data.raw = raw_adapter(stored)
        if phases is not None:
            # dynamic_image_phases holds each view's onset->apex then apex->offset DI; the
            # adapter expects the dynamic_image channel(s) (per view when stacked).
            per_view = phases.shape[1] // max(len(adapter.views), 1)
            half = per_view // 2
            parts = phases.split(per_view, dim=1)
            prepare = raw_adapter or adapter
            data.phases = torch.stack([prepare(torch.cat([p[:, :half] for p in parts], dim=1)),
                                       prepare(torch.cat([p[:, half:] for p in parts], dim=1))], dim=1)
    return data


def _class_counts(data: _Data, rows: Sequence[int] | np.ndarray, classes: Sequence[str],
                  multilabel: bool) -> dict[str, int]:
    """How many clips of ``rows`` have each target: a class name, or a multi-label set
    (``"a+b"``, ``"none"`` for no class); clips, not views, when views are separate samples."""
    y = data.y.cpu()
    seen: dict[str, set[str]] = {}
    for j in np.asarray(rows, dtype=np.int64).tolist():
        if multilabel:
            target = "+".join(c for c, on in zip(classes, y[j].tolist(), strict=True) if on) or "none"
        else:
            target = classes[int(y[j])]
        seen.setdefault(target, set()).add(data.clips[j] if data.clips is not None else data.uids[j])
    return {target: len(clips) for target, clips in sorted(seen.items())}


def _check_classes(data: _Data, folds: Sequence[Fold], classes: Sequence[str], multilabel: bool, store: str | Path,
                   labels: str) -> None:
    """Refuse a run whose clips, or a fold's training clips, all have one class (one label set
    when multi-label): such a model can only ever predict that class, and its scores mean nothing.

    Raises:
        ValueError: naming the class, the clip count and the fold.
    """
    what, whats = ("label set", "label sets") if multilabel else ("class", "classes")
    counts = _class_counts(data, range(len(data.y)), classes, multilabel)
    if len(counts) < 2:
        (target, n), = counts.items()
        excluded = f"; {len(data.excluded)} other clip(s) excluded by it" if data.excluded else ""
        raise ValueError(f"every clip of {store} has the same {what} under label protocol {labels}: {target!r} "
                         f"({n} clips{excluded}); training needs clips of at least two {whats} (check the store's "
                         "labels, or choose another --labels)")
    for fold in folds:
        trained = _class_counts(data, fold.train, classes, multilabel)
        if len(trained) < 2:
            (target, n), = trained.items()
            tested = _class_counts(data, fold.test, classes, multilabel)
            within = f" (trained within dataset {fold.dataset})" if fold.dataset else ""
            raise ValueError(f"fold {fold.name}{within} would train on a single {what}: its {n} training clips are all "
                             f"{target!r} (its test clips: {', '.join(f'{t!r} ({k})' for t, k in tested.items())}); a "
                             f"model trained on one {what} predicts nothing else: choose another --protocol or --labels")


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
        if entry.input.representations != ("dynamic_image",):
            readers = ", ".join(name for name, e in MODELS.items() if e.input.representations == ("dynamic_image",))
            raise ValueError(f"--augment dual-phase-di needs a model reading dynamic_image ({readers}); "
                             f"{entry.name} reads {entry.input.describe()}")
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
    augment = (Augment(shared.channels, normalization=shared.normalization, seed=seed, **_augment_settings(spatial))
               if spatial else None)
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
    model = _new_model(shared, device)
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
        probs = torch.sigmoid(predict(model.net, val[0], amp=shared.amp)).float().cpu()
        truth = val[1].cpu()
        if data.clips is not None:  # thresholds for what is scored: the clips' max over views
            at = {int(j): k for k, j in enumerate(val_idx)}
            _, groups = _units([int(j) for j in val_idx], data)
            probs = torch.stack([probs[[at[j] for j in rows]].amax(0) for rows in groups])
            truth = torch.stack([truth[at[rows[0]]] for rows in groups])
        thresholds = tune_thresholds(truth.numpy().astype(np.int64), probs.numpy(), shared.config["classes"])
    return model, history, thresholds


def _task_seed(shared: _Shared, i: int, fold: Fold | None) -> tuple[int, np.ndarray]:
    """Seed and training clips of fold ``i`` (``fold=None``: the final model, every clip)."""
    if fold is None:
        clips = shared.final_train if shared.final_train is not None else np.arange(len(shared.data.y))
        return shared.seed * 1000 + FINAL_MODEL_SEED_OFFSET, clips
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
    else:
        extra.update(fold=fold.name, fold_index=i)
    weights = Path(_weights_file(i, final=fold is None))
    config = weights.with_suffix(".json")  # model.json, folds/fold-NNN.json
    model.eval().cpu().save(shared.out / weights, shared.out / config, extra=extra)
    result = {"index": i, "logits": logits, "history": history.to_json(), "thresholds": thresholds,
              "weights": str(weights), "seconds": train_seconds + time.perf_counter() - begin}
    _write_done(shared.out, result)
    return result


def _done_file(out: Path, weights: str) -> Path:
    return out / (weights.removesuffix(".safetensors") + DONE_SUFFIX)


def _write_done(out: Path, result: dict[str, Any]) -> None:
    """A finished fold's record for ``--resume``, written after its weights (so it names a
    complete file, by sha256): its test logits (float32 values, exact in JSON), history,
    thresholds and time."""
    from fastmer.hub import sha256_of  # noqa: PLC0415

    logits = result["logits"]
    record = {**{k: v for k, v in result.items() if k != "logits"},
              "logits": None if logits is None else logits.float().tolist(),
              "weights_sha256": sha256_of(out / result["weights"])}
    _write_json(_done_file(out, result["weights"]), record)


def _read_done(out: Path, weights: str) -> dict[str, Any] | None:
    """The record :func:`_write_done` left for a fold, if it and its weights are intact."""
    from fastmer.hub import sha256_of  # noqa: PLC0415

    path = _done_file(out, weights)
    try:
        record = json.loads(path.read_text())
        if record["weights"] != weights or sha256_of(out / weights) != record["weights_sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    logits = record.pop("logits")
    record.pop("weights_sha256")
    record["logits"] = None if logits is None else torch.tensor(logits, dtype=torch.float32)
    return record


def _weights_file(i: int, *, final: bool) -> str:
    """The weights file of fold ``i``, or of the final model, in the run directory."""
    return "model.safetensors" if final else str(Path(FOLDS_DIR) / f"fold-{i:03d}.safetensors")


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
        models.append(_new_model(shared, device))
        val = None
        if recipe.patience is not None:
            train, val_idx = inner_split(train, data.subjects, fraction=recipe.val_fraction, seed=seed)
            v = torch.as_tensor(val_idx, device=device)
            val = (data.x[v], data.y[v])
        seeds.append(seed)
        trains.append(torch.as_tensor(train, device=device))
        vals.append(val)
    spatial = [a for a in shared.augment if a in AUGMENT_SETTINGS]
    augment = (Augment(shared.channels, normalization=shared.normalization, seed=seeds[0], **_augment_settings(spatial))
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
               fold_batch: int = 1, skip: Sequence[int] = ()) -> None:
    """Every fold and the final model (index ``len(folds)``) but those in ``skip`` (finished
    before a resume): in this process (``fold_batch`` of them stacked at a time), or on
    ``jobs`` workers."""
    tasks: list[tuple[int, Fold | None]] = [t for t in [*enumerate(folds), (len(folds), None)] if t[0] not in skip]
    jobs = min(jobs, max(len(tasks), 1))
    if fold_batch > 1:
        for start in range(0, len(tasks), fold_batch):
            for result in _task_group(shared, tasks[start : start + fold_batch]):
                on_done(result)
        return
    if jobs <= 1:
        for i, fold in tasks:
            on_done(_task(shared, i, fold))
        return
    from concurrent.futures import as_completed  # noqa: PLC0415

    import torch.multiprocessing as mp  # noqa: PLC0415  (tensors travel through shared memory)

    from fastmer.interrupt import process_pool  # noqa: PLC0415

    for tensor in shared.data.tensors().values():
        tensor.share_memory_()
    # spawn, not fork: a forked child of a process that has used OpenMP threads can hang. On an
    # error or an interruption the workers are stopped at once (finished folds are on disk).
    with process_pool(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(shared,)) as pool:
        futures = [pool.submit(_worker_task, i, fold) for i, fold in tasks]
        for future in as_completed(futures):
            on_done(future.result())


def _template(store: FeatureStore, entry: ModelEntry, classes: tuple[str, ...], view_layout: str,
              input_size: int | None, options: dict[str, Any], normalization: str | None = None,
              check_forward: bool = False) -> tuple[MERModel, str | None]:
    """The run's model (untrained) for this store's input, and the view layout (None: one view).
    ``check_forward``: run one zero sample through it (an input other than the registered one
    may not suit the network's streams: say so now, not in a worker)."""
    from fastmer.models.inputs import store_layout  # noqa: PLC0415

    channels, shape, views, layout = store_layout(store, entry.input, view_layout)
    try:
        template = MERModel.create(entry.name, classes, channels, shape, views=views, input_size=input_size,
                                   normalization=normalization, input_spec=entry.input, **options)
        if check_forward:
            try:
                with torch.no_grad():
                    template.eval()(torch.zeros(1, *shape))
            except (RuntimeError, ValueError, IndexError) as exc:
                raise ValueError(f"the network does not take {template.adapter.out_shape[0]} input channel(s) "
                                 f"({', '.join(entry.input.channels)}): {exc}") from exc
    except ValueError as exc:
        hint = " (views are stacked as channels: try --view-layout separate)" if views else ""
        raise ValueError(f"{entry.name} cannot take this store's input: {exc}{hint}") from exc
    return template, layout


def _units(rows: list[int], data: _Data) -> tuple[list[str], list[list[int]]]:
    """What is scored: each row, or (views as separate samples) each clip with its views' rows."""
    if data.clips is None:
        return [data.uids[j] for j in rows], [[j] for j in rows]
    grouped: dict[str, list[int]] = {}
    for j in rows:
        grouped.setdefault(data.clips[j], []).append(j)
    return list(grouped), list(grouped.values())


def train(
    store_path: str | Path,
    out: str | Path,
    *,
    model: str = "ststnet",
    protocol: str = "loso",
    labels: str = "megc2019-3class",
    task: str = "emotion",
    aus: Sequence[int | str] | str | None = None,
    min_au_clips: int = DEFAULT_MIN_AU_CLIPS,
    train_datasets: Sequence[str] | str | None = None,
    test_datasets: Sequence[str] | str | None = None,
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
    view_layout: str = "stack",
    input_size: int | None = None,
    normalization: str | None = None,
    inputs: Sequence[str] = (),
    weights: str | Path | None = None,
    pretrained: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on the store under ``protocol`` and train the final model.

    Args:
        store_path: feature store written by ``fastmer extract``.
        out: run directory (created; must be empty unless ``overwrite``).
        model: name in :data:`fastmer.models.MODELS`.
        protocol: one of :data:`fastmer.train.protocols.PROTOCOLS` (all split by subject;
            ``cross-dataset`` by dataset: leave-one-dataset-out, or ``train_datasets`` ->
            ``test_datasets``).
        labels: label protocol name (:data:`fastmer.datasets.labels.LABEL_PROTOCOLS`) of the
            ``emotion`` task; a multi-label one (``4dme-multilabel``) trains one sigmoid output
            per class, and each fold's per-class thresholds are tuned on an inner split of its
            training subjects (``recipe.val_fraction``), never on its test subject.
        task: one of :data:`TASKS`; ``"au"`` detects action units (multi-label, classes
            ``AU<n>``, thresholds as above) from the stored ``action_units`` cells, and
            ignores ``labels``.
        aus: the AU task's action units (``[1, 2, 4]``, ``"1,2,AU4"``); None: every AU with
            at least ``min_au_clips`` positive clips in the store. Recorded in the report.
        min_au_clips: see ``aus``.
        train_datasets, test_datasets: ``protocol="cross-dataset"`` only: train on the first
            datasets, test on the second (names as in the store's ``dataset`` column).
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
        view_layout: for stores of split views (4DME), one of :data:`VIEW_LAYOUTS`; a clip
            lacking a view is excluded (listed) under ``stack``. Ignored for single-view stores.
        input_size: network input side, overriding the registry's (area resampling).
        normalization: the input's normalisation, overriding the registry's
            (:data:`fastmer.models.NORMALIZATIONS`; recorded in model.json).
        inputs: other stored columns for the model, ``NAME`` or ``NAME:c1,c2`` each
            (:func:`fastmer.models.inputs.override_input`); recorded in model.json, so
            export and inference read the same columns.
        weights: safetensors file every fold and the final model start from
            (:meth:`MERModel.match_initial_weights`); recorded with its sha256 in the report
            and in every model.json.
        pretrained: start the timm backbone (``model_options["encoder"]``) from timm's
            ImageNet weights, downloaded once (:func:`fastmer.models.timm_backbone.pretrained_file`)
            and then loaded as ``weights`` are.
        overwrite: replace a run in ``out`` (a non-empty folder that is not a fastmer run is refused).
        resume: continue the run in ``out`` that was interrupted (or start it, if ``out`` is
            empty): folds finished before are kept (their weights checked by sha256), the rest
            trained; the report is the one an uninterrupted run gives (timings apart). Refused,
            naming the difference, when ``out`` was started with other settings (store, model,
            recipe, protocol, seed...: ``run.json``). A finished run is returned as it is.
        log: callable receiving progress lines.

    Returns:
        The report (also written to ``out/report.json``).

    Raises:
        ValueError: bad arguments, a store the model cannot read, or labels nothing can be
            learnt from: every clip kept by ``labels`` of one class (one label set when
            multi-label), or a fold whose training clips all are (named, with the count).
            Nothing is trained or written then.
    """
    log = log or (lambda line: None)
    if resume and overwrite:
        raise ValueError("resume continues the run in the run directory, overwrite replaces it: give one of them")
    out = Path(out)
    resuming = resume and out.is_dir() and any(out.iterdir())
    if resuming:
        check_not_an_input(out, [store_path, weights], option="run directory")
        previous = read_settings(out)
    else:
        out = check_output_dir(out, overwrite=overwrite, recognise=is_run, kind="fastmer training run",
                               inputs=[store_path, weights], option="run directory")
    entry = get_entry(model)
    if entry.fitter == "solver" and recipe is not None:
        raise ValueError(f"{model} is fitted by a solver, not by gradient descent: it takes no training recipe")
    recipe = recipe or entry.recipe
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task != "au" and (aus is not None or min_au_clips != DEFAULT_MIN_AU_CLIPS):
        raise ValueError("aus/min_au_clips apply to task 'au' only")
    if protocol != "cross-dataset" and (train_datasets is not None or test_datasets is not None):
        raise ValueError(f"train_datasets/test_datasets apply to protocol cross-dataset only, not {protocol!r}")
    store = open_store(store_path)
    au_info, targets = None, None
    if task == "au":
        label_protocol, targets, au_info = au_targets(store, aus, min_au_clips)
        labels = "au"
    else:
        label_protocol = get_protocol(labels)
    multilabel = label_protocol.multilabel
    if multilabel and entry.fitter == "solver":
        raise ValueError(f"{model} is single-label; label protocol {labels} is multi-label")
    torch_device = resolve_device(device)
    amp = torch_device.type == "cuda" if amp is None else amp
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1 (or None: one per core), got {jobs}")
    if view_layout not in VIEW_LAYOUTS:
        raise ValueError(f"view_layout must be one of {', '.join(VIEW_LAYOUTS)}, got {view_layout!r}")
    if input_size is not None and input_size < 1:
        raise ValueError(f"input_size must be a positive integer, got {input_size}")
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    if inputs:
        from fastmer.models.inputs import override_input  # noqa: PLC0415

        available = {name: meta["channels"] for name, meta in store.representations.items()}
        entry = replace(entry, input=override_input(entry.input, tuple(inputs), available, f"store {store.path}"))
    template, layout = _template(store, entry, label_protocol.classes, view_layout, input_size, model_options or {},
                                 normalization, check_forward=bool(inputs))
    from fastmer.models.inputs import network_channels  # noqa: PLC0415

    channels = network_channels(template.adapter.spec, template.adapter.views)
    augment = _check_augment(augment, entry, store, channels)
    initial, initial_info = None, None
    source = None
    if pretrained:
        weights, source = _pretrained_weights(model, template.config["options"], weights)
    if weights is not None:
        if entry.fitter == "solver":
            raise ValueError(f"{model} is solved exactly; it takes no starting weights")
        initial, initial_info = template.match_initial_weights(weights)
        if source is not None:
            initial_info["source"] = source
        log(f"starting weights {initial_info['file']} (sha256 {initial_info['sha256'][:12]}...): "
            f"{len(initial_info['loaded'])} tensors loaded, {len(initial_info['adapted_input'])} input stems adapted, "
            f"{len(initial_info['shape_mismatch'])} of another shape and {len(initial_info['unused'])} unused")
    start = time.perf_counter()
    data = _prepare(store, template, entry, label_protocol, augment, layout, targets)
    folds = make_folds(protocol, data.subjects, datasets=data.datasets, k=k, test_fraction=test_fraction, seed=seed,
                       train_datasets=train_datasets, test_datasets=test_datasets)
    check_folds(folds, data.subjects, every_clip_once=is_exhaustive(protocol, train_datasets=train_datasets))
    classes = label_protocol.classes
    _check_classes(data, folds, classes, multilabel, store_path, labels)  # before anything is trained or written
    settings = {
        "format": RUN_FORMAT, "fastmer_version": __version__, "store_params_hash": store.meta["params_hash"],
        "model": model, "model_options": template.config["options"], "input": template.config["input"],
        "task": task, "labels": labels, "aus": None if au_info is None else au_info.get("aus"),
        "protocol": protocol, "k": k if protocol == "kfold" else None,
        "test_fraction": test_fraction if protocol == "holdout" else None,
        "train_datasets": None if train_datasets is None else folds[0].train_datasets,
        "recipe": asdict(recipe) if recipe is not None else None, "augment": list(augment), "seed": seed,
        "initial_weights_sha256": None if initial_info is None else initial_info["sha256"],
        "device": torch_device.type, "amp": amp,
        "folds_sha256": hashlib.sha256(json.dumps(folds_manifest(folds, data.uids), sort_keys=True).encode()).hexdigest(),
    }
    settings = json.loads(json.dumps(settings))  # as read back from run.json (tuples -> lists)
    done: dict[int, dict[str, Any]] = {}
    if resuming:
        differences = settings_differences(previous, settings)
        if differences:
            raise ValueError(f"{out} holds a run started with other settings, which --resume cannot continue: "
                             + "; ".join(differences) + " (use another run directory, or --overwrite to start again)")
        if (out / "report.json").is_file():
            log(f"{out} is a finished run with the same settings: nothing to resume")
            return json.loads((out / "report.json").read_text())
        for i in range(len(folds) + 1):
            record = _read_done(out, _weights_file(i, final=i == len(folds)))
            if record is not None:
                done[i] = record
        log(f"resuming {out}: {len(done)} of {len(folds) + 1} models already trained")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob("*" + DONE_SUFFIX), *(out / FOLDS_DIR).glob("*" + DONE_SUFFIX)]:
            stale.unlink()  # --overwrite: the old run's records must not be resumed as this run's
        _write_json(out / RUN_SETTINGS, settings)
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
                  # where the weights started (file, sha256, source): the lists of names stay in report.json
                  "initial_weights": None if initial_info is None else
                  {key: value for key, value in initial_info.items() if not isinstance(value, list)},
                  "recipe": asdict(recipe) if recipe is not None else None,
                  "trained_on": {"store": str(store_path), "params_hash": store.meta["params_hash"],
                                 # what scoring raw video must reproduce (fastmer infer VIDEO)
                                 "params": store.meta.get("params")}}
    from fastmer.models.timm_backbone import import_timm, is_timm_backbone  # noqa: PLC0415

    if is_timm_backbone(template.config["options"].get("encoder")):  # a timm model: its version matters
        provenance["timm_version"] = import_timm().__version__
    (out / FOLDS_DIR).mkdir(exist_ok=True)
    # Train on A, test on C: the final model is a model of A (trained on C, it would score C with a model that saw it).
    final_train = folds[0].train if protocol == "cross-dataset" and train_datasets is not None else None
    shared = _Shared(data, template.config, entry.fitter, recipe, multilabel, augment, seed, out, provenance,
                     threads, amp, channels, template.adapter.modes, initial, final_train)
    results: dict[int, dict[str, Any]] = dict(done)
    total = len(folds) + 1
    from fastmer.interrupt import keep_note  # noqa: PLC0415

    keep_note(lambda: f"{len(results)} of {total} models trained and kept in {out}; the same command with "
                      f"--resume trains the rest")

    def on_done(result: dict[str, Any]) -> None:
        results[result["index"]] = result
        name = folds[result["index"]].name if result["index"] < len(folds) else "final model (all clips)"
        log(f"[{len(results)}/{total}] {name} trained in {result['seconds']:.1f} s")

    _run_tasks(shared, folds, jobs, on_done, fold_batch, skip=list(done))
    keep_note(None)  # (an interruption keeps the note for its message)
    seconds = time.perf_counter() - start
    final = results.pop(len(folds))

    # Assemble the test predictions; only tested clips are scored (every clip, except under hold-out).
    # Scores: probabilities (softmax / sigmoid), or a solver's decision values. With views as
    # separate samples, a clip's score is the max over its views' scores.
    logits = torch.zeros(len(data.y), num_classes)
    fold_index = torch.full((len(data.y),), -1, dtype=torch.long)
    for i, fold in enumerate(folds):
        logits[fold.test] = results[i]["logits"].float()
        fold_index[fold.test] = i
    if entry.fitter == "solver":
        row_scores = logits
    else:
        row_scores = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
    tested_rows = torch.nonzero(fold_index >= 0).flatten().tolist()
    units, unit_rows = _units(tested_rows, data)
    scores_u = torch.stack([row_scores[rows].amax(dim=0) for rows in unit_rows]) if units else row_scores[:0]
    first = [rows[0] for rows in unit_rows]
    y = data.y.cpu()
    y_true = y[first]
    unit_fold = fold_index[first]
    if multilabel:
        predicted = torch.zeros(y_true.shape, dtype=torch.long)
        for i in range(len(folds)):
            at = torch.nonzero(unit_fold == i).flatten()
            if len(at):
                predicted[at] = torch.from_numpy(apply_thresholds(scores_u[at].numpy(), results[i]["thresholds"]))
    else:
        predicted = scores_u.argmax(1)
    fold_rows, fold_cms = [], []
    for i, fold in enumerate(folds):
        result = results[i]
        at = torch.nonzero(unit_fold == i).flatten()
        if multilabel:
            correct = int((predicted[at] == y_true[at].long()).all(1).sum())  # exact label sets
        else:
            correct = int((predicted[at] == y_true[at]).sum())
            fold_cms.append(confusion_matrix(y_true[at].tolist(), predicted[at].tolist(), num_classes))
        row = {"fold": fold.name, "n_train": len(fold.train), "n_test": len(at), "correct": correct,
               "accuracy": correct / max(len(at), 1), "weights": result["weights"], "seconds": result["seconds"],
               **result["history"]}
        if multilabel:
            row["thresholds"] = result["thresholds"]["thresholds"]
        if fold.test_datasets:
            row.update(train_datasets=list(fold.train_datasets), test_datasets=list(fold.test_datasets))
        fold_rows.append(row)
    y_pred = predicted
    tested_datasets = [data.datasets[j] for j in first]
    metrics: dict[str, Any] = {}
    if multilabel:
        pooled = multilabel_scores(y_true.long().numpy(), y_pred.numpy(), classes)
        # The table's columns, named as for single-label runs (definitions below).
        pooled.update(uf1=pooled["macro_uf1"], accuracy=pooled["exact_match"],
                      uar=float(np.mean([c["recall"] for c in pooled["per_class"].values()])),
                      definitions="multi-label: uf1 = macro-UF1 (mean over classes of each class's F1 over all tested "
                                  "clips), uar = mean per-class recall, accuracy = exact label-set match; each fold's "
                                  "per-class thresholds were tuned on an inner split of its training subjects")
        if task == "au":
            pooled["macro_f1"] = pooled["macro_uf1"]
            pooled["definitions"] = pooled["definitions"].replace("multi-label:", "AU detection: macro_f1 = uf1,")
        if len(set(tested_datasets)) > 1 or protocol == "cross-dataset":
            metrics["per_dataset"] = {
                g: {**sc, "uf1": sc["macro_uf1"], "macro_f1": sc["macro_uf1"], "accuracy": sc["exact_match"],
                    "uar": float(np.mean([c["recall"] for c in sc["per_class"].values()]))}
                for g, sc in per_group_multilabel_scores(y_true.long().numpy(), y_pred.numpy(), tested_datasets,
                                                         classes).items()}
        cm = (y_true.long().t() @ y_pred).numpy()  # true class x predicted class co-occurrences
        figure_title = f"{model}, {protocol}: macro-UF1 {pooled['uf1']:.3f} (rows: true labels, columns: predicted)"
    else:
        cm = confusion_matrix(y_true.tolist(), y_pred.tolist(), num_classes)
        pooled = scores(cm, classes)
        figure_title = f"{model}, {protocol}: pooled UF1 {pooled['uf1']:.3f}, UAR {pooled['uar']:.3f}"
        if len(folds) > 1:  # labelled apart: MEGC's scores are the pooled ones
            metrics["fold_averaged"] = fold_averaged(fold_cms, classes, [f.name for f in folds])
        # A composite or a cross-dataset run: each corpus's share of the pooled predictions.
        if len(set(tested_datasets)) > 1 or protocol == "cross-dataset":
            metrics["per_dataset"] = per_group_scores(y_true.tolist(), y_pred.tolist(), tested_datasets, classes)
    metrics = {"pooled": pooled, **metrics}

    import pyarrow as pa  # noqa: PLC0415

    def names(row: torch.Tensor) -> Any:
        return [classes[c] for c in torch.nonzero(row).flatten().tolist()] if multilabel else classes[int(row)]

    columns: dict[str, Any] = {
        "uid": units,
        "subject": [data.subjects[j] for j in first],
        "dataset": tested_datasets,
        "fold": [folds[int(i)].name for i in unit_fold],
        "true": [names(r) for r in y_true],
        "predicted": [names(r) for r in y_pred],
    }
    if data.clips is not None:
        columns["views"] = [[data.uids[j] for j in rows] for rows in unit_rows]
    score_name = "decision_values" if entry.fitter == "solver" else "probabilities"  # decision values are not probabilities
    columns[score_name] = scores_u.numpy().astype(np.float32).tolist()
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
    if protocol == "cross-dataset" and (multilabel or (recipe is not None and recipe.patience is not None)):
        selection += ("; the inner split draws only from the subjects of each fold's training datasets: nothing is "
                      "chosen on a test dataset")
    report = {
        "fastmer_version": __version__,
        "torch_version": torch.__version__,
        "store": str(store_path),
        "store_params_hash": store.meta["params_hash"],
        "model": model,
        "model_reference": entry.reference,
        "model_options": template.config["options"],
        "parameters": template.parameter_count(),
        "input": {**template.config["input"], "stored": template.config["stored"], "view_layout": layout},
        "initial_weights": initial_info,
        "fitter": entry.fitter,
        "protocol": protocol,
        "protocol_options": {"k": k} if protocol == "kfold" else
                            {"test_fraction": test_fraction} if protocol == "holdout" else
                            _cross_dataset_options(folds, train_datasets) if protocol == "cross-dataset" else {},
        "task": task,
        "labels": labels,
        "multilabel": multilabel,
        "classes": list(classes),
        "n_clips": len(set(data.clips)) if data.clips is not None else len(y),
        "n_samples": len(y),
        "n_subjects": len(set(data.subjects)),
        "n_folds": len(folds),
        "n_tested": len(units),
        "excluded_clips": data.excluded,
        **({"action_units": au_info} if au_info is not None else {}),
        "recipe": asdict(recipe) if recipe is not None else None,
        "augment": list(augment),
        "seed": seed,
        "execution": {"device": str(torch_device), "jobs": jobs, "fold_batch": fold_batch, "threads": threads,
                      "amp": amp},
        "model_selection": selection,
        "final_model": {**final["history"], **({"thresholds": final["thresholds"]["thresholds"]} if multilabel else {}),
                        "trained_on": ({"datasets": list(folds[0].train_datasets), "clips": len(final_train)}
                                       if final_train is not None else {"datasets": "all", "clips": len(y)})},
        "metrics": metrics,
        "folds": fold_rows,
        "seconds": {"total": time.perf_counter() - start, "training": seconds,
                    "fold_sum": sum(r["seconds"] for r in fold_rows), "final_model": final["seconds"]},
    }
    _write_json(out / "report.json", report)
    return report


def _cross_dataset_options(folds: Sequence[Fold], train_datasets: Sequence[str] | str | None) -> dict[str, Any]:
    """What a cross-dataset run did: leave-one-dataset-out, or train on some datasets and test on others."""
    if train_datasets is None:
        return {"mode": "leave-one-dataset-out", "datasets": sorted({d for f in folds for d in f.test_datasets})}
    (fold,) = folds
    return {"mode": "train-test", "train_datasets": list(fold.train_datasets), "test_datasets": list(fold.test_datasets)}


def _pretrained_weights(model: str, options: dict[str, Any], weights: str | Path | None) -> tuple[Path, str]:
    """The local file of timm's ImageNet weights for the model's backbone (``--pretrained``)."""
    from fastmer.models.timm_backbone import is_timm_backbone, pretrained_file  # noqa: PLC0415

    if weights is not None:
        raise ValueError("give either pretrained=True (timm's weights) or weights=FILE, not both")
    backbone = options.get("encoder")
    if not is_timm_backbone(backbone):
        raise ValueError(f"--pretrained starts a timm backbone from timm's weights; model {model} has "
                         + (f"fastmer's own encoder {backbone!r}" if backbone else "no backbone option")
                         + " (choose one with --backbone NAME, e.g. resnet50)")
    return pretrained_file(backbone)


def train_seeds(store_path: str | Path, out: str | Path, seeds: Sequence[int], *, overwrite: bool = False,
                resume: bool = False, log: Callable[[str], None] | None = None, **options: Any) -> dict[str, Any]:
    """:func:`train` once per seed into ``out/seed-<s>/``; ``out/report.json`` gives mean ± std.
    ``resume``: each seed's run is resumed (a finished one is kept as it is).

    The standard deviation is the sample one (``n - 1``) over the seeds' pooled scores.
    """
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be at least two distinct integers, got {list(seeds)}")
    if resume and overwrite:
        raise ValueError("resume continues the run in the run directory, overwrite replaces it: give one of them")
    if resume and Path(out).is_dir() and any(Path(out).iterdir()):
        out = Path(out)
        check_not_an_input(out, [store_path, options.get("weights")], option="run directory")
        strays = sorted(p.name for p in out.iterdir() if p.name != "report.json" and not p.name.startswith("seed-"))
        if strays:
            raise ValueError(f"run directory {out} is not a run of several seeds (it holds {', '.join(strays[:3])}); "
                             "use another run directory, or --overwrite to replace it")
    else:
        out = check_output_dir(out, overwrite=overwrite, recognise=is_run, kind="fastmer training run",
                               inputs=[store_path, options.get("weights")], option="run directory")
    log = log or (lambda line: None)
    reports = {}
    for seed in seeds:
        log(f"seed {seed}")
        reports[seed] = train(store_path, out / f"seed-{seed}", seed=seed, overwrite=overwrite, resume=resume, log=log,
                              **options)
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
