"""Feature stores from features computed elsewhere: a manifest of per-clip images or arrays.

Many labs have their inputs already (the MEGC 2019 composite's 28x28 STSTNet u/v/strain
images, made in MATLAB). :func:`import_features` writes them as one tensor column of an
ordinary feature store (:class:`~fastmer.store.writer.StoreWriter`), so ``fastmer train``,
``infer`` and ``viz`` use them under fastmer's protocols unchanged.

Manifest: a CSV (``.csv``) or TSV (``.tsv``) file, one row per clip, read by the manifest
loader's reader (:func:`fastmer.datasets.manifest.read_table`; column names matched ignoring
case and punctuation, extra columns ignored). Columns:

* ``subject``, ``clip`` (the clip id; ``clip_id`` accepted), ``labels`` (``label``
  accepted; several emotion words separated by ``+``, ``,``, ``;`` or ``/`` as
  :func:`~fastmer.datasets.labels.split_labels` does), ``file``: path(s) relative to the
  manifest's folder (or absolute); several separated by ``;`` are stacked as channels in
  that order.
* optional: ``dataset`` (default: the ``dataset`` argument), ``action_units``, ``onset``,
  ``apex``, ``offset`` (whole numbers or blank), ``view`` (``full``, ``left``, ``right``).

Files: ``.npy`` arrays of shape ``(H, W)`` or ``(C, H, W)`` (``allow_pickle=False``), and
images read by OpenCV unchanged (PNG, JPEG, BMP, TIFF): grey -> 1 channel, colour -> 3
channels in RGB order, 16-bit and float images keep their values. Stored values are
``raw * scale + offset`` (computed in float64, then cast to the stored dtype).

A row whose file is missing, unreadable, of another shape than the others, or holds NaN or
infinity becomes an error row of the store (stage ``import``) naming the manifest row and
the file; the others are imported. Rows that make no clip (blank subject, clip or file,
unreadable frame numbers) are skipped and told in the load report, like the manifest loader
does.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastmer.datasets.clip import VIEWS, Clip
from fastmer.datasets.common import AnnotationTable, SheetRow, cell_text, match_columns, require_columns, row_number
from fastmer.datasets.labels import split_labels
from fastmer.datasets.manifest import read_table
from fastmer.datasets.report import ClipList, Defect, LoadReport
from fastmer.hub import sha256_of

__all__ = ["IMAGE_SUFFIXES", "IMPORT_DTYPES", "ImportSummary", "import_features", "load_import_manifest",
           "models_reading", "read_source"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Image files read with OpenCV (``IMREAD_UNCHANGED``)."""
ARRAY_SUFFIXES = (".npy",)
IMPORT_DTYPES = ("float32", "float16")
"""Stored precisions (the store's float dtypes)."""
MANIFEST_SUFFIXES = (".csv", ".tsv")
REQUIRED_COLUMNS = ("subject", "clip", "labels", "file")
COLUMNS = (*REQUIRED_COLUMNS, "dataset", "action_units", "onset", "apex", "offset", "view")
ALIASES = {"clip_id": "clip", "label": "labels"}  # the manifest loader's spellings, also accepted
COLUMN_OF = {"subject": "subject", "clip": "file", "view": "view", "onset": "onset", "apex": "apex",
             "offset": "offset", "labels": "labels", "action_units": "action_units"}
RESIZE_METHOD = "area when shrinking, bilinear (half-pixel centres) when enlarging: fastmer.ops.resample.resize"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class RowError(ValueError):
    """A clip's files cannot be imported (the message names the file and the problem)."""


@dataclass
class ImportSummary:
    """What :func:`import_features` did.

    Attributes:
        store: the store written.
        n_clips: clips the manifest lists (rows skipped by the loader not counted).
        n_ok: clips written in this run; n_failed: error rows written in this run;
        n_skipped: clips already in the resumed store (unchanged), not read again.
        shape: the stored ``(C, H, W)``; channels: their names.
        failures: ``(uid, error)`` of each error row written.
        report: the manifest's load report (rows skipped, duplicates, annotation defects).
        models: the registered models that can train on the store as it is.
        seconds: wall time.
    """

    store: Path
    n_clips: int
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    shape: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    failures: list[tuple[str, str]] = field(default_factory=list)
    report: LoadReport | None = None
    models: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_excluded(self) -> int:
        """Manifest rows that made no clip (see ``report.details``)."""
        return sum(len(v) for v in self.report.excluded.values()) if self.report else 0


