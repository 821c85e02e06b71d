"""fastmer models"""

from __future__ import annotations

from pathlib import Path

import click

from fastmer.cli import CONTEXT
from fastmer.hub import MIRROR_ENV, MODEL_FILES, RETRIES, TIMEOUT  # fastmer.hub imports pooch lazily


@click.group("models", context_settings=CONTEXT)
def command() -> None:
    """Model files used by fastmer (face detectors): list them, download them (checksummed).

    The cache is $FASTMER_CACHE if set, else the platform's user cache folder
    (~/.cache/fastmer on Linux); models are in its models/ folder.
    """


@command.command("list", context_settings=CONTEXT)
def list_models() -> None:
    """Known model files, where they are cached, and whether they are there."""
    from fastmer.hub import cache_dir, cached, model_path, source_url  # noqa: PLC0415

    click.echo(f"cache: {cache_dir() / 'models'}")
    for name, model in MODEL_FILES.items():
        state = "cached" if cached(name) else "not downloaded"
        click.echo(f"{name:8s} {state:15s} {model_path(name)}  ({model.description}; {model.licence})")
        click.echo(f"{'':8s} source: {source_url(name)}  sha256 {model.sha256}")


@command.command("fetch", context_settings=CONTEXT)
@click.argument("name", type=click.Choice(sorted(MODEL_FILES)))
@click.option(
    "--url",
    default=None,
    help=f"Download from this URL instead (a mirror; its sha256 must still match) [default: ${MIRROR_ENV}/FILE "
    "if that variable is set, else the pinned URL].",
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Take the model from this local file instead of downloading it (a machine without network): its sha256 "
    "must match the pinned one; it is then copied into the cache.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Download again even if a verified copy is cached (it stays until the new one is verified).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=TIMEOUT,
    help="Seconds to wait for the server.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=RETRIES,
    help="Attempts after a failed download (network error or sha256 mismatch).",
)
def fetch_model(name, url, source, force, timeout, retries) -> None:
    """Download model NAME over HTTPS into the cache; keep it only if its sha256 matches.

    With --from FILE nothing is downloaded: FILE is checked against the pinned sha256 and
    copied into the cache (a wrong file leaves the cache as it was).
    """
    from fastmer.hub import fetch, install  # noqa: PLC0415

    if source is not None and url is not None:
        raise click.UsageError("--from and --url exclude each other (a local file or a download)")
    try:
        if source is not None:
            path = install(name, source)
            click.echo(f"{name}: {path} (sha256 verified, copied from {source})")
            return
        path = fetch(name, url=url, force=force, timeout=timeout, retries=retries)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}: {path} (sha256 verified)")
