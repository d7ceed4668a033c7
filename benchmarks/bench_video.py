"""Benchmark the video path: decoding cost, model-only speed, end-to-end videos/s.

    python benchmarks/bench_video.py                       # stand-in model, generated videos
    python benchmarks/bench_video.py --model i3d.pt --workers 0 2 4 --json bench.json

Videos are generated with PyAV (H.264 in MP4, Kinetics-like: 256 high, 30 fps). Model-only
speed runs the model on the very views the end-to-end runs feed it, so the two compare.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from nlconvert.video import open_scorer, score_views
from nlconvert.video.decode import count_frames
from nlconvert.video.protocol import Views
from nlconvert.video.views import load_view_pixels
from nlconvert.video.workers import decode_all


class StandIn:
    """A cheap numpy model with the Scorer interface (measures the pipeline, not a network)."""

    def __init__(self, frames: int, rate: int, num_classes: int = 400) -> None:
        self.frames, self.rate, self.class_names = frames, rate, None
        self.w = np.random.default_rng(0).standard_normal((3, num_classes)).astype(np.float32)

    def __call__(self, views: np.ndarray) -> np.ndarray:
        logits = views.mean(axis=(2, 3, 4)) @ self.w
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def make_videos(folder: Path, count: int, width: int, height: int, frames: int) -> list[Path]:
    """`count` H.264 videos with moving content (so the codec has real work)."""
    import av

    paths = []
    yy, xx = np.mgrid[0:height, 0:width]
    for n in range(count):
        path = folder / f"bench_{n}.mp4"
        with av.open(str(path), "w") as c:
            s = c.add_stream("libx264", rate=30)
            s.width, s.height, s.pix_fmt = width, height, "yuv420p"
            s.options = {"preset": "veryfast", "crf": "23"}
            s.codec_context.time_base = Fraction(1, 30)
            for i in range(frames):
                img = np.stack([(xx + 3 * i + 40 * n) % 256, (yy + 2 * i) % 256,
                                ((xx + yy) // 2 + i) % 256], axis=-1).astype(np.uint8)
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts = i
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help=".pt/.onnx/.pkl model (default: a numpy stand-in)")
    ap.add_argument("--clip", default="8x8", help="frames x rate for the stand-in (default 8x8)")
    ap.add_argument("--videos", type=int, default=6, help="generated videos (default 6)")
    ap.add_argument("--size", default="340x256", help="W x H of generated videos")
    ap.add_argument("--length", type=int, default=300, help="frames per video (default 300)")
    ap.add_argument("--views", default="10x3")
    ap.add_argument("--batch", type=int, default=6, help="views per forward pass")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts")
    ap.add_argument("--json", help="write the numbers as JSON")
    args = ap.parse_args(argv)

    views = Views.parse(args.views)
    if args.model:
        model = open_scorer(args.model)
        model_name = Path(args.model).name
    else:
        f, r = (int(x) for x in args.clip.split("x"))
        model, model_name = StandIn(f, r), f"numpy stand-in {f}x{r}"
    width, height = (int(x) for x in args.size.split("x"))
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp), args.videos, width, height, args.length)

        # decode cost per video (in process, one at a time)
        t0 = time.perf_counter()
        for p in paths:
            count_frames(p)
        count_s = (time.perf_counter() - t0) / len(paths)
        t0 = time.perf_counter()
        decoded = [load_view_pixels(p, model.frames, model.rate, views)[0] for p in paths]
        decode_s = (time.perf_counter() - t0) / len(paths)

        # model only, on the same views
        t0 = time.perf_counter()
        for px in decoded:
            score_views(model, px, args.batch)
        model_s = time.perf_counter() - t0
        n_views = sum(px.shape[0] for px in decoded)
        rows.append({"what": "decode only: count frames", "videos_per_s": 1 / count_s,
                     "s_per_video": count_s})
        rows.append({"what": "decode + views (uint8), in process", "videos_per_s": 1 / decode_s,
                     "s_per_video": decode_s})
        rows.append({"what": f"model only (batch {args.batch})",
                     "videos_per_s": len(paths) / model_s, "s_per_video": model_s / len(paths),
                     "clips_per_s": n_views / model_s})

        # end to end, decoding in workers overlapped with the model
        for w in args.workers:
            t0 = time.perf_counter()
            items = [(str(i), str(p)) for i, p in enumerate(paths)]
            for item in decode_all(items, model.frames, model.rate, str(views), workers=w):
                assert item.pixels is not None, item.reason
                score_views(model, item.pixels, args.batch)
            total = time.perf_counter() - t0
            rows.append({"what": f"end to end, workers={w}", "videos_per_s": len(paths) / total,
                         "s_per_video": total / len(paths),
                         "clips_per_s": len(paths) * views.count / total})

    info = {
        "model": model_name, "views": str(views), "clip": f"{model.frames}x{model.rate}",
        "videos": args.videos, "size": args.size, "length": args.length,
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0], "rows": rows,
    }
    print(f"# bench_video: {model_name}, {args.videos} videos {args.size} x {args.length} "
          f"frames, views {views}, clip {model.frames}x{model.rate}, {os.cpu_count()} CPUs\n")
    print("| measurement | videos/s | s/video | clips (views)/s |")
    print("|---|---:|---:|---:|")
    for r in rows:
        clips = r.get("clips_per_s")
        print(f"| {r['what']} | {r['videos_per_s']:.2f} | {r['s_per_video']:.3f} | "
              f"{'-' if clips is None else f'{clips:.1f}'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
