"""``nlconvert run``: run an exported ONNX model on a clip (.npy) and print the top classes."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run an exported .onnx on a clip (.npy, N x 3 x T x H x W or 3 x T x H x W)",
        description=(
            "Run an nlconvert ONNX file in ONNX Runtime (CUDA if available, else CPU) on a "
            "normalised float32 clip saved with numpy.save, and print the top-k classes "
            "(Kinetics-400 names for 400-class models)."
        ),
    )
    p.add_argument("onnx", help="file written by `nlconvert export-onnx`")
    p.add_argument("clip", help=".npy of N x 3 x T x H x W (or 3 x T x H x W) float32")
    p.add_argument("--topk", type=int, default=5, help="classes to print per clip (default 5)")
    p.add_argument("--provider", choices=["cuda", "cpu"],
                   help="execution provider (default: CUDA if available, else CPU)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: onnxruntime's)")
    p.add_argument("--save", help="write the N x classes output to this .npy")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import InputShapeError
    from ..onnx_runtime import OnnxModel

    providers = None
    if args.provider:
        providers = ["CUDAExecutionProvider" if args.provider == "cuda"
                     else "CPUExecutionProvider"]
    try:
        clip = np.load(args.clip, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputShapeError(f"{args.clip}: not a readable .npy array ({exc})") from exc
    if clip.ndim == 4 and clip.shape[0] == 3:  # one clip without the batch axis
        clip = clip[None]
    model = OnnxModel(args.onnx, providers=providers, threads=args.threads)
    scores = model(clip)
    kind = "logit" if model.head == "clip" else "prob"
    print(f"{model.arch.name} ({model.head} head, {model.precision}) on {model.provider}")
    for n, rows in enumerate(model.topk(scores, args.topk)):
        print(f"clip {n}:")
        for rank, (index, name, score) in enumerate(rows, 1):
            print(f"  {rank}. {name} ({index})  {kind} {score:.4f}")
    if args.save:
        from ..atomic import atomic_output

        with atomic_output(args.save, force=True) as tmp, open(tmp, "wb") as f:
            np.save(f, scores)
    return 0