# --- the manifest ----------------------------------------------------------------------------
def _text(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return cell_text(value)


def _with_aliases(rows: list[SheetRow]) -> list[SheetRow]:
    """Rename ``clip_id``/``label`` headers to ``clip``/``labels`` when the latter are absent."""
    if not rows:
        return rows
    header = set(rows[0])
    renames = {old: new for old, new in ALIASES.items() if old in header and new not in header}
    if not renames:
        return rows
    return [SheetRow(((renames.get(k, k), v) for k, v in row.items()), row_number(row)) for row in rows]


def _annotation_defects(clip: Clip) -> tuple[str, ...]:
    """The defects worth telling for an import: only inconsistencies of values given (onset,
    apex and offset are optional metadata here; no frames are read)."""
    notes = [n for n in clip.notes if n == Defect.DUPLICATE_ROW.value]
    if clip.onset is not None and clip.offset is not None and clip.onset >= clip.offset:
        notes.append(Defect.ONSET_OFFSET_INVALID.value)
    if clip.apex is not None and clip.onset is not None and clip.apex == clip.onset:
        notes.append(Defect.ONSET_EQUALS_APEX.value)
    elif clip.apex is not None and clip.onset is not None and clip.offset is not None \
            and not clip.onset < clip.apex <= clip.offset:
        notes.append(Defect.APEX_OUTSIDE.value)
    return tuple(notes)


def load_import_manifest(manifest: str | Path, dataset: str = "imported") -> tuple[ClipList, dict[str, int]]:
    """The clips of an import manifest (see the module docstring), each clip once.

    Each clip's ``frame_paths`` are its files in stacking order (``source``: them joined by
    ``;``), so :meth:`Clip.fingerprint` sees a rewritten file. Rows that make no clip are
    skipped and told in ``.report.details`` with the manifest's line and the column; a row
    repeating an earlier one (same subject, view and files) is dropped and told; a clip id
    used twice within a subject (other files) is suffixed ``_2`` and told.

    Args:
        manifest: the ``.csv`` or ``.tsv`` file.
        dataset: the dataset of rows without a ``dataset`` cell.

    Returns:
        The clips (with the load report) and each clip's manifest line by uid.

    Raises:
        FileNotFoundError: no manifest; ValueError: not CSV/TSV, unreadable, or a required
        column missing (naming the file and the columns).

    Example:
        >>> clips, lines = load_import_manifest("features/manifest.csv")
        >>> clips[0].uid, clips[0].frame_paths, lines[clips[0].uid]
        ('imported/s01/EP01', ('.../features/s01/EP01.npy',), 2)
    """
    path = Path(manifest)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found")
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ValueError(f"manifest {path}: unsupported format {path.suffix!r} (use .csv or .tsv)")
    if not dataset or "/" in dataset:
        raise ValueError(f"dataset must be a non-empty name without '/', got {dataset!r}")
    rows = _with_aliases(match_columns(read_table(path), (*COLUMNS, *ALIASES)))
    rows = match_columns(rows, COLUMNS)
    if not rows:
        raise ValueError(f"manifest {path} lists no clip")
    require_columns(rows, REQUIRED_COLUMNS, path)
    report = LoadReport(dataset, rows=len(rows))
    table = AnnotationTable(path, report, COLUMN_OF, segments=False)
    lines: dict[str, int] = {}
    for row in rows:
        cells = {name: _text(row.get(name)) for name in ("subject", "clip", "file", "dataset", "view")}
        blank = next((name for name in ("subject", "clip", "file") if not cells[name]), None)
        if blank is not None:
            table.skip(row, "row_unusable", blank, "blank")
            continue
        view = cells["view"].lower() or "full"
        if view not in VIEWS:
            table.skip(row, "invalid_view", "view", f"{cells['view']!r} is not one of {', '.join(VIEWS)}")
            continue
        names = [part.strip() for part in cells["file"].split(";")]
        if not all(names):
            table.skip(row, "row_unusable", "file", f"{cells['file']!r} has an empty file name between ';'")
            continue
        frames = table.frames(row, ("onset", "apex", "offset"), allow_zero=True, minus_one_blank=False)
        if frames is None:
            continue
        row_dataset = cells["dataset"] or dataset
        subject = cells["subject"]
        if subject.startswith(f"{row_dataset}/"):
            subject = subject[len(row_dataset) + 1:]
        files = []
        for name in names:
            file = Path(name).expanduser()
            files.append(str(file if file.is_absolute() else path.parent / file))
        onset, apex, offset = frames
        clip = Clip(dataset=row_dataset, subject=f"{row_dataset}/{subject}", clip_id=cells["clip"],
                    source=";".join(files), frame_numbers=(), frame_paths=tuple(files), onset=onset, apex=apex,
                    offset=offset, labels=split_labels(_text(row.get("labels"))),
                    action_units=_text(row.get("action_units")), view=view)
        kept = table.add(row, clip)
        if kept is None:
            continue
        if kept.clip_id != clip.clip_id:
            report.detail(f"{table.where(row, 'clip')}: clip {clip.clip_id!r} of subject {subject!r} is listed "
                          f"before with other files; stored as {kept.clip_id!r}")
        lines[kept.uid] = row_number(row)
    # note_defects (frames, folders) does not apply to files: keep the import's own defects.
    clips = [dataclasses.replace(clip, notes=_annotation_defects(clip)) for clip in table.clips]
    report.defects = {}
    for clip in clips:
        for note in clip.notes:
            report.note(note, clip.uid)
    return ClipList(clips, report), lines


# --- the files -------------------------------------------------------------------------------
def read_source(path: str | Path) -> np.ndarray:
    """One file as a ``(C, H, W)`` array of its own dtype.

    ``.npy``: ``(H, W)`` -> one channel, ``(C, H, W)`` as is (``allow_pickle=False``);
    images (:data:`IMAGE_SUFFIXES`) through OpenCV, unchanged depth: grey -> 1 channel,
    colour -> 3 channels in RGB order (OpenCV reads BGR).

    Raises:
        RowError: missing, unsupported, unreadable, of another rank, not numeric, or
        holding NaN or infinity; the message names the file.

    Example:
        >>> read_source("s01/EP01_u.png").shape
        (1, 28, 28)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*ARRAY_SUFFIXES, *IMAGE_SUFFIXES):
        raise RowError(f"{path}: unsupported file type {suffix or '(none)'!r} "
                       f"(use {', '.join((*ARRAY_SUFFIXES, *IMAGE_SUFFIXES))})")
    if not path.is_file():
        raise RowError(f"{path}: file not found")
    if suffix in ARRAY_SUFFIXES:
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError, OSError, EOFError... for bad files
            raise RowError(f"{path}: not a readable .npy array ({exc})") from exc
        if not isinstance(array, np.ndarray):
            raise RowError(f"{path}: holds several arrays (an .npz archive?), not one .npy array")
        if array.ndim not in (2, 3):
            raise RowError(f"{path}: array of shape {tuple(array.shape)}; expected (H, W) or (C, H, W)")
        array = array[None] if array.ndim == 2 else array
    else:
        import cv2  # noqa: PLC0415

        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise RowError(f"{path}: not a readable image (OpenCV cannot decode it)")
        if image.ndim == 2:
            array = image[None]
        elif image.ndim == 3 and image.shape[2] == 1:
            array = image.transpose(2, 0, 1)
        elif image.ndim == 3 and image.shape[2] == 3:
            array = image[:, :, ::-1].transpose(2, 0, 1)  # BGR -> RGB
        else:
            raise RowError(f"{path}: image of shape {tuple(image.shape)} ({image.shape[-1]} channels, an alpha "
                           "channel?); save it as grey or RGB")
    if array.dtype.kind not in "biuf":
        raise RowError(f"{path}: values of type {array.dtype} are not real numbers")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise RowError(f"{path}: {bad} value(s) are NaN or infinite")
    if min(array.shape) == 0:
        raise RowError(f"{path}: empty array of shape {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def _read_clip(clip: Clip) -> np.ndarray:
    """A clip's files stacked as channels, in the manifest's order (float64; RowError when
    one cannot be read or their heights and widths differ)."""
    arrays = [read_source(file) for file in clip.frame_paths]
    sizes = {tuple(a.shape[1:]) for a in arrays}
    if len(sizes) > 1:
        shapes = ", ".join(f"{Path(f).name} {tuple(a.shape)}" for f, a in zip(clip.frame_paths, arrays, strict=True))
        raise RowError(f"its files differ in height and width ({shapes}); they cannot be stacked as channels")
    return np.concatenate([a.astype(np.float64) for a in arrays], axis=0)


def _to_stored(raw: np.ndarray, size: int | None, scale: float, offset: float, dtype: str) -> np.ndarray:
    """``resize(raw) * scale + offset`` in float64, cast to ``dtype`` (the affine map commutes
    with the resampling, whose weights sum to 1)."""
    values = raw
    if size is not None and raw.shape[1:] != (size, size):
        import torch  # noqa: PLC0415

        from fastmer.ops.resample import resize  # noqa: PLC0415

        values = resize(torch.from_numpy(raw), size, size).numpy()
    stored = (values * scale + offset).astype(dtype)
    if not np.isfinite(stored).all():
        raise RowError(f"values * {scale} + {offset} exceed the range of {dtype}")
    return stored


# --- the models -----------------------------------------------------------------------------
def models_reading(name: str, channels: tuple[str, ...]) -> list[str]:
    """Registered models whose input is representation ``name`` alone and whose channels are
    all among ``channels`` (what ``fastmer train -m MODEL`` can use as it is)."""
    from fastmer.models import MODELS  # noqa: PLC0415

    return [model for model, entry in MODELS.items()
            if entry.input.representations == (name,) and set(entry.input.channels) <= set(channels)]


def _check_name(name: str, channels: tuple[str, ...] | None) -> None:
    """A valid column name; an extraction representation's name only with its channel names,
    when a model reads them (the tensors then stand for that representation)."""
    from fastmer.motion.representations import REPRESENTATIONS  # noqa: PLC0415
    from fastmer.store.schema import KEYFRAMES  # noqa: PLC0415

    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"name {name!r}: use letters, digits and '_' (starting with a letter)")
    if name == KEYFRAMES:
        raise ValueError(f"name {name!r} is reserved for extracted key-frame crops; choose another name")
    if name not in REPRESENTATIONS or channels is None:
        return
    unknown = [c for c in channels if c not in REPRESENTATIONS[name]]
    if unknown:
        raise ValueError(f"name {name!r} is fastmer's representation of channels {', '.join(REPRESENTATIONS[name])}; "
                         f"channel(s) {', '.join(unknown)} are not among them (choose another name, or name the "
                         "channels as fastmer does)")
    if not models_reading(name, channels):
        from fastmer.models import MODELS  # noqa: PLC0415

        wants = [f"{m} reads {','.join(e.input.channels)}" for m, e in MODELS.items() if e.input.representations == (name,)]
        raise ValueError(f"no model reads {name} channels {','.join(channels)}"
                         + (f" ({'; '.join(wants)})" if wants else f" (no model reads {name} alone)")
                         + "; import under another name, or with the channels a model reads")


def _parse_channels(channels: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    if channels is None:
        return None
    names = tuple(c.strip() for c in channels.split(",")) if isinstance(channels, str) else tuple(channels)
    if not names or not all(isinstance(c, str) and c for c in names):
        raise ValueError(f"channels {channels!r}: give non-empty names separated by ','")
    if len(set(names)) != len(names):
        raise ValueError(f"channels {channels!r}: a name is repeated")
    return names


# --- the import ---------------------------------------------------------------------------
def import_features(
    manifest: str | Path,
    out: str | Path,
    *,
    name: str = "imported",
    channels: str | tuple[str, ...] | None = None,
    dataset: str = "imported",
    size: int | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    dtype: str = "float32",
    overwrite: bool = False,
    shard_size: int = 256,
) -> ImportSummary:
    """Write the clips of ``manifest`` as representation ``name`` of the feature store ``out``.

    Every clip's files are stacked as channels: ``(C, H, W)``, the same for every clip (the
    shape most clips have; a clip of another shape is an error row). With ``size`` each clip
    is resampled to ``(C, size, size)`` (area when shrinking, bilinear when enlarging), and
    clips may then differ in height and width. Stored values are ``raw * scale + offset``.

    The store's params record the import (``source: "import"``, the manifest's sha256,
    representation, channels, source shape(s), resize, scale, offset, dtype), so its params
    hash differs from any extraction's; store.json's runtime names the manifest file. Running
    the same import again resumes it as ``fastmer extract`` does (the writer's semantics):
    stored clips are skipped, failed ones retried, clips whose files changed replaced; an
    edited manifest is another import (refused, ``overwrite`` replaces the store).

    Args:
        manifest: ``.csv``/``.tsv`` file (module docstring).
        out: the store folder; an existing folder must be empty or a fastmer store.
        name: the tensor column. A fastmer representation's name (``flow_onset_apex``) only
            with channel names of that representation that a registered model reads, so its
            models train on the import (``fastmer train -m ststnet``).
        channels: ``C`` channel names (``"u,v,strain"``, or a tuple) [default: that
            representation's names when ``name`` is one and ``C`` matches, else ``c0``...].
        dataset: the dataset of rows without one (subjects are ``"<dataset>/<subject>"``).
        size: resample to ``size x size`` (None: keep the files' shape).
        scale, offset: stored = raw * scale + offset (``scale=1/255`` maps 8-bit images to [0, 1]).
        dtype: ``"float32"`` or ``"float16"``.
        overwrite: replace an existing store at ``out`` (never anything else).
        shard_size: clips per Parquet shard.

    Returns:
        :class:`ImportSummary`.

    Raises:
        FileNotFoundError, ValueError: a bad argument or manifest, no readable clip, channel
        names that do not match the data (naming what is wrong); FileExistsError
        (:class:`~fastmer.outputs.OutputRefused`): ``out`` is an input, or not a store, or
        a store of another import.

    Example:
        >>> s = import_features("megc/manifest.csv", "megc/store", name="flow_onset_apex",
        ...                     channels="u,v,strain", scale=1 / 255)
        >>> s.shape, s.models
        ((3, 28, 28), ['ststnet', 'offapexnet'])
    """
    from fastmer.motion.representations import REPRESENTATIONS  # noqa: PLC0415
    from fastmer.outputs import check_not_an_input  # noqa: PLC0415
    from fastmer.store.resume import plan_resume  # noqa: PLC0415  (the same resume rules as extraction)
    from fastmer.store.writer import RepresentationSpec, StoreWriter  # noqa: PLC0415

    begin = time.perf_counter()
    names = _parse_channels(channels)
    _check_name(name, names)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    for label, value in (("scale", scale), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{label} must be a finite number, got {value!r}")
    if scale == 0:
        raise ValueError("scale must not be 0 (every stored value would be the offset)")
    if dtype not in IMPORT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(IMPORT_DTYPES)}, got {dtype!r}")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    manifest = Path(manifest)
    clips, lines = load_import_manifest(manifest, dataset)
    check_not_an_input(out, [manifest, *(file for clip in clips for file in clip.frame_paths)])

    def where(clip: Clip) -> str:
        return f"{manifest}, row {lines[clip.uid]}, column file"

    # First pass: read every clip once for its shape (and its errors). The files are read
    # again when written (what is stored is what is on disk then), one clip in memory at a time.
    fingerprints = {clip.uid: clip.fingerprint() for clip in clips}  # before reading: a change shows next run
    shapes: dict[str, tuple[int, ...]] = {}
    errors: dict[str, str] = {}
    for clip in clips:
        try:
            shapes[clip.uid] = tuple(_read_clip(clip).shape)
        except RowError as exc:
            errors[clip.uid] = f"{where(clip)}: {exc}"
    if not shapes:
        first = "; ".join(list(errors.values())[:3])
        raise ValueError(f"manifest {manifest}: no clip could be read" + (f" ({first})" if first else ""))
    # Without resizing every clip has the shape most have; with it, the channel count.
    key = (lambda s: s[:1]) if size is not None else (lambda s: s)
    common = Counter(key(s) for s in shapes.values()).most_common(1)[0][0]
    example = next(uid for uid, s in shapes.items() if key(s) == common)
    for clip in clips:
        shape = shapes.get(clip.uid)
        if shape is not None and key(shape) != common:
            what = f"{shape[0]} channels" if size is not None else f"shape {shape}"
            errors[clip.uid] = (f"{where(clip)}: {clip.source}: {what}; the other clips have "
                                f"{f'{common[0]} channels' if size is not None else f'shape {common}'} "
                                f"(e.g. {example}, row {lines[example]})")
            del shapes[clip.uid]
    n_channels = common[0]
    if names is None:
        names = REPRESENTATIONS[name] if len(REPRESENTATIONS.get(name, ())) == n_channels \
            else tuple(f"c{i}" for i in range(n_channels))
        _check_name(name, names)
    if len(names) != n_channels:
        source = next(c.source for c in clips if c.uid == example)
        raise ValueError(f"channels {','.join(names)} name {len(names)} channel(s), but the clips have {n_channels} "
                         f"(e.g. {example}, row {lines[example]}: {source})")
    source_shapes = sorted({s for s in shapes.values()})
    stored_shape = (n_channels, size, size) if size is not None else tuple(common)
    params = {
        "source": "import",
        "manifest_sha256": sha256_of(manifest),
        "dataset": dataset,
        "representation": name,
        "channels": list(names),
        "source_shape": list(source_shapes[0]) if len(source_shapes) == 1 else [list(s) for s in source_shapes],
        "resize": None if size is None else {"size": size, "method": RESIZE_METHOD},
        "scale": float(scale),
        "offset": float(offset),
        "dtype": dtype,
        "readers": {"npy": "numpy.load(allow_pickle=False)", "images": "cv2.imread(IMREAD_UNCHANGED), colour as RGB"},
    }
    runtime = {"manifest": str(manifest.resolve()), "manifest_rows_skipped": list(clips.report.details)}
    summary = ImportSummary(store=Path(out), n_clips=len(clips), shape=stored_shape, channels=tuple(names),
                            report=clips.report, models=models_reading(name, tuple(names)))
    specs = {name: RepresentationSpec(stored_shape, dtype, tuple(names))}
    with StoreWriter(out, specs, params, overwrite=overwrite, runtime=runtime, shard_size=shard_size) as writer:
        plan = plan_resume(list(clips), writer)
        summary.n_skipped = len(clips) - len(plan.todo)
        for index, clip in plan.todo.items():
            row = {"uid": clip.uid, "corpus_index": index, "dataset": clip.dataset, "subject": clip.subject,
                   "clip_id": clip.clip_id, "source": clip.source, "fingerprint": fingerprints[clip.uid]}
            error = errors.get(clip.uid)
            if error is None:
                try:
                    raw = _read_clip(clip)
                    if key(raw.shape) != common:  # rewritten since the first pass
                        raise RowError(f"{clip.source}: shape {raw.shape}; the other clips have {common}")
                    stored = _to_stored(raw, size, scale, offset, dtype)
                except RowError as exc:
                    error = f"{where(clip)}: {exc}"
            if error is not None:
                writer.add_error({**row, "stage": "import", "error": error})
                summary.failures.append((clip.uid, error))
                summary.n_failed += 1
                continue
            writer.add({**row, "view": clip.view, "onset": clip.onset, "apex": clip.apex, "offset": clip.offset,
                        "apex_source": "annotation" if clip.apex is not None else "", "labels": list(clip.labels),
                        "action_units": clip.action_units, "decoder": "import", "motion_curve": []},
                       {name: stored})
            summary.n_ok += 1
    summary.seconds = time.perf_counter() - begin
    return summary
