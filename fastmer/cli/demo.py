"""fastmer demo"""

from __future__ import annotations

import json

import click

from fastmer.cli import CONTEXT
from fastmer.cli.options import corpus_size_options


@click.command("demo", context_settings=CONTEXT)
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True, help="Directory for everything.")
@corpus_size_options
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty --out.")
def command(out, subjects, clips_per_subject, seed, overwrite):
    """Run synth -> extract -> train -> export -> infer on a small synthetic corpus.

    Writes OUT/summary.json (clip counts, LOSO UF1/UAR/accuracy, extract and infer
    clips/s, max |engine - torch|) and prints it.
    """
    from fastmer.datasets.synth import SynthConfig  # noqa: PLC0415
    from fastmer.demo import run_demo  # noqa: PLC0415

    config = SynthConfig(subjects=subjects, clips_per_subject=clips_per_subject, seed=seed)
    try:
        summary = run_demo(out, config, overwrite=overwrite, log=lambda line: click.echo(line, err=True))
    except (FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, indent=2))
