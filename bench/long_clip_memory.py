"""Peak memory of ``fastmer extract`` by clip length (issue 17, item 15).

Builds continuous H.264 videos of a real face from ../shared's 472-frame 640x360 film
(played forwards, backwards, forwards... so no frame jumps: 472 x 7 = 3,304 frames is the
issue's long clip), optionally upscaled to 1920x1080, and extracts each as one clip
(``--dataset videos``, YuNet from ../shared, default representations) in a fresh process
whose peak resident memory is read from ``getrusage(RUSAGE_CHILDREN)``. Memory is not
time: this is a script, not a pytest-benchmark suite.

    python bench/long_clip_memory.py                       # 72, 472, 1000, 3304, 5000 frames, 640x360
    python bench/long_clip_memory.py --lengths 600 --height 1080
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
FILM = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"
YUNET = SHARED / "models" / "face_detection_yunet_2023mar.onnx"

MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start)
sys.stderr.write(done.stdout + done.stderr)
"""


def make_video(path: Path, frames: int, height: int) -> None:
    """``frames`` frames of the film, ping-pong, at ``height`` lines (16:9), H.264."""
    import av
    import cv2

    with av.open(str(FILM)) as container:
        film = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    width = round(height * 16 / 9 / 2) * 2
    order: list[int] = []
    forward = True
    while len(order) < frames:
        order += list(range(len(film))) if forward else list(range(len(film) - 1, -1, -1))
        forward = not forward
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "g": "250", "preset": "veryfast"}
        for i in order[:frames]:
            image = film[i] if film[i].shape[0] == height else cv2.resize(film[i], (width, height),
                                                                            interpolation=cv2.INTER_CUBIC)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def measure(video_dir: Path, store: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "fastmer", "extract", str(video_dir), "--dataset", "videos", "-o", str(store),
               "--face-model", str(YUNET), "--no-progress", *extra]
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    rc, peak_kib, seconds = done.stdout.split()
    return {"rc": int(rc), "peak_mib": int(peak_kib) / 1024, "seconds": float(seconds), "log": done.stderr.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="72,472,1000,3304,5000", help="clip lengths in frames")
    parser.add_argument("--height", type=int, default=360, help="frame height (16:9)")
    parser.add_argument("--extra", default="", help="more extract options, e.g. '--max-frames 10000'")
    args = parser.parse_args()
    if not FILM.is_file() or not YUNET.is_file():
        sys.exit(f"needs {FILM} and {YUNET} (../shared beside the checkout)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.lengths.split(",")):
            folder = Path(tmp) / f"v{n}"
            folder.mkdir()
            make_video(folder / f"clip{n}.mp4", n, args.height)
            result = measure(folder, Path(tmp) / f"store{n}", args.extra.split())
            grey_mib = n * args.height * round(args.height * 16 / 9 / 2) * 2 / 2**20
            rows.append({"frames": n, "height": args.height, "grey_frames_mib": round(grey_mib),
                         **{k: v for k, v in result.items() if k != "log"}})
            print(json.dumps(rows[-1]), flush=True)
            if result["rc"] not in (0, 3):
                print(result["log"], file=sys.stderr)
            os.sync()
    print(f"\n{time.strftime('%Y-%m-%d')}, {sys.executable}")
    print("| frames | frame size | grey frames alone | peak RSS | wall |")
    print("|---|---|---|---|---|")
    for r in rows:
        width = round(r["height"] * 16 / 9 / 2) * 2
        print(f"| {r['frames']:,} | {width}x{r['height']} | {r['grey_frames_mib']:,} MiB | {r['peak_mib'] / 1024:.2f} GiB "
              f"(rc {r['rc']}) | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
