import json

import numpy as np
import pytest

from fastmer.datasets.megc2019 import official_members
from fastmer.train.protocols import (
    EXHAUSTIVE_PROTOCOLS,
    PROTOCOLS,
    Fold,
    check_folds,
    folds_manifest,
    inner_split,
    make_folds,
)


@pytest.fixture(scope="module")
def composite():
    """The MEGC 2019 composite's 442 official clips: (uids, namespaced subjects, corpora)."""
    uids = list(official_members())
    subjects = [u.rsplit("/", 1)[0] for u in uids]
    return uids, subjects, [u.split("/", 1)[0] for u in uids]


def _subjects_of(subjects, idx):
    return {subjects[i] for i in idx}


def test_composite_protocol_has_68_subject_disjoint_folds(composite):
    uids, subjects, corpora = composite
    assert len(uids) == 442
    folds = make_folds("loso", subjects)
    assert len(folds) == 68
    counts = {c: len({s for s in subjects if s.startswith(c + "/")}) for c in ("smic", "casme2", "samm")}
    assert counts == {"smic": 16, "casme2": 24, "samm": 28}
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(442))  # every clip tested exactly once
    seen = set()
    for f in folds:
        test_subjects = _subjects_of(subjects, f.test)
        assert test_subjects == {f.name}
        assert f.name not in _subjects_of(subjects, f.train)
        assert f.name not in seen  # no subject in two folds
        seen.add(f.name)
        assert len(f.train) + len(f.test) == 442
    check_folds(folds, subjects)


def test_loso_per_dataset_trains_within_the_test_subjects_corpus(composite):
    uids, subjects, corpora = composite
    folds = make_folds("loso-per-dataset", subjects, datasets=corpora)
    assert len(folds) == 68
    assert [f.dataset for f in folds].count("samm") == 28
    for f in folds:
        assert {corpora[i] for i in f.train} == {f.dataset} == {corpora[i] for i in f.test}
        assert f.name not in _subjects_of(subjects, f.train)
        # trains on every other subject of its corpus
        assert len(f.train) + len(f.test) == corpora.count(f.dataset)
    check_folds(folds, subjects)
    # datasets inferred from the namespace when not given
    inferred = make_folds("loso-per-dataset", subjects)
    assert [(f.name, f.dataset, f.train.tolist()) for f in inferred] == [(f.name, f.dataset, f.train.tolist()) for f in folds]


def test_loso_per_dataset_errors():
    with pytest.raises(ValueError, match="datasets"):
        make_folds("loso-per-dataset", ["a", "b"])  # not namespaced, no datasets
    with pytest.raises(ValueError, match="single subject"):
        make_folds("loso-per-dataset", ["x/a", "x/b", "y/c"])
    with pytest.raises(ValueError, match="clips in datasets"):
        make_folds("loso-per-dataset", ["a", "a", "b", "c"], datasets=["x", "y", "x", "y"])


@pytest.mark.parametrize("k", [2, 5, 10])
def test_kfold_subject_disjoint_balanced_and_deterministic(composite, k):
    uids, subjects, _ = composite
    folds = make_folds("kfold", subjects, k=k, seed=3)
    assert len(folds) == k
    check_folds(folds, subjects)
    for f in folds:
        assert not _subjects_of(subjects, f.train) & _subjects_of(subjects, f.test)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= max(np.bincount(np.unique(subjects, return_inverse=True)[1]))
    again = make_folds("kfold", subjects, k=k, seed=3)
    assert [f.test.tolist() for f in again] == [f.test.tolist() for f in folds]


def test_kfold_seed_changes_ties():
    subjects = [f"s{i}" for i in range(12) for _ in range(3)]  # all subjects the same size: all ties
    a = make_folds("kfold", subjects, k=3, seed=0)
    b = make_folds("kfold", subjects, k=3, seed=1)
    assert [len(f.test) for f in a] == [12, 12, 12]
    assert [f.test.tolist() for f in a] != [f.test.tolist() for f in b]


