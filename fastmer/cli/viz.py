"""fastmer viz"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT


@click.command("viz", context_settings=CONTEXT)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--clip", "-c", "clip", required=True,
              help="The clip to draw: its uid (e.g. casme2/sub01/EP02_01), or its clip_id where that names one row.")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for the PNGs and index.json (created; files of the same names are replaced, others kept).")
@click.option("--scale", type=click.IntRange(1, 16), default=1,
              help="Enlarge the image panels by this factor (nearest neighbour; the curve plot keeps its size).")
def command(store, clip, out, scale):
    """PNGs of one clip of the feature store STORE, for inspection.

    Writes into --out: keyframes.png (face crops at onset, apex, offset), one PNG per flow
    representation (Middlebury colour coding, magnitude and strain maps), dynamic_images.png
    (each dynamic image min-max scaled), motion_curve.png (the motion-intensity curve with
    onset, apex and offset marked) and index.json (the clip's metadata, the files and their
    panels, and what was skipped). A column the store lacks (older stores have no key frames
    or motion curve) is skipped with a warning.
    """
    import fastmer.store as fstore  # noqa: PLC0415
    from fastmer.outputs import check_not_an_input  # noqa: PLC0415
    from fastmer.viz import render_clip  # noqa: PLC0415

    try:
        check_not_an_input(out, [store])  # PNGs inside (or around) the store would mix with its shards
        feature_store = fstore.open(store)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if len(feature_store) == 0:
        raise click.ClickException(f"{store} holds no clips")
    try:
        paths = render_clip(feature_store, clip, out, scale=scale, log=lambda line: click.echo(line, err=True))
    except LookupError as exc:
        raise click.BadParameter(str(exc), param_hint="--clip") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out}: {exc}") from exc
    click.echo(f"wrote {len(paths)} files to {out}: {', '.join(p.name for p in paths)}")
