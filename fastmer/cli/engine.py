"""fastmer engine"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT


@click.group("engine", context_settings=CONTEXT)
def command():
    """Compiled engines for `fastmer infer` (TensorRT: pip install 'fastmer[tensorrt]')."""


@command.command("build", context_settings=CONTEXT)
@click.argument("onnx_file", metavar="ONNX", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True,
              help="TensorRT plan to write (and its sidecar PLAN.json).")
@click.option("--min-batch", type=click.IntRange(1), default=1, help="Smallest batch of the optimisation profile.")
@click.option("--opt-batch", type=click.IntRange(1), default=32, help="Batch TensorRT tunes its kernels for.")
@click.option("--max-batch", type=click.IntRange(1), default=256, help="Largest batch of the optimisation profile.")
@click.option("--fp16", is_flag=True,
              help="Mixed FP16: the ONNX is converted by ModelOpt AutoCast first (TensorRT 11 networks are strongly "
                   "typed), float32 inputs and outputs kept.")
@click.option("--workspace-gib", type=click.FloatRange(0, min_open=True), default=None,
              help="Limit of TensorRT's workspace memory [default: TensorRT's].")
@click.option("--overwrite", is_flag=True, help="Replace an existing .plan file at --out (and its sidecar).")
def build(onnx_file, out, min_batch, opt_batch, max_batch, fp16, workspace_gib, overwrite):
    """Build a TensorRT engine from ONNX (written by `fastmer export`) for this machine's GPU.

    The plan records the TensorRT version and GPU it was built for; `fastmer infer
    --engine PLAN` refuses it elsewhere.
    """
    from fastmer.engine.tensorrt import TensorRTUnavailable, build_engine, check_batches, onnx_model_config  # noqa: PLC0415
    from fastmer.outputs import check_output_file, has_suffix  # noqa: PLC0415

    try:
        inputs = [onnx_file, f"{onnx_file}.json"]
        check_output_file(out, overwrite=overwrite, recognise=has_suffix(".plan"), kind="a TensorRT .plan file", inputs=inputs)
        check_output_file(f"{out}.json", overwrite=overwrite, recognise=has_suffix(".json"), kind="a sidecar JSON file",
                          inputs=inputs, option="--out's sidecar")
        check_batches(min_batch, opt_batch, max_batch)
        onnx_model_config(onnx_file)  # a file fastmer did not export is named before TensorRT is needed
        from fastmer.interrupt import keep_note  # noqa: PLC0415
        keep_note(f"{out} was not written (it is written whole, at the end)")
        sidecar = build_engine(onnx_file, out, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                               fp16=fp16, workspace_gib=workspace_gib)
    except (TensorRTUnavailable, ValueError, FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    target = sidecar["target"]
    click.echo(f"built {out} ({sidecar['precision']}, batch {min_batch}..{max_batch}) for {target['gpu']} "
               f"(sm {target['compute_capability']}), TensorRT {target['tensorrt_version']}")
