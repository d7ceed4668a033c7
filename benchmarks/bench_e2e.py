"""End to end from video files: ``evaluate`` (10 x 3 views) and ``features`` per backend.

    python benchmarks/bench_e2e.py [--videos 4] [--feature-videos 2] \\
        [--backends torch,auto,fast] [--views 10x3] [--workers 1] [--json FILE]

Generated Kinetics-like videos (340 x 256, 10 s at 30 fps, H.264) and a seeded synthetic
I3D-NL 8x8 network. For each backend: the time to first result (model load, an ONNX export
or a compilation on first use: stated apart), then the end-to-end time of the evaluation of
every video (decoding in --workers processes, overlapped with the model) and of feature
extraction (stride 16, pool5). Ratios are against the torch backend in the same run. The
reduced-precision backend's error: the max relative error of the logits and the cosine of
the pool5 features over every window, and the top-1 / top-5 agreement of the summed 30-view
scores of every video, against torch.
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

from nlconvert.arch import ranked
from nlconvert.runtime.backends import describe_choice, open_backend
from nlconvert.video import evaluate as ev
from nlconvert.video.datalist import Entry
from nlconvert.video.decode import count_frames
from nlconvert.video.features import extract_features
from nlconvert.video.resultsdb import ResultsDB, RunConfig
from nlconvert.video.views import load_view_pixels


def run_backend(name: str, model: Path, videos: list[Path], feature_videos: list[Path],
                views: str, workers: int, work: Path) -> dict:
    t0 = time.perf_counter()
    backend = open_backend(model, name)
    # First use: exports (onnx) or compiles (fast) each head once; stated apart.
    warm = np.zeros((backend.batch_size, 3, 8, 256, 256), np.float32)
    backend.scores(warm)
    backend.features(warm)
    startup = time.perf_counter() - t0
    entries = [Entry(i, p.name, 0, str(p)) for i, p in enumerate(videos)]
    config = RunConfig(backend.model_sha256, str(model), backend.arch.name, views, 8, 8, 400,
                       f"{backend.info.name}/{backend.info.precision}")
    db = ResultsDB(work / f"{name}.sqlite", config)
    t0 = time.perf_counter()
    ev.evaluate(backend, entries, db, views, workers=workers, progress=False)
    evaluate_s = time.perf_counter() - t0
    scores = {k: db.scores(k) for k in db.results()}
    db.close()
    t0 = time.perf_counter()
    feats, logits = {}, {}
    for video, f, _ in extract_features(backend, feature_videos, workers=workers):
        feats[video] = f
    features_s = time.perf_counter() - t0
    for video, f, _ in extract_features(backend, feature_videos[:1], layer="logits", workers=0):
        logits[video] = f
    windows = sum(len(f) for f in feats.values())
    return {"backend": name, "describe": describe_choice(name, backend), "startup_s": startup,
            "evaluate_s": evaluate_s, "videos": len(videos),
            "s_per_video": evaluate_s / len(videos),
            "videos_per_hour": 3600 * len(videos) / evaluate_s,
            "features_s": features_s, "windows": windows, "windows_per_s": windows / features_s,
            "_scores": scores, "_feats": feats, "_logits": logits}


def agreement(test: dict, ref: dict) -> dict:
    """The errors of `test` against `ref` (the torch run)."""
    top1 = np.mean([ranked(test["_scores"][k], 1) == ranked(ref["_scores"][k], 1)
                    for k in ref["_scores"]])
    top5 = np.mean([set(ranked(test["_scores"][k], 5)) == set(ranked(ref["_scores"][k], 5))
                    for k in ref["_scores"]])
    cos, rel = 1.0, 0.0
    for k, r in ref["_feats"].items():
        a, b = r.astype(np.float64), test["_feats"][k].astype(np.float64)
        c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        cos = min(cos, float(c.min()))
    for k, r in ref["_logits"].items():
        rel = max(rel, float(np.abs(test["_logits"][k] - r).max() / np.abs(r).max()))
    return {"top1_agree": float(top1), "top5_agree": float(top5), "pool5_min_cosine": cos,
            "logits_max_rel_err": rel}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="nlconvert .pt (default: a synthetic I3D-NL 8x8)")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--feature-videos", type=int, default=2)
    p.add_argument("--backends", default="torch,auto,fast")
    p.add_argument("--views", default="10x3")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else model_file(work)
        videos = make_videos(work / "videos", max(args.videos, args.feature_videos))
        t0 = time.perf_counter()
        for v in videos:
            count_frames(v)
        count_s = (time.perf_counter() - t0) / len(videos)
        t0 = time.perf_counter()
        for v in videos:
            load_view_pixels(v, 8, 8, args.views)
        decode_s = (time.perf_counter() - t0) / len(videos)
        rows = [run_backend(b, model, videos[:args.videos], videos[:args.feature_videos],
                            args.views, args.workers, work) for b in args.backends.split(",")]
    ref = rows[0]
    print(f"\n# End to end, {args.videos} videos 340x256 x 300 frames, views {args.views}; "
          f"features of {args.feature_videos} videos (8x8 windows every 16 frames, pool5)\n")
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"Command: `python {' '.join(sys.argv)}`")
    print(f"decode only: {count_s:.3f} s/video (every frame); decode + {args.views} views: "
          f"{decode_s:.3f} s/video (one core)\n")
    print("| backend | start-up s | evaluate s/video | speed-up | videos/hour | features windows/s "
          "| speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['describe']} | {r['startup_s']:.1f} | {r['s_per_video']:.2f} | "
              f"{ref['s_per_video'] / r['s_per_video']:.2f}x | {r['videos_per_hour']:.0f} | "
              f"{r['windows_per_s']:.2f} | {r['windows_per_s'] / ref['windows_per_s']:.2f}x |")
    errors = {r["backend"]: agreement(r, ref) for r in rows[1:]}
    for name, e in errors.items():
        print(f"\n{name} vs torch: top-1 agreement {e['top1_agree']:.0%}, top-5 (as a set) "
              f"{e['top5_agree']:.0%} of the summed 30-view scores; pool5 min cosine "
              f"{e['pool5_min_cosine']:.6f}; logits max rel err {e['logits_max_rel_err']:.3g}")
    if args.json:
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        Path(args.json).write_text(json.dumps({"machine": machine(), "decode_s": decode_s,
                                               "rows": clean, "errors": errors}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
