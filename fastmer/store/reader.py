"""Reading the feature store into Arrow tables and zero-copy torch tensors."""

from __future__ import annotations

import builtins
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from fastmer.store import schema


class FeatureStore:
    """An opened feature store (see :mod:`fastmer.store`).

    Attributes:
        path: the store directory.
        meta: contents of ``store.json``.
        table: all clip rows (metadata and tensor columns) as one Arrow table.
        errors: the error rows.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / schema.META_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(f"{self.path} is not a fastmer feature store (no {schema.META_FILE})")
        with builtins.open(meta_file) as handle:
            self.meta: dict[str, Any] = json.load(handle)
        if self.meta.get("format") != schema.FORMAT or self.meta.get("format_version") != schema.FORMAT_VERSION:
            raise ValueError(
                f"{meta_file}: unsupported store format {self.meta.get('format')!r} "
                f"v{self.meta.get('format_version')} (this fastmer reads {schema.FORMAT} v{schema.FORMAT_VERSION})"
            )
        self.table = self._read(schema.CLIPS_DIR, self._empty_clips_schema())
        self.errors = self._read(schema.ERRORS_DIR, schema.ERROR_COLUMNS)

    @classmethod
    def from_table(cls, table: pa.Table, meta: dict[str, Any], path: str | Path) -> FeatureStore:
        """A store held in memory: clip rows (one shard's, or features computed on the fly)
        with the ``store.json`` contents that describe them; ``path`` names it in messages."""
        store = cls.__new__(cls)
        store.path, store.meta, store.table = Path(path), meta, table
        store.errors = schema.ERROR_COLUMNS.empty_table()
        return store

    def _empty_clips_schema(self) -> pa.Schema:
        fields = list(schema.CLIP_COLUMNS)
        for name, spec in self.representations.items():
            fields.append(schema.tensor_field(name, tuple(spec["shape"]), spec["dtype"], tuple(spec["channels"])))
        return pa.schema(fields)

    def _read(self, folder: str, empty: pa.Schema) -> pa.Table:
        # Sorted shard names give the write order; temporary files start with '.'.
        files = sorted((self.path / folder).glob("part-*.parquet"))
        if not files:
            return empty.empty_table()
        # Shards written before a column was added (``fingerprint``) lack it: null there.
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
        # Corpus order whichever run (first or resumed) wrote a row: a stable sort on the
        # clip's corpus index keeps the views of one clip in their order. An uninterrupted
        # run writes in corpus order already: nothing is copied (tensors stay zero-copy).
        index = table.column("corpus_index").to_numpy()
        if np.any(index[1:] < index[:-1]):
            table = table.take(pc.sort_indices(table, sort_keys=[("corpus_index", "ascending")]))
        return table

    @property
    def representations(self) -> dict[str, dict[str, Any]]:
        return self.meta["representations"]

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> list[Any]:
        """A metadata column as a Python list."""
        return self.table.column(name).to_pylist()

    def channels(self, name: str) -> tuple[str, ...]:
        return tuple(self._spec(name)["channels"])

    def _spec(self, name: str) -> dict[str, Any]:
        if name not in self.representations:
            raise KeyError(f"store {self.path} has no representation {name!r}; it has: {', '.join(self.representations)}")
        return self.representations[name]

    def numpy(self, name: str) -> np.ndarray:
        """Representation ``name`` as ``(N, *shape)``; zero-copy when the store has one shard."""
        spec = self._spec(name)
        column = self.table.column(name)
        if column.num_chunks == 0 or len(self) == 0:
            return np.empty((0, *spec["shape"]), dtype=spec["dtype"])
        arrays = [chunk.to_numpy_ndarray() for chunk in column.chunks]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def tensor(self, name: str, channels: tuple[str, ...] | None = None) -> torch.Tensor:
        """Representation ``name`` as a ``(N, C, H, W)`` torch tensor, optionally a channel subset.

        Without ``channels`` and with a single shard the tensor shares Arrow's memory
        (zero-copy); treat it as read-only.
        """
        array = self.numpy(name)
        if channels is not None:
            names = self.channels(name)
            unknown = [c for c in channels if c not in names]
            if unknown:
                raise KeyError(f"{name} has no channel(s) {unknown}; it has {list(names)}")
            array = array[:, [names.index(c) for c in channels]]
        if array.flags.writeable:
            return torch.from_numpy(array)
        # Zero-copy view of Arrow's (read-only) buffer: treat it as read-only, clone()
        # before in-place edits. torch only warns about the flag, which we know.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(array)


def open(path: str | Path) -> FeatureStore:  # noqa: A001  (mirrors builtins.open on purpose)
    """Open the feature store at ``path``."""
    return FeatureStore(path)
