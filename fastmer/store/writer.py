"""Writing the feature store: buffered rows, atomic Parquet shards."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fastmer import __version__
from fastmer.atomic import atomic_write, fsync_dir
from fastmer.outputs import OutputRefused, is_store
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


@dataclass(frozen=True)
class StoredClip:
    """What a resumed store holds for one clip (one corpus index).

    Attributes:
        uids: its rows' uids (one per view), or its error row's.
        fingerprint: the clip's :meth:`~fastmer.datasets.clip.Clip.fingerprint` when it was
            written; None in rows written before fingerprints were recorded.
        failed: whether it is an error row.
    """

    uids: tuple[str, ...]
    fingerprint: str | None
    failed: bool


# Through this module's name, so tests can replace it to count the store's file operations.
_atomic_write = atomic_write


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (the store's files; others use :mod:`fastmer.atomic`)."""
    _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically (a reader sees the whole shard or none of it).

    Dictionary encoding only for the metadata columns: tried on tensor columns, it made
    shards 50% larger and 8x slower to write (zstd of 4 clips' nine representations:
    8.5 MB in 250 ms with it, 5.6 MB in 31 ms without).
    """
    dictionary = [f.name for f in table.schema if not isinstance(f.type, pa.BaseExtensionType)]
    _atomic_write(path, lambda handle: pq.write_table(table, handle, compression="zstd", use_dictionary=dictionary))


def _is_temporary(path: Path) -> bool:
    """A temporary file of :func:`_atomic_write` (left behind only by a killed process)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()


def _is_fresh(path: Path) -> bool:
    """Nothing worth keeping: only empty shard folders and temporary files of a killed run."""
    for entry in path.iterdir():
        if entry.is_dir() and entry.name in (schema.CLIPS_DIR, schema.ERRORS_DIR):
            if not all(_is_temporary(child) for child in entry.iterdir()):
                return False
        elif not _is_temporary(entry):
            return False
    return True


def _shard_number(path: Path) -> int:
    """``part-00012.parquet`` -> 12."""
    return int(path.stem.split("-", 1)[1])


def _shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("part-*.parquet") if p.stem.split("-", 1)[1].isdigit())


def clips_table(rows: list[dict[str, Any]], tensors: dict[str, list[np.ndarray]],
                representations: dict[str, RepresentationSpec]) -> pa.Table:
    """Clip rows (the store's metadata columns) and their tensors as one Arrow table: a shard."""
    columns = {name: [r.get(name) for r in rows] for name in schema.CLIP_COLUMNS.names}
    table = pa.Table.from_pydict(columns, schema=schema.CLIP_COLUMNS)
    for name, spec in representations.items():
        field = schema.tensor_field(name, spec.shape, spec.dtype, spec.channels)
        stacked = np.stack(tensors[name]) if tensors[name] else np.empty((0, *spec.shape), spec.dtype)
        table = table.append_column(field, pa.FixedShapeTensorArray.from_numpy_ndarray(stacked))
    return table


