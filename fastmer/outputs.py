"""Where commands write: never destroy what is not fastmer's, never write over an input.

Every command that writes (``extract -o``, ``train -o``, ``export -o``, ``infer -o``,
``viz -o``, ``synth -o``, ``spot -o``, ``engine build -o``, ``demo --out``) checks its output here
first. ``--overwrite`` replaces only what is recognisably a fastmer output of the same
kind (a feature store, a training run, a file of the expected type), and nothing that is
or holds one of the command's inputs. Light on imports (the CLI stays fast).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path


class OutputRefused(FileExistsError):
    """An output path that a command will not write to (message says why and what to do)."""


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _contains(parent: Path, child: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_an_input(out: str | Path, inputs: Iterable[str | Path | None], option: str = "--out") -> None:
    """Refuse an output that is an input, contains one, or lies inside an input that fastmer
    manages (a feature store or a training run, whose files must not change). Inside a corpus
    folder is allowed (e.g. ``corpus/store``): what exists there is protected by the checks of
    the output's own kind."""
    target = _resolved(out)
    for item in inputs:
        if item is None:
            continue
        source = _resolved(item)
        if target == source:
            relation = "is"
        elif _contains(target, source):
            relation = "contains"
        elif _contains(source, target) and (is_store(source) or is_run(source)):
            relation = "lies inside"
        else:
            continue
        raise OutputRefused(f"{option} {out} {relation} the input {item}; refusing to write there (choose another {option})")


def check_output_file(out: str | Path, *, overwrite: bool, recognise: Callable[[Path], bool], kind: str,
                      inputs: Iterable[str | Path] = (), option: str = "--out") -> Path:
    """A file the command is about to (atomically) write.

    Refused: a directory; an input (or a file inside one, e.g. ``STORE/store.json``); an
    existing file without ``overwrite``; an existing file that ``recognise`` does not take
    for ``kind`` ("a Parquet file"), whatever ``overwrite`` says.
    """
    path = Path(out)
    check_not_an_input(path, inputs, option)
    if path.is_dir():
        raise OutputRefused(f"{option} {out} is a directory; give a file name")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputRefused(f"{option} {out} already exists (use --overwrite to replace it)")
        if not recognise(path):
            raise OutputRefused(f"{option} {out} exists and is not {kind}; refusing to replace it even with "
                                f"--overwrite (choose another {option})")
    return path


def check_output_dir(out: str | Path, *, overwrite: bool, recognise: Callable[[Path], bool], kind: str,
                     inputs: Iterable[str | Path] = (), option: str = "--out") -> Path:
    """A directory the command fills: absent or empty, or, with ``overwrite``, a ``kind``
    that ``recognise`` accepts. Anything else (a file, a folder of other things, an input)
    is refused, naming it, whatever ``overwrite`` says."""
    path = Path(out)
    check_not_an_input(path, inputs, option)
    if path.exists() and not path.is_dir():
        raise OutputRefused(f"{option} {out} is a file, not a {kind}; refusing to replace it (choose another {option})")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputRefused(f"{option} {out} is not empty (use --overwrite to replace a {kind})")
        if not recognise(path):
            raise OutputRefused(f"{option} {out} is not empty and is not a {kind} (it holds {_listing(path)}); "
                                f"refusing to overwrite it even with --overwrite (choose another {option})")
    return path


def _listing(path: Path, most: int = 3) -> str:
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in path.iterdir())
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _json_file(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# What marks a feature store: its metadata file and the format it names (defined here, where
# outputs are recognised, and taken by fastmer.store.schema as its META_FILE and FORMAT, so the
# store's writer can use this module without it importing the store back).
STORE_META_FILE = "store.json"
STORE_FORMAT = "fastmer-store"


def is_store(path: str | Path) -> bool:
    """A fastmer feature store: ``store.json`` of format ``fastmer-store`` (any version)."""
    meta = _json_file(Path(path) / STORE_META_FILE)
    return meta is not None and meta.get("format") == STORE_FORMAT


# What `fastmer train` writes at the top of a run directory (run.py), any one of which marks a run
# (run.json first of all: an interrupted run is one, for --resume and --overwrite).
RUN_MARKERS = ("run.json", "model.json", "report.json", "folds.json")


def is_run(path: str | Path) -> bool:
    """A fastmer training run: one of its JSON files at the top, parseable."""
    return any(_json_file(Path(path) / name) is not None for name in RUN_MARKERS)


# What marks a `fastmer spot` output folder (fastmer.spot writes it first).
SPOT_META_FILE = "spot.json"
SPOT_FORMAT = "fastmer-spot"


def is_spot_output(path: str | Path) -> bool:
    """A `fastmer spot` output folder: ``spot.json`` of format ``fastmer-spot``."""
    meta = _json_file(Path(path) / SPOT_META_FILE)
    return meta is not None and meta.get("format") == SPOT_FORMAT


def is_parquet(path: str | Path) -> bool:
    """A Parquet file: ``PAR1`` at both ends."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(-4, 2)
            return head == b"PAR1" and handle.read(4) == b"PAR1"
    except OSError:
        return False


def has_suffix(*suffixes: str) -> Callable[[Path], bool]:
    """A recogniser by file name: ``has_suffix(".onnx")``."""
    return lambda path: Path(path).suffix.lower() in suffixes
