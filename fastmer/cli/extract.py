"""fastmer extract"""

from __future__ import annotations

import sys

import click

from fastmer.choices import SPOT_METHODS
from fastmer.cli import CONTEXT
from fastmer.cli.spot import LONG_DATASETS
from fastmer.config import (
    APEX_ESTIMATORS,
    APEX_MODES,
    DECODERS,
    EXECUTORS,
    FACE_BOX_MODES,
    FACE_DETECTORS,
    FLOW_BACKENDS,
    REPRESENTATION_NAMES,
    STORE_DTYPES,
    TVL1_PRESETS,
    VIEW_MODES,
    ExtractConfig,
)
from fastmer.datasets import DATASETS

DEFAULTS = ExtractConfig()


def options_of(values: tuple[str, ...]) -> dict[str, dict[str, object]]:
    """``--representation-option`` values as ``{representation: {knob: value}}``; BadParameter naming the bad one."""
    from fastmer.motion.options import parse_option  # noqa: PLC0415

    options: dict[str, dict[str, object]] = {}
    for text in values:
        try:
            name, key, value = parse_option(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--representation-option") from exc
        if key in options.get(name, {}):
            raise click.BadParameter(f"{name}.{key} given twice", param_hint="--representation-option")
        options.setdefault(name, {})[key] = value
    return options


@click.command("extract", context_settings=CONTEXT)
@click.argument("root", type=click.Path(exists=True))
@click.option("--dataset", "-d", type=click.Choice([*DATASETS, *LONG_DATASETS]), default="casme2",
              help="Layout of ROOT (manifest: ROOT is a CSV/TSV/Parquet file listing the clips; with --spot: videos "
                   "or a long-video corpus).")
@click.option("--spot", is_flag=True,
              help="ROOT holds long videos (--dataset videos or a long-video corpus): spot their micro-expression "
                   "intervals (`fastmer spot`) and extract each as a clip (its spotted onset, apex and offset).")
@click.option("--spot-method", type=click.Choice(SPOT_METHODS), default="mdmd",
              help="--spot: the spotting method (softnet needs --spot-model).")
@click.option("--spot-model", type=click.Path(exists=True, file_okay=False), default=None,
              help="--spot --spot-method softnet: a `fastmer train --task spot` run folder.")
@click.option("--spot-kinds", type=click.Choice(["micro", "all"]), default="micro",
              help="--spot: extract the micro-expression intervals only, or the macro-expressions too.")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), required=True,
              help="Feature store to create, or to resume (same parameters: the clips it holds are skipped).")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Coding spreadsheet, for the datasets that have one [default: searched in ROOT and its parent].")
@click.option("--protocol", default=None,
              help="Label protocol: keep only the clips it maps (e.g. casme2-5class) [default: the dataset's own].")
@click.option("--representations", "-r", default=",".join(DEFAULTS.representations), show_default=False,
              help=f"Comma-separated representations to store, among: {', '.join(REPRESENTATION_NAMES)} "
                   "[default: all but lbptop, which needs >= 9 frames onset..offset].")
@click.option("--size", type=click.IntRange(16, 1024), default=DEFAULTS.size, help="Face crop side, pixels.")
@click.option("--dtype", type=click.Choice(STORE_DTYPES), default=DEFAULTS.dtype, help="Stored precision.")
@click.option("--decoder", type=click.Choice(DECODERS), default=DEFAULTS.decoder,
              help="Frame decoder (auto: DALI when installed and able, else PyAV/OpenCV).")
@click.option("--decode-region/--decode-whole-frames", default=DEFAULTS.decode_region, show_default=True,
              help="Once a clip's face box is known, decode only the part of each frame its crops read (DALI skips "
                   "the rest of each JPEG; other decoders cut whole frames). The crops are the same either way.")
