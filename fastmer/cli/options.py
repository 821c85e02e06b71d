"""Options shared by several commands (one definition each)."""

from __future__ import annotations

from collections.abc import Callable

import click

from fastmer.datasets.synth import SynthConfig  # numpy + OpenCV, no torch: --help stays fast

SYNTH_DEFAULTS = SynthConfig()


def corpus_size_options(fn: Callable) -> Callable:
    """--subjects, --clips-per-subject and --seed of a synthetic corpus."""
    fn = click.option("--seed", type=click.IntRange(0), default=SYNTH_DEFAULTS.seed,
                      help="Random seed; the corpus (and training) are pure functions of the options.")(fn)
    fn = click.option("--clips-per-subject", type=click.IntRange(1, 99), default=SYNTH_DEFAULTS.clips_per_subject,
                      help="Clips per subject (classes cycle).")(fn)
    return click.option("--subjects", type=click.IntRange(1, 99), default=SYNTH_DEFAULTS.subjects,
                        help="Number of subjects.")(fn)
