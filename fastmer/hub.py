"""Model files fastmer can download: a sha256-pinned registry, a user cache, verified fetches.

The registry is :data:`MODEL_FILES` (one :class:`ModelFile` per file: cache name, URL,
sha256, licence); downloads go through `pooch <https://www.fatiando.org/pooch>`_ (HTTP with
a timeout, retries, a progress bar on a terminal, the file hashed in a temporary file and
moved into the cache only if its sha256 is the pinned one).

Nothing is ever downloaded implicitly: ``fastmer models fetch NAME`` (or :func:`fetch`)
downloads over HTTPS into the cache and keeps the file only if its sha256 matches the
pinned value. Plain HTTP is accepted only from the loopback interface (tests, mirrors on
the same machine). Where to download from: ``--url`` (:func:`fetch`'s ``url``), else
``$FASTMER_MODEL_MIRROR/<file name>`` if that variable is set (a mirror base URL, used
instead of the pinned URL), else the pinned URL. A machine without network takes the file
from a local copy (``fastmer models fetch NAME --from FILE``, :func:`install`): checked
against the same pinned sha256, then copied into the cache atomically.

A cached file is checked again each time it is loaded (:func:`check_cached`): a copy
corrupted or replaced in the cache is refused, with the file named, until ``fastmer models
fetch NAME`` downloads it again.

Cache: ``$FASTMER_CACHE`` if set, else the platform's user cache folder for fastmer
(``pooch.os_cache("fastmer")``: ``$XDG_CACHE_HOME/fastmer`` or ``~/.cache/fastmer`` on
Linux, ``~/Library/Caches/fastmer`` on macOS, ``%LOCALAPPDATA%\\fastmer\\fastmer\\Cache`` on
Windows); models live in its ``models/`` folder.

pooch (and the requests and tqdm it uses) is imported inside the functions that need it, so
``fastmer --help`` and ``fastmer models -h`` do not import it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "FASTMER_CACHE"
MIRROR_ENV = "FASTMER_MODEL_MIRROR"
#: Seconds to wait for the server (connection and each read).
TIMEOUT = 60.0
#: Downloads attempted again after a failure (connection, HTTP error or sha256 mismatch),
#: waiting 1 s, 2 s, ... between attempts (pooch's ``retry_if_failed``).
RETRIES = 2


@dataclass(frozen=True)
class ModelFile:
    """A downloadable model: file name in the cache, source URL, sha256 and licence."""

    name: str
    filename: str
    url: str
    sha256: str
    licence: str
    description: str


MODEL_FILES = {
    "yunet": ModelFile(
        name="yunet",
        filename="face_detection_yunet_2023mar.onnx",
        url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        licence="MIT (OpenCV model zoo; Shiqi Yu, libfacedetection)",
        description="YuNet face detector with 5 landmarks, for cv2.FaceDetectorYN",
    ),
}


def cache_dir() -> Path:
    """The user cache folder (not created): ``$FASTMER_CACHE``, else ``pooch.os_cache("fastmer")``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import pooch  # noqa: PLC0415

    return Path(pooch.os_cache("fastmer"))


def model_path(name: str) -> Path:
    """Where model ``name`` lives in the cache (it may not be there)."""
    return cache_dir() / "models" / get_model_file(name).filename


def cached(name: str) -> Path | None:
    """The cached model file if present, else None (no network access)."""
    path = model_path(name)
    return path if path.is_file() else None


def check_cached(path: str | Path) -> str | None:
    """Check a model file about to be loaded, if it is a model's file in the cache.

    A cached file is the pinned model by definition, so its sha256 is checked again (the
    files are small: YuNet is 227 KB). Files elsewhere (a model the user gives) have no
    pinned hash and are not checked.

    Returns:
        The name of the model whose cached file ``path`` is, else None.

    Raises:
        ValueError: ``path`` is a model's cached file and its sha256 differs from the
            pinned one (the message names the file and how to download it again).
    """
    path = Path(path)
    for model in MODEL_FILES.values():
        cached_path = model_path(model.name)
        if path.name != cached_path.name or not path.is_file() or not cached_path.is_file():
            continue
        if path.resolve() != cached_path.resolve():
            continue
        digest = sha256_of(path)
        if digest != model.sha256:
            raise ValueError(f"{path} is corrupt or was replaced: sha256 {digest}, expected {model.sha256} (the pinned "
                             f"{model.name} model); run `fastmer models fetch {model.name}` to download it again")
        return model.name
    return None


def get_model_file(name: str) -> ModelFile:
    if name not in MODEL_FILES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_FILES)}")
    return MODEL_FILES[name]


def sha256_of(path: str | Path) -> str:
    """The sha256 of a file, in hex (``pooch.file_hash``)."""
    import pooch  # noqa: PLC0415

    return pooch.file_hash(str(path), alg="sha256")


def source_url(name: str, url: str | None = None) -> str:
    """The URL :func:`fetch` downloads model ``name`` from: ``url`` if given, else
    ``$FASTMER_MODEL_MIRROR/<file name>`` if the variable is set, else the pinned URL."""
    model = get_model_file(name)
    if url:
        return url
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return f"{mirror.rstrip('/')}/{model.filename}"
    return model.url