@click.option("--face-detector", type=click.Choice(FACE_DETECTORS), default=DEFAULTS.face_detector,
              help="auto: YuNet (--face-model, or the model `fastmer models fetch yunet` cached; an error without "
                   "one); haar: OpenCV's Haar cascade; none: the frames are face crops already (e.g. CASME II's "
                   "Cropped release), used whole.")
@click.option("--face-model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YuNet ONNX model [default: the cached one, see `fastmer models fetch yunet`].")
@click.option("--face-box", type=click.Choice(FACE_BOX_MODES), default=DEFAULTS.face_box,
              help="One box per clip: from the onset frame, or the union over frames sampled across the clip.")
@click.option("--face-scale", type=click.FloatRange(0.5, 3.0), default=DEFAULTS.face_scale,
              help="Crop side relative to the detected face box.")
@click.option("--align/--no-align", default=DEFAULTS.align, help="Rotate each clip's crop so the eyes are level.")
@click.option("--views", type=click.Choice(VIEW_MODES), default=DEFAULTS.views,
              help="split: frames hold two views side by side (4DME); each becomes its own row.")
@click.option("--apex", type=click.Choice(APEX_MODES), default=DEFAULTS.apex,
              help="auto: spot the apex where the annotation lacks a valid one; spot: always; "
                   "annotation: never (a clip without one fails).")
@click.option("--apex-estimator", type=click.Choice(APEX_ESTIMATORS), default=DEFAULTS.apex_estimator,
              help="Motion curve the apex is spotted on.")
@click.option("--flow-backend", type=click.Choice(FLOW_BACKENDS), default=DEFAULTS.flow_backend,
              help="Optical flow implementation.")
@click.option("--flow-preset", type=click.Choice(TVL1_PRESETS), default=DEFAULTS.flow_preset,
              help="TV-L1 parameters (TV-L1 backends).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=DEFAULTS.device,
              help="Where fastmer's TV-L1 (and DALI decoding) runs (auto: CUDA when available).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Clips in parallel [default: CPU count].")
@click.option("--batch-size", type=click.IntRange(1), default=DEFAULTS.batch_size,
              help="Clips per flow/representation batch (one TV-L1 call for all their pairs; larger keeps a GPU busier).")
@click.option("--color/--grey", "color", default=False, show_default=True,
              help="Dynamic images and MESTI from RGB crops (3 channels per grey channel, as Bilen's and LEARNet's "
                   "dynamic images for ImageNet CNNs); flows, COF, LBP-TOP and the apex stay grey.")
@click.option("--representation-option", "representation_option", multiple=True, metavar="NAME.KEY=VALUE",
              help="A paper's ablation knob, repeatable: cof.theta=0.7,0.3, cof.direction=onset_apex, "
                   "mm_cof.modulation=soft, mm_cof.tau=0.3, dynamic_image.coefficients=linear, midi.intensity=flow, "
                   "midi.sigma=1, mesti.weighting=triangular (all: README, Representations). Recorded in "
                   "the store's parameters when not the default.")
@click.option("--max-frames", type=click.IntRange(2), default=DEFAULTS.max_frames, show_default=True,
              help="Clips longer than this (onset..offset) are error rows, decoded not at all: memory grows with "
                   "the clip's length (crops, motion curve).")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local",
              help="local: threads on this machine; ray: Ray Data actor pools, this machine or a cluster "
                   "(needs fastmer[ray]).")
@click.option("--ray-address", default=None,
              help="Ray cluster to join (auto, or ray://HOST:10001) [default: start a local Ray instance].")
@click.option("--ray-decode-actors", type=click.IntRange(1), default=None,
              help="Actors decoding and cropping clips [default: the cluster's CPUs minus the feature actors].")
@click.option("--ray-feature-actors", type=click.IntRange(1), default=None,
              help="Actors computing flow and representations [default: one per GPU, else 1].")
@click.option("--ray-gpus", type=click.FloatRange(0), default=None,
              help="GPUs per feature actor [default: 1 when the cluster has GPUs and --device is not cpu].")
