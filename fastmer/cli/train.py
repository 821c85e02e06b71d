"""fastmer train"""

from __future__ import annotations

import json

import click

from fastmer.choices import ENCODERS
from fastmer.cli import CONTEXT
from fastmer.datasets.labels import LABEL_PROTOCOLS
from fastmer.models import CLASS_WEIGHTING, LOSSES, MODELS, NORMALIZATIONS, OPTIMIZERS
from fastmer.train.protocols import PROTOCOLS

# Light copies of fastmer.train.run's names (importing it would pull torch into --help);
# tests/cli check they agree.
AUGMENTATIONS = ("flip", "affine", "dual-phase-di")
DEVICES = ("auto", "cpu", "cuda")
VIEW_LAYOUTS = ("stack", "separate")
TASKS = ("emotion", "au", "spot")
# What --task spot reads (the learned spotter: fastmer.train.spotting); every other option is refused.
SPOT_OPTIONS = frozenset({"store", "task", "out", "epochs", "lr", "batch_size", "seed", "device", "overwrite"})
DEFAULT_MIN_AU_CLIPS = 10


def _parse_options(values: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; VALUE is read as JSON (numbers, true/false, lists) or else kept as text."""
    options = {}
    for item in values:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.strip()] = raw
    return options


@click.command("train", context_settings=CONTEXT)
@click.argument("store", type=click.Path(exists=True, file_okay=False), required=False)
@click.option("--model", "-m", type=click.Choice(sorted(MODELS)), default="ststnet", help="Network.")
@click.option("--protocol", "-p", type=click.Choice(PROTOCOLS), default="loso", help="Evaluation protocol.")
@click.option("--train-datasets", default=None, metavar="A[,B]",
              help="--protocol cross-dataset: train on these datasets (comma-separated, as in the store) and test on "
                   "--test-datasets [default: leave-one-dataset-out].")
@click.option("--test-datasets", default=None, metavar="C[,D]", help="--protocol cross-dataset: datasets to test on.")
@click.option("--task", type=click.Choice(TASKS), default="emotion", show_default=True,
              help="emotion: classes of --labels; au: multi-label action-unit detection from the stored AU codes; "
                   "spot: the learned spotter (SOFTNet-style) on a `fastmer spot --save-maps` output, LOSO.")
@click.option("--labels", type=click.Choice(sorted(LABEL_PROTOCOLS)), default=None,
              help="Label protocol of --task emotion: which emotions form which classes [megc2019-3class].")
@click.option("--aus", default=None, metavar="1,2,4,12",
              help="--task au: the action units to detect [default: every AU with --min-au-clips positive clips].")
@click.option("--min-au-clips", type=click.IntRange(1), default=None,
              help=f"--task au without --aus: keep AUs with at least this many positive clips [{DEFAULT_MIN_AU_CLIPS}].")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), default=None, help="Run directory to create.")
@click.option("--recipe", type=click.Choice(["default", "published"]), default="default",
              help="Training recipe: fastmer's default or the authors' published one.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the recipe's epochs.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help="Override the learning rate.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Override the batch size.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="Override the recipe's optimiser.")
@click.option("--loss", type=click.Choice(LOSSES), default=None, help="Override the loss: cross-entropy or focal.")
@click.option("--focal-gamma", type=click.FloatRange(0), default=None, help="Focal loss gamma [recipe: 2].")
@click.option("--class-weighting", type=click.Choice(CLASS_WEIGHTING), default=None,
              help="Per-class loss weights (focal alpha) from each fold's training labels [recipe: none].")
@click.option("--patience", type=click.IntRange(1), default=None,
              help="Early stopping: epochs without a better validation UF1 on an inner split of the training "
                   "subjects [recipe: fixed epochs].")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Share of a fold's training subjects in its inner validation split (with --patience) [recipe: 0.2].")
@click.option("--k", "k", type=click.IntRange(2), default=5, help="Folds of --protocol kfold (whole subjects).")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              help="Share of the subjects held out by --protocol holdout.")
@click.option("--seed", type=int, default=0, help="Base random seed (also draws the kfold/holdout splits).")
@click.option("--seeds", default=None,
              help="Comma-separated seeds (e.g. 1,2,3): one run per seed in --out/seed-S, and mean ± std.")
@click.option("--augment", "-a", multiple=True, type=click.Choice(AUGMENTATIONS),
              help="Training-set augmentation (repeatable): flip (mirror, u negated), affine (rotation ±5°, scale "
                   "±5%, flow turned with the image), dual-phase-di (phase dynamic images as extra clips; models "
                   "reading dynamic_image). Test clips are never augmented.")
@click.option("--svm-c", type=click.FloatRange(0, min_open=True), default=None,
              help="C of the SVM of lbptop-svm [1] (-O kernel=chi2|rbf for a kernel SVM).")
@click.option("--backbone", "--encoder", "encoder", default=None, metavar="NAME",
              help="CNN of fmanet, mmcof, cof, dianet and afn: compact (3 blocks), resnet18 (torchvision's "
                   "architecture, from scratch), or any timm model (resnet50, vgg19_bn, efficientnet_b0, "
                   "vit_base_patch16_224, ...; timm:NAME forces timm's; needs `pip install 'fastmer[timm]'`) "
                   "[compact].")
@click.option("--pretrained", is_flag=True,
              help="Start a timm backbone from timm's ImageNet weights: model.safetensors downloaded once from the "
                   "Hugging Face Hub into its cache, recorded with its sha256 (offline: --weights FILE). A 3-channel "
                   "stem is adapted to the input's maps (1: RGB kernels summed; n: repeated, scaled by 3/n).")
@click.option("--no-fusion-attention", is_flag=True,
              help="microattnet ablation: concatenate the three streams instead of fusing them by attention.")
@click.option("--no-se", is_flag=True, help="microattnet ablation: no squeeze-and-excitation on the magnitude stream.")
@click.option("--option", "-O", "extra_options", multiple=True, metavar="KEY=VALUE",
              help="Any other constructor option of the model (repeatable; VALUE read as JSON), e.g. -O gate=scalar. "
                   "--describe lists them.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="safetensors file every fold starts from (e.g. a converted torchvision checkpoint); tensors are "
                   "matched by name and shape, the rest keep their initialisation.")
@click.option("--input-size", type=click.IntRange(8), default=None,
              help="Network input side (area resampling of the stored maps) [the model's; most keep the store's].")
@click.option("--view-layout", type=click.Choice(VIEW_LAYOUTS), default="stack", show_default=True,
              help="Stores of split views (4DME): stack a clip's views as channels, or train each view as a sample "
                   "and merge its clip's predictions by max.")
@click.option("--input", "inputs", multiple=True, metavar="NAME[:CHANNELS]",
              help="Feed the model other stored columns instead of its own (repeatable; channels in the order "
                   "given, split into the model's streams as its own input is): e.g. -m meganet --input apex_frame, "
                   "-m mmcof --input flow_onset_apex:u,v,magnitude. --describe shows the result.")
@click.option("--normalization", type=click.Choice(NORMALIZATIONS), default=None,
              help="Input scaling per sample and channel: auto (signed maps such as flows divided by a robust max "
                   "magnitude, zero kept at zero; dynamic images min-max), minmax, signed, none [default: the "
                   "model's; --describe shows it per channel].")
@click.option("--describe", is_flag=True,
              help="Print the model (input, options, parameter count) and exit; STORE optional (its shapes if given).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where to train: auto = CUDA when torch sees a GPU (inputs loaded on it once).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=None,
              help="CPU worker processes training folds in parallel [default: one per usable core].")
@click.option("--fold-batch", type=click.IntRange(1), default=None,
              help="Folds trained together as one stacked model (vmap) [default: all of them on CUDA, 1 on CPU].")
@click.option("--amp/--no-amp", default=None, help="bfloat16 mixed precision [default: on for CUDA, off on CPU].")
@click.option("--overwrite", is_flag=True, help="Replace a training run at --out (anything else is refused).")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run at --out (or start it): finished folds are kept, the rest trained; "
                   "refused, naming the difference, if it was started with other settings.")
@click.pass_context
def command(ctx, store, model, protocol, train_datasets, test_datasets, task, labels, aus, min_au_clips, out, recipe, epochs,
            lr, batch_size, optimizer, loss, focal_gamma, class_weighting, patience, val_fraction, k, test_fraction,
            seed, seeds, augment, svm_c, encoder, pretrained, no_fusion_attention, no_se, extra_options, weights,
            input_size,
            view_layout, inputs, normalization, describe, device, jobs, fold_batch, amp, overwrite, resume):
    """Evaluate MODEL on STORE under PROTOCOL, then train the final model on all clips.

    Protocols split by subject: loso (one fold per subject; on the MEGC2019 composite
    store, the 68-fold composite protocol), loso-per-dataset (each fold trains on its
    test subject's corpus only), kfold (--k folds of whole subjects), holdout
    (--test-fraction of the subjects, drawn with --seed), cross-dataset
    (leave-one-dataset-out over a composite store's datasets, or --train-datasets A,B
    --test-datasets C; per-dataset scores reported). Every fold trains for a fixed
    number of epochs, or (--patience) stops early on an inner validation split of its
    training subjects: nothing is ever chosen on a test subject. UF1 and UAR are pooled
    over folds as MEGC defines them; the fold-averaged figures and the per-dataset
    breakdown are reported apart. A multi-label protocol (4dme-multilabel) trains one
    sigmoid output per class with per-class thresholds tuned on an inner split of each
    fold's training subjects, and reports macro-UF1; --task au does the same for the
    action units annotated on the clips (--aus, or those with --min-au-clips positive
    clips), reporting per-AU F1 and macro-F1. lbptop-svm (LBP-TOP + scikit-learn SVM)
    is solved exactly per fold and takes no recipe. On a CPU the folds run in parallel
    processes (--jobs); on a GPU the inputs are loaded on it once. Writes report.json,
    folds.json (the clip ids of every fold), predictions.parquet, per-fold weights and
    model.safetensors + model.json. Each fold is saved when it finishes: an interrupted
    run (Ctrl-C, kill, a crash) continues with --resume to the report an uninterrupted
    run gives.
    """
    from dataclasses import replace  # noqa: PLC0415

    if resume and overwrite:
        raise click.UsageError("--resume continues the run at --out and --overwrite replaces it: give one of them")
    if task == "spot":
        if resume:
            raise click.UsageError("--resume applies to recognition runs, not to --task spot (a spotter trains in minutes)")
        _train_spotter(ctx, store, out, epochs, lr, batch_size, seed, device, overwrite)
        return
    from fastmer.train.run import train  # noqa: PLC0415

    entry = MODELS[model]
    if task == "au":
        if labels is not None:
            raise click.BadParameter("--task au detects action units; --labels applies to --task emotion",
                                     param_hint="--labels")
        if aus is not None and min_au_clips is not None:
            raise click.BadParameter("give --aus or --min-au-clips, not both", param_hint="--min-au-clips")
    elif aus is not None or min_au_clips is not None:
        raise click.BadParameter("--aus and --min-au-clips apply to --task au", param_hint="--task")
    if protocol != "cross-dataset" and (train_datasets is not None or test_datasets is not None):
        raise click.BadParameter(f"--train-datasets/--test-datasets apply to --protocol cross-dataset, not {protocol}",
                                 param_hint="--protocol")
    if (train_datasets is None) != (test_datasets is None):
        raise click.BadParameter("give both --train-datasets and --test-datasets (or neither: leave-one-dataset-out)",
                                 param_hint="--train-datasets/--test-datasets")
    labels = labels or "megc2019-3class"
    task_options = {"task": task, "train_datasets": train_datasets, "test_datasets": test_datasets}
    if task == "au":
        task_options.update(aus=aus, min_au_clips=min_au_clips or DEFAULT_MIN_AU_CLIPS)
    overrides = {name: value for name, value in {
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": optimizer, "loss": loss,
        "focal_gamma": focal_gamma, "class_weighting": class_weighting, "patience": patience,
        "val_fraction": val_fraction}.items() if value is not None}
    model_options = _parse_options(extra_options)
    if encoder is not None and encoder not in ENCODERS:  # a timm model: known to the installed timm?
        from fastmer.models.timm_backbone import check_timm_model  # noqa: PLC0415

        try:
            check_timm_model(encoder)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--backbone") from exc
    if pretrained and weights is not None:
        raise click.BadParameter("give either --pretrained (timm's weights) or --weights FILE, not both",
                                 param_hint="--pretrained")
    for value, key, flag in ((svm_c, "C", "--svm-c"), (encoder, "encoder", "--backbone"),
                             (False if no_fusion_attention else None, "fusion_attention", "--no-fusion-attention"),
                             (False if no_se else None, "se", "--no-se")):
        if value is None:
            continue
        from fastmer.models import model_options as known_options  # noqa: PLC0415

        if key not in known_options(model):
            raise click.BadParameter(f"{model} has no {key} option", param_hint=flag)
        model_options[key] = value
    if describe:
        _describe(model, labels, model_options, input_size, store, view_layout, normalization, inputs,
                  task_options)
        return
    if store is None or out is None:
        raise click.UsageError("STORE and --out are required (unless --describe)")
    if entry.fitter == "solver":
        if overrides or recipe != "default":
            given = ", ".join("--" + name.replace("_", "-") for name in overrides) or "--recipe"
            raise click.BadParameter(f"{model} is fitted by a solver, not by gradient descent: {given} do(es) not apply",
                                     param_hint="training options")
        chosen = None
    else:
        chosen = entry.published if recipe == "published" else entry.recipe
        if chosen is None:
            raise click.BadParameter(f"{model} has no published recipe", param_hint="--recipe")
        chosen = replace(chosen, **overrides)
    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError as exc:
            raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers", param_hint="--seeds") from exc
        if len(seed_list) < 2 or len(set(seed_list)) != len(seed_list):
            raise click.BadParameter("give at least two distinct seeds (or --seed for one)", param_hint="--seeds")
    options = {"model": model, "protocol": protocol, "labels": labels, **task_options,
               "recipe": chosen, "model_options": model_options,
               "augment": augment, "device": device, "jobs": jobs, "fold_batch": fold_batch, "amp": amp, "k": k,
               "test_fraction": test_fraction, "view_layout": view_layout, "input_size": input_size,
               "normalization": normalization, "inputs": tuple(inputs), "weights": weights, "pretrained": pretrained,
               "overwrite": overwrite, "resume": resume, "log": lambda line: click.echo(line, err=True)}
    try:  # train() refuses an --out that is not a run (or is its store) before anything runs
        if seed_list:
            from fastmer.train.run import train_seeds  # noqa: PLC0415

            report = train_seeds(store, out, seed_list, **options)
        else:
            report = train(store, out, seed=seed, **options)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if seed_list:
        across = report["metrics"]["across_seeds"]
        click.echo(json.dumps({**{name: f"{v['mean']:.4f} ± {v['std']:.4f}" for name, v in across.items()},
                               "seeds": seed_list, "report": f"{out}/report.json"}, indent=2))
        return
    pooled = report["metrics"]["pooled"]
    click.echo(json.dumps({"uf1": pooled["uf1"], "uar": pooled["uar"], "accuracy": pooled["accuracy"],
                           "n_clips": report["n_clips"], "n_folds": report["n_folds"], "report": f"{out}/report.json"},
                          indent=2))


def _describe(model, labels, options, input_size, store, view_layout, normalization=None, inputs=(), task_options=None):
    from fastmer.datasets.labels import au_name, get_protocol  # noqa: PLC0415
    from fastmer.models.model import describe  # noqa: PLC0415
    from fastmer.store import open as open_store  # noqa: PLC0415

    task_options = task_options or {"task": "emotion"}
    try:
        opened = open_store(store) if store else None
        classes = get_protocol(labels).classes
        outputs = f"classes ({labels}): {', '.join(classes)}"
        if task_options["task"] == "au":  # one sigmoid output per action unit, chosen from the store or --aus
            from fastmer.train.run import au_targets, parse_aus  # noqa: PLC0415

            aus, min_clips = task_options.get("aus"), task_options.get("min_au_clips") or DEFAULT_MIN_AU_CLIPS
            if opened is not None:
                protocol, _, chosen = au_targets(opened, aus, min_clips)
                classes = protocol.classes
                outputs = f"outputs (au task, {chosen['selection']}): {', '.join(classes)}, one sigmoid each"
            elif aus is not None:
                classes = tuple(au_name(n) for n in parse_aus(aus))
                outputs = f"outputs (au task, given (--aus)): {', '.join(classes)}, one sigmoid each"
            else:
                outputs = (f"outputs (au task): one sigmoid per action unit of the store with at least {min_clips} "
                           f"positive clips (give STORE or --aus to list them; parameters below for {len(classes)})")
        info = describe(model, classes, options=options, input_size=input_size,
                        normalization=normalization, inputs=tuple(inputs), store=opened, view_layout=view_layout)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from exc
    lines = [
        f"{info['model']} ({info['class']})",
        f"  {info['summary']}",
        f"  reference: {info['reference']}",
        f"  input: {' + '.join(info['input']['representations'])} channels {', '.join(info['input']['channels'])}"
        + (f", views stacked {', '.join(info['input']['views_stacked'])}" if info["input"]["views_stacked"] else "")
        + f" -> network input {'x'.join(map(str, info['input']['network_input']))}"
        + ("" if store else " (store assumed at the default crop size)"),
        f"  normalization: {info['input']['normalization']} ("
        + ", ".join(f"{c} {m}" for c, m in info["input"]["channel_normalization"].items()) + ")",
        f"  {outputs}",
        f"  options: {json.dumps(info['options'])}",
        f"  parameters: {info['parameters']:,} ({info['saved_tensor_elements']:,} saved values with buffers)",
        "  by module: " + ", ".join(f"{k} {v:,}" for k, v in info["parameters_by_module"].items()),
        f"  recipe: {json.dumps(info['recipe'])}" if info["recipe"] else f"  fitted by: {info['fitter']}",
    ]
    click.echo("\n".join(lines))


def _train_spotter(ctx: click.Context, store, out, epochs, lr, batch_size, seed, device, overwrite) -> None:
    """--task spot: LOSO evaluation of the learned spotter and the final one (fastmer.train.spotting)."""
    given = sorted(name for name in ctx.params if name not in SPOT_OPTIONS
                   and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT)
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise click.UsageError(f"{flags}: not an option of --task spot (it takes --out, --epochs, --lr, --batch-size, "
                               "--seed, --device)")
    if store is None or out is None:
        raise click.UsageError("--task spot needs a `fastmer spot --save-maps` output folder and --out")
    from fastmer.outputs import OutputRefused, check_output_dir, is_run  # noqa: PLC0415
    from fastmer.train.spotting import SpotTraining, train_spotter  # noqa: PLC0415

    try:
        check_output_dir(out, overwrite=overwrite, recognise=is_run, kind="training run", inputs=[store])
    except OutputRefused as exc:
        raise click.ClickException(str(exc)) from exc
    defaults = SpotTraining()
    training = SpotTraining(epochs=epochs or defaults.epochs, lr=lr or defaults.lr,
                            batch_size=batch_size or defaults.batch_size, seed=seed)
    try:
        report = train_spotter(store, out, training=training, device="cpu" if device == "auto" else device,
                               log=lambda line: click.echo(line, err=True))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for kind in ("micro", "macro", "overall"):
        c = report["pooled"][kind]
        click.echo(f"{kind:>8}: TP {c['tp']} FP {c['fp']} FN {c['fn']}  precision {c['precision']:.3f} recall "
                   f"{c['recall']:.3f} F1 {c['f1']:.3f}")
    click.echo(f"LOSO over {len(report['subjects'])} subjects; spotter trained on all of them -> {out} "
               f"(fastmer spot --method softnet --model {out})")
