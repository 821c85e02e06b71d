"""The seed papers' networks under LOSO on a synthetic corpus: do they learn, and how long
does a whole protocol take?

Synthetic feature store (:func:`fastmer.store.synthetic.synthetic_feature_store`): 6
subjects × 12 clips, 3 balanced MEGC classes, every representation at 32×32, class patterns
of amplitude 1 under a subject pattern (0.5) and per-clip noise (σ = 1). Each model trains
with its registry recipe (epochs, optimiser, loss, early stopping) on every LOSO fold plus
the final model, folds in parallel processes on the CPU. Chance UF1 is about 0.33.

These are checks that the models learn and timings of fastmer's training engine, not claims
about micro-expressions: the table in docs/models.md says so.

    python -m pytest bench/bench_models.py -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import pytest

from fastmer.train.run import train, usable_cores

MODELS = ("ststnet", "offapexnet", "lbptop-svm", "microattnet", "fmanet", "mmcof", "cof", "dianet", "afn", "meganet",
          "meganet-di", "learnet")
CHANCE_MARGIN = 0.25  # UF1 above 1/3 (chance) that a model must reach on this easy corpus


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from fastmer.store.synthetic import synthetic_feature_store

    words = ("happiness", "disgust", "surprise")
    clips = [{"uid": f"syn/s{s}/c{c}", "subject": f"syn/s{s}", "dataset": "syn", "labels": [words[(c + s) % 3]]}
             for s in range(6) for c in range(12)]
    representations = ("flow_onset_apex", "flow_phases", "cof", "mm_cof", "dynamic_image", "dynamic_image_phases",
                       "trdi", "midi", "mesti", "lbptop")
    return synthetic_feature_store(tmp_path_factory.mktemp("models") / "store", clips, size=32,
                                   representations=representations, signal=1.0, subject_effect=0.5, noise=1.0)


@pytest.mark.parametrize("name", MODELS)
def test_model_learns_under_loso(benchmark, store, tmp_path, name):
    benchmark.group = "paper models, LOSO on a synthetic corpus"
    reports = []

    def run():
        reports.append(train(store, tmp_path / f"run{len(reports)}", model=name, jobs=usable_cores()))

    benchmark.pedantic(run, rounds=1, iterations=1)
    report = reports[-1]
    pooled = report["metrics"]["pooled"]
    benchmark.extra_info.update(model=name, uf1=pooled["uf1"], uar=pooled["uar"], parameters=report["parameters"],
                                seconds=report["seconds"]["total"], folds=report["n_folds"],
                                epochs=(report["recipe"] or {}).get("epochs"))
    print(f"\n| {name} | {report['parameters']:,} | {pooled['uf1']:.3f} | {pooled['uar']:.3f} | "
          f"{report['seconds']['total']:.1f} |")
    assert pooled["uf1"] > 1 / 3 + CHANCE_MARGIN, f"{name}: pooled UF1 {pooled['uf1']:.3f} is close to chance"
