"""fastmer infer"""

from __future__ import annotations

import click

from fastmer.choices import SPOT_METHODS
from fastmer.cli import CONTEXT
from fastmer.cli.spot import LONG_DATASETS
from fastmer.config import DECODERS, EXECUTORS, FACE_DETECTORS
from fastmer.datasets import DATASETS

DEVICES = ("auto", "cpu", "cuda")  # fastmer.train.run.DEVICES (a test checks)


@click.command("infer", context_settings=CONTEXT)
@click.argument("source", metavar="INPUT", type=click.Path(exists=True))
@click.option("--engine", "-e", type=click.Path(exists=True), required=True,
              help="A `fastmer export` .onnx file (ONNX Runtime: its TensorRT or CUDA provider when present, else "
                   "CPU), a `fastmer engine build` .plan (TensorRT) or a training run directory (PyTorch).")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True, help="Predictions (Parquet).")
@click.option("--dataset", "-d", type=click.Choice([*DATASETS, *LONG_DATASETS]), default=None,
              help="INPUT is a corpus in this layout, extracted on the fly (with --spot: a long-video corpus) "
                   "[default: a feature store if INPUT is one, else videos: a video, a folder of videos or a .txt "
                   "list of them].")
@click.option("--spot", is_flag=True,
              help="INPUT holds long videos: spot their micro-expression intervals first (`fastmer spot`), cut "
                   "each into a clip and score it: one row per interval (video, onset, apex, offset, kind, "
                   "spot_score added).")
@click.option("--spot-method", type=click.Choice(SPOT_METHODS), default="mdmd", show_default=True,
              help="--spot: the spotting method (softnet needs --spot-model).")
@click.option("--spot-model", type=click.Path(exists=True, file_okay=False), default=None,
              help="--spot --spot-method softnet: a `fastmer train --task spot` run folder.")
@click.option("--spot-kinds", type=click.Choice(["micro", "all"]), default="micro", show_default=True,
              help="--spot: score the micro-expression intervals only, or the macro-expressions too.")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Samples per engine call.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Device of a run directory's PyTorch engine and of on-the-fly extraction.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the PyTorch engine (run directories).")
@click.option("--protocol", default=None, help="Label protocol applied when loading a corpus (--dataset).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Clips decoded in parallel by on-the-fly extraction [default: CPU count].")
@click.option("--decoder", type=click.Choice(DECODERS), default="auto", show_default=True,
              help="Frame decoder of on-the-fly extraction.")
@click.option("--face-detector", type=click.Choice([d for d in FACE_DETECTORS if d != "auto"]), default=None,
              help="Face detector of on-the-fly extraction, when it must differ from the engine's training store "
                   "(a warning says so; recorded in the output's metadata) [default: the training store's].")
@click.option("--face-model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YuNet ONNX model of on-the-fly extraction (implies --face-detector yunet) [default: the cached one].")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="ray: score across a Ray cluster, one engine per actor (per GPU); a store's shards, or clips "
                   "extracted on the cluster's actor pools (needs fastmer[ray]).")
@click.option("--ray-address", default=None,
              help="Ray cluster to join (auto, or ray://HOST:10001) [default: start a local Ray instance].")
@click.option("--ray-engines", type=click.IntRange(1), default=None,
              help="Scoring actors, one engine each [default: one per GPU of the cluster, else 1].")
