"""``nlconvert caffe2-to-torch``: convert a Caffe2 checkpoint into a PyTorch model file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..progress import status


def register(sub: Any) -> None:
    p = sub.add_parser(
        "caffe2-to-torch",
        help="convert a Caffe2 checkpoint (.pkl or init_net.pb) to a PyTorch .pt/.safetensors",
        description="Convert a Caffe2 checkpoint of video-nonlocal-net into a PyTorch model file.",
    )
    p.add_argument("checkpoint", help="official .pkl, converted .pkl, or init_net.pb")
    p.add_argument("-o", "--output", help="output .pt or .safetensors (default: beside the input)")
    p.add_argument("--arch", help="architecture name (see `nlconvert info --list-archs`)")
    p.add_argument("--predict-net", help="predict_net.pb of an init_net.pb (helps choose the arch)")
    p.add_argument("--inflate", action="store_true",
                   help="inflate a 2D ImageNet checkpoint into the --arch video network")
    p.add_argument("--allow-nonfinite", action="store_true", help="accept NaN/Inf weights")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-v", "--verbose", action="store_true", help="print the blob -> parameter table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..io.checkpoint import FileHash

    # Start the provenance hash before torch is imported: it runs on the other core.
    file_hash = FileHash(args.checkpoint) if Path(args.checkpoint).is_file() else None
    from ..convert import convert_file
    from ..mapping import format_table

    with status(f"converting {args.checkpoint}"):
        out, conv = convert_file(
            args.checkpoint,
            args.output,
            arch_name=args.arch,
            predict_net=args.predict_net,
            inflate=args.inflate,
            allow_nonfinite=args.allow_nonfinite,
            force=args.force,
            file_hash=file_hash,
        )
    if args.verbose:
        print(format_table(conv.mapping))
    n_params = sum(t.numel() for t in conv.mapping.state_dict.values())
    print(f"architecture: {conv.arch.describe()} ({conv.arch_reason})")
    print(f"mapped {len(conv.mapping.rows)} blobs ({n_params / 1e6:.2f} M values); "
          f"ignored {len(conv.ignored)} non-parameter blobs")
    print(f"wrote {out}", file=sys.stdout)
    return 0
