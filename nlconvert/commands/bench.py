"""``nlconvert bench``: latency and throughput of the inference paths on seeded clips."""

from __future__ import annotations

import argparse
from typing import Any

from ..deploy import GRAPH_LAYOUTS


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _layouts(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in GRAPH_LAYOUTS for v in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(GRAPH_LAYOUTS)}, got {text!r}")
    return values


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="time PyTorch / ONNX Runtime inference paths and their errors vs eager fp32",
        description=(
            "Time every inference path this machine has (PyTorch eager fp32, bf16 autocast "
            "with channels_last_3d on CPUs with AVX512-BF16/AMX, ONNX Runtime CPU, CUDA "
            "fp32/fp16 with a GPU; --fast, --compile, --int8 add the optimised paths) on the "
            "same seeded clips: median and p90 latency, clips/s, and the max relative error "
            "and top-1 agreement against PyTorch eager fp32."
        ),
    )
    p.add_argument("model", help="nlconvert .pt/.safetensors (or a Caffe2 .pkl/.pb)")
    p.add_argument("--onnx", help="float32 .onnx export of the same model (default: export one)")
    p.add_argument("--head", choices=["clip", "fully_conv"], default="clip")
    p.add_argument("--frames", type=int, help="clip length (default: the training length)")
    p.add_argument("--size", type=int, default=224, help="height and width (default 224)")
    p.add_argument("--batch", type=_ints, default=[1], help="batch sizes, e.g. 1,4 (default 1)")
    p.add_argument("--threads", type=int, help="intra-op threads for PyTorch and ONNX Runtime")
    p.add_argument("--runs", type=int, default=10, help="timed runs per path (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per path (default 2)")
    p.add_argument("--error-clips", type=int, default=3,
                   help="seeded clips for the errors and top-1 agreement (default 3)")
    p.add_argument("--fast", action="store_true",
                   help="add the fast path: folded norms, SDPA non-local, bf16, channels_last_3d")
    p.add_argument("--compile", action="store_true",
                   help="add the fast path under torch.compile (inductor, freezing; slow start)")
    p.add_argument("--int8", action="store_true",
                   help="add ONNX Runtime int8 (static quantisation calibrated on seeded clips)")
    p.add_argument("--layouts", type=_layouts, default=[GRAPH_LAYOUTS[0]],
                   help="without --onnx: ONNX graph layouts to export and time, comma-separated "
                        f"({', '.join(GRAPH_LAYOUTS)}; default {GRAPH_LAYOUTS[0]})")
    p.add_argument("--json", help="write the results as a JSON list to this file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from ..bench import (
        format_table,
        machine_line,
        run_benchmark,
        standard_paths,
        torch_threads,
        write_json,
    )
    from ..convert import load_model

    model = load_model(args.model, head=args.head)
    frames = args.frames or model.arch.frames
    results = []
    exported: dict[str, Path] = {}  # ONNX files made once for every batch size
    with torch_threads(args.threads), tempfile.TemporaryDirectory(prefix="nlconvert-bench-") as work:
        print(machine_line(args.threads))
        for batch in args.batch:
            shape = (batch, 3, frames, args.size, args.size)
            from ..onnx_runtime import check_clip_shape

            check_clip_shape(model.arch, args.head, shape)
            paths = standard_paths(model, onnx_file=args.onnx, threads=args.threads,
                                   fast=args.fast, compile=args.compile, int8=args.int8,
                                   calib_shape=(1, 3, frames, args.size, args.size),
                                   workdir=work, layouts=args.layouts, exported=exported)
            print(f"batch {batch}: {'x'.join(map(str, shape))}, {len(paths)} paths, "
                  f"{args.warmup} warm-up + {args.runs} timed runs each (round-robin)")
            results += run_benchmark(paths, shape, runs=args.runs, warmup=args.warmup,
                                     error_clips=args.error_clips)
    print(format_table(results))
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    return 0
