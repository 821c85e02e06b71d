"""Writing the feature store: buffered rows, atomic Parquet shards."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fastmer import __version__
from fastmer.store import schema


@dataclass(frozen=True)
class RepresentationSpec:
    """Shape (without the clip axis), stored dtype and channel names of one tensor column."""

    shape: tuple[int, ...]
    dtype: str
    channels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.dtype not in schema.DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(schema.DTYPES)}, got {self.dtype!r}")
        if len(self.channels) != self.shape[0]:
            raise ValueError(f"{len(self.channels)} channel names for shape {self.shape}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created 0600; finished files get the usual permissions.
_FILE_MODE = 0o666 & ~_umask()


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` via a temporary file in the same folder, fsync, rename, fsync the folder.

    A reader (or a crash) sees the old file or the complete new one, never a partial one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically (a reader sees the whole shard or none of it)."""
    _atomic_write(path, lambda handle: pq.write_table(table, handle, compression="zstd"))


class StoreWriter:
    """Append clips (metadata + tensors) and error rows; flush them as atomic shards.

    Args:
        path: store directory; created. An existing non-empty directory is an error
            unless ``overwrite`` (then it is replaced).
        representations: tensor columns to store, by name.
        params: extraction parameters, recorded with their hash in every row.
        shard_size: clips per shard.
        runtime: how the run was executed (device, workers...): recorded, not hashed.

    Example:
        >>> w = StoreWriter(tmp / "store", {"x": RepresentationSpec((1, 2, 2), "float32", ("a",))}, {})
        >>> w.add({...metadata...}, {"x": np.zeros((1, 2, 2), np.float32)}); w.close()
    """

    def __init__(
        self,
        path: str | Path,
        representations: dict[str, RepresentationSpec],
        params: dict[str, Any],
        *,
        overwrite: bool = False,
        shard_size: int = 256,
        runtime: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            if not overwrite:
                raise FileExistsError(f"store {self.path} already exists and is not empty (use --overwrite to replace it)")
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        (self.path / schema.CLIPS_DIR).mkdir(parents=True, exist_ok=True)
        (self.path / schema.ERRORS_DIR).mkdir(parents=True, exist_ok=True)
        self.representations = dict(representations)
        self.params = dict(params)
        self.params_hash = schema.params_hash(self.params)
        self.runtime = dict(runtime or {})
        self.shard_size = shard_size
        self._rows: list[dict[str, Any]] = []
        self._tensors: dict[str, list[np.ndarray]] = {name: [] for name in self.representations}
        self._errors: list[dict[str, Any]] = []
        self._shard = 0
        self._error_shard = 0
        self.n_clips = 0
        self.n_errors = 0
        self.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._write_meta(complete=False)

    def _write_meta(self, *, complete: bool) -> None:
        meta = {
            "format": schema.FORMAT,
            "format_version": schema.FORMAT_VERSION,
            "fastmer_version": __version__,
            "created": self.created,
            "complete": complete,
            "n_clips": self.n_clips,
            "n_errors": self.n_errors,
            "params": self.params,
            "params_hash": self.params_hash,
            "runtime": self.runtime,
            "representations": {
                name: {"shape": list(spec.shape), "dtype": spec.dtype, "channels": list(spec.channels)}
                for name, spec in self.representations.items()
            },
        }
        atomic_write_bytes(self.path / schema.META_FILE, (json.dumps(meta, indent=2) + "\n").encode())

    def add(self, row: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        """Buffer one clip; its metadata keys are the store's clip columns."""
        for name, spec in self.representations.items():
            array = tensors[name]
            if tuple(array.shape) != spec.shape:
                raise ValueError(f"{row.get('uid')}: {name} has shape {array.shape}, expected {spec.shape}")
            self._tensors[name].append(np.asarray(array, dtype=spec.dtype))
        self._rows.append({**row, "fastmer_version": __version__, "params_hash": self.params_hash})
        if len(self._rows) >= self.shard_size:
            self.flush()

    def add_error(self, row: dict[str, Any]) -> None:
        """Buffer one error row (uid, dataset, subject, clip_id, source, stage, error)."""
        self._errors.append(row)

    def flush(self) -> None:
        """Write the buffered clips and errors as new shards."""
        if self._rows:
            columns = {name: [r.get(name) for r in self._rows] for name in schema.CLIP_COLUMNS.names}
            table = pa.Table.from_pydict(columns, schema=schema.CLIP_COLUMNS)
            for name, spec in self.representations.items():
                field = schema.tensor_field(name, spec.shape, spec.dtype, spec.channels)
                tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.stack(self._tensors[name]))
                table = table.append_column(field, tensor)
            atomic_write_table(table, self.path / schema.CLIPS_DIR / f"part-{self._shard:05d}.parquet")
            self._shard += 1
            self.n_clips += len(self._rows)
            self._rows.clear()
            for chunks in self._tensors.values():
                chunks.clear()
        if self._errors:
            columns = {name: [str(r.get(name, "")) for r in self._errors] for name in schema.ERROR_COLUMNS.names}
            table = pa.Table.from_pydict(columns, schema=schema.ERROR_COLUMNS)
            atomic_write_table(table, self.path / schema.ERRORS_DIR / f"part-{self._error_shard:05d}.parquet")
            self._error_shard += 1
            self.n_errors += len(self._errors)
            self._errors.clear()
        self._write_meta(complete=False)

    def close(self) -> None:
        """Flush and mark the store complete."""
        self.flush()
        self._write_meta(complete=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        # On an exception keep what was written (already atomic) but leave it marked incomplete.
        if exc_type is None:
            self.close()
        else:
            self.flush()
