"""fastmer infer"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT


@click.command("infer", context_settings=CONTEXT)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--engine", "-e", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Engine file from `fastmer export` (.onnx, run with ONNX Runtime).")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True, help="Predictions (Parquet).")
@click.option("--batch-size", type=click.IntRange(1), default=256, help="Clips per engine call.")
def command(store, engine, out, batch_size):
    """Score every clip of STORE with ENGINE; write one prediction row per clip."""
    from fastmer.engine.onnx import infer_store  # noqa: PLC0415

    if not engine.endswith(".onnx"):
        raise click.BadParameter("only ONNX engines (.onnx) are supported", param_hint="--engine")
    try:
        summary = infer_store(engine, store, out, batch_size=batch_size)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"scored {summary.n_clips} clips in {summary.seconds:.3f} s ({summary.clips_per_s:.0f} clips/s, "
               f"{', '.join(summary.providers)}) -> {out}")
