"""Shared fixtures: devices to test on and the read-only real data in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def devices() -> list[str]:
    """CPU always; CUDA when a GPU is visible (CUDA tests run on the lent GPU machine)."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=devices())
def device(request) -> str:
    return request.param


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
    from fastmer.datasets import load
    from fastmer.extract import extract

    store = tmp_path_factory.mktemp("tiny_store") / "store"
    summary = extract(load("casme2", tiny_corpus), store)
    assert summary.n_failed == 0, summary.failures
    return store


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    from fastmer.models import MODELS
    from fastmer.train.run import train
    from dataclasses import replace

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    train(tiny_store, run, recipe=replace(MODELS["ststnet"].recipe, epochs=TINY_EPOCHS))
    return run


# --- real optical-flow pairs with ground truth (../shared/data/flow) ------------------------
def load_flow_pair(shared: Path, name: str):
    """(I0, I1, ground truth (H, W, 2), valid mask) of 'rubberwhale' or 'sintel'."""
    import cv2

    from fastmer.motion.flo import read_flo

    if name == "rubberwhale":
        folder = shared / "data" / "flow" / "middlebury"
        I0, I1 = cv2.imread(str(folder / "RubberWhale1.png"), 0), cv2.imread(str(folder / "RubberWhale2.png"), 0)
        truth = read_flo(folder / "RubberWhale.flo")
        valid = (abs(truth) < 1e9).all(axis=-1)
    else:
        folder = shared / "data" / "flow" / "sintel_alley_1"
        I0, I1 = cv2.imread(str(folder / "frame_0002.png"), 0), cv2.imread(str(folder / "frame_0003.png"), 0)
        truth = read_flo(folder / "flow_0002.flo")
        valid = cv2.imread(str(folder / "invalid_0002.png"), 0) == 0
    return I0, I1, truth, valid


def epe(flow, truth, valid) -> float:
    """Average end-point error of an (H, W, 2) or (2, H, W) flow over the valid pixels."""
    import numpy as np

    flow = np.asarray(flow)
    if flow.shape[0] == 2 and flow.ndim == 3:
        flow = flow.transpose(1, 2, 0)
    return float(np.linalg.norm(flow - truth, axis=-1)[valid].mean())
