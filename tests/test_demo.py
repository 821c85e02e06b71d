"""The end-to-end slice: synth -> extract -> train -> export -> infer."""

import json

import pytest
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.datasets.synth import SynthConfig
from fastmer.demo import run_demo


def test_small_demo_summary(tmp_path):
    summary = run_demo(tmp_path / "demo", SynthConfig(subjects=3, clips_per_subject=3, seed=5, min_frames=12,
                                                      max_frames=14))
    assert json.loads((tmp_path / "demo" / "summary.json").read_text()) == summary
    assert summary["clips"] == {"corpus": 9, "extracted": 9, "failed": 0, "evaluated": 9, "subjects": 3}
    assert summary["max_abs_engine_minus_torch"] < 1e-4
    assert summary["extract_clips_per_s"] > 0 and summary["infer_clips_per_s"] > 0
    assert 0 <= summary["loso"]["uf1"] <= 1 and summary["loso"]["folds"] == 3
    page = (tmp_path / "demo" / "report.html").read_text()
    assert summary["paths"]["report"] == str(tmp_path / "demo" / "report.html")
    assert f"{summary['loso']['uf1']:.4f}" in page and page.count("data:image/png;base64,") >= 2


@pytest.mark.slow
def test_default_demo_is_far_above_chance(tmp_path):
    """`make demo`'s configuration: 8 subjects x 6 clips; the issue asks for UF1 >= 0.8 (chance ~0.33)."""
    result = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["clips"]["evaluated"] == 48 and summary["loso"]["folds"] == 8
    assert summary["loso"]["uf1"] >= 0.8, summary["loso"]
    assert summary["max_abs_engine_minus_torch"] < 1e-4
