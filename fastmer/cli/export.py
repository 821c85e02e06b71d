"""fastmer export"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT


@click.command("export", context_settings=CONTEXT)
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True, help="ONNX file to write.")
@click.option("--opset", type=click.IntRange(17, 23), default=18, show_default=True, help="ONNX opset.")
@click.option("--store", type=click.Path(exists=True, file_okay=False), default=None,
              help="Feature store whose first clips check the export [default: the run's training store, if present].")
@click.option("--tolerance", type=click.FloatRange(0, min_open=True), default=1e-4, show_default=True,
              help="Largest accepted max |onnxruntime - torch|.")
@click.option("--overwrite", is_flag=True, help="Replace an existing .onnx file at --out (and its sidecar).")
def command(run, out, opset, store, tolerance, overwrite):
    """Export the final model of training run RUN to ONNX (dynamic batch).

    The engine takes the store's feature column(s) as they are and returns logits; its
    fastmer config travels in the file's metadata, and OUT.json beside it records the
    classes, thresholds, input, extraction parameters and hashes. The export is checked
    against PyTorch in ONNX Runtime on real clips (--store, default the training store)
    and nothing is written if they differ by more than --tolerance.
    """
    from fastmer.interrupt import keep_note  # noqa: PLC0415

    keep_note(f"{out} was not written (it is written whole, at the end)")  # before the slow imports
    from fastmer.engine.onnx import export_onnx  # noqa: PLC0415
    from fastmer.outputs import check_output_file, has_suffix  # noqa: PLC0415

    try:
        check_output_file(out, overwrite=overwrite, recognise=has_suffix(".onnx"), kind="an .onnx file", inputs=[run, store])
        check_output_file(f"{out}.json", overwrite=overwrite, recognise=has_suffix(".json"), kind="a sidecar JSON file",
                          inputs=[run, store], option="--out's sidecar")
        info = export_onnx(run, out, opset=opset, store=store, tolerance=tolerance)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} and {out}.json ({info['model']}, classes {', '.join(info['classes'])}); "
               f"max |onnxruntime - torch| = {info['max_abs_diff']:.2e} on {info['check']['inputs']}")
