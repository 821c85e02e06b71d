"""Training refuses labels nothing can be learnt from (issue 17): a run whose clips all have one
class ran with no warning and reported UF1 0.22."""

from dataclasses import replace

import pytest
from click.testing import CliRunner

from fastmer.models import MODELS
from fastmer.store.synthetic import synthetic_feature_store
from fastmer.train.run import train

FAST = replace(MODELS["ststnet"].recipe, epochs=1, patience=None)


def _store(path, labels_of):
    clips = [{"uid": f"d/s{s}/c{c}", "subject": f"d/s{s}", "dataset": "d", "labels": labels_of(s, c)}
             for s in range(4) for c in range(3)]
    return synthetic_feature_store(path, clips, size=28)


def test_a_store_of_one_class_is_refused_before_training(tmp_path):
    # happiness is 'positive' under megc2019-3class; 'others' is excluded by it
    store = _store(tmp_path / "store", lambda s, c: ["others"] if (s, c) == (0, 0) else ["happiness"])
    with pytest.raises(ValueError, match=r"every clip of .*store has the same class under label protocol "
                                         r"megc2019-3class: 'positive' \(11 clips; 1 other clip\(s\) excluded by it\); "
                                         r"training needs clips of at least two classes"):
        train(store, tmp_path / "run", recipe=FAST)
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    from fastmer.cli import main

    result = CliRunner().invoke(main, ["train", str(store), "-o", str(tmp_path / "cli_run")])
    assert result.exit_code != 0 and "'positive' (11 clips" in result.output, result.output
    assert not (tmp_path / "cli_run" / "report.json").exists()


def test_a_fold_training_on_one_class_is_refused(tmp_path):
    # every 'negative' clip is subject s0's: the LOSO fold testing s0 would train on 'positive' only
    store = _store(tmp_path / "store", lambda s, c: ["disgust"] if s == 0 else ["happiness"])
    with pytest.raises(ValueError, match=r"fold d/s0 would train on a single class: its 9 training clips are all "
                                         r"'positive' \(its test clips: 'negative' \(3\)\)"):
        train(store, tmp_path / "run", recipe=FAST)
    assert not (tmp_path / "run").exists()


def test_multilabel_stores_of_one_label_set_are_refused_and_others_train(tmp_path):
    store = _store(tmp_path / "one", lambda s, c: ["surprise", "positive"])
    with pytest.raises(ValueError, match=r"the same label set under label protocol 4dme-multilabel: 'positive\+surprise' "
                                         r"\(12 clips\)"):
        train(store, tmp_path / "run", labels="4dme-multilabel", recipe=FAST)
    # two label sets, each present in every fold's training clips: trains
    store = _store(tmp_path / "two", lambda s, c: ["surprise", "positive"] if c == 0 else ["negative"])
    report = train(store, tmp_path / "run", labels="4dme-multilabel", recipe=FAST)
    assert report["multilabel"] and report["n_folds"] == 4