class StoreWriter:
    """Append clips (metadata + tensors) and error rows; flush them as atomic shards.

    A store can be resumed: opening an existing store written with the same parameters
    (``params_hash``) and representations continues it. What its committed shards hold
    is in :attr:`committed` (the caller skips those clips), with each clip's fingerprint in
    :attr:`stored`; new shards are numbered after the existing ones, so a new shard never
    replaces an old one; temporary files left by a killed run are deleted. A store written
    with other parameters is refused (``overwrite`` replaces it). One writer at a time:
    the store folder is locked (``flock``) while open.

    Rows carry ``corpus_index``, the clip's position in the run's clip list (assigned in
    ``add`` order when absent; a replaced clip keeps its index, see below); the reader
    sorts by it, so rows come in corpus order whichever run wrote them. The rows of one
    clip (its views) share the index and are never split across shards, so a clip is
    committed whole or not at all.

    Failed clips: with ``retry_errors`` (the default) the error rows of the store being
    resumed are not committed: the caller processes those clips again, and their old error
    rows are removed before the first new shard is written, so a clip never ends up in
    both tables, and a transient failure is not permanent (:meth:`retain` keeps the error
    row of a clip the caller will not process). With ``retry_errors=False`` they are kept
    and count as committed.

    Replacing stored clips (:meth:`supersede`: a clip whose annotation or files changed,
    see the ``fingerprint`` column): the clip's index and uids are released, so the caller
    adds the clip again, under the same corpus index. The old rows go the way of retried
    error rows: they stay until this writer first writes something; then, before any new
    shard, store.json records the released clips as ``pending`` (index and uids), and each
    shard holding one of their rows is rewritten atomically without them (deleted when
    nothing else is left). The other rows of those shards are copied unchanged, and shards
    without such rows are not touched. So a uid is never in the store twice, and at every
    moment a killed run leaves each released clip either with its old rows (the next run
    sees the change again and redoes it) or with none, listed in ``pending``
    (:attr:`pending`): the next run writes it under its old index, so rows keep their
    corpus order. A clip leaves ``pending`` once its new rows (or error row) are written.

    Args:
        path: store directory; created. An existing directory that is not empty must
            hold a store with the same parameters (it is resumed) unless ``overwrite``
            (then it is replaced).
        representations: tensor columns to store, by name.
        params: extraction parameters, recorded with their hash in every row.
        overwrite: replace whatever is at ``path``.
        shard_size: clips per shard (rows of one clip are never split, so a shard can
            hold a few more rows than this).
        runtime: how the run was executed (device, workers...): recorded, not hashed.
        retry_errors: when resuming, process the clips of the old error rows again.

    Raises:
        FileExistsError: ``path`` holds something else than a store with these parameters.
        RuntimeError: another process is writing the store.

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
        retry_errors: bool = True,
    ) -> None:
        self.path = Path(path)
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
        self._next_index = 0
        self._uids: set[str] = set()
        #: corpus index -> uids of the rows already in the store (resumed stores).
        self.committed: dict[int, list[str]] = {}
        #: corpus index -> everything the resumed store holds (rows and error rows, retried or not).
        self.stored: dict[int, StoredClip] = {}
        #: corpus index -> uids of clips a killed run removed to write them again and did not
        #: write (store.json's ``pending``): not in the store; add them under this index.
        self.pending: dict[int, list[str]] = {}
        self._pending: dict[int, list[str]] = {}  # what store.json lists as pending
        self._stale: dict[int, list[str]] = {}  # rows to remove before the first new shard
        self._locations: dict[int, set[Path]] = {}  # corpus index -> shards holding its rows
        #: whether an existing store is being continued.
        self.resumed = False
        #: error rows of the resumed store whose clips are to be processed again.
        self.n_retried = 0
        self.n_clips = 0
        self.n_errors = 0
        self.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._lock_fd: int | None = None
        self._started = False  # store.json says incomplete since this writer began writing

        if self.path.exists() and not self.path.is_dir():
            raise OutputRefused(f"store {self.path} is a file, not a fastmer feature store; refusing to replace it "
                                "(choose another --out)")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if overwrite and not _is_fresh(self.path):
                if not is_store(self.path):
                    raise OutputRefused(f"store {self.path} is not empty and is not a fastmer feature store (no "
                                        f"{schema.META_FILE} of format {schema.FORMAT}); refusing to overwrite it even "
                                        "with --overwrite (choose another --out)")
                self._remove_store()
            elif not _is_fresh(self.path):
                self._resume(retry_errors)
            self._remove_temporaries()
            (self.path / schema.CLIPS_DIR).mkdir(exist_ok=True)
            (self.path / schema.ERRORS_DIR).mkdir(exist_ok=True)
            if not self.resumed:  # a resumed store is left as it is until something is written
                self._write_meta(complete=False)
        except BaseException:
            self._unlock()
            raise

    # --- opening ---------------------------------------------------------------------------
    def _lock(self) -> None:
        import fcntl  # noqa: PLC0415  (POSIX only)

        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"store {self.path} is being written by another process") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _remove_store(self) -> None:
        """What a store consists of (its metadata and shard folders), and nothing else a user put there."""
        for name in (schema.CLIPS_DIR, schema.ERRORS_DIR):
            if (self.path / name).is_dir() and not (self.path / name).is_symlink():
                shutil.rmtree(self.path / name)
        (self.path / schema.META_FILE).unlink(missing_ok=True)

    def _remove_temporaries(self) -> None:
        """Delete the temporary files a killed run left (we hold the lock: nobody writes them)."""
        for folder in (self.path, self.path / schema.CLIPS_DIR, self.path / schema.ERRORS_DIR):
            if folder.is_dir():
                for entry in folder.iterdir():
                    if _is_temporary(entry):
                        entry.unlink()

    def _refuse(self, why: str) -> FileExistsError:
        return FileExistsError(f"store {self.path} {why}: use --overwrite to replace it, or another --out")

    def _resume(self, retry_errors: bool) -> None:
        meta_file = self.path / schema.META_FILE
        if not meta_file.is_file():
            raise self._refuse(f"already exists and is not empty, and is not a fastmer feature store "
                               f"(no {schema.META_FILE})")
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError as exc:
            raise self._refuse(f"has an unreadable {schema.META_FILE} ({exc})") from exc
        if meta.get("format") != schema.FORMAT or meta.get("format_version") != schema.FORMAT_VERSION:
            raise self._refuse(f"has format {meta.get('format')!r} v{meta.get('format_version')} "
                               f"(this fastmer writes {schema.FORMAT} v{schema.FORMAT_VERSION}), so it cannot be resumed")
        if meta.get("params_hash") != self.params_hash:
            raise self._refuse(f"was extracted with other parameters (params_hash {meta.get('params_hash')}; "
                               f"this run: {self.params_hash}), so it cannot be resumed")
        if meta.get("representations") != self._representations_meta():
            raise self._refuse(f"holds other representations ({meta.get('representations')}; this run: "
                               f"{self._representations_meta()}), so it cannot be resumed")
        self.resumed = True
        self.created = meta.get("created", self.created)
        clip_shards = _shards(self.path / schema.CLIPS_DIR)
        error_shards = _shards(self.path / schema.ERRORS_DIR)
        rows: dict[int, list[tuple[str, str | None]]] = {}  # corpus index -> (uid, fingerprint) of its rows
        failed: dict[int, bool] = {}
        seen: dict[str, Path] = {}
        for shard in clip_shards + error_shards:
            errors = shard.parent.name == schema.ERRORS_DIR
            names = pq.read_schema(shard).names  # fingerprint: absent from stores written before it was recorded
            table = pq.read_table(shard, columns=[c for c in ("uid", "corpus_index", "fingerprint") if c in names])
            fingerprints = (table.column("fingerprint").to_pylist() if "fingerprint" in names
                            else [None] * table.num_rows)
            for uid, index, fingerprint in zip(table.column("uid").to_pylist(), table.column("corpus_index").to_pylist(),
                                               fingerprints, strict=True):
                if uid in seen:
                    raise ValueError(f"store {self.path} is corrupt: {uid} is stored twice ({seen[uid]} and {shard})")
                if failed.setdefault(index, errors) != errors:
                    raise ValueError(f"store {self.path} is corrupt: clip {index} has both rows and an error row "
                                     f"({uid} in {shard})")
                seen[uid] = shard
                rows.setdefault(index, []).append((uid, fingerprint or None))
                self._locations.setdefault(index, set()).add(shard)
            if errors:
                self.n_errors += table.num_rows
            else:
                self.n_clips += table.num_rows
        for index, clip_rows in rows.items():
            fingerprints = {fingerprint for _, fingerprint in clip_rows}
            # The rows of one clip are written together with one fingerprint; anything else compares unequal.
            fingerprint = fingerprints.pop() if len(fingerprints) == 1 else "?"
            clip = self.stored[index] = StoredClip(tuple(uid for uid, _ in clip_rows), fingerprint, failed[index])
            if clip.failed and retry_errors:
                self._stale[index] = list(clip.uids)
                self.n_retried += len(clip.uids)
            else:
                self._commit(index, list(clip.uids))
        for entry in meta.get("pending") or []:
            index = int(entry["corpus_index"])
            if index not in self.stored:  # else the killed run did not get to remove its rows
                self.pending[index] = list(entry["uids"])
        self._pending = {index: list(uids) for index, uids in self.pending.items()}
        self._next_index = max([*self.stored, *self.pending], default=-1) + 1
        self._shard = max((_shard_number(p) + 1 for p in clip_shards), default=0)
        self._error_shard = max((_shard_number(p) + 1 for p in error_shards), default=0)

    def _commit(self, index: int, uids: list[str]) -> None:
        self.committed[index] = uids
        self._uids.update(uids)

    # --- replacing stored clips --------------------------------------------------------------
    def supersede(self, index: int) -> None:
        """Release stored clip ``index`` (its rows, or its error row) to be written again.

        Its uids and index can be added again; its old rows are removed when this writer
        first writes something (see the class docstring), not before: a run that writes
        nothing leaves the store as it was.

        Raises:
            ValueError: ``index`` is not a committed clip of the store.
        """
        if index not in self.committed:
            raise ValueError(f"clip {index} is not in store {self.path}")
        uids = self.committed.pop(index)
        self._uids.difference_update(uids)
        self._stale[index] = uids

    def retain(self, index: int) -> None:
        """Keep the error row of failed clip ``index`` that ``retry_errors`` would remove
        (a clip the caller does not process again: it counts as committed).

        Raises:
            ValueError: ``index`` is not a failed clip about to be retried.
        """
        stored = self.stored.get(index)
        if stored is None or not stored.failed or index not in self._stale:
            raise ValueError(f"clip {index} of store {self.path} is not a failed clip being retried")
        uids = self._stale.pop(index)
        self.n_retried -= len(uids)
        self._commit(index, uids)

    def _drop_stale(self) -> None:
        """Remove the rows of released and retried clips: journal them as pending in
        store.json, then rewrite (or delete) each shard that holds some, atomically."""
        if not self._stale:
            return
        self._pending.update(self._stale)
        self._write_meta(complete=False)  # first: a clip whose rows are gone is listed with its index
        drop = pa.array(sorted({uid for uids in self._stale.values() for uid in uids}), pa.string())
        shards = sorted({shard for index in self._stale for shard in self._locations.pop(index, ())})
        for shard in shards:
            dropped = self._rewrite_without(shard, drop)
            if shard.parent.name == schema.ERRORS_DIR:
                self.n_errors -= dropped
            else:
                self.n_clips -= dropped
        for folder in sorted({shard.parent for shard in shards}):
            fsync_dir(folder)  # the deletions
        self._stale.clear()

    @staticmethod
    def _rewrite_without(shard: Path, uids: pa.Array) -> int:
        """Rewrite ``shard`` atomically without the rows of ``uids`` (delete it if none is
        left); the other rows are copied as they are. Returns the number of rows removed."""
        table = pq.read_table(shard)
        keep = pc.invert(pc.is_in(table.column("uid"), value_set=uids))
        n_keep = pc.sum(keep.cast(pa.int64())).as_py() or 0
        if n_keep == 0:
            shard.unlink()
        elif n_keep < table.num_rows:
            atomic_write_table(table.filter(keep), shard)
        return table.num_rows - n_keep

    # --- writing ---------------------------------------------------------------------------
    def _representations_meta(self) -> dict[str, Any]:
        return {name: {"shape": list(spec.shape), "dtype": spec.dtype, "channels": list(spec.channels)}
                for name, spec in self.representations.items()}

    def _write_meta(self, *, complete: bool) -> None:
        self._started = True
        meta = {
            "format": schema.FORMAT,
            "format_version": schema.FORMAT_VERSION,
            "fastmer_version": __version__,
            "created": self.created,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": complete,
            "n_clips": self.n_clips,
            "n_errors": self.n_errors,
            "params": self.params,
            "params_hash": self.params_hash,
            "runtime": self.runtime,
            "representations": self._representations_meta(),
            "pending": [{"corpus_index": index, "uids": uids} for index, uids in sorted(self._pending.items())],
        }
        atomic_write_bytes(self.path / schema.META_FILE, (json.dumps(meta, indent=2) + "\n").encode())

    def _claim(self, row: dict[str, Any]) -> int:
        """The row's corpus index (the next one when absent); a uid or clip stored before is an error."""
        uid = row.get("uid")
        index = row.get("corpus_index")
        index = self._next_index if index is None else int(index)
        if index in self.committed:
            raise ValueError(f"{uid}: clip {index} is already in the store ({', '.join(self.committed[index])})")
        if uid in self._uids:
            raise ValueError(f"{uid} is already in the store")
        self._uids.add(uid)
        self._next_index = max(self._next_index, index + 1)
        return index

    def add(self, row: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        """Buffer one row; its metadata keys are the store's clip columns.

        Rows with the same ``corpus_index`` (the views of one clip) are added one after
        the other and end up in the same shard.
        """
        arrays = {}
        for name, spec in self.representations.items():
            array = tensors[name]
            if tuple(array.shape) != spec.shape:
                raise ValueError(f"{row.get('uid')}: {name} has shape {array.shape}, expected {spec.shape}")
            arrays[name] = np.asarray(array, dtype=spec.dtype)
        same_clip = row.get("corpus_index") is not None and bool(self._rows) and \
            self._rows[-1]["corpus_index"] == row["corpus_index"]
        if len(self._rows) >= self.shard_size and not same_clip:
            self.flush()
        index = self._claim(row)
        for name, array in arrays.items():
            self._tensors[name].append(array)
        self._rows.append({**row, "corpus_index": index, "fastmer_version": __version__,
                           "params_hash": self.params_hash})

    def add_error(self, row: dict[str, Any]) -> None:
        """Buffer one error row (uid, corpus_index, dataset, subject, clip_id, source, stage, error)."""
        self._errors.append({**row, "corpus_index": self._claim(row)})

    def flush(self) -> None:
        """Write the buffered clips and errors as new shards."""
        if not self._rows and not self._errors:
            return
        if self._stale:  # before any new shard: a uid is never stored twice, a retried clip never in both tables
            self._drop_stale()  # (marks the store incomplete first)
        elif not self._started:  # a resumed store: incomplete from now on
            self._write_meta(complete=False)
        written = {row["corpus_index"] for row in self._rows} | {row["corpus_index"] for row in self._errors}
        if self._rows:
            table = clips_table(self._rows, self._tensors, self.representations)
            atomic_write_table(table, self.path / schema.CLIPS_DIR / f"part-{self._shard:05d}.parquet")
            self._shard += 1
            self.n_clips += len(self._rows)
            self._rows.clear()
            for chunks in self._tensors.values():
                chunks.clear()
        if self._errors:
            columns = {name: [r["corpus_index"] if name == "corpus_index" else str(r.get(name, ""))
                              for r in self._errors] for name in schema.ERROR_COLUMNS.names}
            table = pa.Table.from_pydict(columns, schema=schema.ERROR_COLUMNS)
            atomic_write_table(table, self.path / schema.ERRORS_DIR / f"part-{self._error_shard:05d}.parquet")
            self._error_shard += 1
            self.n_errors += len(self._errors)
            self._errors.clear()
        for index in written:
            self._pending.pop(index, None)
        self._write_meta(complete=False)

    def close(self) -> None:
        """Flush, mark the store complete and release it."""
        try:
            self.flush()
            self._stale.clear()  # nothing was written: the old rows (and error rows) stay
            self._write_meta(complete=True)
        finally:
            self._unlock()

    def abort(self) -> None:
        """Release the store without writing what is buffered (nor marking it complete)."""
        self._rows.clear()
        self._errors.clear()
        for chunks in self._tensors.values():
            chunks.clear()
        self._unlock()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        # On an exception keep what was written (already atomic) but leave it marked incomplete.
        if exc_type is None:
            self.close()
        else:
            try:
                self.flush()
            finally:
                self._unlock()

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            self._unlock()
