"""fastmer report --html: one self-contained page per set of runs, checked as parsed HTML and
as rendered by a real headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.report import load_run, seed_groups


class _Page(HTMLParser):
    """Every tag with its attributes, the text of each table cell, and script/link tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _copy_run(src: Path, dst: Path, **changes) -> dict:
    shutil.copytree(src, dst)
    report = json.loads((dst / "report.json").read_text())
    for key, value in changes.items():
        if key in ("uf1", "uar", "accuracy"):
            report["metrics"]["pooled"][key] = value
        else:
            report[key] = value
    (dst / "report.json").write_text(json.dumps(report))
    return report


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
    """tiny_run, two repeats of it with other seeds and scores, and a `--seeds` run made of two copies."""
    root = tmp_path_factory.mktemp("report_runs")
    a = _copy_run(tiny_run, root / "seed-a", seed=11, uf1=0.40, uar=0.50, accuracy=0.55)
    b = _copy_run(tiny_run, root / "seed-b", seed=12, uf1=0.60, uar=0.30, accuracy=0.45)
    seeds = root / "seeds"
    seeds.mkdir()
    per_seed = [_copy_run(tiny_run, seeds / f"seed-{s}", seed=s, uf1=u) for s, u in ((3, 0.2), (5, 0.3))]
    parent = {k: per_seed[0][k] for k in ("fastmer_version", "store", "store_params_hash", "model", "protocol",
                                          "labels", "classes", "n_clips", "n_subjects", "n_folds", "recipe",
                                          "model_selection")}
    across = {s: {"mean": statistics.fmean(v), "std": statistics.stdev(v), "values": v}
              for s, v in (("uf1", [0.2, 0.3]), ("uar", [0.1, 0.2]), ("accuracy", [0.3, 0.5]))}
    parent.update(seeds=[3, 5], runs=["seed-3", "seed-5"], metrics={"across_seeds": across, "per_seed": {}})
    (seeds / "report.json").write_text(json.dumps(parent))
    return {"tiny": tiny_run, "a": root / "seed-a", "b": root / "seed-b", "seeds": seeds, "reports": (a, b)}


