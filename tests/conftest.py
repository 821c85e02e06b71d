"""Shared fixtures: devices to test on and the read-only real data in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from devices import device_params, devices

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(params=device_params(devices()))
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """The tests never see (or fill) the user's model cache: auto choices are reproducible."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FASTMER_CACHE", str(tmp_path_factory.mktemp("fastmer_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (present in CI, absent on a user's machine)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real test data not found: {SHARED}/data is absent (it ships beside the repo in CI only)")
    return SHARED


# --- a tiny corpus, its store and a trained run, shared by the pipeline tests -------------
TINY = {"subjects": 3, "clips_per_subject": 3, "seed": 7, "min_frames": 12, "max_frames": 16}
TINY_EPOCHS = 15


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """3 subjects x 3 clips (one per class) of 12-16 frames, CASME II layout."""
    from fastmer.datasets.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("tiny") / "corpus"
    generate(root, SynthConfig(**TINY))
    return root


@pytest.fixture(scope="session")
def tiny_store(tiny_corpus, tmp_path_factory) -> Path:
    from fastmer.config import ExtractConfig
    from fastmer.datasets import load
    from fastmer.extract import extract

    store = tmp_path_factory.mktemp("tiny_store") / "store"
    summary = extract(load("casme2", tiny_corpus), store, ExtractConfig(face_detector="haar"))
    assert summary.n_failed == 0, summary.failures
    return store


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    from dataclasses import replace

    from fastmer.models import MODELS
    from fastmer.train.run import train

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    train(tiny_store, run, recipe=replace(MODELS["ststnet"].recipe, epochs=TINY_EPOCHS))
    return run


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Path:
    """A feature store of 4 subjects x 6 clips (2 per MEGC class), 28x28 maps and LBP-TOP
    histograms with learnable class patterns (fastmer.store.synthetic)."""
    from fastmer.store.synthetic import synthetic_feature_store

    words = ("happiness", "disgust", "surprise")
    clips = [{"uid": f"d/s{s}/c{c}", "subject": f"d/s{s}", "dataset": "d", "labels": [words[(c + s) % 3]]}
             for s in range(4) for c in range(6)]
    return synthetic_feature_store(tmp_path_factory.mktemp("synthetic") / "store", clips, size=28,
                                   representations=("flow_onset_apex", "lbptop", "dynamic_image", "dynamic_image_phases"))


@pytest.fixture(scope="session")
def synthetic_multilabel_store(tmp_path_factory) -> Path:
    """5 subjects x 12 clips with 4DME-style label sets (one or two of 5 classes each)."""
    from fastmer.store.synthetic import synthetic_feature_store

    sets = (("positive",), ("negative",), ("surprise", "positive"), ("repression",), ("others",), ("negative", "surprise"))
    clips = [{"uid": f"4dme/s{s}/c{c}", "subject": f"4dme/s{s}", "dataset": "4dme", "labels": list(sets[(c + s) % 6])}
             for s in range(5) for c in range(12)]
    return synthetic_feature_store(tmp_path_factory.mktemp("synthetic_ml") / "store", clips, size=28, noise=0.5)


# Real optical-flow pairs with ground truth: tests/flowdata.py (load_flow_pair, epe).


PAPER_REPRESENTATIONS = ("flow_phases", "cof", "mm_cof", "dynamic_image", "dynamic_image_phases", "trdi", "midi",
                         "mesti")


@pytest.fixture(scope="session")
def paper_store(tmp_path_factory) -> Path:
    """4 subjects x 6 clips (2 per MEGC class), every representation the seed papers' networks
    read, 28x28, with learnable class patterns (fastmer.store.synthetic)."""
    from fastmer.store.synthetic import synthetic_feature_store

    words = ("happiness", "disgust", "surprise")
    clips = [{"uid": f"d/s{s}/c{c}", "subject": f"d/s{s}", "dataset": "d", "labels": [words[(c + s) % 3]]}
             for s in range(4) for c in range(6)]
    return synthetic_feature_store(tmp_path_factory.mktemp("paper") / "store", clips, size=28,
                                   representations=PAPER_REPRESENTATIONS, noise=0.5)


@pytest.fixture(scope="session")
def dual_view_store(tmp_path_factory) -> Path:
    """4DME-like: 5 subjects x 8 clips, each a left and a right view row, multi-label, flow_phases 24x24;
    clip s4/c7 has only its left view."""
    from fastmer.store.synthetic import synthetic_feature_store

    sets = (("positive",), ("negative",), ("surprise", "positive"), ("repression",), ("others",),
            ("negative", "surprise"))
    clips = [{"uid": f"4dme/s{s}/c{c}@{view}", "subject": f"4dme/s{s}", "dataset": "4dme", "view": view,
              "labels": list(sets[(c + s) % 6])}
             for s in range(5) for c in range(8) for view in ("left", "right") if (s, c, view) != (4, 7, "right")]
    return synthetic_feature_store(tmp_path_factory.mktemp("dual_view") / "store", clips, size=24,
                                   representations=("flow_phases", "dynamic_image", "dynamic_image_phases"), noise=0.5)
