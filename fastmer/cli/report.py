"""fastmer report"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fastmer.cli import CONTEXT

COLUMNS = ("run", "model", "protocol", "labels", "clips", "folds", "UF1", "UAR", "acc", "UF1 fold-avg", "selection")


def _row(path: Path, report: dict) -> list[str]:
    metrics = report["metrics"]
    averaged = metrics.get("fold_averaged", {}).get("uf1_fold_mean")
    seeds = report.get("seeds")

    def score(name: str) -> str:
        if "across_seeds" in metrics:  # a `--seeds` run: mean ± std over the seeds
            spread = metrics["across_seeds"][name]
            return f"{spread['mean']:.4f} ± {spread['std']:.4f}"
        return f"{metrics['pooled'][name]:.4f}"

    selection = "early stop (inner split)" if report.get("model_selection", "").startswith("early") else "fixed epochs"
    return [str(path), report["model"], report["protocol"] + (f" ×{len(seeds)} seeds" if seeds else ""),
            report["labels"], str(report["n_clips"]), str(report["n_folds"]), score("uf1"), score("uar"),
            score("accuracy"), "—" if averaged is None else f"{averaged:.4f}", selection]


def _table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in column) for column in zip(COLUMNS, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in [list(COLUMNS), ["-" * w for w in widths], *rows])


@click.command("report", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--markdown", is_flag=True, help="A Markdown table (for a README or a paper's notes).")
@click.option("--per-dataset", is_flag=True, help="Also one row per dataset of composite runs (pooled UF1/UAR).")
def command(runs, markdown, per_dataset):
    """Compare training runs (directories written by `fastmer train`) in one table.

    UF1 and UAR are MEGC's (pooled over folds); the fold-averaged UF1 is shown apart,
    labelled as such; runs over several seeds show mean ± std.
    """
    rows = []
    for run in runs:
        path = Path(run)
        report_file = path / "report.json"
        try:
            report = json.loads(report_file.read_text())
            rows.append(_row(path, report))
        except FileNotFoundError as exc:
            raise click.BadParameter(f"{run} has no report.json (not a `fastmer train` run?)", param_hint="RUNS") from exc
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise click.ClickException(f"{report_file} is not a fastmer training report ({exc})") from exc
        if per_dataset:
            for dataset, scores in report["metrics"].get("per_dataset", {}).items():
                rows.append([f"  {dataset}", "", "", "", str(scores["n"]), "", f"{scores['uf1']:.4f}",
                             f"{scores['uar']:.4f}", f"{scores['accuracy']:.4f}", "", ""])
    click.echo(_table(rows, markdown))
