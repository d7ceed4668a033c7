"""``evaluate`` locally and with ``--ray local`` on the same videos: the overhead of Ray.

    python benchmarks/bench_ray.py [--videos 20] [--views 10x1] [--backend auto] [--json FILE]

Generated Kinetics-like videos (340 x 256, 10 s, H.264) and a seeded synthetic I3D-NL 8x8.
Both runs record every video in their own database; each video's time of recording is kept,
so the table separates the start-up (until the first video is recorded: Ray's start, the
actor's model load, the first decode) from the steady rate (first to last recorded video).
Also measured: the decoding cost of a video on one core, the model time per video of each
backend here, and what they mean for the decoding CPUs a GPU actor needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, make_videos, model_file

from nlconvert.arch import get_arch
from nlconvert.cluster.jobs import evaluate_on_ray
from nlconvert.cluster.layout import RayOptions
from nlconvert.cluster.stages import BackendSpec
from nlconvert.runtime.backends import open_backend
from nlconvert.video import evaluate as ev
from nlconvert.video.datalist import Entry
from nlconvert.video.predict import score_views
from nlconvert.video.resultsdb import ResultsDB, RunConfig
from nlconvert.video.views import load_view_pixels
from nlconvert.video.workers import default_workers


def _config(backend, model: Path, views: str) -> RunConfig:
    return RunConfig(backend.model_sha256, str(model), backend.arch.name, views, 8, 8, 400,
                     f"{backend.info.name}/{backend.info.precision}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=20)
    p.add_argument("--views", default="10x1")
    p.add_argument("--backend", default="auto")
    p.add_argument("--json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = model_file(work)
        videos = make_videos(work / "videos", args.videos)
        entries = [Entry(i, v.name, 0, str(v)) for i, v in enumerate(videos)]
        t0 = time.perf_counter()
        pixels = [load_view_pixels(v, 8, 8, args.views)[0] for v in videos[:4]]
        decode_s = (time.perf_counter() - t0) / 4
        backend = open_backend(model, args.backend)
        name = backend.info.name
        score_views(backend, pixels[0][:1])  # first use: an export or a compilation
        t0 = time.perf_counter()
        for px in pixels:
            score_views(backend, px)
        model_s = (time.perf_counter() - t0) / len(pixels)

        stamps: dict[str, list[float]] = {"local": [], "ray local": []}
        begin: dict[str, float] = {}
        db = ResultsDB(work / "local.sqlite", _config(backend, model, args.views))
        begin["local"] = time.perf_counter()
        ev.evaluate(backend, entries, db, args.views, workers=default_workers(None),
                    progress=False, after_video=lambda k: stamps["local"].append(time.perf_counter()))
        local_scores = {k: db.scores(k) for k in db.results()}
        db.close()
        del backend

        db = ResultsDB(work / "ray.sqlite", _config(open_backend(model, name), model, args.views))
        begin["ray local"] = time.perf_counter()
        evaluate_on_ray(BackendSpec(str(model), name), get_arch("i3d_nonlocal_8x8"), entries, db,
                        args.views, options=RayOptions(address="local"), frames=8, rate=8,
                        progress=False,
                        after_video=lambda k: stamps["ray local"].append(time.perf_counter()))
        ray_scores = {k: db.scores(k) for k in db.results()}
        db.close()
    worst = max(float(np.abs(local_scores[k] - ray_scores[k]).max()) for k in local_scores)
    rows = {run: {"total_s": s[-1] - begin[run], "startup_s": s[0] - begin[run],
                  "steady_s_per_video": (s[-1] - s[0]) / (len(s) - 1)}
            for run, s in stamps.items()}
    print(f"\n# evaluate, {args.videos} videos 340x256 x 300 frames, views {args.views}, backend "
          f"{name}: local vs --ray local\n")
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| run | total s | start-up s (to the first video) | steady s/video | vs local |")
    print("|---|---:|---:|---:|---:|")
    for run, r in rows.items():
        ratio = r["steady_s_per_video"] / rows["local"]["steady_s_per_video"]
        print(f"| {run} | {r['total_s']:.1f} | {r['startup_s']:.1f} | "
              f"{r['steady_s_per_video']:.2f} | {ratio:.2f}x |")
    print(f"\nscores: local vs ray max abs difference {worst:.2g} (same database rows)")
    per_view = args.views.lower().split("x")
    views = int(per_view[0]) * int(per_view[1])
    print(f"decode + {args.views} views: {decode_s:.3f} CPU s/video; model ({name}) "
          f"{model_s:.2f} s/video ({model_s / views:.3f} s/view) on this CPU")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows,
                                               "decode_s": decode_s, "model_s": model_s,
                                               "max_abs_diff": worst}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
