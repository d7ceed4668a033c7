"""``nlconvert export-onnx``: export a converted model to ONNX and verify the file."""

from __future__ import annotations

from pathlib import Path

import click

from .options import debug_option, force_option, head_option, layouts_choice, model_input, output_path


def _shape(_ctx: click.Context, _param: click.Parameter, value: str | tuple[str, ...] | None) -> object:
    def parse(text: str) -> tuple[int, ...]:
        try:
            dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
        except ValueError:
            raise click.BadParameter(f"bad shape {text!r}: use N,3,T,H,W") from None
        if len(dims) != 5 or dims[1] != 3 or min(dims) < 1:
            raise click.BadParameter(f"bad shape {text!r}: use N,3,T,H,W")
        return dims

    if value is None:
        return None
    if isinstance(value, tuple):
        return [parse(v) for v in value] or None
    return parse(value)


@click.command("export-onnx", short_help="Export a model to ONNX and check it in ONNX Runtime.")
@click.argument("model", type=model_input())
@click.option("-o", "--output", callback=output_path((".onnx",)), metavar="FILE",
              help="Output .onnx (default: beside the model).")
@head_option(help="clip: logits + pool5 + res4 outputs; fully_conv: the test head's "
                  "mean-softmax probabilities (224+ px).")
@click.option("--fp16", is_flag=True,
              help="Float16 weights and compute; float32 input, output and softmaxes.")
@click.option("--static", is_flag=True, help="Fix every input dimension to the export shape.")
@click.option("--layout", type=layouts_choice, default="frames", show_default=True,
              help="frames: frame-major 2-D convolutions with folded norms, fastest in ONNX "
                   "Runtime on CPU; ncthw: the network's own 3-D graph, one node per Caffe2 op.")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True,
              help="ONNX opset (17 or newer).")
@click.option("--shape", callback=_shape, metavar="N,3,T,H,W",
              help="Example input traced (default 1,3,<training frames>,224,224).")
@click.option("--check-shape", "check_shapes", multiple=True, callback=_shape, metavar="N,3,T,H,W",
              help="Shape(s) to verify at (default: the export shape and batch 2, 2x frames, +32 px).")
@click.option("--tolerance", type=click.FloatRange(min=0), metavar="R",
              help="Max relative error against PyTorch (default 1e-4 fp32 logits, 1e-3 "
                   "probabilities, 5e-2 fp16).")
@force_option
@debug_option
def command(model: Path, output: Path | None, head: str, fp16: bool, static: bool, layout: str,
            opset: int, shape: tuple[int, ...] | None, check_shapes: list[tuple[int, ...]] | None,
            tolerance: float | None, force: bool) -> int:
    """Export a model (.pt/.safetensors, or a Caffe2 .pkl/.pb converted in memory) to ONNX
    (TorchScript exporter, opset 17+, dynamic batch, frames, height and width unless
    --static), then run onnx.checker, shape inference, and ONNX Runtime against PyTorch at the
    export size and a second size. Exit 1 and no file if the outputs differ beyond tolerance."""
    from .._atomic import check_writable
    from .._progress import status
    from ..convert import load_model
    from ..runtime.onnx_export import export_onnx

    out = output or model.with_suffix(".onnx")
    check_writable(out, force)  # fail before the (long) load and export
    with status(f"loading {model}"):
        net = load_model(model, head=head)  # type: ignore[arg-type]
    with status(f"exporting to {out} and checking it in ONNX Runtime") as st:
        report = export_onnx(net, out, head=head, opset=opset, dynamic=not static,  # type: ignore[arg-type]
                             fp16=fp16, example_shape=shape, check_shapes=check_shapes,
                             tolerance=tolerance, layout=layout, force=force, log=st.log)
    if fp16:
        worst = max(c.max_rel for c in report.checks)
        top1 = min(c.top1_agree for c in report.checks)
        top5 = min(c.top5_agree for c in report.checks)
        print(f"fp16 vs fp32 PyTorch: max rel err {worst:.3g}, top-1 agreement {top1:.0%}, "
              f"top-5 agreement {top5:.0%}")
    kind = "static" if static else "dynamic batch/frames/height/width"
    print(f"wrote {out} ({report.size_bytes / 1e6:.1f} MB, opset {report.opset}, "
          f"head {report.head}, {report.precision}, {kind}, layout {report.layout})")
    return 0
