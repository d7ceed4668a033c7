"""Time the numpy Caffe2 reference on a full-size network (default: R50 I3D-NL 8x8, clip head).

    python benchmarks/bench_reference.py [--arch i3d_nonlocal_8x8] [--runs 3] [--json out.json]

Builds the official predict net with :mod:`nlconvert.reference.netdef_builder`, fills it with
seeded random weights (:func:`random_blobs`) and runs it at batch 1, T x 224 x 224 (T = the
arch's training clip), without recording. Prints one Markdown table row: the median of the
runs, the min, the machine's core count and its 1-minute load average before the runs
(other processes on a shared machine slow multi-threaded BLAS down a lot).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from nlconvert.arch import get_arch
from nlconvert.reference import run_net
from nlconvert.reference.netdef_builder import build_predict_net
from nlconvert.synthetic import random_blobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arch", default="i3d_nonlocal_8x8")
    parser.add_argument("--head", choices=("clip", "fully_conv"), default="clip")
    parser.add_argument("--size", type=int, default=224, help="crop size (default 224)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the result")
    args = parser.parse_args(argv)

    arch = get_arch(args.arch)
    frames = arch.frames
    net = build_predict_net(arch, args.head, 1, args.size)
    blobs = random_blobs(arch, args.seed)
    x = np.random.default_rng(args.seed + 1).standard_normal(
        (1, 3, frames, args.size, args.size), dtype=np.float32)
    load_before = os.getloadavg()[0]
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ws = run_net(net, {**blobs, "data": x}, record=False)
        times.append(time.perf_counter() - t0)
    softmax = ws["softmax"]
    assert np.isfinite(softmax).all() and abs(float(softmax.sum()) - 1.0) < 1e-4
    result = {
        "arch": arch.name,
        "head": args.head,
        "input": [1, 3, frames, args.size, args.size],
        "ops": len(net.op),
        "runs": args.runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cores": os.cpu_count(),
        "load_avg_1min_before": load_before,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "top1_prob": float(softmax.max()),
    }
    print("| arch | head | input | ops | median s | min s | runs | cores | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {arch.name} | {args.head} | 1x3x{frames}x{args.size}x{args.size} | {len(net.op)} "
          f"| {result['median_s']:.2f} | {result['min_s']:.2f} | {args.runs} | {os.cpu_count()} "
          f"| {load_before:.1f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
