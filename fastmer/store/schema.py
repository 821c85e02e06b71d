"""Column layout of the store (one place for names shared by writer, reader and engines)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from fastmer.outputs import STORE_FORMAT, STORE_META_FILE

FORMAT = STORE_FORMAT  # what store.json names (recognised by fastmer.outputs.is_store)
# 2: face_angle and decoder columns; 3: corpus_index (resumable runs); 4: motion_curve and keyframes
# (then, additively: the fingerprint column and store.json's "pending"; older v4 stores are read and resumed)
FORMAT_VERSION = 4
META_FILE = STORE_META_FILE
CLIPS_DIR = "clips"
ERRORS_DIR = "errors"

# ``corpus_index``: the clip's position in the run's clip list. Shards written by a run and
# by the runs that resumed it are read back sorted by it, so rows come in corpus order
# whichever run wrote them (the views of one clip share it and keep their write order).
# ``fingerprint``: :meth:`fastmer.datasets.clip.Clip.fingerprint` when the row was written,
# ``"<annotation digest>:<source digest>"``; a resumed run re-extracts a clip whose
# fingerprint changed. Added within format v4 (null, or absent, in rows written before):
# readers take shards with and without it.
CLIP_COLUMNS = pa.schema(
    [
        ("uid", pa.string()),
        ("corpus_index", pa.int64()),
        ("dataset", pa.string()),
        ("subject", pa.string()),
        ("clip_id", pa.string()),
        ("view", pa.string()),
        ("onset", pa.int32()),
        ("apex", pa.int32()),
        ("offset", pa.int32()),
        ("apex_source", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("action_units", pa.string()),
        ("face_box", pa.list_(pa.int32(), 4)),
        ("face_angle", pa.float32()),
        ("decoder", pa.string()),
        ("source", pa.string()),
        ("motion_curve", pa.list_(pa.float32())),
        ("fastmer_version", pa.string()),
        ("params_hash", pa.string()),
        ("fingerprint", pa.string()),
    ]
)

# ``motion_curve``: the view's motion-intensity curve (the apex estimator's, one value per
# frame onset..offset; :func:`fastmer.phases.spotting.motion_curve`), for spotting and plots.
# ``keyframes``: the uint8 face crops at onset, apex and offset, a tensor column stored with
# every run whatever representations it asks for (plots, apex-frame models).
KEYFRAMES = "keyframes"
KEYFRAME_CHANNELS = ("onset", "apex", "offset")

ERROR_COLUMNS = pa.schema(
    [
        ("uid", pa.string()),
        ("corpus_index", pa.int64()),
        ("dataset", pa.string()),
        ("subject", pa.string()),
        ("clip_id", pa.string()),
        ("source", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("fingerprint", pa.string()),
    ]
)

DTYPES = {"float32": pa.float32(), "float16": pa.float16(), "uint8": pa.uint8()}


def params_hash(params: dict[str, Any]) -> str:
    """Stable short hash of extraction parameters (sorted-key JSON, sha256)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def tensor_field(name: str, shape: tuple[int, ...], dtype: str, channels: tuple[str, ...]) -> pa.Field:
    """A fixed-shape tensor column; its channel names travel in the field metadata."""
    return pa.field(
        name, pa.fixed_shape_tensor(DTYPES[dtype], list(shape)), metadata={"channels": json.dumps(list(channels))}
    )
