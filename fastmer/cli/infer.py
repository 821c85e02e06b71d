"""fastmer infer"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT

DEVICES = ("auto", "cpu", "cuda")  # fastmer.train.run.DEVICES (a test checks)


@click.command("infer", context_settings=CONTEXT)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--engine", "-e", type=click.Path(exists=True), required=True,
              help="A `fastmer export` .onnx file (ONNX Runtime: CUDA when available, else CPU) or a training run "
                   "directory (PyTorch).")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True, help="Predictions (Parquet).")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Samples per engine call.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Device of a run directory's PyTorch engine.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the PyTorch engine (run directories).")
def command(store, engine, out, batch_size, device, compile_):
    """Score every clip of STORE with ENGINE; write one prediction row per clip.

    Multi-label models predict the classes whose probability reaches the model's
    per-class thresholds. On a store of split views (4DME), a model trained on views one at
    a time scores a clip by the max of its views' probabilities; a model trained with views
    stacked takes each clip's views together. A batch the engine fails on is reported in
    the rows' error column and the others are scored (exit status 3).
    """
    from pathlib import Path  # noqa: PLC0415

    from fastmer.engine.score import open_engine, score_store  # noqa: PLC0415

    if compile_ and not Path(engine).is_dir():
        raise click.BadParameter("--compile applies to a run directory (PyTorch engine)", param_hint="--compile")
    try:
        summary = score_store(open_engine(engine, device=device, compile=compile_), store, out, batch_size=batch_size)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"scored {summary.n_scored} clips in {summary.seconds:.3f} s ({summary.clips_per_s:.0f} clips/s, "
               f"{', '.join(summary.providers)}) -> {out}")
    if summary.n_failed:
        click.echo(f"{summary.n_failed} clips failed: {'; '.join(summary.errors)}", err=True)
        raise SystemExit(3)
