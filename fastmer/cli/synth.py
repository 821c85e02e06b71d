"""fastmer synth"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT
from fastmer.cli.options import SYNTH_DEFAULTS, corpus_size_options


@click.command("synth", context_settings=CONTEXT)
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True, help="Corpus directory to create.")
@corpus_size_options
@click.option("--min-frames", type=int, default=SYNTH_DEFAULTS.min_frames, help="Shortest clip, frames.")
@click.option("--max-frames", type=int, default=SYNTH_DEFAULTS.max_frames, help="Longest clip, frames.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel workers [default: CPU count].")
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus at --out.")
def command(out, subjects, clips_per_subject, seed, min_frames, max_frames, workers, overwrite) -> None:
    """Write a synthetic micro-expression corpus made from a real face photograph.

    Subjects differ in appearance; each clip carries a subtle, local facial motion
    (negative: brow lowering, positive: lip-corner pull, surprise: brow raising) rising
    from onset to apex and decaying to offset. The corpus uses the CASME II layout and
    coding spreadsheet, plus the true onset->apex flow in OUT/ground_truth.
    """
    from fastmer.datasets.synth import SynthConfig, generate  # noqa: PLC0415

    try:
        config = SynthConfig(subjects=subjects, clips_per_subject=clips_per_subject, seed=seed,
                             min_frames=min_frames, max_frames=max_frames)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        summary = generate(out, config, workers=workers, overwrite=overwrite, progress=True)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {summary.clips} clips of {summary.subjects} subjects to {out} in {summary.seconds:.1f} s")