def _check_url(url: str) -> None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "https":
        return
    if parsed.scheme == "http":
        try:
            if ipaddress.ip_address(parsed.hostname or "").is_loopback:
                return
        except ValueError:
            if parsed.hostname == "localhost":
                return
    raise ValueError(f"refusing to download from {url}: only HTTPS (or HTTP from this machine's loopback) is allowed")


def progressbar_wanted() -> bool:
    """A download shows a progress bar only on a terminal (stderr a TTY) and with tqdm installed."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False
    return bool(tty) and importlib.util.find_spec("tqdm") is not None


class _OnlyRetries(logging.Filter):
    """pooch logs each download at INFO level ("Downloading file ... to <folder>"): fastmer
    says where the file went itself. Its notes on retries are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.getMessage().startswith("Failed to download")


@contextlib.contextmanager
def _pooch_log_filtered() -> Iterator[None]:
    import pooch  # noqa: PLC0415

    logger, only = pooch.get_logger(), _OnlyRetries()
    logger.addFilter(only)
    try:
        yield
    finally:
        logger.removeFilter(only)


def fetch(name: str, *, url: str | None = None, force: bool = False, timeout: float = TIMEOUT,
          retries: int = RETRIES, progressbar: bool | None = None) -> Path:
    """Download model ``name`` into the cache and verify its sha256.

    Args:
        name: a key of :data:`MODEL_FILES`.
        url: download from here instead (a mirror); the pinned sha256 still applies.
            Default: :func:`source_url` (``$FASTMER_MODEL_MIRROR``, else the pinned URL).
        force: download again even if a verified copy is cached (which stays in place
            until the new copy is verified).
        timeout: seconds to wait for the server.
        retries: attempts after a failed one (connection, HTTP error, sha256 mismatch).
        progressbar: show a progress bar on stderr; default: only if it is a terminal.

    Returns:
        The path of the verified file in the cache.

    Raises:
        ValueError: the file's sha256 differs from the pinned one (nothing is kept), or the
            URL is not allowed. OSError: the download failed.
    """
    model = get_model_file(name)
    target = model_path(name)
    if target.is_file() and not force:
        if sha256_of(target) == model.sha256:
            return target
        target.unlink()  # a corrupted copy never satisfies a fetch
    url = source_url(name, url)
    _check_url(url)  # pooch itself would take any http:// URL
    target.parent.mkdir(parents=True, exist_ok=True)
    # pooch downloads into a temporary file beside its target and moves it there only once
    # the hash matches; its target is a private folder here, so that a verified copy already
    # in the cache (--force) is replaced only by a verified one, in one os.replace.
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    try:
        staged = _download(model, url, staging, timeout=timeout, retries=retries,
                           progressbar=progressbar_wanted() if progressbar is None else progressbar)
        os.chmod(staged, 0o644)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _download(model: ModelFile, url: str, folder: Path, *, timeout: float, retries: int, progressbar: bool) -> Path:
    import pooch  # noqa: PLC0415
    import requests  # noqa: PLC0415  (a pooch dependency)

    puller = pooch.create(path=folder, base_url="", registry={model.filename: f"sha256:{model.sha256}"},
                          urls={model.filename: url}, retry_if_failed=max(0, retries))
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout)
    try:
        with _pooch_log_filtered():
            return Path(puller.fetch(model.filename, downloader=downloader))
    except requests.exceptions.RequestException as exc:
        raise OSError(f"cannot download {model.name} from {url}: {exc}") from exc
    except ValueError as exc:  # pooch: the hash of the downloaded file does not match
        got = re.search(r"\bgot ([0-9a-fA-F]{64})\b", str(exc))
        digest = got.group(1).lower() if got else f"unknown ({exc})"
        raise ValueError(f"refusing {model.name} from {url}: sha256 {digest} does not match the pinned "
                         f"{model.sha256}; nothing was kept") from exc


def install(name: str, source: str | Path) -> Path:
    """Put a local copy of model ``name`` into the cache, for machines without network.

    ``source`` is checked against the pinned sha256 first (a wrong file leaves the cache as
    it was), then copied to a temporary file in the cache, checked again (what is cached is
    what was verified) and moved into place in one ``os.replace``.

    Returns:
        The path of the verified file in the cache.

    Raises:
        ValueError: the file's sha256 differs from the pinned one. OSError: it cannot be read.
    """
    model = get_model_file(name)
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    digest = sha256_of(source)
    if digest != model.sha256:
        raise ValueError(f"refusing {name} from {source}: sha256 {digest} does not match the pinned {model.sha256}; "
                         "the cache was not changed")
    target = model_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        digest = sha256_of(tmp)
        if digest != model.sha256:  # changed while being copied
            raise ValueError(f"refusing {name} from {source}: its copy has sha256 {digest}, not the pinned "
                             f"{model.sha256}; the cache was not changed")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
