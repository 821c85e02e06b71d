"""The ``fastmer`` command. Subcommands live in their own modules and are imported only when
run, and none imports torch at import time: ``fastmer --help`` is instant.

Exit status: 0 success; 1 error; 2 usage error; 3 the run finished but some clips failed
(they are listed in the store's errors table); 130 interrupted by Ctrl-C (SIGINT), 143 by
SIGTERM (:mod:`fastmer.interrupt`: workers stopped, one line on what was kept).
"""

from __future__ import annotations

import importlib

import click

from fastmer import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}

# name -> (module, short help). The short help is here so the command list needs no import.
COMMANDS = {
    "synth": ("fastmer.cli.synth", "Write a synthetic micro-expression corpus (CASME II layout)."),
    "extract": ("fastmer.cli.extract", "Extract motion features of a corpus into a feature store."),
    "import": ("fastmer.cli.import_", "Import features computed elsewhere (images, .npy) into a feature store."),
    "spot": ("fastmer.cli.spot", "Spot micro- and macro-expression intervals in long videos (MEGC scoring)."),
    "flow": ("fastmer.cli.flow", "Optical flow between two images (.flo, optional colour coding)."),
    "train": ("fastmer.cli.train", "Train and evaluate a model on a feature store (leave-one-subject-out)."),
    "report": ("fastmer.cli.report", "Compare training runs in one table (pooled MEGC UF1/UAR; --markdown), or as one "
                                   "HTML page (--html)."),
    "export": ("fastmer.cli.export", "Export a trained run's model to ONNX."),
    "engine": ("fastmer.cli.engine", "Build a TensorRT engine from an exported ONNX model."),
    "infer": ("fastmer.cli.infer", "Score a feature store, a corpus or videos with an engine or a run."),
    "viz": ("fastmer.cli.viz", "Figures (PNG, PDF or SVG) of one clip of a feature store (crops, flows, dynamic images, "
                               "motion curve), or Grad-CAM explanations of a training run's model."),
    "demo": ("fastmer.cli.demo", "Run synth -> extract -> train -> export -> infer on a small corpus."),
    "models": ("fastmer.cli.models", "List and download (checksummed) the model files fastmer uses."),
    "info": ("fastmer.cli.info", "Versions, native op backends and optional components."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's "lazy loading" recipe)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name][0]).command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def invoke(self, ctx: click.Context):
        from fastmer.interrupt import handle_signals, keep_note, stop_everything  # noqa: PLC0415  (standard library only)

        keep_note(None)  # each command says what it keeps as it goes

        # Ctrl-C or kill: workers stopped, one line on what was kept, exit 130 / 143
        # (click alone would say "Aborted!" and exit 1, and a SIGTERM would orphan the workers).
        # A full disk, a read-only folder, a missing permission: one line naming the path, not
        # a traceback (outputs are written atomically, so nothing half-written is left).
        try:
            with handle_signals():
                return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM as fastmer.interrupt.Interrupted
            ctx.exit(stop_everything(exc, lambda line: click.echo(line, err=True)))
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from exc


def os_error_message(exc: OSError) -> str:
    """"No space left on device: /data/store/clips/part-00003.parquet" (or the error itself)."""
    if exc.strerror and exc.filename is not None:
        target = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        return f"{exc.strerror}: {target}"
    return str(exc) or type(exc).__name__


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="fastmer")
def main() -> None:
    """fastmer: fast, reproducible facial micro-expression recognition.

    The pipeline is extract (frames -> face crops -> key frames -> optical flow features
    -> Parquet feature store) -> train (honest leave-one-subject-out evaluation) ->
    export/infer (ONNX engines). `fastmer demo` runs all of it on a synthetic corpus.
    """
