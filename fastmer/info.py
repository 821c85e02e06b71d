"""``fastmer info``: what is installed, which op paths run, and why optional parts are missing."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from typing import Any

from fastmer import __version__

# Optional components: import name, what fastmer uses it for, how to get it.
OPTIONAL = {
    "onnxruntime": ("onnxruntime", "ONNX engines (fastmer infer)", "pip install onnxruntime (or onnxruntime-gpu)"),
    "tensorrt": ("tensorrt", "TensorRT engines (fastmer engine build, .plan)",
                 "pip install 'fastmer[tensorrt]': TensorRT 11, needs an NVIDIA GPU and driver"),
    "modelopt": ("modelopt.onnx.autocast", "FP16 TensorRT engines (engine build --fp16)",
                 "pip install 'fastmer[tensorrt]'"),
    "dali": ("nvidia.dali", "GPU video decoding", "pip install nvidia-dali-cuda120 (Linux, NVIDIA GPU for H.264/HEVC)"),
    "ray": ("ray", "multi-machine extraction", "pip install 'ray[data]'"),
    "pyav": ("av", "video decoding fallback", "pip install av"),
    "timm": ("timm", "timm backbones (fastmer train --backbone NAME --pretrained)",
             "pip install 'fastmer[timm]'; needs a torchvision built for your torch"),
}


def _component(module: str, purpose: str, install: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"purpose": purpose}
    if importlib.util.find_spec(module.split(".")[0]) is None:
        return {**entry, "available": False, "reason": f"not installed ({install})"}
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001  (a broken install must be reported, not crash info)
        return {**entry, "available": False, "reason": f"installed but fails to import: {type(exc).__name__}: {exc}"}
    entry.update(available=True, version=str(getattr(mod, "__version__", "unknown")))
    if module == "onnxruntime":
        entry["providers"] = mod.get_available_providers()
    return entry


def _opencv() -> dict[str, Any]:
    try:
        import cv2  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001
        return {"available": False, "reason": f"cannot import cv2: {exc}"}
    from fastmer.face.detect import cascade_path  # noqa: PLC0415

    try:
        cascade = str(cascade_path())
    except FileNotFoundError as exc:
        cascade = f"missing: {exc}"
    return {
        "available": True,
        "version": cv2.__version__,
        "tvl1": "available" if hasattr(cv2, "optflow") else "missing (needs opencv-contrib-python-headless)",
        "haar_cascade": cascade,
    }


def _faces() -> dict[str, Any]:
    """Which face detector ``--face-detector auto`` would use, and why."""
    try:
        from fastmer.face.detect import make_detector  # noqa: PLC0415
        from fastmer.hub import model_path  # noqa: PLC0415

        detector, why = make_detector("auto")
    except ValueError as exc:  # no YuNet model, or a corrupt one: the message says what to do
        return {"auto": None, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001  (info reports, it does not crash)
        return {"auto": None, "reason": f"{type(exc).__name__}: {exc}"}
    return {"auto": detector.name, "reason": why, "yunet_cache": str(model_path("yunet"))}


def gather() -> dict[str, Any]:
    """Everything ``fastmer info`` reports, as a JSON-ready dict."""
    import torch  # noqa: PLC0415

    from fastmer.decode import decode_engines  # noqa: PLC0415
    from fastmer.ops import _native  # noqa: PLC0415

    cuda_available = torch.cuda.is_available()
    ops = {}
    for op in _native.NATIVE_OPS:
        paths = {}
        for device in ("cpu", "cuda"):
            reason = _native.fallback_reason(op, device)
            if device == "cuda" and not cuda_available:
                paths[device] = "native (no GPU visible)" if reason is None else f"reference: {reason}"
            else:
                paths[device] = "native" if reason is None else f"reference: {reason}"
        ops[op] = paths
    return {
        "fastmer": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cuda_available": cuda_available,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda_available else [],
            "threads": torch.get_num_threads(),
        },
        "extension": {
            "loaded": _native.extension() is not None,
            "reason": _native.unavailable_reason(),
            "build": _native.build_info(),
            "cpu_capability": _native.cpu_capability(),
        },
        "ops": ops,
        "components": {"opencv": _opencv(), **{name: _component(*spec) for name, spec in OPTIONAL.items()}},
        "decode": decode_engines(),
        "faces": _faces(),
    }


def format_text(info: dict[str, Any]) -> str:
    """Human-readable rendering of :func:`gather`."""
    t, ext = info["torch"], info["extension"]
    lines = [
        f"fastmer {info['fastmer']}  (Python {info['python']}, {info['platform']})",
        f"torch {t['version']}  CUDA {t['cuda'] or 'none'}  GPU: {', '.join(t['devices']) or 'none visible'}  "
        f"threads: {t['threads']}",
        "",
        "native extension fastmer._C: " + ("loaded" if ext["loaded"] else f"NOT loaded ({ext['reason']})"),
    ]
    if ext["build"]:
        b = ext["build"]
        cuda = f"CUDA {b['cuda_version']} archs {b['cuda_archs']}" if b["cuda"] else f"no CUDA ({b['cuda_reason']})"
        lines.append(f"  built for torch {b['torch_version']} with {b['cxx_compiler']}, OpenMP {b['openmp'] or 'off'}, {cuda}")
        lines.append(f"  CPU TV-L1 build in use: {ext['cpu_capability']} (FASTMER_CPU_CAPABILITY=base forces the baseline)")
    lines += ["", "ops (which implementation runs):"]
    for op, paths in info["ops"].items():
        lines.append(f"  {op:20s} cpu: {paths['cpu']}")
        lines.append(f"  {'':20s} cuda: {paths['cuda']}")
    lines += ["", "components:"]
    for name, comp in info["components"].items():
        if comp["available"]:
            extra = {k: v for k, v in comp.items() if k not in ("available", "version", "purpose")}
            detail = "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in extra.items())
            lines.append(f"  {name:12s} yes  {comp.get('version', '')}" + (f"  ({detail})" if detail else ""))
        else:
            lines.append(f"  {name:12s} no   {comp['reason']}")
    decode = info["decode"]
    lines += ["", "decoding (--decoder auto picks, per device):"]
    for device, choices in decode["auto"].items():
        lines.append(f"  {device}: images -> {choices['images']['engine'] or 'none'}: {choices['images']['reason']}")
        for codec, choice in choices["video"].items():
            lines.append(f"  {'':{len(device)}s}  {codec:6s} -> {choice['engine'] or 'none'}: {choice['reason']}")
    faces = info["faces"]
    lines += ["", f"face detector (--face-detector auto): {faces['auto'] or 'none'} ({faces['reason']})"]
    return "\n".join(lines)
