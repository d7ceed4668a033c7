"""``nlconvert export-caffe2``: write a checkpoint as a Caffe2 init_net.pb + predict_net.pb."""

from __future__ import annotations

from pathlib import Path

import click

from .options import arch_option, batch_size_option, debug_option, existing_file, force_option, head_option


@click.command("export-caffe2", short_help="Write a checkpoint as a Caffe2 init_net.pb + predict_net.pb pair.")
@click.argument("checkpoint", type=existing_file())
@click.option("-o", "--output", required=True, metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for init_net.pb and predict_net.pb.")
@arch_option()
@head_option(help="clip: FC + softmax (the val net); fully_conv: the official test net.")
@batch_size_option(default=1, help="Batch size baked into the non-local Reshape ops.")
@click.option("--crop-size", type=click.IntRange(min=32), metavar="PIXELS",
              help="Crop size baked into the grouped non-local Reshape (default 224 clip, 256 fully_conv).")
@force_option
@debug_option
def command(checkpoint: Path, output: Path, arch: str | None, head: str, batch_size: int,
            crop_size: int | None, force: bool) -> int:
    """Write a checkpoint as the Caffe2 net pair the official code builds: init_net.pb
    (GivenTensorFill of each weight) and predict_net.pb. Caffe2 bakes the batch size (and the
    grouped non-local's crop size) into the net: use the files with exactly those sizes."""
    import sys

    from ..arch.detect import filename_conflict, resolve_arch
    from ..io.checkpoint import read_checkpoint
    from ..reference.caffe2_export import export_caffe2

    ckpt = read_checkpoint(checkpoint)
    spec, how = resolve_arch(checkpoint, ckpt.blobs, arch)
    conflict = filename_conflict(checkpoint, spec) if arch else None
    if conflict:
        print(f"nlconvert: warning: {conflict}", file=sys.stderr)
    init_path, predict_path = export_caffe2(spec, ckpt.blobs, output, head=head,
                                            batch_size=batch_size, crop_size=crop_size, force=force)
    print(f"architecture: {spec.name} ({how})")
    print(f"wrote {init_path} and {predict_path} ({head} head)")
    print(f"note: batch size {batch_size} is baked into the net's Reshape ops; "
          "Caffe2 computes wrong attention for any other batch size")
    return 0
