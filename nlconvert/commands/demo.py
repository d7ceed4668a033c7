"""``nlconvert demo``: the main job end to end on a generated official-format checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="generate an official-format checkpoint, convert it, export ONNX, prove parity",
        description="Write a seeded checkpoint in the official Caffe2 pickle format (random "
        "weights, official names and shapes), convert it to PyTorch, export it to ONNX, and "
        "write a parity report comparing the numpy Caffe2 reference, PyTorch and ONNX.",
    )
    p.add_argument("--arch", default="i3d_nonlocal_8x8", help="architecture (default %(default)s)")
    p.add_argument("--out", default="nlconvert_demo", help="output directory (default %(default)s)")
    p.add_argument("--size", type=int, default=224, help="parity input size (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import main
    from ..synthetic import release_file_name, write_synthetic_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / f"{release_file_name(args.arch)}.pkl"
    print(f"[1/4] writing a generated official-format checkpoint: {ckpt}")
    write_synthetic_checkpoint(args.arch, ckpt, seed=args.seed)
    model = ckpt.with_suffix(".pt")
    onnx = ckpt.with_suffix(".onnx")
    steps = [
        ("[2/4] converting to PyTorch", ["caffe2-to-torch", str(ckpt), "-o", str(model), "--force"]),
        ("[3/4] exporting to ONNX", ["export-onnx", str(model), "-o", str(onnx), "--force"]),
        ("[4/4] parity: numpy Caffe2 reference vs PyTorch vs ONNX",
         ["parity", str(ckpt), "--onnx", str(onnx), "--onnx-layers", "--size", str(args.size),
          "--report", str(out / "parity.html"), "--json", str(out / "parity.json"), "--force"]),
    ]
    for title, argv in steps:
        print(title)
        code = main(argv)
        if code:
            return code
    print(f"done: open {out / 'parity.html'}")
    return 0
