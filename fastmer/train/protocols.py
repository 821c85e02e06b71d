"""Evaluation protocols: how clips are split into training and test sets.

Every protocol splits by *subject*: no subject ever has clips on both sides of a fold.

* ``"loso"``: leave-one-subject-out over all clips, one fold per subject (sorted order),
  trained on every other subject. On the MEGC 2019 composite store this *is* the
  composite protocol: its subjects are namespaced per corpus (``smic/s1``,
  ``casme2/sub01``, ``samm/006``), so the 442 clips give 68 folds.
* ``"loso-per-dataset"``: one fold per subject, but each fold trains only on the other
  subjects *of the test subject's dataset*: per-dataset LOSO from one multi-dataset store
  (e.g. LOSO on CASME II alone, on SAMM alone... read off the composite store). Every clip
  is still tested exactly once; :attr:`Fold.dataset` names the fold's dataset.
* ``"kfold"``: ``k`` folds of whole subjects; subjects, largest first (ties broken by a
  seeded shuffle), each go to the fold with the fewest clips so far (ties: the fewest
  subjects, then the lowest fold number), so the folds' clip counts are balanced and
  the assignment is fixed by the seed. Every clip is tested exactly once.
* ``"holdout"``: one fold; ``round(test_fraction * n_subjects)`` subjects (at least one,
  at most all but one), drawn with the seed, are the test set; the rest train. Only those
  clips are tested.
* ``"cross-dataset"``: splits by *dataset* (hence by subject too). Without dataset lists,
  leave-one-dataset-out: one fold per dataset (sorted order) testing all its clips and
  training on every other dataset's clips, so every clip is tested once (a store of a
  single dataset is refused). With ``train_datasets=[A, B]`` and ``test_datasets=[C]``:
  one fold training on A and B and testing on C; clips of other datasets are not used.
  :attr:`Fold.train_datasets` / :attr:`Fold.test_datasets` name each fold's datasets.

Model selection (early stopping, threshold tuning) must use :func:`inner_split`, which
splits a fold's *training* indices by subject and never sees the test subjects.
:func:`folds_manifest` is the exact list of clip ids per fold, to be written with every
run; :func:`check_folds` verifies the invariants above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PROTOCOLS = ("loso", "loso-per-dataset", "kfold", "holdout", "cross-dataset")
# Protocols whose folds test every clip exactly once (the others test a subset).
EXHAUSTIVE_PROTOCOLS = ("loso", "loso-per-dataset", "kfold")


@dataclass(frozen=True)
class Fold:
    """One train/test split; indices into the clip list.

    Attributes:
        name: the fold's name: the test subject for the LOSO protocols,
            ``"fold{i}of{k}"`` for k-fold, ``"holdout"``.
        train: sorted indices of the training clips.
        test: sorted indices of the test clips.
        dataset: for ``"loso-per-dataset"``, the dataset the fold is restricted to; else None.
        train_datasets, test_datasets: for ``"cross-dataset"``, the datasets the fold trains
            and tests on (sorted); else empty.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    dataset: str | None = None
    train_datasets: tuple[str, ...] = ()
    test_datasets: tuple[str, ...] = ()


def _subject_array(subjects: Sequence[str]) -> np.ndarray:
    return np.asarray([str(s) for s in subjects], dtype=object)


def _unique_subjects(subjects: np.ndarray, *, minimum: int = 2, what: str = "this protocol") -> list[str]:
    unique = sorted(set(subjects.tolist()))
    if len(unique) < minimum:
        raise ValueError(f"subjects: {what} needs clips of at least two subjects, got {len(unique)}")
    return unique


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def _n_held_out(n: int, fraction: float, name: str) -> int:
    if not 0 < fraction < 1:
        raise ValueError(f"{name} must be in (0, 1), got {fraction!r}")
    return min(max(1, round(fraction * n)), n - 1)


def loso(subjects: Sequence[str]) -> list[Fold]:
    """Leave-one-subject-out: one fold per subject (in sorted order), tested on that subject only."""
    subjects = _subject_array(subjects)
    folds = []
    for subject in sorted(set(subjects.tolist())):
        test = np.flatnonzero(subjects == subject)
        train = np.flatnonzero(subjects != subject)
        folds.append(Fold(str(subject), train, test))
    return folds


def _datasets_of(subjects: np.ndarray, datasets: Sequence[str] | None, what: str = "loso-per-dataset") -> np.ndarray:
    if datasets is None:
        if not all("/" in s for s in subjects.tolist()):
            raise ValueError(f"datasets: {what} needs each clip's dataset (datasets=...), or subjects "
                             "namespaced as 'dataset/subject'")
        return np.asarray([s.split("/", 1)[0] for s in subjects.tolist()], dtype=object)
    datasets = np.asarray([str(d) for d in datasets], dtype=object)
    if datasets.shape != subjects.shape:
        raise ValueError(f"datasets has {datasets.size} entries but subjects {subjects.size}")
    return datasets


def loso_per_dataset(subjects: Sequence[str], datasets: Sequence[str] | None = None) -> list[Fold]:
    """LOSO within each dataset: fold ``s`` tests subject ``s`` and trains on the other subjects
    of ``s``'s dataset only.

    Args:
        subjects: each clip's subject.
        datasets: each clip's dataset; if None, the prefix before the first ``/`` of the
            (namespaced) subject.

    Folds are ordered by dataset, then subject. A subject whose clips span several datasets,
    or a dataset with a single subject (nothing to train on), is a ValueError.
    """
    subjects = _subject_array(subjects)
    _unique_subjects(subjects, what="loso-per-dataset")
    datasets = _datasets_of(subjects, datasets)
    dataset_of: dict[str, str] = {}
    for s, d in zip(subjects.tolist(), datasets.tolist(), strict=True):
        if dataset_of.setdefault(s, d) != d:
            raise ValueError(f"subjects: subject {s!r} has clips in datasets {dataset_of[s]!r} and {d!r}; "
                             "namespace the subjects per dataset")
    folds = []
    for dataset in sorted(set(datasets.tolist())):
        in_dataset = datasets == dataset
        members = sorted(set(subjects[in_dataset].tolist()))
        if len(members) < 2:
            raise ValueError(f"datasets: dataset {dataset!r} has a single subject ({members[0]!r}); "
                             "leave-one-subject-out within it leaves nothing to train on")
        for subject in members:
            test = np.flatnonzero(subjects == subject)
            train = np.flatnonzero(in_dataset & (subjects != subject))
            folds.append(Fold(subject, train, test, dataset=dataset))
    return folds


def _dataset_list(value: Sequence[str] | str, name: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(d).strip() for d in items if str(d).strip()]
    if not items:
        raise ValueError(f"{name}: no dataset given")
    repeated = sorted({d for d in items if items.count(d) > 1})
    if repeated:
        raise ValueError(f"{name}: dataset(s) listed twice: {', '.join(repeated)}")
    return sorted(items)


def cross_dataset(
    subjects: Sequence[str],
    datasets: Sequence[str] | None = None,
    *,
    train_datasets: Sequence[str] | str | None = None,
    test_datasets: Sequence[str] | str | None = None,
) -> list[Fold]:
    """Cross-dataset folds: leave-one-dataset-out, or train on some datasets and test on others.

    Args:
        subjects: each clip's subject.
        datasets: each clip's dataset; if None, the prefix before the first ``/`` of the
            (namespaced) subject.
        train_datasets, test_datasets: both None: leave-one-dataset-out (one fold per
            dataset, named after it, in sorted order). Both given (lists, or comma-separated
            text): one fold named ``"A+B->C"``.

    Raises:
        ValueError: fewer than two datasets in the store (naming those it has), one list
            without the other, an unknown dataset or one in both lists (listing the store's
            datasets).

    Example:
        >>> [f.name for f in cross_dataset(["a/1", "a/2", "b/1"])]
        ['a', 'b']
    """
    subjects = _subject_array(subjects)
    _unique_subjects(subjects, what="cross-dataset")
    datasets = _datasets_of(subjects, datasets, "cross-dataset")
    present = sorted(set(datasets.tolist()))
    if len(present) < 2:
        raise ValueError(f"datasets: cross-dataset needs clips of at least two datasets; the store has "
                         f"{len(present)}: {', '.join(present) or 'none'}")
    if (train_datasets is None) != (test_datasets is None):
        raise ValueError("train_datasets and test_datasets: give both (train on the first, test on the second), "
                         "or neither (leave-one-dataset-out)")
    if train_datasets is None:
        return [Fold(d, np.flatnonzero(datasets != d), np.flatnonzero(datasets == d),
                     train_datasets=tuple(x for x in present if x != d), test_datasets=(d,)) for d in present]
    train_list = _dataset_list(train_datasets, "train_datasets")
    test_list = _dataset_list(test_datasets, "test_datasets")  # type: ignore[arg-type]
    for name, items in (("train_datasets", train_list), ("test_datasets", test_list)):
        unknown = [d for d in items if d not in present]
        if unknown:
            raise ValueError(f"{name}: unknown dataset(s) {', '.join(map(repr, unknown))}; the store's datasets: "
                             f"{', '.join(present)}")
    overlap = sorted(set(train_list) & set(test_list))
    if overlap:
        raise ValueError(f"train_datasets and test_datasets overlap: {', '.join(overlap)} in both (the store's "
                         f"datasets: {', '.join(present)})")
    train = np.flatnonzero(np.isin(datasets, train_list))
    test = np.flatnonzero(np.isin(datasets, test_list))
    return [Fold(f"{'+'.join(train_list)}->{'+'.join(test_list)}", train, test,
                 train_datasets=tuple(train_list), test_datasets=tuple(test_list))]


