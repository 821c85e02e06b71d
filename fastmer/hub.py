"""Model files fastmer can download: pinned URL and sha256, a user cache, verified fetches.

Nothing is ever downloaded implicitly: ``fastmer models fetch NAME`` (or :func:`fetch`)
downloads over HTTPS into the cache and keeps the file only if its sha256 matches the
pinned value. Plain HTTP is accepted only from the loopback interface (tests, mirrors on
the same machine). A cached file is checked again each time it is loaded
(:func:`check_cached`): a copy corrupted or replaced in the cache is refused, with the
file named, until ``fastmer models fetch NAME`` downloads it again.

Cache: ``$FASTMER_CACHE`` if set, else ``$XDG_CACHE_HOME/fastmer``, else ``~/.cache/fastmer``;
models live in its ``models/`` folder.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path


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
    """The user cache folder (not created)."""
    if os.environ.get("FASTMER_CACHE"):
        return Path(os.environ["FASTMER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastmer"


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def fetch(name: str, *, url: str | None = None, force: bool = False, timeout: float = 60.0) -> Path:
    """Download model ``name`` into the cache and verify its sha256.

    Args:
        name: a key of :data:`MODEL_FILES`.
        url: download from here instead of the pinned URL (a mirror); the pinned sha256
            still applies.
        force: download again even if a verified copy is cached.
        timeout: seconds to wait for the server.

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
    url = url or model.url
    _check_url(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (scheme checked above)
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            except urllib.error.URLError as exc:
                raise OSError(f"cannot download {name} from {url}: {exc.reason}") from exc
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise ValueError(f"refusing {name} from {url}: sha256 {digest.hexdigest()} does not match the pinned "
                             f"{model.sha256}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
