"""MEGC spotting F1 of each method on synthetic long videos with known intervals (issue 20).

The corpus is drawn with a seed never used while the methods' defaults were chosen (those
were set on seed 1's corpus, bench/RESULTS.md says so): 6 subjects x 60 s, 640x480, 30 fps,
micro- and macro-expressions, blinks, head motion and one cut per video.

    python bench/spot_accuracy.py --out bench/spot_accuracy.json

Per method: TP/FP/FN, precision, recall and F1 for micro, macro and overall (IoU >= 0.5, each
truth matched once, counts summed over the videos), and frames/s. The learned spotter
(softnet) is scored leave-one-subject-out (`fastmer train --task spot`) on the maps the
first MDMD run saved.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def corpus(seed: int, subjects: int, seconds: float) -> Path:
    from fastmer.datasets.synth_long import LongSynthConfig, generate_long

    root = ROOT / ".benchmarks" / f"long-s{seed}-{subjects}x{int(seconds)}"
    if not (root / "synth_long.json").is_file():
        generate_long(root, LongSynthConfig(subjects=subjects, seconds=seconds, seed=seed), workers=2, overwrite=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--methods", default="mdmd,peak,mdmd-tvl1,softnet")
    args = parser.parse_args()
    from fastmer.cli import main as cli

    root = corpus(args.seed, args.subjects, args.seconds)
    work = Path(tempfile.mkdtemp(prefix="spot-accuracy-"))
    runner = CliRunner()
    results = {}
    base = ["spot", str(root), "-d", "synth-long", "--face-detector", "haar", "--decoder", "opencv"]
    runs = {"mdmd": ["--method", "mdmd", "--save-maps"], "peak": ["--method", "peak"],
            "mdmd-tvl1": ["--method", "mdmd", "--flow", "fastmer"]}
    try:
        for name in args.methods.split(","):
            start = time.perf_counter()
            if name == "softnet":
                result = runner.invoke(cli, ["train", str(work / "mdmd"), "--task", "spot", "-o", str(work / "run")])
                if result.exit_code:
                    raise SystemExit(result.output)
                report = json.loads((work / "run" / "report.json").read_text())
                results[name] = {"scores": report["pooled"], "seconds": round(time.perf_counter() - start, 1),
                                 "protocol": "loso"}
            else:
                result = runner.invoke(cli, [*base, *runs[name], "-o", str(work / name)])
                if result.exit_code:
                    raise SystemExit(result.output)
                scores = json.loads((work / name / "scores.json").read_text())
                frames = args.subjects * args.seconds * 30
                seconds = time.perf_counter() - start
                results[name] = {"scores": {k: scores[k] for k in ("micro", "macro", "overall")},
                                 "seconds": round(seconds, 1), "frames_per_s": round(frames / seconds, 1)}
            s = results[name]["scores"]
            print(f"{name:>10}: " + "  ".join(f"{k} P {s[k]['precision']:.3f} R {s[k]['recall']:.3f} F1 {s[k]['f1']:.3f}"
                                             f" ({s[k]['tp']}/{s[k]['fp']}/{s[k]['fn']})"
                                             for k in ("micro", "macro", "overall"))
                  + f"  [{results[name]['seconds']} s]", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"corpus": str(root), "seed": args.seed, "results": results}, indent=1))


if __name__ == "__main__":
    main()
