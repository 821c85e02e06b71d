"""fastmer viz"""

from __future__ import annotations

from pathlib import Path

import click

from fastmer.choices import FIGURE_FORMATS
from fastmer.cli import CONTEXT

RUN_ONLY = ("--target", "--layer", "--store")


@click.command("viz", context_settings=CONTEXT)
@click.argument("store", metavar="STORE_OR_RUN", type=click.Path(exists=True, file_okay=False))
@click.option("--clip", "-c", "clip", required=True,
              help="The clip to draw: its uid (e.g. casme2/sub01/EP02_01), or its clip_id where that names one row.")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for the figures and JSON (created; files of the same names are replaced, others kept). "
                   "Required for a store; for a run, default explanations/<clip uid> in the current folder.")
@click.option("--scale", type=click.IntRange(1, 16), default=1,
              help="Enlarge the image panels by this factor (nearest neighbour; the curve plot keeps its size).")
@click.option("--format", "figure_format", type=click.Choice(FIGURE_FORMATS), default="png",
              help="Figure file format: png (150 dpi) for screens, pdf or svg (vector, images embedded as they are) "
                   "for papers.")
@click.option("--target", default=None,
              help="Run only: the class whose Grad-CAM is drawn (a class name of the run). Default: the predicted class.")
@click.option("--layer", default=None,
              help="Run only: the convolution to explain at (a module name of the network; an unknown name lists "
                   "them). Default: the last convolution, one per input stream for multi-stream networks.")
@click.option("--store", "store_override", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run only: the feature store the run was trained on, if it moved (default: the path the run recorded).")
def command(store, clip, out, scale, figure_format, target, layer, store_override):
    """Figures of one clip of the feature store, or explanations of a training run's model of it.

    A feature store STORE: writes into --out keyframes.png (face crops at onset, apex,
    offset), one figure per flow representation (Middlebury colour coding with its colour
    wheel, magnitude and strain maps with colour bars), dynamic_images.png (each dynamic image
    in grey with a colour bar of its values), motion_curve.png (the motion-intensity curve
    with onset, apex and offset marked) and index.json (the clip's metadata, the files and
    their panels with their pixel boxes, and what was skipped). A column the store lacks
    (older stores have no key frames or motion curve) is skipped with a warning. --format
    pdf or svg writes .pdf or .svg figures instead.

    A training run RUN (fastmer train's folder): explains the clip with the model of the fold
    that tested it, which never trained on it (a clip no fold tests gets the final model;
    explanation.json says which and why). Writes crops.png (the key frames and the apex crop
    under each Grad-CAM map), gradcam.png (each network input channel alone and under its
    stream's Grad-CAM map), stream_weights.png (MicroAttNet's fusion weights), attention.png
    (DIANet's cross-attention) and explanation.json (scores, maps and weights as numbers).
    """
    from fastmer.outputs import check_not_an_input, is_run  # noqa: PLC0415

    if is_run(store):
        _explain(store, clip, out, scale, figure_format, target, layer, store_override)
        return
    given = [name for name, value in zip(RUN_ONLY, (target, layer, store_override), strict=True) if value is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to a training run; "
                               f"{store} is not one (no model.json, report.json or folds.json)")
    if out is None:
        raise click.UsageError("Missing option '--out' / '-o' (required for a feature store).")

    import fastmer.store as fstore  # noqa: PLC0415
    from fastmer.viz import render_clip  # noqa: PLC0415

    try:
        check_not_an_input(out, [store])  # figures inside (or around) the store would mix with its shards
        feature_store = fstore.open(store)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if len(feature_store) == 0:
        raise click.ClickException(f"{store} holds no clips")
    try:
        paths = render_clip(feature_store, clip, out, scale=scale, format=figure_format,
                            log=lambda line: click.echo(line, err=True))
    except LookupError as exc:
        raise click.BadParameter(str(exc), param_hint="--clip") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out}: {exc}") from exc
    click.echo(f"wrote {len(paths)} files to {out}: {', '.join(p.name for p in paths)}")


def _explain(run, clip, out, scale, figure_format, target, layer, store_override) -> None:
    from fastmer.explain import explain_clip, file_safe, run_store_path, write_explanation  # noqa: PLC0415
    from fastmer.outputs import check_not_an_input  # noqa: PLC0415

    out = Path(out) if out is not None else Path("explanations") / file_safe(clip)
    try:
        store = Path(store_override) if store_override is not None else run_store_path(run)
        check_not_an_input(out, [run, store])  # never write into the run or its store
        explanation = explain_clip(run, clip, target=target, layer=layer, store=store)
    except LookupError as exc:
        raise click.BadParameter(str(exc), param_hint="--clip") from exc
    except ValueError as exc:
        text = str(exc)
        hint = "--target" if text.startswith("unknown target") else "--layer" if text.startswith("layer ") else None
        if hint:
            raise click.BadParameter(text, param_hint=hint) from exc
        raise click.ClickException(text) from exc
    except (FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    for note in explanation.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{explanation.sample}: {explanation.model['choice']}", err=True)
    paths = write_explanation(explanation, out, scale=scale, format=figure_format)
    maps = ", ".join(f"{c.stream or 'input'} at {c.layer}" for c in explanation.cams)
    click.echo(f"Grad-CAM of class {explanation.target} (predicted {explanation.predicted}): {maps}")
    click.echo(f"wrote {len(paths)} files to {out}: {', '.join(p.name for p in paths)}")
