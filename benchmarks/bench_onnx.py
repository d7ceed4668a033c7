"""Benchmark the inference paths of one network and write a Markdown table.

    python benchmarks/bench_onnx.py [--model MODEL.pt] [--arch i3d_nonlocal_8x8] \
        [--frames 8] [--size 224] [--batch 1] [--threads 2] [--runs 10] \
        [--fast] [--compile] [--int8] [--layouts frames,ncthw] [--out RESULTS.md] [--json FILE]

The same numbers as ``nlconvert bench`` (same seeded clips, round-robin timing, errors
against PyTorch eager fp32). Without --model a seeded synthetic network of --arch is used
(nlconvert.deploy.synthetic: calibrated so activations stay O(1)).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile

from nlconvert.atomic import atomic_write_text
from nlconvert.bench import (
    format_markdown,
    format_table,
    machine_line,
    run_benchmark,
    standard_paths,
    torch_threads,
    write_json,
)
from nlconvert.convert import load_model
from nlconvert.deploy.synthetic import synthetic_model
from nlconvert.zoo import get_arch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="nlconvert .pt (default: a synthetic --arch network)")
    p.add_argument("--arch", default="i3d_nonlocal_8x8")
    p.add_argument("--onnx", help="float32 export of the model (default: export one)")
    p.add_argument("--frames", type=int)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", default="1", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--error-clips", type=int, default=3)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--int8", action="store_true")
    p.add_argument("--layouts", default="frames,ncthw",
                   help="ONNX graph layouts to export and time when --onnx is not given "
                        "(the first is the 'onnxruntime' row)")
    p.add_argument("--out", help="write the Markdown here (default: print it)")
    p.add_argument("--json")
    args = p.parse_args()

    with torch_threads(args.threads), tempfile.TemporaryDirectory() as work:
        if args.model:
            model = load_model(args.model)
        else:
            model = synthetic_model(get_arch(args.arch), seed=0,
                                    calib_shape=(args.frames or get_arch(args.arch).frames,
                                                 args.size, args.size))
        frames = args.frames or model.arch.frames
        results = []
        exported: dict = {}  # ONNX files, made once for every batch size
        for batch in (int(b) for b in args.batch.split(",")):
            paths = standard_paths(model, onnx_file=args.onnx, threads=args.threads,
                                   fast=args.fast, compile=args.compile, int8=args.int8,
                                   calib_shape=(1, 3, frames, args.size, args.size),
                                   workdir=work, layouts=args.layouts.split(","),
                                   exported=exported, log=print)
            results += run_benchmark(paths, (batch, 3, frames, args.size, args.size),
                                     runs=args.runs, warmup=args.warmup, log=print,
                                     error_clips=args.error_clips)
    print(format_table(results))
    command = "python " + " ".join(sys.argv)
    text = "\n".join([
        f"# {model.arch.name}, {frames}x{args.size}x{args.size}",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine_line(args.threads)}",
        f"model: {args.model or 'synthetic (seed 0)'}; {args.warmup} warm-up + {args.runs} "
        "timed runs per path, round-robin; errors against PyTorch eager fp32 on "
        f"{args.error_clips} seeded clips.",
        "",
        f"Command: `{command}`",
        "",
        format_markdown(results),
        "",
    ])
    if args.out:
        atomic_write_text(args.out, text, force=True)
        print(f"wrote {args.out}")
    else:
        print(text)
    if args.json:
        write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