@click.option("--progress/--no-progress", default=True, help="Progress bar of on-the-fly extraction on stderr.")
@click.option("--overwrite", is_flag=True, help="Replace an existing predictions file (Parquet) at --out.")
def command(source, engine, out, dataset, spot, spot_method, spot_model, spot_kinds, batch_size, device, compile_,
            protocol, workers, decoder, face_detector,
            face_model, executor, ray_address, ray_engines, progress, overwrite):
    """Score INPUT with ENGINE; write one prediction row per clip.

    INPUT is a feature store (`fastmer extract`), or raw data extracted on the fly with
    the settings of the engine's training store (crop size, face detector, apex policy,
    TV-L1 preset, precision; recorded at training time) for the representations it reads,
    features going straight to the engine without touching disk: a corpus (--dataset
    casme2, samm, manifest...), or videos (a video file, a folder searched for videos,
    or a .txt list), each video one clip from its first to last frame with its apex spotted.

    Multi-label models predict the classes whose probability reaches the model's
    per-class thresholds. On split views (4DME), a model trained on views one at a time
    scores a clip by the max of its views' probabilities; a model trained with views
    stacked takes each clip's views together. A clip that cannot be extracted or scored
    is a row with its error and the others are scored (exit status 3).
    """
    from fastmer.interrupt import keep_note  # noqa: PLC0415

    keep_note(f"{out} was not written (predictions are written whole, at the end)")  # before the slow imports
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from fastmer.engine.score import open_engine, score_clips, score_store  # noqa: PLC0415
    from fastmer.outputs import OutputRefused, check_output_file, is_parquet  # noqa: PLC0415
    from fastmer.store.schema import META_FILE  # noqa: PLC0415

    try:  # never the store, the engine (or its sidecar) or a video: checked before anything runs
        check_output_file(out, overwrite=overwrite, recognise=is_parquet, kind="a Parquet predictions file",
                          inputs=[source, engine, f"{engine}.json", face_model])
    except OutputRefused as exc:
        raise click.ClickException(str(exc)) from exc

    if compile_ and not Path(engine).is_dir():
        raise click.BadParameter("--compile applies to a run directory (PyTorch engine)", param_hint="--compile")
    is_store = Path(source).is_dir() and (Path(source) / META_FILE).is_file()
    if not spot and (spot_model is not None or spot_method != "mdmd" or spot_kinds != "micro"):
        raise click.BadParameter("--spot-method, --spot-model and --spot-kinds apply with --spot", param_hint="--spot")
    if spot and is_store:
        raise click.BadParameter(f"{source} is a feature store; --spot reads long videos", param_hint="--spot")
    if (dataset in LONG_DATASETS) != (spot and dataset is not None):
        raise click.BadParameter(f"--dataset {dataset} is a {'long-video' if dataset in LONG_DATASETS else 'clip'} "
                                 f"corpus: {'it needs --spot' if dataset in LONG_DATASETS else 'not one for --spot'}",
                                 param_hint="--dataset")
    if (spot_method == "softnet") != (spot_model is not None):
        raise click.BadParameter("--spot-method softnet needs --spot-model RUN, and --spot-model applies to it only",
                                 param_hint="--spot-model")
    if is_store and (face_detector or face_model):
        raise click.BadParameter(f"{source} is a feature store: its faces were cropped at extraction; "
                                 "--face-detector and --face-model apply to raw data", param_hint="--face-detector")
    if is_store and dataset is not None:
        raise click.BadParameter(f"{source} is a feature store; --dataset applies to raw data", param_hint="--dataset")
    if protocol is not None and dataset is None:
        raise click.BadParameter("--protocol applies with --dataset", param_hint="--protocol")
    given = [flag for flag, value in (("--ray-address", ray_address), ("--ray-engines", ray_engines)) if value is not None]
    if given and executor != "ray":
        raise click.BadParameter(f"{', '.join(given)} only apply with --executor ray", param_hint="--executor")
    if compile_ and executor == "ray":
        raise click.BadParameter("--compile is not available with --executor ray", param_hint="--compile")
    ray_options = {"address": ray_address, "engines": ray_engines} if executor == "ray" else None
    begin = time.perf_counter()
    try:
        scorer = open_engine(engine, device=device, compile=compile_)
        spotted = None
        if spot:
            spotted, clips = _spot_clips(scorer, source, dataset, spot_method, spot_model, spot_kinds, face_detector,
                                         face_model, decoder)
            summary = score_clips(scorer, clips, out, batch_size=batch_size, device=device, workers=workers,
                                  decoder=decoder, face_model=face_model, face_detector=face_detector, progress=progress,
                                  log=lambda line: click.echo(line, err=True), executor=executor,
                                  ray_options=ray_options)
            from fastmer.spot import add_interval_columns  # noqa: PLC0415

            add_interval_columns(out, spotted)
        elif is_store:
            summary = score_store(scorer, source, out, batch_size=batch_size, executor=executor,
                                  ray_options=None if ray_options is None else {**ray_options, "device": device})
        else:
            from fastmer.datasets import load  # noqa: PLC0415

            clips = load(dataset or "videos", source, protocol)
            summary = score_clips(scorer, clips, out, batch_size=batch_size, device=device, workers=workers,
                                  decoder=decoder, face_model=face_model, face_detector=face_detector, progress=progress,
                                  log=lambda line: click.echo(line, err=True), executor=executor,
                                  ray_options=ray_options)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if spotted is not None:
        click.echo(f"spotted {len(spotted.clips)} interval(s) in {spotted.videos} video(s)", err=True)
        if spotted.errors:
            shown = "; ".join(f"{uid}: {why}" for uid, why in list(spotted.errors.items())[:5])
            click.echo(f"{len(spotted.errors)} video(s) could not be spotted: {shown}", err=True)
    click.echo(f"scored {summary.n_scored} clips in {summary.seconds:.3f} s of engine time "
               f"({summary.clips_per_s:.0f} clips/s, {', '.join(summary.providers)}; "
               f"{time.perf_counter() - begin:.1f} s in all{'' if is_store else ' with extraction'}) -> {out}")
    if spotted is not None and spotted.errors and not summary.n_failed:
        sys.exit(3)
    if summary.n_failed:
        click.echo(f"{summary.n_failed} clips failed: {'; '.join(summary.errors[:5])}"
                   + (f" (and {len(summary.errors) - 5} more)" if len(summary.errors) > 5 else ""), err=True)
        sys.exit(3)


def _spot_clips(scorer, source, dataset, method, model, kinds, face_detector, face_model, decoder):
    """--spot: the long videos of ``source`` spotted with the engine's face detector (or the one
    asked for); their intervals as clips."""
    from fastmer.datasets.long import load_long, videos_from_paths  # noqa: PLC0415
    from fastmer.datasets.report import ClipList  # noqa: PLC0415
    from fastmer.engine.score import extraction_config  # noqa: PLC0415
    from fastmer.face.detect import make_detector  # noqa: PLC0415
    from fastmer.phases.flowspot import SpotParams  # noqa: PLC0415
    from fastmer.spot import SpotConfig, spotted_clips  # noqa: PLC0415

    config, _ = extraction_config(scorer)
    detector, _ = make_detector(face_detector or ("yunet" if face_model else config.face_detector),
                                face_model or config.face_model)
    videos = load_long(dataset, source) if dataset else videos_from_paths([source])
    spotter, params = None, SpotParams(method=method)
    if model is not None:
        from fastmer.models.softnet import SpotterModel  # noqa: PLC0415

        spotter = SpotterModel.load(model)
        params = SpotParams(**{**spotter.params, "method": method})
    spotted = spotted_clips(videos, SpotConfig(params=params), detector,
                            kinds=("micro",) if kinds == "micro" else ("micro", "macro"), decoder=decoder,
                            spotter=spotter, log=lambda line: click.echo(line, err=True))
    return spotted, ClipList(spotted.clips)