def is_exhaustive(protocol: str, *, train_datasets: Sequence[str] | str | None = None) -> bool:
    """Whether ``protocol``'s folds test every clip exactly once (for :func:`check_folds`)."""
    if protocol == "cross-dataset":
        return train_datasets is None
    return protocol in EXHAUSTIVE_PROTOCOLS


def kfold(subjects: Sequence[str], k: int = 5, seed: int = 0) -> list[Fold]:
    """``k`` subject-disjoint folds with balanced clip counts (see the module docstring)."""
    subjects = _subject_array(subjects)
    unique = _unique_subjects(subjects, what="kfold")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    if k > len(unique):
        raise ValueError(f"k = {k} exceeds the number of subjects ({len(unique)}); every fold needs a subject")
    counts = Counter(subjects.tolist())
    tie_break = {s: i for i, s in enumerate(_rng(seed).permutation(len(unique)).tolist())}
    order = sorted(range(len(unique)), key=lambda i: (-counts[unique[i]], tie_break[i]))
    clips, members = [0] * k, [[] for _ in range(k)]
    for i in order:
        target = min(range(k), key=lambda f: (clips[f], len(members[f]), f))
        members[target].append(unique[i])
        clips[target] += counts[unique[i]]
    folds = []
    for f, held in enumerate(members):
        is_test = np.isin(subjects, held)
        folds.append(Fold(f"fold{f + 1}of{k}", np.flatnonzero(~is_test), np.flatnonzero(is_test)))
    return folds


def holdout(subjects: Sequence[str], test_fraction: float = 0.2, seed: int = 0) -> list[Fold]:
    """One fold testing a seeded draw of ``test_fraction`` of the *subjects* (not clips)."""
    subjects = _subject_array(subjects)
    unique = _unique_subjects(subjects, what="holdout")
    n_test = _n_held_out(len(unique), test_fraction, "test_fraction")
    held = [unique[i] for i in _rng(seed).permutation(len(unique))[:n_test]]
    is_test = np.isin(subjects, held)
    return [Fold("holdout", np.flatnonzero(~is_test), np.flatnonzero(is_test))]


def make_folds(
    protocol: str,
    subjects: Sequence[str],
    *,
    datasets: Sequence[str] | None = None,
    k: int = 5,
    test_fraction: float = 0.2,
    seed: int = 0,
    train_datasets: Sequence[str] | str | None = None,
    test_datasets: Sequence[str] | str | None = None,
) -> list[Fold]:
    """The folds of ``protocol`` over clips with these ``subjects``.

    Args:
        protocol: one of :data:`PROTOCOLS`.
        subjects: each clip's subject (namespaced per dataset in multi-dataset stores).
        datasets: each clip's dataset, for ``"loso-per-dataset"`` and ``"cross-dataset"``
            (default: the subject's namespace prefix).
        k: number of folds for ``"kfold"``.
        test_fraction: fraction of subjects held out by ``"holdout"``, in (0, 1).
        seed: fixes ``"kfold"``'s tie-breaks and ``"holdout"``'s draw; record it with the run.
        train_datasets, test_datasets: ``"cross-dataset"`` only: train on these, test on
            those (default: leave-one-dataset-out).

    Raises:
        ValueError: naming the bad argument (unknown protocol, fewer than two subjects,
            k < 2 or k > number of subjects, test_fraction outside (0, 1)...).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol != "cross-dataset" and (train_datasets is not None or test_datasets is not None):
        raise ValueError(f"train_datasets/test_datasets apply to protocol cross-dataset only, not {protocol!r}")
    if protocol == "cross-dataset":
        return cross_dataset(subjects, datasets, train_datasets=train_datasets, test_datasets=test_datasets)
    if protocol == "loso":
        _unique_subjects(_subject_array(subjects), what="leave-one-subject-out")
        return loso(subjects)
    if protocol == "loso-per-dataset":
        return loso_per_dataset(subjects, datasets)
    if protocol == "kfold":
        return kfold(subjects, k=k, seed=seed)
    return holdout(subjects, test_fraction=test_fraction, seed=seed)  # the last of PROTOCOLS


def inner_split(
    train_indices: Sequence[int], subjects: Sequence[str], *, fraction: float = 0.2, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split a fold's training clips by subject into (fit, validation) for model selection.

    Early stopping and threshold tuning select on the validation part, so nothing is ever
    chosen on the test subjects: only ``train_indices`` are looked at.

    Args:
        train_indices: the fold's training indices (``fold.train``).
        subjects: each clip's subject, over *all* clips (indexed by ``train_indices``).
        fraction: fraction of the training subjects put in validation (rounded; at least
            one, at most all but one).
        seed: fixes the draw (e.g. derive it from the run seed and the fold number).

    Returns:
        ``(fit_indices, val_indices)``: sorted, subject-disjoint, together exactly
        ``train_indices``.
    """
    train_indices = np.asarray(train_indices, dtype=np.int64)
    subjects = _subject_array(subjects)
    if train_indices.size and (train_indices.min() < 0 or train_indices.max() >= subjects.size):
        raise ValueError(f"train_indices: indices outside [0, {subjects.size})")
    if np.unique(train_indices).size != train_indices.size:
        raise ValueError("train_indices: an index is listed twice")
    train_subjects = subjects[train_indices]
    unique = sorted(set(train_subjects.tolist()))
    if len(unique) < 2:
        raise ValueError(f"train_indices: an inner split needs at least two training subjects, got {len(unique)}")
    n_val = _n_held_out(len(unique), fraction, "fraction")
    held = [unique[i] for i in _rng(seed).permutation(len(unique))[:n_val]]
    is_val = np.isin(train_subjects, held)
    return np.sort(train_indices[~is_val]), np.sort(train_indices[is_val])


