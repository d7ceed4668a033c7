"""``nlconvert parity``: prove a conversion against the numpy Caffe2 reference (exit 0/1/2)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    arch_option,
    batch_size_option,
    debug_option,
    existing_file,
    force_option,
    frames_option,
    head_option,
    human_stream,
    json_option,
    model_input,
    output_path,
    size_option,
)


@click.command("parity", short_help="Compare the numpy Caffe2 reference, PyTorch and ONNX layer by layer.")
@click.argument("checkpoint", type=model_input())
@click.option("--predict-net", type=existing_file(), metavar="FILE",
              help="Run this predict_net.pb as the reference net.")
@arch_option()
@click.option("--onnx", "onnx_path", type=existing_file(), metavar="FILE",
              help="Also compare this ONNX file's output (side onnx_file).")
@click.option("--onnx-layers", is_flag=True,
              help="Also export a temporary ONNX file that outputs every activation and compare "
                   "it layer by layer (side onnx).")
@frames_option()
@size_option(help="Height = width (default 224 with the clip head, 256 with fully_conv).")
@batch_size_option(default=1, help="Clips in the seeded input (a predict_net runs only at the "
                                   "batch size baked into it).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random input clip.")
@click.option("--input", "input_path", type=existing_file(), metavar="NPY",
              help="Use this clip instead: .npy, N x 3 x T x H x W float32, normalised.")
@head_option()
@click.option("--rtol", type=click.FloatRange(min=0), metavar="R",
              help="Relative tolerance: max|err| <= atol + rtol * max|ref| (default 1e-4).")
@click.option("--atol", type=click.FloatRange(min=0), metavar="A",
              help="Absolute floor of the tolerance (default 1e-6).")
@click.option("--report", callback=output_path((".md", ".html", ".htm")), metavar="FILE",
              help="Write the report: .md or .html.")
@json_option
@click.option("--save-outputs", callback=output_path((".npz",)), metavar="NPZ",
              help="Write every compared tensor to an .npz.")
@force_option
@debug_option
def command(checkpoint: Path, predict_net: Path | None, arch: str | None, onnx_path: Path | None,
            onnx_layers: bool, frames: int | None, size: int | None, batch_size: int, seed: int,
            input_path: Path | None, head: str, rtol: float | None, atol: float | None,
            report: Path | None, json_path: str | None, save_outputs: Path | None,
            force: bool) -> int:
    """Run one clip through the numpy Caffe2 reference (running the checkpoint's own blobs),
    the PyTorch model and optionally ONNX, and compare every layer. CHECKPOINT is a Caffe2
    checkpoint or a converted .pt/.safetensors (checked against the reference built from its
    own weights). Exit 0 when every compared tensor is within tolerance and top-1 agrees, 1
    when not, 2 on bad input."""
    import io

    import numpy as np

    from .._atomic import atomic_output, atomic_write_text, check_writable
    from .._progress import status
    from ..errors import EXIT_CHECK_FAILED, EXIT_OK
    from ..parity.compare import DEFAULT_ATOL, DEFAULT_RTOL, Tolerance
    from ..parity.report import summary_lines, to_html, to_json, to_markdown
    from ..parity.run import run_parity

    for path in (report, json_path if json_path != "-" else None, save_outputs):
        if path:
            check_writable(path, force)  # fail before the long run
    tol = Tolerance(rtol=DEFAULT_RTOL if rtol is None else rtol,
                    atol=DEFAULT_ATOL if atol is None else atol)
    with status(f"parity of {checkpoint}"):
        result = run_parity(checkpoint, predict_net=predict_net, arch_name=arch,
                            onnx_path=onnx_path, onnx_layers=onnx_layers, frames=frames,
                            size=size, batch=batch_size, seed=seed, input_path=input_path,
                            head=head, tolerance=tol,  # type: ignore[arg-type]
                            keep_outputs=bool(save_outputs))
    human = human_stream(json_path)
    if json_path == "-":
        print(to_json(result))
    print("\n".join(summary_lines(result)), file=human)
    if report:
        text = to_html(result) if report.suffix in (".html", ".htm") else to_markdown(result)
        atomic_write_text(report, text, force)
        print(f"wrote {report}", file=human)
    if json_path and json_path != "-":
        atomic_write_text(json_path, to_json(result), force)
        print(f"wrote {json_path}")
    if save_outputs:
        arrays = {f"{side}/{blob}": value for side, values in result.outputs.items()
                  for blob, value in values.items()}
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        with atomic_output(save_outputs, force) as tmp:
            tmp.write_bytes(buf.getvalue())
        print(f"wrote {save_outputs}", file=human)
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED
