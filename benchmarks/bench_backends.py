"""Model-only speed and error of every backend on seeded clips (``nlconvert bench`` as a script).

    python benchmarks/bench_backends.py [--arch i3d_nonlocal_8x8] [--size 256] \\
        [--batch-sizes 6] [--backend onnx,fast] [--head fully_conv] [--runs 5] [--int8] \\
        [--layouts frames,ncthw] [--json FILE]

Without --model a seeded synthetic network of --arch is used (calibrated so activations stay
O(1)). Ratios are against the torch backend measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from _common import machine, model_file

from nlconvert.runtime.bench import bench_paths, format_markdown, results_json, run_benchmark


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="nlconvert .pt (default: a synthetic --arch network)")
    p.add_argument("--arch", default="i3d_nonlocal_8x8")
    p.add_argument("--backend", default="onnx,fast", help="backends besides torch")
    p.add_argument("--head", default="fully_conv", choices=("clip", "fully_conv"))
    p.add_argument("--frames", type=int)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-sizes", default="6")
    p.add_argument("--threads", type=int)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--error-clips", type=int, default=3)
    p.add_argument("--int8", action="store_true")
    p.add_argument("--layouts", default="frames")
    p.add_argument("--json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as work:
        model = Path(args.model) if args.model else model_file(Path(work), args.arch)
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        paths, arch = bench_paths(model, args.backend.split(","), head=args.head,
                                  threads=args.threads, batch_size=max(sizes),
                                  layouts=args.layouts.split(","), int8=args.int8,
                                  workdir=work, log=print)
        frames = args.frames or arch.frames
        results = []
        for batch in sizes:
            results += run_benchmark(paths, (batch, 3, frames, args.size, args.size),
                                     runs=args.runs, warmup=args.warmup,
                                     error_clips=args.error_clips, log=print)
    print(f"\n# {arch.name}, {args.head} head, {frames}x{args.size}x{args.size}\n")
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(format_markdown(results))
    if args.json:
        Path(args.json).write_text(results_json(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
