"""fastmer info"""

from __future__ import annotations

import json

import click

from fastmer.cli import CONTEXT


@click.command("info", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def command(as_json: bool) -> None:
    """Versions, which native op backends were built (CPU, CUDA + archs) and run, and
    whether each optional component (ONNX Runtime, TensorRT, DALI, Ray, PyAV) is available
    and, if not, why."""
    from fastmer.info import format_text, gather  # noqa: PLC0415

    info = gather()
    click.echo(json.dumps(info, indent=2) if as_json else format_text(info))
