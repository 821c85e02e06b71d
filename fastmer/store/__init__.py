"""The feature store: a directory of Parquet shards, one row per clip.

Layout::

    STORE/store.json               format version, fastmer version, extraction parameters
                                   and their hash, the representations (shape, dtype, channels)
    STORE/clips/part-00000.parquet metadata columns + one fixed-shape tensor column per
                                   representation (Arrow's canonical arrow.fixed_shape_tensor)
    STORE/errors/part-00000.parquet one row per clip that failed, with stage and reason

Shards are written atomically (temporary name, fsync, rename), so a crash never leaves a
partial shard. A store is resumable: a run killed at any moment and started again with
the same parameters skips the clips already in it (failed clips are retried) and ends
with the same rows; every row carries its clip's ``corpus_index`` and the reader sorts by
it, so rows come in corpus order whichever run wrote them (see :class:`StoreWriter`).
Every row also records its clip's ``fingerprint`` (annotation, frame files' names, sizes
and mtimes): a resumed run re-extracts the clips that changed and replaces their rows by
rewriting the shards that held them, atomically, so a uid is never stored twice
(:meth:`StoreWriter.supersede`, :func:`fastmer.store.resume.plan_resume`).
The files are plain Parquet: pyarrow, pandas, DuckDB or Ray Data read them without fastmer;
:func:`open` returns zero-copy torch tensors.
"""

from fastmer.store.reader import FeatureStore, open
from fastmer.store.writer import StoreWriter

__all__ = ["FeatureStore", "StoreWriter", "open"]
