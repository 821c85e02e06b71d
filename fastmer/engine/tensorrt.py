"""TensorRT engines: ``fastmer engine build`` (TensorRT 11 Python API) and the ``.plan`` runtime.

TensorRT is an optional extra (``pip install 'fastmer[tensorrt]'``: TensorRT 11 and ModelOpt,
on a machine with an NVIDIA GPU); without it building or loading a plan fails with a
message saying what to install, and ``fastmer info`` reports it missing.

Building (:func:`build_engine`): TensorRT 11 networks are strongly typed (the precision
builder flags are gone), so ``--fp16`` first converts the exported ONNX to mixed precision
with ModelOpt AutoCast (``keep_io_types``: float32 in and out), and the plan is built from
that graph. The batch dimension gets one optimisation profile per execution slot (the
runtime double-buffers with two contexts, and concurrent contexts need their own profile).

The plan's sidecar (``model.plan.json``) carries the ONNX sidecar (classes, input,
thresholds, extraction parameters) plus the TensorRT version, the GPU name and compute
capability, the batch range and precision. A plan only runs with the TensorRT version and
GPU it was built for: :func:`check_plan_target` refuses any other with the mismatch
named, before TensorRT is asked to deserialise anything.

Runtime (:class:`TensorRTEngine`): ``execute_async_v3`` on tensor addresses of device
buffers, pinned host staging buffers and a CUDA stream per slot; batches alternate
between two slots so the copy of one overlaps the compute of the other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from fastmer.engine.onnx import check_onnx_bytes, sidecar_path

INSTALL = "pip install 'fastmer[tensorrt]' (TensorRT 11 and NVIDIA ModelOpt; needs an NVIDIA GPU and driver)"
SLOTS = 2  # execution contexts (and optimisation profiles) the runtime alternates between


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or ModelOpt, or a CUDA GPU) is not available here."""


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError as exc:
        raise TensorRTUnavailable(f"TensorRT is not installed: {INSTALL}") from exc
    major = int(str(trt.__version__).split(".")[0])
    if major < 11:
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} is installed; fastmer builds strongly typed TensorRT 11 "
                                  f"engines: {INSTALL}")
    return trt


def current_target() -> dict[str, str]:
    """The TensorRT version and GPU of this machine (what a plan must have been built for)."""
    import torch  # noqa: PLC0415

    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("TensorRT engines need a CUDA GPU; torch sees none")
    major, minor = torch.cuda.get_device_capability()
    return {"tensorrt_version": str(trt.__version__), "gpu": torch.cuda.get_device_name(),
            "compute_capability": f"{major}.{minor}"}


def check_plan_target(sidecar: dict[str, Any], target: dict[str, str], plan: str | Path) -> None:
    """Refuse a plan built for another TensorRT version or GPU, naming the difference.

    Raises:
        ValueError: the sidecar is not a TensorRT plan's, or its target differs.
    """
    if sidecar.get("engine") != "tensorrt":
        raise ValueError(f"{sidecar_path(plan)} does not describe a TensorRT plan (engine: {sidecar.get('engine')!r})")
    built = sidecar.get("target") or {}
    for key, what in (("tensorrt_version", "TensorRT"), ("compute_capability", "GPU compute capability"),
                      ("gpu", "GPU")):
        if built.get(key) != target[key]:
            raise ValueError(f"{plan} was built for {what} {built.get(key)}; this machine has {target[key]}: rebuild it "
                             "here with `fastmer engine build`")


def convert_fp16(onnx_path: str | Path) -> Any:
    """The ONNX model converted to mixed FP16 by ModelOpt AutoCast, float32 inputs and outputs kept."""
    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision  # noqa: PLC0415
    except ImportError as exc:
        raise TensorRTUnavailable(f"--fp16 converts the ONNX with NVIDIA ModelOpt AutoCast, which is not installed: "
                                  f"{INSTALL}") from exc
    return convert_to_mixed_precision(onnx_path=str(onnx_path), low_precision_type="fp16", keep_io_types=True)


def check_batches(min_batch: int, opt_batch: int, max_batch: int) -> None:
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"batch sizes must satisfy 1 <= min ({min_batch}) <= opt ({opt_batch}) <= max ({max_batch})")


