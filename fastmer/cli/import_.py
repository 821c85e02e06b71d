"""fastmer import"""

from __future__ import annotations

import sys

import click

from fastmer.cli import CONTEXT

# Light copy of fastmer.store.importer.IMPORT_DTYPES (importing it would pull numpy into --help); tests check they agree.
IMPORT_DTYPES = ("float32", "float16")


@click.command("import", context_settings=CONTEXT)
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True,
              help="Feature store to create, or to resume (same manifest and options: the clips it holds are skipped).")
@click.option("--name", "-n", default="imported",
              help="Tensor column (representation) name. A fastmer representation's name (e.g. flow_onset_apex) is "
                   "allowed with channel names a model reads (u,v,strain: ststnet), so that model trains on it.")
@click.option("--channels", "-c", default=None,
              help="Comma-separated channel names, one per stacked channel (e.g. u,v,strain) [default: the "
                   "representation's own when --name is one and the count matches, else c0,c1,...].")
@click.option("--dataset", "-d", default="imported", help="Dataset of the rows without a dataset column/cell.")
@click.option("--size", type=click.IntRange(1, 4096), default=None,
              help="Resample every clip to SIZE x SIZE (area averaging when shrinking, bilinear when enlarging: "
                   "fastmer.ops.resample.resize); clips may then differ in height and width [default: keep the files' "
                   "shape, the same for every clip].")
@click.option("--scale", type=float, default=1.0,
              help="Stored = raw * SCALE + OFFSET (e.g. --scale 0.00392156862745098 maps 8-bit images 0..255 to 0..1).")
@click.option("--offset", type=float, default=0.0, help="Stored = raw * SCALE + OFFSET.")
@click.option("--dtype", type=click.Choice(IMPORT_DTYPES), default="float32", help="Stored precision.")
@click.option("--overwrite", is_flag=True, help="Replace an existing feature store at --out (never anything else).")
def command(manifest, out, name, channels, dataset, size, scale, offset, dtype, overwrite):
    """Import per-clip features computed elsewhere (images or .npy arrays listed by MANIFEST)
    into the feature store --out, as one tensor column: train, infer and viz then use it.

    MANIFEST is a .csv or .tsv file with columns subject, clip, labels, file, and optionally
    dataset, action_units, onset, apex, offset, view. labels: emotion words (several
    separated by + , ; or /). file: a path relative to the manifest (or absolute); several
    separated by ';' are stacked as channels in that order.

    Files: .npy arrays (H, W) or (C, H, W) (no pickles); PNG/JPEG/BMP/TIFF images read
    unchanged by OpenCV: grey -> 1 channel, colour -> 3 channels in RGB order, 16-bit
    values kept. Every clip must have the same shape (unless --size).

    A clip whose files are missing, unreadable, of another shape or hold NaN/inf becomes an
    error row naming the manifest row and the file; the rest is imported and the command
    exits with status 3 (also when manifest rows were skipped). The store's params record
    the import (manifest sha256, channels, shapes, resize, scale, offset); running the same
    command again resumes it.

    Example: fastmer import megc/manifest.csv -o megc/store --name flow_onset_apex
    --channels u,v,strain --scale 0.00392156862745098; then fastmer train megc/store -m ststnet.
    """
    from fastmer.store.importer import import_features  # noqa: PLC0415

    try:
        summary = import_features(manifest, out, name=name, channels=channels, dataset=dataset, size=size,
                                  scale=scale, offset=offset, dtype=dtype, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = summary.report
    if report is not None and report.details:
        click.echo(report.describe(limit=20), err=True)
    shape = "x".join(map(str, summary.shape))
    click.echo(f"{summary.n_ok} of {summary.n_clips} clips imported to {out} as {name} "
               f"({','.join(summary.channels)}; {shape}, {dtype}) in {summary.seconds:.1f} s; {summary.n_failed} failed, "
               f"{summary.n_skipped} skipped (already in the store)")
    if summary.models:
        click.echo(f"models that train on it: {', '.join(summary.models)} (fastmer train {out} -m {summary.models[0]})")
    else:
        click.echo(f"no registered model reads the representation {name!r} (models read fixed representations: "
                   "import with --name flow_onset_apex --channels u,v,strain for ststnet, or u,v for offapexnet)")
    for uid, error in summary.failures[:20]:
        click.echo(f"failed: {uid}: {error}", err=True)
    if len(summary.failures) > 20:
        click.echo(f"... and {len(summary.failures) - 20} more", err=True)
    if summary.n_failed:
        click.echo(f"failed clips are listed in {out}/errors", err=True)
    if summary.n_failed or summary.n_excluded:
        sys.exit(3)