def folds_manifest(folds: Sequence[Fold], uids: Sequence[str]) -> list[dict]:
    """The exact clip ids of each fold, JSON-serialisable, to write with every run.

    Each entry: ``name`` (also as ``fold``, the key of earlier ``folds.json`` files),
    ``dataset`` (None unless ``loso-per-dataset``), ``train_datasets`` and ``test_datasets``
    (``"cross-dataset"`` only), ``n_train``, ``n_test``, ``train`` and
    ``test`` (uids, in index order).
    """
    uids = [str(u) for u in uids]
    manifest = []
    for fold in folds:
        manifest.append({
            "name": fold.name,
            "fold": fold.name,
            "dataset": fold.dataset,
            **({"train_datasets": list(fold.train_datasets), "test_datasets": list(fold.test_datasets)}
               if fold.train_datasets or fold.test_datasets else {}),
            "n_train": int(len(fold.train)),
            "n_test": int(len(fold.test)),
            "train": [uids[i] for i in np.asarray(fold.train, dtype=np.int64).tolist()],
            "test": [uids[i] for i in np.asarray(fold.test, dtype=np.int64).tolist()],
        })
    return manifest


def check_folds(folds: Sequence[Fold], subjects: Sequence[str], *, every_clip_once: bool = True) -> None:
    """Raise ValueError unless the folds are sound.

    Checked: indices in range and not repeated within a side; each fold's train and test
    sets non-empty and sharing no subject; no subject tested in two folds; and, when
    ``every_clip_once`` (the protocols in :data:`EXHAUSTIVE_PROTOCOLS`), every clip tested
    exactly once.
    """
    subjects = _subject_array(subjects)
    n = subjects.size
    if not folds:
        raise ValueError("folds: no folds")
    tested = np.zeros(n, dtype=np.int64)
    tested_in: dict[str, str] = {}
    for fold in folds:
        for side in ("train", "test"):
            idx = np.asarray(getattr(fold, side), dtype=np.int64)
            if idx.size == 0:
                raise ValueError(f"fold {fold.name}: empty {side} set")
            if idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"fold {fold.name}: {side} indices outside [0, {n})")
            if np.unique(idx).size != idx.size:
                raise ValueError(f"fold {fold.name}: a {side} index is listed twice")
        train_subjects = set(subjects[np.asarray(fold.train, dtype=np.int64)].tolist())
        test_subjects = set(subjects[np.asarray(fold.test, dtype=np.int64)].tolist())
        leaked = sorted(train_subjects & test_subjects)
        if leaked:
            raise ValueError(f"fold {fold.name}: subject(s) in both train and test: {', '.join(leaked[:5])}")
        for s in sorted(test_subjects):
            if s in tested_in:
                raise ValueError(f"subject {s!r} is tested in two folds: {tested_in[s]} and {fold.name}")
            tested_in[s] = fold.name
        np.add.at(tested, np.asarray(fold.test, dtype=np.int64), 1)
    if every_clip_once:
        never, twice = np.flatnonzero(tested == 0), np.flatnonzero(tested > 1)
        if never.size:
            raise ValueError(f"{never.size} clip(s) never tested, e.g. index {int(never[0])}")
        if twice.size:  # unreachable given the subject check, kept as a guard
            raise ValueError(f"{twice.size} clip(s) tested more than once, e.g. index {int(twice[0])}")
