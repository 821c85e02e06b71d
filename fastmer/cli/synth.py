"""fastmer synth"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT
from fastmer.cli.options import SYNTH_DEFAULTS, corpus_size_options

# Options of the clip corpus only, and of --long only (each refused with the other).
CLIP_ONLY = ("clips_per_subject", "min_frames", "max_frames")
LONG_ONLY = ("seconds", "fps", "videos_per_subject", "no_cut")


@click.command("synth", context_settings=CONTEXT)
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True, help="Corpus directory to create.")
@corpus_size_options
@click.option("--min-frames", type=int, default=SYNTH_DEFAULTS.min_frames, help="Shortest clip, frames.")
@click.option("--max-frames", type=int, default=SYNTH_DEFAULTS.max_frames, help="Longest clip, frames.")
@click.option("--long", "long_", is_flag=True,
              help="Long videos instead of clips: minutes of footage per subject with micro- (<= 0.5 s) and "
                   "macro-expressions, blinks, head motion and a scene cut at known frames (for `fastmer spot`).")
@click.option("--seconds", type=click.FloatRange(2, 86400), default=60.0, help="With --long: length of each video.")
@click.option("--fps", type=click.FloatRange(20, 1000), default=30.0, help="With --long: frame rate.")
@click.option("--videos-per-subject", type=click.IntRange(1, 99), default=1, help="With --long: videos per subject.")
@click.option("--no-cut", is_flag=True, help="With --long: no scene cut in the videos.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel workers [default: CPU count].")
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus at --out.")
@click.pass_context
def command(ctx, out, subjects, clips_per_subject, seed, min_frames, max_frames, long_, seconds, fps,
            videos_per_subject, no_cut, workers, overwrite) -> None:
    """Write a synthetic micro-expression corpus made from a real face photograph.

    Subjects differ in appearance; each clip carries a subtle, local facial motion
    (negative: brow lowering, positive: lip-corner pull, surprise: brow raising) rising
    from onset to apex and decaying to offset. The corpus uses the CASME II layout and
    coding spreadsheet, plus the true onset->apex flow in OUT/ground_truth.

    With --long: Motion-JPEG videos (OUT/videos/sNN/sNN_MM.avi) with the true intervals in
    OUT/intervals.csv and the blinks and cuts in OUT/distractors.csv; `fastmer spot OUT -d
    synth-long` scores a spotter against them.
    """
    import os  # noqa: PLC0415

    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    wrong = [name for name in (CLIP_ONLY if long_ else LONG_ONLY) if name in given]
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise click.UsageError(f"{flags}: {'not an option of --long videos' if long_ else 'only with --long'}")
    if long_:
        from fastmer.datasets.synth_long import LongSynthConfig, generate_long  # noqa: PLC0415

        try:
            config = LongSynthConfig(subjects=subjects, videos_per_subject=videos_per_subject, seconds=seconds,
                                     fps=fps, cut=not no_cut, seed=seed)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        try:
            from fastmer.interrupt import keep_note  # noqa: PLC0415
            keep_note(f"{out} is as it was: the corpus is written in a temporary folder (removed) and moved into place "
                      "at the end")
            summary = generate_long(out, config, workers=workers or os.cpu_count() or 1, overwrite=overwrite,
                                    progress=True)
        except FileExistsError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"wrote {summary.videos} video(s), {summary.frames} frames: {summary.micro} micro- and "
                   f"{summary.macro} macro-expressions, {summary.blinks} blinks, to {out} in {summary.seconds:.1f} s")
        return
    from fastmer.datasets.synth import SynthConfig, generate  # noqa: PLC0415

    try:
        config = SynthConfig(subjects=subjects, clips_per_subject=clips_per_subject, seed=seed,
                             min_frames=min_frames, max_frames=max_frames)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        from fastmer.interrupt import keep_note  # noqa: PLC0415
        keep_note(f"{out} is as it was: the corpus is written in a temporary folder (removed) and moved into place "
                  "at the end")
        summary = generate(out, config, workers=workers, overwrite=overwrite, progress=True)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {summary.clips} clips of {summary.subjects} subjects to {out} in {summary.seconds:.1f} s")
