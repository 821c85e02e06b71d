"""Scores' probabilities from logits (scipy.special's expit and softmax): float32 kept, no
overflow warning for logits far from 0, equal to a float64 reference."""

import warnings

import numpy as np
import pytest

from fastmer.engine.predict import _probabilities


def _reference(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    x = logits.astype(np.float64)
    if multilabel:
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("multilabel", [False, True])
def test_extreme_logits_give_no_warning_and_the_float64_values(multilabel):
    rng = np.random.default_rng(0)
    logits = np.concatenate([
        rng.normal(0, 5, (64, 4)),
        np.array([[-1000.0, 0.0, 1000.0, -89.0], [-88.8, -100.0, -1e4, 1e4], [-200.0, -200.0, -200.0, -200.0],
                  [90.0, -90.0, 1e-8, -1e-8]]),
    ]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        with np.errstate(over="warn", invalid="warn", divide="warn"):  # underflow to 0 is fine
            got = _probabilities(logits, multilabel)
    assert got.dtype == np.float32 and got.shape == logits.shape
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, _reference(logits, multilabel), rtol=0, atol=1e-6)
    if not multilabel:
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