def build_engine(onnx_path: str | Path, out: str | Path, *, min_batch: int = 1, opt_batch: int = 32,
                 max_batch: int = 256, fp16: bool = False, workspace_gib: float | None = None) -> dict[str, Any]:
    """Build a TensorRT plan from an ONNX file written by ``fastmer export``; write it and its sidecar.

    Args:
        onnx_path: the exported model (its sidecar ``.onnx.json`` must be beside it).
        out: the ``.plan`` to write (atomically, with ``out + .json``).
        min_batch, opt_batch, max_batch: the batch range of the optimisation profiles.
        fp16: convert the graph to mixed FP16 first (ModelOpt AutoCast).
        workspace_gib: limit of TensorRT's workspace memory pool.

    Returns:
        The plan's sidecar.

    Raises:
        TensorRTUnavailable: TensorRT 11, ModelOpt (for ``fp16``) or a GPU is missing.
        ValueError: bad batch range, an ONNX file without its fastmer sidecar, or a graph
            TensorRT cannot parse or build (its errors quoted).
    """
    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

    check_batches(min_batch, opt_batch, max_batch)
    onnx_path, out = Path(onnx_path), Path(out)
    onnx_sidecar = sidecar_path(onnx_path)
    if not onnx_sidecar.is_file():
        raise ValueError(f"{onnx_path} has no sidecar {onnx_sidecar.name}: export the model with `fastmer export`")
    sidecar = json.loads(onnx_sidecar.read_text())
    check_onnx_bytes(onnx_path, onnx_path.read_bytes(), sidecar)  # a corrupt export is named before TensorRT is needed
    sidecar["model_config"] = onnx_model_config(onnx_path)
    target = current_target()  # raises without TensorRT or a GPU, before any work
    trt = import_tensorrt()
    graph = convert_fp16(onnx_path).SerializeToString() if fp16 else onnx_path.read_bytes()

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network()  # strongly typed: the graph's types are the precision
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if workspace_gib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    name = sidecar["input"]["name"]
    shape = tuple(sidecar["input"]["stored"]["shape"])
    for _ in range(SLOTS):
        profile = builder.create_optimization_profile()
        profile.set_shape(name, (min_batch, *shape), (opt_batch, *shape), (max_batch, *shape))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ValueError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    blob = bytes(plan)
    result = {**sidecar, "engine": "tensorrt", "target": target,
              "batch": {"min": min_batch, "opt": opt_batch, "max": max_batch}, "profiles": SLOTS,
              "precision": "fp16 (ModelOpt AutoCast, float32 I/O)" if fp16 else "fp32",
              "onnx": {"path": str(onnx_path), "sha256": sidecar.get("onnx_sha256")},
              "plan_sha256": hashlib.sha256(blob).hexdigest()}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, blob)
    atomic_write_bytes(sidecar_path(out), (json.dumps(result, indent=2) + "\n").encode())
    return result


def onnx_model_config(onnx_path: str | Path) -> dict[str, Any]:
    """The fastmer model config stored in an exported ONNX file's metadata.

    Raises:
        ValueError: the file is not an ONNX model exported by fastmer.
    """
    import onnx  # noqa: PLC0415

    from fastmer.engine.onnx import METADATA_KEY  # noqa: PLC0415

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # any parse failure means: not a usable ONNX file
        raise ValueError(f"{onnx_path} is not a readable ONNX model: {exc}") from exc
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{onnx_path} has no fastmer metadata; export it with `fastmer export`")
    return json.loads(metadata[METADATA_KEY])