def test_page_holds_the_runs_numbers_and_is_self_contained(runs, tmp_path):
    out = tmp_path / "page.html"
    result = CliRunner().invoke(main, ["report", str(runs["tiny"]), str(runs["a"]), str(runs["b"]), str(runs["seeds"]),
                                       "--html", str(out), "--title", "Tiny <runs>"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    page = _parse(text)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "url(" not in text  # loads nothing
    assert "<title>Tiny &lt;runs&gt;</title>" in text  # escaped

    images = [attrs for tag, attrs in page.tags if tag == "img"]
    # tiny_run, a, b and the two seeds: a confusion matrix and curves each
    assert len(images) >= 10
    for attrs in images:
        assert attrs["src"].startswith("data:image/png;base64,") and attrs["alt"]
        data = base64.b64decode(attrs["src"].split(",", 1)[1])
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape[0] > 100 and picture.std() > 10
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert links and all(h.startswith("#") and h[1:] in ids for h in links)

    # The numbers come from each report.json, formatted as the table promises.
    tiny = json.loads((runs["tiny"] / "report.json").read_text())
    pooled = tiny["metrics"]["pooled"]
    assert f"{pooled['uf1']:.4f}" in page.cells and f"{pooled['uar']:.4f}" in page.cells
    assert f"{tiny['metrics']['fold_averaged']['uf1_fold_mean']:.4f}" in page.cells
    for fold in tiny["folds"]:
        assert fold["fold"] in page.cells
    for name, scores in pooled["per_class"].items():
        assert name in page.cells and str(scores["support"]) in page.cells
    assert tiny["store_params_hash"] in page.cells and tiny["torch_version"] in page.cells
    import hashlib

    assert hashlib.sha256((runs["tiny"] / "model.safetensors").read_bytes()).hexdigest() in page.cells
    # tiny_run and its repeats a and b are grouped: mean ± std (n-1) over their seeds.
    for name in ("uf1", "uar", "accuracy"):
        values = [r["metrics"]["pooled"][name] for r in (tiny, *runs["reports"])]
        assert f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" in page.cells
    # The --seeds run: its mean and std, and each seed's value.
    assert "0.2500 ± 0.0707" in page.cells and "0.2000" in page.cells and "0.3000" in page.cells


def test_seed_groups_need_the_same_experiment(runs, tmp_path):
    loaded = [load_run(runs[k]) for k in ("tiny", "a", "b")]
    assert [sorted(r.report["seed"] for r in g) for g in seed_groups(loaded)] == [[0, 11, 12]]
    other = tmp_path / "other-recipe"
    report = _copy_run(runs["a"], other, seed=99)
    report["recipe"]["epochs"] += 1
    (other / "report.json").write_text(json.dumps(report))
    assert [len(g) for g in seed_groups([*loaded[1:], load_run(other)])] == [2]


def test_html_errors_name_the_run(runs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.json").write_text('{"model": "x"}')
    result = CliRunner().invoke(main, ["report", str(runs["tiny"]), str(bad), "--html", str(tmp_path / "p.html")])
    assert result.exit_code == 1 and f"{bad / 'report.json'} is not a fastmer training report" in result.output
    assert not (tmp_path / "p.html").exists()
    result = CliRunner().invoke(main, ["report", str(runs["tiny"]), "--html", str(tmp_path / "missing" / "p.html")])
    assert result.exit_code == 1 and "cannot write" in result.output


def _chromium() -> str | None:
    for name in (os.environ.get("FASTMER_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# The flags a root process in a closed network needs (no sandbox, no background connections).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")

# Injected into a copy of the page: what the browser actually laid out.
_PROBE = """<script>window.addEventListener('load', () => {
  const shown = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  document.body.dataset.probe = JSON.stringify({
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, shown(i)]),
    tables: [...document.querySelectorAll('table')].map(t => [t.rows.length, shown(t)]),
    firstRow: [...document.querySelector('table.compare tbody tr').cells].map(c => c.textContent),
  });
});</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (Debian: apt-get install chromium; or set FASTMER_CHROMIUM)")
def test_page_renders_in_headless_chromium(runs, tmp_path):
    out = tmp_path / "page.html"
    assert CliRunner().invoke(main, ["report", str(runs["tiny"]), str(runs["seeds"]), "--html", str(out)]).exit_code == 0
    text = out.read_text()
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(text.replace("</body>", _PROBE + "</body>"))
    browser = _chromium()

    def run(*args: str, profile: str) -> subprocess.CompletedProcess:
        return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / profile}", *args],
                              capture_output=True, text=True, timeout=120)

    dom = run("--dump-dom", "--virtual-time-budget=5000", probe_page.as_uri(), profile="p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _parse(dom.stdout)
    body = next(attrs for tag, attrs in parsed.tags if tag == "body")
    probe = json.loads(body["data-probe"])
    expected_images = text.count("<img ")
    assert len(probe["images"]) == expected_images >= 4
    # Every embedded figure decoded to its real size and takes room on the page.
    assert all(complete and w > 100 and h > 100 for complete, w, h, _ in probe["images"])
    assert sum(shown for *_, shown in probe["images"]) >= 2  # the first run's figures (the seeds' are folded)
    assert len(probe["tables"]) == text.count("<table") and all(rows >= 1 for rows, _ in probe["tables"])
    tiny = json.loads((runs["tiny"] / "report.json").read_text())
    assert probe["firstRow"][:2] == [str(runs["tiny"]), tiny["model"]]
    assert probe["firstRow"][6] == f"{tiny['metrics']['pooled']['uf1']:.4f}"

    shot = tmp_path / "page.png"
    taken = run(f"--screenshot={shot}", "--window-size=1200,2400", out.as_uri(), profile="p2")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    picture = cv2.imread(str(shot))
    assert picture.shape[:2] == (2400, 1200)
    hsv = cv2.cvtColor(picture, cv2.COLOR_BGR2HSV)
    # Text (dark pixels) and the figures' colour maps (saturated pixels) are on screen.
    assert (picture.max(axis=2) < 80).mean() > 0.002
    assert (hsv[..., 1] > 80).sum() > 2000


def test_figures_of_runs_in_the_asked_format(runs, tmp_path):
    out = tmp_path / "figs"
    result = CliRunner().invoke(main, ["report", str(runs["tiny"]), str(runs["seeds"]), "--figures", str(out),
                                       "--format", "pdf"])
    assert result.exit_code == 0, result.output
    tiny = runs["tiny"].name
    assert sorted(p.name for p in (out / tiny).iterdir()) == ["confusion.pdf", "curves.pdf"]
    assert sorted(p.name for p in (out / "seeds").iterdir()) == ["seed-3", "seed-5"]
    assert (out / "seeds" / "seed-5" / "curves.pdf").read_bytes()[:5] == b"%PDF-"
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in out.rglob("*.pdf"))
    bad = CliRunner().invoke(main, ["report", str(runs["tiny"]), "--figures", str(out), "--format", "jpg"])
    assert bad.exit_code == 2 and "jpg" in bad.output


def test_composite_runs_get_per_dataset_bars(runs, tmp_path):
    from fastmer.report import run_figures

    report = json.loads((runs["tiny"] / "report.json").read_text())
    report["metrics"]["per_dataset"] = {"casme2": {"n": 9, "uf1": 0.5, "uar": 0.25, "accuracy": 0.5},
                                        "samm": {"n": 4, "uf1": 0.75, "uar": 0.6, "accuracy": 0.7}}
    figures = {name: fig for name, fig, _ in run_figures(report)}
    assert list(figures) == ["confusion", "curves", "per_dataset"]
    bars = sorted((round(p.get_x(), 3), round(p.get_height(), 6)) for p in figures["per_dataset"].axes[0].patches)
    assert [h for _, h in bars] == [0.5, 0.25, 0.75, 0.6]  # UF1, UAR of casme2, then of samm


def test_summary_row_names_how_the_model_was_chosen(runs):
    from fastmer.report import COLUMNS, summary_row

    report = json.loads((runs["tiny"] / "report.json").read_text())
    column = COLUMNS.index("selection")
    assert summary_row("r", report)[column] == "fixed epochs"
    for selection, shown in (("none: a convex problem solved exactly on each fold's training clips", "solved exactly"),
                             ("early stopping (patience 5) on the validation UF1 of an inner split", "early stop (inner split)")):
        assert summary_row("r", {**report, "model_selection": selection})[column] == shown
