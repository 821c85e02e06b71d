"""fastmer models"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT
from fastmer.hub import MODEL_FILES


@click.group("models", context_settings=CONTEXT)
def command() -> None:
    """Model files used by fastmer (face detectors): list them, download them (checksummed)."""


@command.command("list", context_settings=CONTEXT)
def list_models() -> None:
    """Known model files, where they are cached, and whether they are there."""
    from fastmer.hub import cached, model_path  # noqa: PLC0415

    for name, model in MODEL_FILES.items():
        state = "cached" if cached(name) else "not downloaded"
        click.echo(f"{name:8s} {state:15s} {model_path(name)}  ({model.description}; {model.licence})")


@command.command("fetch", context_settings=CONTEXT)
@click.argument("name", type=click.Choice(sorted(MODEL_FILES)))
@click.option("--url", default=None, help="Download from this mirror instead (its sha256 must still match).")
@click.option("--force", is_flag=True, help="Download again even if a verified copy is cached.")
def fetch_model(name, url, force) -> None:
    """Download model NAME over HTTPS into the cache; keep it only if its sha256 matches."""
    from fastmer.hub import fetch  # noqa: PLC0415

    try:
        path = fetch(name, url=url, force=force)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}: {path} (sha256 verified)")