def read_plan_sidecar(path: str | Path) -> dict[str, Any]:
    """A plan's sidecar, checked against the plan file's hash.

    Raises:
        FileNotFoundError: the plan or its sidecar is missing.
        ValueError: the plan file is not the one the sidecar describes (corrupt or replaced).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"engine {path} does not exist")
    side = sidecar_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"{path} has no sidecar {side.name}; build plans with `fastmer engine build`")
    sidecar = json.loads(side.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sidecar.get("plan_sha256") != digest:
        raise ValueError(f"{path} does not match its sidecar (sha256 {digest[:12]}..., expected "
                         f"{str(sidecar.get('plan_sha256'))[:12]}...): the file is corrupt or was replaced")
    return sidecar


class TensorRTEngine:
    """A ``.plan`` built by :func:`build_engine`, run by TensorRT on this machine's GPU.

    Raises (on construction):
        TensorRTUnavailable: no TensorRT 11 or no GPU; ValueError: corrupt plan, or one
        built for another TensorRT version or GPU (named).
    """

    def __init__(self, path: str | Path) -> None:
        import torch  # noqa: PLC0415

        self.path = Path(path)
        self.sidecar = read_plan_sidecar(self.path)
        target = current_target()
        check_plan_target(self.sidecar, target, self.path)
        trt = import_tensorrt()
        self.config: dict[str, Any] = self.sidecar["model_config"]
        self.classes = tuple(self.config["classes"])
        self.providers = [f"tensorrt-{target['tensorrt_version']}"]
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ValueError(f"TensorRT could not deserialise {self.path}")
        self.input_name = self.sidecar["input"]["name"]
        self.output_name = self.sidecar["output"]["name"]
        self.shape = tuple(self.sidecar["input"]["stored"]["shape"])
        self.max_batch = int(self.sidecar["batch"]["max"])
        self.min_batch = int(self.sidecar["batch"]["min"])
        device = torch.device("cuda")
        n_out = len(self.classes)
        self._slots = []
        for slot in range(int(self.sidecar.get("profiles", 1))):
            stream = torch.cuda.Stream(device)
            context = self.engine.create_execution_context()
            context.set_optimization_profile_async(slot, stream.cuda_stream)
            self._slots.append({
                "stream": stream, "context": context, "done": torch.cuda.Event(),
                "host_in": torch.empty((self.max_batch, *self.shape), dtype=torch.float32).pin_memory(),
                "host_out": torch.empty((self.max_batch, n_out), dtype=torch.float32).pin_memory(),
                "device_in": torch.empty((self.max_batch, *self.shape), dtype=torch.float32, device=device),
                "device_out": torch.empty((self.max_batch, n_out), dtype=torch.float32, device=device),
            })

    def _launch(self, slot: dict[str, Any], chunk: np.ndarray) -> None:
        import torch  # noqa: PLC0415

        n = len(chunk)
        padded = max(n, self.min_batch)  # below the profile's minimum: pad with zeros
        host_in = slot["host_in"][:padded]
        host_in[:n].copy_(torch.from_numpy(chunk))
        if padded > n:
            host_in[n:].zero_()
        context, stream = slot["context"], slot["stream"]
        with torch.cuda.stream(stream):
            slot["device_in"][:padded].copy_(host_in, non_blocking=True)
            context.set_input_shape(self.input_name, (padded, *self.shape))
            context.set_tensor_address(self.input_name, slot["device_in"].data_ptr())
            context.set_tensor_address(self.output_name, slot["device_out"].data_ptr())
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to run {self.path.name} on a batch of {padded}")
            slot["host_out"][:padded].copy_(slot["device_out"][:padded], non_blocking=True)
            slot["done"].record(stream)
        slot["n"] = n

    def run(self, features: np.ndarray) -> np.ndarray:
        """Logits ``(N, classes)`` for stored features ``(N, C, H, W)``; any N (chunks of
        at most the plan's max batch alternate between the two slots)."""
        if features.ndim != 4 or tuple(features.shape[1:]) != self.shape:
            raise ValueError(f"engine {self.path.name} expects features of shape [N, {', '.join(map(str, self.shape))}], "
                             f"got {list(features.shape)}")
        features = np.ascontiguousarray(features, dtype=np.float32)
        out = np.empty((len(features), len(self.classes)), np.float32)
        pending: list[tuple[dict[str, Any], int]] = []
        for k, start in enumerate(range(0, len(features), self.max_batch)):
            slot = self._slots[k % len(self._slots)]
            if len(pending) == len(self._slots):  # this slot's previous batch must be read first
                self._collect(*pending.pop(0), out)
            self._launch(slot, features[start : start + self.max_batch])
            pending.append((slot, start))
        for slot, start in pending:
            self._collect(slot, start, out)
        return out

    @staticmethod
    def _collect(slot: dict[str, Any], start: int, out: np.ndarray) -> None:
        slot["done"].synchronize()
        n = slot["n"]
        out[start : start + n] = slot["host_out"][:n].numpy()