def test_holdout_holds_out_subjects_not_clips(composite):
    uids, subjects, _ = composite
    (fold,) = make_folds("holdout", subjects, test_fraction=0.25, seed=7)
    test_subjects = _subjects_of(subjects, fold.test)
    assert len(test_subjects) == 17  # round(0.25 * 68)
    assert not test_subjects & _subjects_of(subjects, fold.train)
    assert sorted(fold.train.tolist() + fold.test.tolist()) == list(range(442))  # all clips of held-out subjects
    check_folds([fold], subjects, every_clip_once=False)
    with pytest.raises(ValueError, match="never tested"):
        check_folds([fold], subjects)
    (same,) = make_folds("holdout", subjects, test_fraction=0.25, seed=7)
    (other,) = make_folds("holdout", subjects, test_fraction=0.25, seed=8)
    assert same.test.tolist() == fold.test.tolist() != other.test.tolist()
    # at least one subject on each side
    (tiny,) = make_folds("holdout", ["a", "b"], test_fraction=0.9)
    assert len(tiny.test) == 1 and len(tiny.train) == 1


def test_inner_split_by_subject_never_touches_the_test_subject(composite):
    uids, subjects, _ = composite
    for fold in make_folds("loso", subjects)[:10]:
        fit, val = inner_split(fold.train, subjects, fraction=0.2, seed=11)
        assert sorted(fit.tolist() + val.tolist()) == sorted(fold.train.tolist())
        fit_s, val_s = _subjects_of(subjects, fit), _subjects_of(subjects, val)
        assert fit_s and val_s and not fit_s & val_s
        assert fold.name not in fit_s | val_s
        assert len(val_s) == round(0.2 * 67)
        again_fit, again_val = inner_split(fold.train, subjects, fraction=0.2, seed=11)
        assert again_val.tolist() == val.tolist()
    fit, val = inner_split([0, 1, 2], ["a", "a", "b", "c"], fraction=0.9, seed=0)
    assert len(_subjects_of(["a", "a", "b", "c"], fit)) == 1 and len(_subjects_of(["a", "a", "b", "c"], val)) == 1
    with pytest.raises(ValueError, match="two training subjects"):
        inner_split([0, 1], ["a", "a", "b"], seed=0)
    with pytest.raises(ValueError, match="fraction"):
        inner_split([0, 1, 2], ["a", "b", "c"], fraction=1.0, seed=0)


def test_manifest_lists_the_clip_ids(composite):
    uids, subjects, _ = composite
    folds = make_folds("loso", subjects)
    manifest = folds_manifest(folds, uids)
    json.dumps(manifest)
    assert [m["name"] for m in manifest] == [f.name for f in folds]
    assert sorted(u for m in manifest for u in m["test"]) == sorted(uids)
    first = manifest[0]
    assert first["n_test"] == len(first["test"]) and first["n_train"] == len(first["train"]) == 442 - first["n_test"]
    assert all(u.startswith(first["name"] + "/") for u in first["test"])


def test_check_folds_catches_leaks():
    subjects = ["a", "a", "b", "c"]
    with pytest.raises(ValueError, match="both train and test"):
        check_folds([Fold("a", np.array([1, 2, 3]), np.array([0]))], subjects, every_clip_once=False)
    with pytest.raises(ValueError, match="tested in two folds"):
        check_folds([Fold("x", np.array([2, 3]), np.array([0])), Fold("y", np.array([2, 3]), np.array([1]))], subjects,
                    every_clip_once=False)
    with pytest.raises(ValueError, match="listed twice"):
        check_folds([Fold("x", np.array([2, 2]), np.array([0, 1]))], subjects, every_clip_once=False)
    with pytest.raises(ValueError, match="outside"):
        check_folds([Fold("x", np.array([2, 9]), np.array([0, 1]))], subjects, every_clip_once=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "lopo"}, "protocol"),
        ({"protocol": "kfold", "k": 1}, "k must"),
        ({"protocol": "kfold", "k": 4}, "exceeds the number of subjects"),
        ({"protocol": "holdout", "test_fraction": 0.0}, "test_fraction"),
        ({"protocol": "holdout", "test_fraction": 1.0}, "test_fraction"),
        ({"protocol": "holdout", "seed": 1.5}, "seed"),
    ],
)
def test_make_folds_errors_name_the_argument(kwargs, match):
    protocol = kwargs.pop("protocol")
    with pytest.raises(ValueError, match=match):
        make_folds(protocol, ["a", "b", "c", "a"], **kwargs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_needs_two_subjects(protocol):
    with pytest.raises(ValueError, match="at least two subjects"):
        make_folds(protocol, ["x/a", "x/a"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_passes_its_checks(composite, protocol):
    _, subjects, _ = composite
    folds = make_folds(protocol, subjects, seed=5)
    check_folds(folds, subjects, every_clip_once=protocol in EXHAUSTIVE_PROTOCOLS)
