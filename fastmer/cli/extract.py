"""fastmer extract"""

from __future__ import annotations

import sys

import click

from fastmer.cli import CONTEXT
from fastmer.config import FLOW_BACKENDS, STORE_DTYPES, TVL1_PRESETS, ExtractConfig
from fastmer.datasets import DATASETS

DEFAULTS = ExtractConfig()


@click.command("extract", context_settings=CONTEXT)
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", "-d", type=click.Choice(sorted(DATASETS)), default="casme2", help="Layout of ROOT.")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True, help="Feature store to create.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Coding spreadsheet [default: searched in ROOT and its parent].")
@click.option("--size", type=click.IntRange(16, 1024), default=DEFAULTS.size, help="Face crop side, pixels.")
@click.option("--dtype", type=click.Choice(STORE_DTYPES), default=DEFAULTS.dtype, help="Stored precision.")
@click.option("--face-scale", type=click.FloatRange(0.5, 3.0), default=DEFAULTS.face_scale,
              help="Crop side relative to the detected face box.")
@click.option("--flow-backend", type=click.Choice(FLOW_BACKENDS), default=DEFAULTS.flow_backend,
              help="Optical flow implementation.")
@click.option("--flow-preset", type=click.Choice(TVL1_PRESETS), default=DEFAULTS.flow_preset,
              help="TV-L1 parameters (TV-L1 backends).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=DEFAULTS.device,
              help="Where fastmer's TV-L1 runs (auto: CUDA when available).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Clips in parallel [default: CPU count].")
@click.option("--overwrite", is_flag=True, help="Replace an existing store at --out.")
@click.option("--progress/--no-progress", default=True, help="Progress bar with clips/s on stderr.")
def command(root, dataset, out, annotations, size, dtype, face_scale, flow_backend, flow_preset, device, workers,
            overwrite, progress):
    """Extract features of the corpus at ROOT into the feature store --out.

    Per clip: frames from onset to offset, one face box found on the onset frame and used
    for every frame, the apex (annotated, else spotted), and the TV-L1 flow onset->apex
    stored with its magnitude and optical strain. A clip that fails (missing or unreadable
    frames, no face, bad annotation) becomes a row in the store's errors table; the run
    goes on and exits with status 3.
    """
    from fastmer.datasets import load  # noqa: PLC0415
    from fastmer.extract import extract  # noqa: PLC0415

    options = {"spreadsheet": annotations} if annotations else {}
    try:
        clips = load(dataset, root, **options)
        config = ExtractConfig(size=size, dtype=dtype, face_scale=face_scale, flow_backend=flow_backend,
                               flow_preset=flow_preset, device=device, workers=workers)
        summary = extract(clips, out, config, overwrite=overwrite, progress=progress)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{summary.n_ok} of {summary.n_clips} clips extracted to {out} in {summary.seconds:.1f} s "
               f"({summary.clips_per_s:.1f} clips/s); {summary.n_failed} failed")
    if summary.n_failed:
        click.echo(f"failed clips are listed in {out}/errors", err=True)
        sys.exit(3)
