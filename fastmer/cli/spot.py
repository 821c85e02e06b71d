"""fastmer spot"""

from __future__ import annotations

import click

from fastmer.choices import DECODERS, FACE_DETECTORS, FLOW_BACKENDS, SPOT_METHODS
from fastmer.cli import CONTEXT

# fastmer.datasets.long.LONG_DATASETS (a test checks): named here so --help imports nothing heavy.
LONG_DATASETS = ("casme2-lv", "samm-lv", "casme3-lv", "synth-long")
DEVICES = ("cpu", "cuda")


@click.command("spot", context_settings=CONTEXT)
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True,
              help="Output folder: OUT/intervals, one Parquet file per video (read the folder whole with "
                   "pyarrow/pandas); spot.json; scores.json when the videos have coded intervals. Resumed when "
                   "it exists.")
@click.option("--dataset", "-d", type=click.Choice(LONG_DATASETS), default=None,
              help="INPUT is one long-video corpus in this layout (its coded intervals are then scored) [default: "
                   "videos: video files, folders searched for videos, .txt lists].")
@click.option("--method", type=click.Choice(SPOT_METHODS), default="mdmd",
              help="mdmd: main directional maximal difference; peak: motion-intensity contrast with adaptive "
                   "threshold (the MEGC baseline); softnet: the learned spotter of --model.")
@click.option("--model", "model", type=click.Path(exists=True, file_okay=False), default=None,
              help="--method softnet: a run folder of `fastmer train SPOT_OUTPUT --task spot`.")
@click.option("--save-maps", is_flag=True,
              help="Also keep each video's flow maps and coded intervals in OUT/maps, to train the learned spotter "
                   "(`fastmer train OUT --task spot`; ~1.5 KB a frame).")
@click.option("--flow", type=click.Choice(FLOW_BACKENDS), default="farneback",
              help="Flow between frames k apart (fastmer: the native TV-L1, best on a GPU).")
@click.option("--flow-size", type=click.IntRange(32, 512), default=112, help="Face crop side the flow is computed on.")
@click.option("--p-micro", type=click.FloatRange(0, 1), default=0.3,
              help="Threshold position of micro-expressions: mean + p (max - mean) of each video's curve.")
@click.option("--p-macro", type=click.FloatRange(0, 1), default=0.3, help="The same for macro-expressions.")
@click.option("--face-detector", type=click.Choice(FACE_DETECTORS), default="auto",
              help="auto: YuNet (cached or --face-model); haar: OpenCV's cascade; none: frames are face crops.")
@click.option("--face-model", type=click.Path(exists=True, dir_okay=False), default=None, help="YuNet ONNX model.")
@click.option("--decoder", type=click.Choice(DECODERS), default="auto", help="Frame decoder.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", help="Where the native flow runs (--flow fastmer).")
@click.option("--overwrite", is_flag=True, help="Start again: replace an existing spotting output at --out.")
def command(inputs, out, dataset, method, model, save_maps, flow, flow_size, p_micro, p_macro, face_detector, face_model, decoder,
            device, overwrite):
    """Spot micro- and macro-expressions in long videos: one row per interval.

    Each video is streamed (memory does not grow with its length): the face is tracked and
    found again after a scene cut or when it moves, the flow between frames k apart is
    measured over the brows, eyes, nose and mouth corners, and each video's curve is
    thresholded adaptively into intervals (micro: up to 0.5 s; macro: longer); blinks are
    dropped. Rows: video, onset, apex, offset, kind (micro/macro), score; a video that
    fails is a row with its error (exit status 3) and the others are spotted.

    With --dataset, the corpus's coded intervals are scored with the MEGC spotting metric
    (IoU >= 0.5, precision/recall/F1 per kind and dataset) into OUT/scores.json.
    """
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from fastmer.datasets.long import load_long, videos_from_paths  # noqa: PLC0415
    from fastmer.face.detect import make_detector  # noqa: PLC0415
    from fastmer.outputs import OutputRefused, check_output_dir, is_spot_output  # noqa: PLC0415
    from fastmer.phases.flowspot import SpotParams  # noqa: PLC0415
    from fastmer.spot import SpotConfig, open_output, read_intervals, score_run, spot_videos  # noqa: PLC0415
    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

    if (method == "softnet") != (model is not None):
        raise click.BadParameter("--method softnet needs --model RUN, and --model applies to it only",
                                 param_hint="--model")
    if dataset is not None and len(inputs) != 1:
        raise click.BadParameter(f"--dataset {dataset} reads one corpus folder, got {len(inputs)} inputs",
                                 param_hint="INPUT")
    try:
        check_output_dir(out, overwrite=True, recognise=is_spot_output, kind="spotting output",
                         inputs=[*inputs, face_model])
    except OutputRefused as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        params = SpotParams(method=method, p_micro=p_micro, p_macro=p_macro)
        spotter = None
        if model is not None:  # the scales (k) it was trained at, these thresholds
            from fastmer.models.softnet import SpotterModel  # noqa: PLC0415

            spotter = SpotterModel.load(model)
            params = SpotParams(**{**spotter.params, "method": method, "p_micro": p_micro, "p_macro": p_macro})
        config = SpotConfig(params=params, flow=flow, flow_size=flow_size, device=device)
        detector, why = make_detector(face_detector, face_model)
        videos = load_long(dataset, inputs[0]) if dataset else videos_from_paths(inputs)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if dataset and (videos.report.defects or videos.report.excluded):
        click.echo(videos.report.describe(limit=10), err=True)
    click.echo(f"spotting {len(videos)} video(s): {method}, {flow} flow at {flow_size} px, face detector "
               f"{detector.name} ({why})", err=True)
    path = open_output(out, overwrite=overwrite)
    from fastmer.interrupt import keep_note  # noqa: PLC0415
    keep_note(f"the videos finished so far are kept in {path}; the same command resumes (skipping them)")
    run = spot_videos(videos, path, config, detector, detector.name, decoder=decoder, spotter=spotter,
                      save_maps=save_maps, log=lambda line: click.echo(line, err=True))
    table, _ = read_intervals(path)
    kinds = table.column("kind").to_pylist()
    click.echo(f"{kinds.count('micro')} micro- and {kinds.count('macro')} macro-expression interval(s) in "
               f"{len(videos)} video(s) ({len(run.skipped)} already spotted) -> {out}")
    if any(v.annotations for v in videos):
        scores = score_run(videos, table)
        summary = {kind: scores[kind].to_json() for kind in ("micro", "macro", "overall")}
        summary["per_dataset"] = {name: {kind: counts.to_json() for kind, counts in kinds_.items()}
                                  for name, kinds_ in scores["per_dataset"].items()}
        atomic_write_bytes(path / "scores.json", json.dumps(summary, indent=1).encode())
        for kind in ("micro", "macro", "overall"):
            c = scores[kind]
            click.echo(f"{kind:>8}: TP {c.tp} FP {c.fp} FN {c.fn}  precision {c.precision:.3f} recall "
                       f"{c.recall:.3f} F1 {c.f1:.3f}")
    if run.errors:
        shown = "; ".join(f"{uid}: {message}" for uid, message in list(run.errors.items())[:5])
        click.echo(f"{len(run.errors)} video(s) failed: {shown}", err=True)
        sys.exit(3)
