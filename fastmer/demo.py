"""``fastmer demo``: synth -> extract -> train -> export -> infer, end to end, with a summary.

Everything runs in one process on the CPU (or the GPU when there is one) using the same
library calls as the individual commands. The summary reports clip counts, the LOSO
scores, extraction and inference throughput, and the largest difference between the
ONNX engine and the PyTorch model on the whole store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastmer.datasets.synth import SynthConfig
from fastmer.outputs import check_output_dir

# Everything run_demo writes at the top of its folder (a folder of only these is a demo's).
DEMO_ENTRIES = ("corpus", "store", "run", "model.onnx", "model.onnx.json", "predictions.parquet", "report.html",
                "summary.json")


def _is_demo(path: Path) -> bool:
    return all(entry.name in DEMO_ENTRIES for entry in path.iterdir())


def run_demo(out: str | Path, synth_config: SynthConfig | None = None, *, overwrite: bool = False,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole pipeline into ``out``; returns (and writes) ``out/summary.json``.

    Args:
        out: directory for the corpus, store, run, engine and predictions.
        synth_config: the synthetic corpus (default ``SynthConfig()``: 8 subjects x 6 clips);
            its seed also seeds training.
        overwrite: reuse a non-empty ``out``.
        log: receives one progress line per stage.
    """
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from fastmer.config import ExtractConfig  # noqa: PLC0415
    from fastmer.datasets import load  # noqa: PLC0415
    from fastmer.datasets.synth import generate  # noqa: PLC0415
    from fastmer.engine.onnx import OnnxEngine, export_onnx, load_run_model  # noqa: PLC0415
    from fastmer.engine.score import score_store  # noqa: PLC0415
    from fastmer.extract import extract  # noqa: PLC0415
    from fastmer.report import load_run, write_html_report  # noqa: PLC0415
    from fastmer.store import open as open_store  # noqa: PLC0415
    from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415
    from fastmer.train.run import train  # noqa: PLC0415

    config = synth_config or SynthConfig()
    log = log or (lambda line: None)
    out = Path(out)
    check_output_dir(out, overwrite=overwrite, recognise=_is_demo, kind="fastmer demo folder", option="demo directory")
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("corpus", "store", "run")}
    paths["engine"], paths["predictions"] = out / "model.onnx", out / "predictions.parquet"
    timings: dict[str, float] = {}

    t = time.perf_counter()
    synth = generate(paths["corpus"], config, overwrite=True)
    timings["synth"] = time.perf_counter() - t
    log(f"synth: {synth.clips} clips in {timings['synth']:.1f} s")

    clips = load("casme2", paths["corpus"])
    # Haar, by name: the demo runs offline and the same everywhere, cached YuNet or not (the
    # synthetic faces are frontal, which is what the cascade finds).
    extracted = extract(clips, paths["store"], ExtractConfig(face_detector="haar"), overwrite=True)
    timings["extract"] = extracted.seconds
    log(f"extract: {extracted.n_ok}/{extracted.n_clips} clips, {extracted.clips_per_s:.1f} clips/s")

    t = time.perf_counter()
    report = train(paths["store"], paths["run"], model="ststnet", protocol="loso", labels="megc2019-3class",
                   seed=config.seed, overwrite=True)
    timings["train"] = time.perf_counter() - t
    pooled = report["metrics"]["pooled"]
    log(f"train: LOSO UF1 {pooled['uf1']:.3f}, UAR {pooled['uar']:.3f} in {timings['train']:.1f} s")
    paths["report"] = write_html_report([load_run(paths["run"])], out / "report.html")
    log(f"report: {paths['report']} (open it in a browser)")

    t = time.perf_counter()
    export_onnx(paths["run"], paths["engine"])
    timings["export"] = time.perf_counter() - t

    inferred = score_store(OnnxEngine(paths["engine"]), paths["store"], paths["predictions"])
    timings["infer"] = inferred.seconds
    # Engine vs PyTorch on every clip of the store.
    store = open_store(paths["store"])
    features = store.tensor("flow_onset_apex")
    with torch.no_grad():
        torch_logits = load_run_model(paths["run"])(features).numpy()
    engine_logits = OnnxEngine(paths["engine"]).run(features.numpy())
    max_diff = float(np.abs(engine_logits - torch_logits).max())
    log(f"infer: {inferred.clips_per_s:.0f} clips/s, max |engine - torch| = {max_diff:.2e}")

    summary = {
        "config": asdict(config),
        "clips": {"corpus": synth.clips, "extracted": extracted.n_ok, "failed": extracted.n_failed,
                  "evaluated": report["n_clips"], "subjects": report["n_subjects"]},
        "loso": {"uf1": pooled["uf1"], "uar": pooled["uar"], "accuracy": pooled["accuracy"],
                 "classes": report["classes"], "folds": report["n_folds"]},
        "extract_clips_per_s": extracted.clips_per_s,
        "infer_clips_per_s": inferred.clips_per_s,
        "max_abs_engine_minus_torch": max_diff,
        "seconds": timings,
        "paths": {k: str(v) for k, v in paths.items()},
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary
