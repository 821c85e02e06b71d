"""ONNX export (torch.onnx, dynamo exporter) and ONNX Runtime inference."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

METADATA_KEY = "fastmer"
# The sha256 of the graph's weights (:func:`weights_sha256`), a second metadata entry: the
# model's own record, checked when its sidecar (which hashes the whole file) is absent.
WEIGHTS_KEY = "fastmer_weights_sha256"
DEFAULT_OPSET = 18


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence torch.onnx's informational logging and deprecation chatter during export.

    torch re-initialises its loggers inside export, so this goes through
    ``torch._logging.set_logs`` (left alone when the user set ``TORCH_LOGS``).
    """
    import torch._logging  # noqa: PLC0415

    managed = "TORCH_LOGS" not in os.environ
    if managed:
        torch._logging.set_logs(onnx=logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        if managed:
            torch._logging.set_logs()


def load_run_model(run: str | Path):
    """The final model of a ``fastmer train`` run directory."""
    from fastmer.models.model import MERModel  # noqa: PLC0415

    run = Path(run)
    weights, config = run / "model.safetensors", run / "model.json"
    for path in (weights, config):
        if not path.is_file():
            raise FileNotFoundError(f"{run} is not a fastmer run directory: {path.name} is missing")
    return MERModel.load(weights, config)


def model_to_onnx(model: Any, *, opset: int = DEFAULT_OPSET, probe: Any = None, tolerance: float = 1e-4
                  ) -> tuple[Any, float]:
    """A :class:`~fastmer.models.model.MERModel` as an ``onnx.ModelProto`` with a dynamic batch
    axis and the model's config in its metadata, checked in ONNX Runtime.

    Args:
        probe: ``(N, *stored shape)`` inputs the check runs on (default: 3 seeded normal samples).
        tolerance: largest accepted ``max |onnxruntime - torch|``.

    Returns:
        The proto and ``max |onnxruntime - torch|`` on ``probe``.

    Raises:
        RuntimeError: ONNX Runtime and PyTorch differ by more than ``tolerance``.
    """
    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415

    model = model.eval()
    if probe is None:
        stored_shape = tuple(model.config["stored"]["shape"])
        probe = torch.randn(3, *stored_shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    with quiet_exporter():
        program = torch.onnx.export(
            model, (probe,), dynamo=True, opset_version=opset, input_names=["features"], output_names=["logits"],
            dynamic_shapes=({0: batch},), verbose=False,
        )
    proto = program.model_proto
    metadata = {**model.config, "input_name": "features", "output_name": "logits"}
    for key, value in ((METADATA_KEY, json.dumps(metadata)), (WEIGHTS_KEY, weights_sha256(proto))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    with torch.no_grad():
        expected = model(probe).numpy()
    session = OnnxEngine.from_proto(proto)
    diff = float(np.abs(session.run(probe.numpy()) - expected).max())
    if diff > tolerance:
        raise RuntimeError(f"ONNX export of {model.config['model']} disagrees with PyTorch by {diff:.3g} (> {tolerance})")
    return proto, diff


def weights_sha256(proto: Any) -> str:
    """sha256 of an ONNX model's weights: every initializer of its graph (sparse ones
    included) and every tensor attribute of its nodes (``Constant``), with their names,
    types and shapes, in a fixed order.

    Computed from the tensors' values (``onnx.numpy_helper``), not from the file's bytes, so
    it lives in the model's own metadata without covering itself, and it does not depend on
    how protobuf lays the file out. The graph's structure is covered by the sidecar's
    ``onnx_sha256`` (the whole file).
    """
    from onnx import AttributeProto, numpy_helper  # noqa: PLC0415

    digest = hashlib.sha256()

    def add(kind: str, name: str, tensor: Any) -> None:
        array = numpy_helper.to_array(tensor)
        digest.update(json.dumps([kind, name, int(tensor.data_type), [int(d) for d in tensor.dims]]).encode())
        if array.dtype == object:  # strings: each one's length, then its bytes
            for item in array.ravel():
                item = item if isinstance(item, bytes) else str(item).encode()
                digest.update(len(item).to_bytes(8, "little") + item)
        else:  # the values in little-endian order, whatever this machine's
            digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())

    graph = proto.graph
    for tensor in sorted(graph.initializer, key=lambda t: t.name):
        add("initializer", tensor.name, tensor)
    for sparse in sorted(graph.sparse_initializer, key=lambda t: t.values.name):
        add("sparse.values", sparse.values.name, sparse.values)
        add("sparse.indices", sparse.values.name, sparse.indices)
    nodes = [*graph.node, *(node for function in proto.functions for node in function.node)]
    for k, node in enumerate(nodes):
        for attribute in node.attribute:
            if attribute.type == AttributeProto.TENSOR:
                add("attribute", f"{k}:{node.op_type}:{attribute.name}", attribute.t)
            elif attribute.type == AttributeProto.TENSORS:
                for j, tensor in enumerate(attribute.tensors):
                    add("attribute", f"{k}:{node.op_type}:{attribute.name}:{j}", tensor)
    return digest.hexdigest()


def read_onnx_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of an exported ``.onnx`` (:func:`sidecar_path`), or ``{}`` when there is none.

    Raises:
        ValueError: the sidecar is not a JSON object.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        sidecar = json.loads(side.read_text())
    except ValueError as exc:
        raise ValueError(f"{side} (the sidecar of {path}) is not valid JSON: {exc}") from exc
    if not isinstance(sidecar, dict):
        raise ValueError(f"{side} (the sidecar of {path}) is not a JSON object")
    return sidecar


def check_onnx_bytes(path: str | Path, blob: bytes, sidecar: dict[str, Any]) -> bool:
    """Check an ``.onnx`` file's bytes against the ``onnx_sha256`` its sidecar records.

    Returns:
        True when the sidecar records a hash (and it matches); False when it records none.

    Raises:
        ValueError: the bytes are not those exported (the file is corrupt or was replaced).
    """
    expected = sidecar.get("onnx_sha256")
    if not expected:
        return False
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected:
        raise ValueError(f"{path} is corrupt or was replaced: sha256 {digest}, expected {expected} (recorded in "
                         f"{sidecar_path(path).name} at export)")
    return True


def check_onnx_weights(path: str | Path, blob: bytes) -> bool:
    """Check an exported model's weights against the hash in its metadata (:data:`WEIGHTS_KEY`).

    Returns:
        True when the metadata records a hash (and it matches); False when it records none
        (a model exported before fastmer recorded it).

    Raises:
        ValueError: the weights are not those exported (the file is corrupt or was replaced).
    """
    import onnx  # noqa: PLC0415

    try:
        proto = onnx.load_model_from_string(blob)
    except Exception as exc:  # any parse failure means: not a usable ONNX file
        raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc
    expected = {entry.key: entry.value for entry in proto.metadata_props}.get(WEIGHTS_KEY)
    if not expected:
        return False
    digest = weights_sha256(proto)
    if digest != expected:
        raise ValueError(f"{path} is corrupt or was replaced: sha256 {digest}, expected {expected} (the sha256 of its "
                         "weights, recorded in its metadata at export)")
    return True


SIDECAR_FORMAT = "fastmer-engine"
# ONNX Runtime providers in the order an OnnxEngine prefers them; ORT falls back along the
# list for the nodes a provider cannot run.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def extraction_params(config: dict[str, Any]) -> dict[str, Any] | None:
    """The extraction parameters a model's features were computed with: recorded in its
    config at training time, else read from the training store if it is still there."""
    from fastmer.store.schema import META_FILE  # noqa: PLC0415

    trained_on = config.get("trained_on") or {}
    if trained_on.get("params"):
        return trained_on["params"]
    store = trained_on.get("store")
    if store and (Path(store) / META_FILE).is_file():
        meta = json.loads((Path(store) / META_FILE).read_text())  # the parameters only: no shard is read
        if meta.get("params_hash") == trained_on.get("params_hash"):
            return meta.get("params")
    return None


def sidecar_path(engine: str | Path) -> Path:
    """The JSON written beside an engine file: ``model.onnx`` -> ``model.onnx.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def _check_inputs(model: Any, store: str | Path | None, n_check: int) -> tuple[Any, str]:
    """Real inputs for the export check: the first ``n_check`` samples of ``store`` (default:
    the store the model was trained on, when it still exists), else seeded random ones."""
    import torch  # noqa: PLC0415

    from fastmer.models.inputs import model_input  # noqa: PLC0415
    from fastmer.store import open as open_store  # noqa: PLC0415

    trained_on = (model.config.get("trained_on") or {}).get("store")
    path = store if store is not None else trained_on
    if path is not None and (Path(path) / "store.json").is_file():
        inputs, _, _ = model_input(open_store(path), model.config)  # raises on a mismatching store
        if len(inputs):
            return inputs[:n_check].float(), f"store {path} ({min(n_check, len(inputs))} samples)"
    if store is not None:
        raise FileNotFoundError(f"--store {store} is not a fastmer feature store")
    shape = tuple(model.config["stored"]["shape"])
    return torch.randn(8, *shape, generator=torch.Generator().manual_seed(0)), (
        f"random normal inputs (the training store {trained_on} is not available)")


def export_onnx(run: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET, store: str | Path | None = None,
                n_check: int = 64, tolerance: float = 1e-4) -> dict[str, Any]:
    """Export a run's final model to ONNX with a dynamic batch axis, and its sidecar JSON.

    The export is checked in ONNX Runtime against PyTorch on real inputs: the first
    ``n_check`` samples of ``store`` (default: the store the run was trained on, if it is
    still there; else seeded random inputs, said so in the sidecar). Above ``tolerance``
    nothing is written.

    The sidecar (``out`` + ``.json``, :func:`sidecar_path`) holds what a scorer must know:
    class names, label protocol and multi-label thresholds, the input (store columns,
    channels, shape, stacked views), the extraction parameters' hash (and the parameters,
    when the store is there), the weights' and the ONNX file's sha256, fastmer and opset
    versions, and the check's inputs and ``max_abs_diff``. The ONNX file's metadata records
    its config and the sha256 of its weights (:func:`weights_sha256`).
    :class:`OnnxEngine` checks the file against both hashes before running it.

    Returns:
        The sidecar.
    """
    from fastmer import __version__  # noqa: PLC0415
    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

    model = load_run_model(run)
    probe, probe_source = _check_inputs(model, store, n_check)
    try:
        proto, diff = model_to_onnx(model, opset=opset, probe=probe, tolerance=tolerance)
    except RuntimeError as exc:
        raise RuntimeError(f"{run}: {exc} on {probe_source}") from exc
    blob = proto.SerializeToString()
    config = model.config
    trained_on = config.get("trained_on") or {}
    params = extraction_params(config)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "fastmer_version": __version__,
        "engine": "onnx",
        "opset": opset,
        "model": config["model"],
        "classes": config["classes"],
        "labels": config.get("labels"),
        "multilabel": "thresholds" in config,
        "thresholds": config.get("thresholds"),
        "input": {"name": "features", "spec": config["input"], "stored": config["stored"],
                  "views": config.get("views") or []},
        "output": {"name": "logits", "activation": "sigmoid" if "thresholds" in config else "softmax"},
        "options": config.get("options", {}),
        "extraction": {"params_hash": trained_on.get("params_hash"), "params": params},
        "weights_sha256": config.get("weights_sha256"),
        "onnx_sha256": hashlib.sha256(blob).hexdigest(),
        "check": {"inputs": probe_source, "max_abs_diff": diff, "tolerance": tolerance},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, blob)
    atomic_write_bytes(sidecar_path(out), (json.dumps(sidecar, indent=2) + "\n").encode())
    return {**sidecar, "max_abs_diff": diff}


class OnnxEngine:
    """An exported fastmer model in ONNX Runtime.

    Opening it checks that the file is the one exported: its sha256 against the
    ``onnx_sha256`` of its sidecar (``model.onnx.json``) when the sidecar is there, else the
    sha256 of its weights against the one in its own metadata (:func:`weights_sha256`;
    models exported before fastmer recorded it are not checked). ONNX Runtime runs the
    bytes that were checked.

    Args:
        path: ``.onnx`` file written by :func:`export_onnx`.
        providers: ONNX Runtime execution providers (default: those of
            :data:`PROVIDER_PREFERENCE` this ONNX Runtime has: TensorRT, CUDA, then CPU).

    Raises (on construction):
        FileNotFoundError: no such file. ValueError: not a loadable ONNX model, no fastmer
        metadata (not exported by ``fastmer export``), or a file that is corrupt or was
        replaced (its sha256 and the expected one named).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, *, _model: bytes | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        self.path = Path(path)
        if _model is None and not self.path.is_file():
            raise FileNotFoundError(f"engine {self.path} does not exist")
        self.sidecar: dict[str, Any] = read_onnx_sidecar(self.path) if _model is None else {}
        blob = _model if _model is not None else self.path.read_bytes()
        whole_file_checked = check_onnx_bytes(self.path, blob, self.sidecar)
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in PROVIDER_PREFERENCE if p in available]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(blob, options, providers=providers)
        except Exception as exc:
            raise ValueError(f"{self.path} is not a loadable ONNX model: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ValueError(f"{self.path} has no fastmer metadata; export it with `fastmer export`")
        if not whole_file_checked:
            check_onnx_weights(self.path, blob)
        self.config: dict[str, Any] = json.loads(meta[METADATA_KEY])
        self.classes = tuple(self.config["classes"])
        self.providers = self.session.get_providers()

    @classmethod
    def from_proto(cls, proto: Any) -> OnnxEngine:
        """An engine from an in-memory ``onnx.ModelProto`` (used to check an export before writing it)."""
        return cls("<in-memory>", _model=proto.SerializeToString())

    def run(self, features: np.ndarray) -> np.ndarray:
        """Logits ``(N, classes)`` for stored features ``(N, C, H, W)`` (float32)."""
        expected = tuple(self.config["stored"]["shape"])
        if features.ndim != 4 or tuple(features.shape[1:]) != expected:
            raise ValueError(f"engine {self.path.name} expects features of shape [N, {', '.join(map(str, expected))}], "
                             f"got {list(features.shape)}")
        return self.session.run(["logits"], {"features": np.ascontiguousarray(features, dtype=np.float32)})[0]
