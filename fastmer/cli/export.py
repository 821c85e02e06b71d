"""fastmer export"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT


@click.command("export", context_settings=CONTEXT)
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True, help="ONNX file to write.")
@click.option("--opset", type=click.IntRange(17, 23), default=18, help="ONNX opset.")
def command(run, out, opset):
    """Export the final model of training run RUN to ONNX (dynamic batch).

    The engine takes the store's feature column as it is and returns logits; its fastmer
    config travels in the file's metadata. The export is checked against PyTorch with
    ONNX Runtime and rejected if they differ by more than 1e-4.
    """
    from fastmer.engine.onnx import export_onnx  # noqa: PLC0415

    try:
        info = export_onnx(run, out, opset=opset)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} ({info['model']}, classes {', '.join(info['classes'])}); "
               f"max |onnxruntime - torch| = {info['max_abs_diff']:.2e}")
