"""``nlconvert caffe2-to-torch``: convert a Caffe2 checkpoint into a PyTorch model file."""

from __future__ import annotations

from pathlib import Path

import click

from ..convert.formats import MODEL_SUFFIXES
from .options import arch_option, debug_option, existing_file, force_option, output_path


@click.command("caffe2-to-torch",
               short_help="Convert a Caffe2 checkpoint (.pkl or init_net.pb) to .pt/.safetensors.")
@click.argument("checkpoint", type=existing_file())
@click.option("-o", "--output", callback=output_path(MODEL_SUFFIXES), metavar="FILE",
              help="Output .pt, .pth or .safetensors (default: beside the input, .pt).")
@arch_option()
@click.option("--predict-net", type=existing_file(), metavar="FILE",
              help="The predict_net.pb of an init_net.pb (helps choose the architecture).")
@click.option("--inflate", is_flag=True,
              help="Inflate a 2D ImageNet checkpoint into the --arch video network.")
@click.option("--allow-nonfinite", is_flag=True, help="Accept NaN/Inf weights.")
@force_option
@click.option("-v", "--verbose", is_flag=True, help="Print the blob -> parameter table.")
@debug_option
def command(checkpoint: Path, output: Path | None, arch: str | None, predict_net: Path | None,
            inflate: bool, allow_nonfinite: bool, force: bool, verbose: bool) -> int:
    """Convert a Caffe2 checkpoint of video-nonlocal-net (official .pkl, converted .pkl, or
    init_net.pb) into a PyTorch model file: strict mapping of every blob, architecture and
    class names and provenance stored in the file."""
    import sys

    from .._atomic import check_writable
    from .._hashing import FileHash
    from ..convert.formats import default_output

    check_writable(output or default_output(checkpoint), force)  # before any (slow) reading
    # Start the provenance hash before torch is imported: it runs on the other core.
    file_hash = FileHash(checkpoint)
    from .._progress import status
    from ..convert import convert_file
    from ..convert.mapping import describe_initialised, format_table

    with status(f"converting {checkpoint}"):
        out, conv = convert_file(checkpoint, output, arch_name=arch, predict_net=predict_net,
                                 inflate=inflate, allow_nonfinite=allow_nonfinite, force=force,
                                 file_hash=file_hash)
    for warning in conv.warnings:
        print(f"nlconvert: warning: {warning}", file=sys.stderr)
    if verbose:
        print(format_table(conv.mapping))
    n_params = sum(t.numel() for t in conv.mapping.state_dict.values())
    print(f"architecture: {conv.arch.describe()} ({conv.arch_reason})")
    print(f"mapped {conv.mapping.from_file()} blobs from the file ({n_params / 1e6:.2f} M values "
          f"in all); ignored {len(conv.ignored)} non-parameter blobs")
    for line in describe_initialised(conv.mapping.initialised()):
        print(line)
    print(f"wrote {out}")
    return 0
