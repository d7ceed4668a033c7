"""``nlconvert parity``: prove a conversion against the numpy Caffe2 reference (exit 0/1/2)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "parity",
        help="compare reference (numpy Caffe2), PyTorch and ONNX layer by layer",
        description="Run one clip through the numpy Caffe2 reference, the converted PyTorch "
        "model and optionally ONNX; exit 0 when every compared tensor is within tolerance, "
        "1 when not, 2 on bad input.",
    )
    p.add_argument("checkpoint", help="official .pkl, converted .pkl, or init_net.pb")
    p.add_argument("--predict-net", help="run this predict_net.pb as the reference net")
    p.add_argument("--arch", help="architecture name")
    p.add_argument("--onnx", help="also compare this ONNX file's output (side onnx_file)")
    p.add_argument("--onnx-layers", action="store_true",
                   help="also export a temporary ONNX that outputs every activation and compare "
                   "it layer by layer (side onnx)")
    p.add_argument("--frames", type=int, help="clip length (default: the training clip)")
    p.add_argument("--size", type=int, help="height = width (default 224 clip head, 256 fully-conv)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input", help=".npy clip, N x 3 x T x H x W float32, normalised")
    p.add_argument("--head", choices=["clip", "fully_conv"], default="clip")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance (default 1e-4)")
    p.add_argument("--atol", type=float, default=None, help="absolute floor (default 1e-6)")
    p.add_argument("--report", help="write the report: .md or .html")
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--save-outputs", help="write every compared tensor to an .npz")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from ..atomic import atomic_output, atomic_write_text, check_writable
    from ..errors import EXIT_CHECK_FAILED, EXIT_OK
    from ..parity.compare import DEFAULT_ATOL, DEFAULT_RTOL, Tolerance
    from ..parity.report import summary_lines, to_html, to_json, to_markdown
    from ..parity.run import run_parity
    from ..progress import status

    outputs = [p for p in (args.report, args.json, args.save_outputs) if p]
    for path in outputs:
        check_writable(path, args.force)  # fail before the long run
    tol = Tolerance(
        rtol=DEFAULT_RTOL if args.rtol is None else args.rtol,
        atol=DEFAULT_ATOL if args.atol is None else args.atol,
    )
    with status(f"parity of {args.checkpoint}"):
        result = run_parity(
            args.checkpoint, args.predict_net, args.arch, args.onnx, args.onnx_layers,
            args.frames, args.size, args.batch, args.seed, args.input, args.head, tol,
            keep_outputs=bool(args.save_outputs),
        )
    print("\n".join(summary_lines(result)))
    if args.report:
        text = to_html(result) if Path(args.report).suffix in (".html", ".htm") else to_markdown(result)
        atomic_write_text(args.report, text, args.force)
        print(f"wrote {args.report}")
    if args.json:
        atomic_write_text(args.json, to_json(result), args.force)
        print(f"wrote {args.json}")
    if args.save_outputs:
        arrays = {f"{side}/{blob}": value for side, values in result.outputs.items()
                  for blob, value in values.items()}
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        with atomic_output(args.save_outputs, args.force) as tmp:
            tmp.write_bytes(buf.getvalue())
        print(f"wrote {args.save_outputs}")
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED
