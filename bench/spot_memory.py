"""Memory of `fastmer spot` over a long video: resident set size against frames read.

Run (a 1-hour 640x480 synthetic video, ~20 min on two cores):

    fastmer synth --long -o /tmp/hour --subjects 1 --seconds 3600 --seed 11
    python bench/spot_memory.py /tmp/hour/videos/s01/s01_01.avi --out bench/spot_memory.json

Prints and writes ``[(frames read, RSS MiB, seconds)]`` sampled every ``--every`` seconds, the
spotter's stage times and its intervals count: memory must stay flat as the video goes on
(the per-frame motion it keeps is ~0.2 KB a frame: 26 MB for an hour at 30 fps).
"""

from __future__ import annotations

import argparse
import json
import threading
import time


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--out", default=None)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--decoder", default="opencv")
    args = parser.parse_args()

    from fastmer.decode.engines import open_frames
    from fastmer.face.detect import HaarFaceDetector
    from fastmer.spot import SpotConfig, VideoSpotter

    samples = []
    start = time.perf_counter()
    with open_frames(args.video, engine=args.decoder) as source:
        spotter = VideoSpotter(SpotConfig(), HaarFaceDetector(), source.fps, len(source))
        done = threading.Event()

        def sample() -> None:
            while not done.wait(args.every):
                samples.append((spotter.index, round(rss_mib(), 1), round(time.perf_counter() - start, 1)))
                print(samples[-1], flush=True)

        thread = threading.Thread(target=sample, daemon=True)
        samples.append((0, round(rss_mib(), 1), 0.0))
        thread.start()
        for chunk in source.chunks(source.frame_numbers, spotter.config.chunk):
            spotter.feed(chunk)
        result = spotter.finish()
        done.set()
        thread.join()
    samples.append((spotter.index, round(rss_mib(), 1), round(time.perf_counter() - start, 1)))
    report = {"video": args.video, "frames": result.n_frames, "intervals": len(result.intervals),
              "seconds": round(time.perf_counter() - start, 1), "stage_seconds": result.seconds,
              "samples": samples}
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
