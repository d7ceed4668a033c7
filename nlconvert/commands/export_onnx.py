"""``nlconvert export-onnx``: export a converted model to ONNX and verify the file."""

from __future__ import annotations

import argparse
from typing import Any

from ..deploy import GRAPH_LAYOUTS


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: use N,3,T,H,W") from exc
    if len(dims) != 5:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: use N,3,T,H,W")
    return dims


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="export a model (.pt/.safetensors/.pkl/.pb) to ONNX and check it in onnxruntime",
        description=(
            "Export a converted model to ONNX (TorchScript exporter, opset 17+, dynamic batch, "
            "frames, height and width unless --static), then run onnx.checker, shape "
            "inference, and ONNX Runtime against PyTorch at the export size and a second "
            "size. Exit code 1 and no file if the outputs differ beyond tolerance."
        ),
    )
    p.add_argument("model", help="nlconvert .pt/.safetensors, or a Caffe2 .pkl/.pb")
    p.add_argument("-o", "--output", help="output .onnx (default: beside the model)")
    p.add_argument("--head", choices=["clip", "fully_conv"], default="clip",
                   help="clip: N x classes logits; fully_conv: mean-softmax probs (224+ px)")
    p.add_argument("--fp16", action="store_true",
                   help="float16 weights and compute; float32 input/output and softmaxes")
    p.add_argument("--static", action="store_true", help="fix every input dimension")
    p.add_argument("--layout", choices=GRAPH_LAYOUTS, default=GRAPH_LAYOUTS[0],
                   help="frames (default): frame-major 2-D convolutions with folded norms, "
                        "fastest in onnxruntime on CPU; ncthw: the network's own 3-D graph, "
                        "one node per Caffe2 op")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default 17)")
    p.add_argument("--shape", type=_shape,
                   help="example input N,3,T,H,W (default 1,3,<training frames>,224,224)")
    p.add_argument("--check-shape", type=_shape, action="append", dest="check_shapes",
                   help="shape(s) to verify at (default: the export shape and batch 2, "
                        "2x frames, +32 px)")
    p.add_argument("--tolerance", type=float,
                   help="max relative error (default 1e-4 fp32, 5e-2 fp16)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..convert import load_model
    from ..onnx_export import export_onnx
    from ..progress import status

    out = Path(args.output) if args.output else Path(args.model).with_suffix(".onnx")
    from ..atomic import check_writable

    check_writable(out, args.force)  # fail before the (long) load and export
    with status(f"loading {args.model}"):
        model = load_model(args.model, head=args.head)
    with status(f"exporting to {out}"):
        report = export_onnx(
            model, out, head=args.head, opset=args.opset, dynamic=not args.static,
            fp16=args.fp16, example_shape=args.shape, check_shapes=args.check_shapes,
            tolerance=args.tolerance, layout=args.layout, force=args.force,
        )
    if args.fp16:
        worst = max(c.max_rel for c in report.checks)
        top1 = min(c.top1_agree for c in report.checks)
        top5 = min(c.top5_agree for c in report.checks)
        print(f"fp16 vs fp32 PyTorch: max rel err {worst:.3g}, top-1 agreement {top1:.0%}, "
              f"top-5 agreement {top5:.0%}")
    kind = "static" if args.static else "dynamic batch/frames/height/width"
    print(f"wrote {out} ({report.size_bytes / 1e6:.1f} MB, opset {report.opset}, "
          f"head {report.head}, {report.precision}, {kind}, layout {report.layout})")
    return 0