@click.option("--overwrite", is_flag=True, help="Replace an existing store at --out (recompute every clip).")
@click.option("--progress/--no-progress", default=True, help="Progress bar with clips/s, flow pairs/s and the ETA on stderr.")
def command(root, dataset, spot, spot_method, spot_model, spot_kinds, out, annotations, protocol, representations, size,
            dtype, decoder, decode_region,
            face_detector, face_model, face_box,
            face_scale, align, views, apex, apex_estimator, flow_backend, flow_preset, device, workers, batch_size,
            color, representation_option, max_frames, executor, ray_address, ray_decode_actors, ray_feature_actors, ray_gpus,
            overwrite, progress):
    """Extract features of the corpus at ROOT into the feature store --out.

    Per clip: frames from onset to offset, one face box per clip (and view) used for
    every frame, the apex (annotated, or spotted, see --apex), the TV-L1 flows onset->apex
    and apex->offset, and the representations asked for (flow features, COF, MM-COF, dynamic
    images, MESTI), one tensor column each. A clip that fails (missing
    or unreadable frames, no face, bad annotation) becomes a row in the store's errors
    table; the run goes on and exits with status 3.

    Running the same command again resumes an interrupted (or finished) run: clips already
    in the store are skipped, failed ones are retried, and clips whose annotation or source
    files changed since they were stored are re-extracted (their rows replaced); clips no
    longer in the corpus are kept and reported. A store written with other parameters is
    refused; --overwrite replaces it.

    Decoding/cropping, flow/representations and writing overlap; the final summary gives
    each stage's busy time. --executor ray runs the first two on Ray Data actor pools
    (this machine, or a cluster with --ray-address) and writes the same store.
    """
    from pathlib import Path  # noqa: PLC0415

    from fastmer.datasets import load  # noqa: PLC0415
    from fastmer.extract import extract  # noqa: PLC0415

    if spot != (dataset in LONG_DATASETS or (spot and dataset == "videos")):
        raise click.BadParameter("--spot reads long videos: --dataset videos or a long-video corpus "
                                 f"({', '.join(LONG_DATASETS)}); those need --spot", param_hint="--dataset")
    if not spot and (spot_model is not None or spot_method != "mdmd" or spot_kinds != "micro"):
        raise click.BadParameter("--spot-method, --spot-model and --spot-kinds apply with --spot", param_hint="--spot")
    if (spot_method == "softnet") != (spot_model is not None):
        raise click.BadParameter("--spot-method softnet needs --spot-model RUN, and --spot-model applies to it only",
                                 param_hint="--spot-model")
    if dataset == "manifest" and Path(root).is_dir():
        raise click.BadParameter(f"{root} is a folder; with --dataset manifest ROOT is the manifest file", param_hint="ROOT")
    if dataset not in ("manifest", "videos") and not Path(root).is_dir() and not spot:
        raise click.BadParameter(f"{root} is a file; --dataset {dataset} reads a corpus folder", param_hint="ROOT")
    names = tuple(name.strip() for name in representations.split(",") if name.strip())
    unknown = [name for name in names if name not in REPRESENTATION_NAMES]
    if unknown or not names:
        raise click.BadParameter(f"unknown representation(s) {', '.join(unknown) or '(none given)'}; "
                                 f"choose among {', '.join(REPRESENTATION_NAMES)}", param_hint="--representations")
    options = {}
    if annotations:
        import importlib  # noqa: PLC0415
        import inspect  # noqa: PLC0415

        loader = importlib.import_module(DATASETS[dataset]).load
        if "spreadsheet" not in inspect.signature(loader).parameters:  # none (smic), or several (megc2019)
            raise click.BadParameter(f"--dataset {dataset} takes no single coding spreadsheet",
                                     param_hint="--annotations")
        options["spreadsheet"] = annotations
    from fastmer.outputs import check_not_an_input  # noqa: PLC0415

    try:
        check_not_an_input(out, [root, annotations])  # `extract CORPUS -o CORPUS --overwrite` must not touch the corpus
        clips = None if spot else load(dataset, root, protocol, **options)
        config = ExtractConfig(representations=tuple(dict.fromkeys(names)), size=size, dtype=dtype,
                               decoder=decoder, decode_region=decode_region, face_detector=face_detector,
                               face_model=face_model, face_box=face_box, face_scale=face_scale, align=align,
                               views=views, apex=apex, apex_estimator=apex_estimator, flow_backend=flow_backend,
                               flow_preset=flow_preset, device=device, workers=workers, batch_size=batch_size,
                               max_frames=max_frames, color=color,
                               representation_options=options_of(representation_option))
        ray_flags = {"--ray-address": ray_address, "--ray-decode-actors": ray_decode_actors,
                     "--ray-feature-actors": ray_feature_actors, "--ray-gpus": ray_gpus}
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given and executor != "ray":
            raise click.BadParameter(f"{', '.join(given)} only apply with --executor ray", param_hint="--executor")
        ray_options = {"address": ray_address, "decode_actors": ray_decode_actors,
                       "feature_actors": ray_feature_actors, "gpus_per_actor": ray_gpus}
        spotted = None
        if spot:
            spotted = _spot(root, dataset, config, spot_method, spot_model, spot_kinds)
            clips = spotted.clips
        from fastmer.interrupt import keep_note  # noqa: PLC0415
        keep_note(f"the clips written so far are kept in {out}; the same command resumes the store")
        summary = extract(clips, out, config, overwrite=overwrite, progress=progress, executor=executor,
                          ray_options=ray_options if executor == "ray" else None)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    rows = f" ({summary.n_rows} rows)" if summary.n_rows != summary.n_ok else ""
    click.echo(f"{summary.n_ok} of {summary.n_clips} clips extracted{rows} to {out} in {summary.seconds:.1f} s "
               f"({summary.clips_per_s:.1f} clips/s, {summary.pairs_per_s:.1f} flow pairs/s); {summary.n_failed} failed, "
               f"{summary.n_skipped} skipped (already in the store)")
    if spotted is not None and spotted.errors:
        shown = "; ".join(f"{uid}: {why}" for uid, why in list(spotted.errors.items())[:5])
        click.echo(f"{len(spotted.errors)} video(s) could not be spotted: {shown}", err=True)
    if summary.n_failed or (spotted is not None and spotted.errors):
        if summary.n_failed:
            click.echo(f"failed clips are listed in {out}/errors", err=True)
        sys.exit(3)


def _spot(root, dataset, config, method, model, kinds):
    """--spot: the long videos of ROOT spotted with the extraction's face detector; their intervals as clips."""
    from fastmer.datasets.long import load_long, videos_from_paths  # noqa: PLC0415
    from fastmer.datasets.report import ClipList  # noqa: PLC0415
    from fastmer.face.detect import make_detector  # noqa: PLC0415
    from fastmer.phases.flowspot import SpotParams  # noqa: PLC0415
    from fastmer.spot import SpotConfig, spotted_clips  # noqa: PLC0415

    detector, _ = make_detector(config.face_detector, config.face_model)
    videos = load_long(dataset, root) if dataset in LONG_DATASETS else videos_from_paths([root])
    spotter, params = None, SpotParams(method=method)
    if model is not None:
        from fastmer.models.softnet import SpotterModel  # noqa: PLC0415

        spotter = SpotterModel.load(model)
        params = SpotParams(**{**spotter.params, "method": method})
    spotted = spotted_clips(videos, SpotConfig(params=params), detector,
                            kinds=("micro",) if kinds == "micro" else ("micro", "macro"), decoder=config.decoder,
                            spotter=spotter, log=lambda line: click.echo(line, err=True))
    spotted.clips = ClipList(spotted.clips)
    click.echo(f"spotted {len(spotted.clips)} interval(s) in {spotted.videos} video(s)", err=True)
    return spotted
