"""fastmer report"""

from __future__ import annotations

from pathlib import Path

import click

from fastmer.choices import FIGURE_FORMATS
from fastmer.cli import CONTEXT


@click.command("report", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--markdown", is_flag=True, help="A Markdown table (for a README or a paper's notes).")
@click.option("--per-dataset", is_flag=True, help="Also one row per dataset of composite runs (pooled UF1/UAR).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write one self-contained HTML page (figures embedded, no scripts) with each run's recipe, "
                   "protocol, scores, per-dataset and per-class tables, confusion matrix, curves, folds, versions "
                   "and hashes.")
@click.option("--title", default=None, help="The HTML page's title (default: names the run(s)).")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False), default=None,
              help="Also write each run's figures (confusion matrix, curves, per-dataset scores) from its report.json "
                   "into this folder, one subfolder per run (e.g. as PDF for a paper).")
@click.option("--format", "figure_format", type=click.Choice(FIGURE_FORMATS), default="png",
              help="File format of --figures.")
def command(runs, markdown, per_dataset, html_out, title, figures_dir, figure_format):
    """Compare training runs (directories written by `fastmer train`) in one table.

    UF1 and UAR are MEGC's (pooled over folds); the fold-averaged UF1 is shown apart,
    labelled as such; runs over several seeds show mean ± std. With --html, the same
    runs as one page a colleague can open in a browser.
    """
    from fastmer.report import load_run, summary_row, text_table, write_figures, write_html_report  # noqa: PLC0415

    loaded, rows = [], []
    for run in runs:
        try:
            loaded.append(load_run(run))
        except FileNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="RUNS") from exc
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        report = loaded[-1].report
        try:
            rows.append(summary_row(run, report))
        except (KeyError, TypeError) as exc:
            raise click.ClickException(f"{run}/report.json is not a fastmer training report (no {exc})") from exc
        if per_dataset:
            for dataset, scores in report["metrics"].get("per_dataset", {}).items():
                rows.append([f"  {dataset}", "", "", "", str(scores["n"]), "", f"{scores['uf1']:.4f}",
                             f"{scores['uar']:.4f}", f"{scores['accuracy']:.4f}", "", ""])
    click.echo(text_table(rows, markdown))
    if html_out is not None:
        try:
            path = write_html_report(loaded, html_out, title=title)
        except OSError as exc:
            raise click.ClickException(f"cannot write {html_out}: {exc}") from exc
        click.echo(f"wrote {path}", err=True)
    if figures_dir is not None:
        names = [Path(run).resolve().name or "run" for run in runs]
        # one subfolder per run, by its folder name (numbered where two runs share a name)
        folders = [name if names.count(name) == 1 else f"{i + 1}-{name}" for i, name in enumerate(names)]
        try:
            written = [p for run, folder in zip(loaded, folders, strict=True)
                       for p in write_figures(run, Path(figures_dir) / folder, figure_format)]
        except OSError as exc:
            raise click.ClickException(f"cannot write to {figures_dir}: {exc}") from exc
        click.echo(f"wrote {len(written)} figures to {figures_dir}", err=True)
