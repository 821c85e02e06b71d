"""fastmer report: a table comparing training runs."""

import json
import shutil

import pytest
from click.testing import CliRunner

from fastmer.cli import main


def test_report_compares_runs(tiny_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    report = json.loads((other / "report.json").read_text())
    report["metrics"]["pooled"].update(uf1=0.5, uar=0.25)
    report["metrics"]["per_dataset"] = {"casme2": {"n": 9, "uf1": 0.5, "uar": 0.25, "accuracy": 0.5}}
    (other / "report.json").write_text(json.dumps(report))
    original = json.loads((tiny_run / "report.json").read_text())["metrics"]["pooled"]

    result = CliRunner().invoke(main, ["report", str(tiny_run), str(other), "--per-dataset"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["run", "model", "protocol"]
    assert f"{original['uf1']:.4f}" in lines[2] and "ststnet" in lines[2]
    assert "0.5000" in lines[3] and "0.2500" in lines[3] and lines[4].split()[0] == "casme2"

    markdown = CliRunner().invoke(main, ["report", str(tiny_run), "--markdown"]).output.splitlines()
    assert markdown[0].startswith("| run | model |") and markdown[1].startswith("|---|") and len(markdown) == 3


def test_report_rejects_what_is_not_a_run(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no report.json" in result.output
    (tmp_path / "report.json").write_text("{}")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "is not a fastmer training report" in result.output


def test_seeds_give_mean_and_std(tiny_store, tmp_path):
    import statistics

    out = tmp_path / "seeds"
    result = CliRunner().invoke(main, ["train", str(tiny_store), "-o", str(out), "--epochs", "2", "--seeds", "3,5"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    per_seed = [json.loads((out / f"seed-{s}" / "report.json").read_text()) for s in (3, 5)]
    assert [r["seed"] for r in per_seed] == [3, 5] and report["seeds"] == [3, 5]
    uf1 = [r["metrics"]["pooled"]["uf1"] for r in per_seed]
    assert report["metrics"]["across_seeds"]["uf1"]["mean"] == pytest.approx(statistics.mean(uf1))
    assert report["metrics"]["across_seeds"]["uf1"]["std"] == pytest.approx(statistics.stdev(uf1))
    table = CliRunner().invoke(main, ["report", str(out)]).output
    assert "±" in table and "×2 seeds" in table
    bad = CliRunner().invoke(main, ["train", str(tiny_store), "-o", str(tmp_path / "x"), "--seeds", "1"])
    assert bad.exit_code == 2 and "at least two distinct seeds" in bad.output
