"""``nlconvert export-hub``: write a Hugging Face model folder (config, safetensors, card)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import arch_option, debug_option, force_option, model_input


@click.command("export-hub", short_help="Write a Hugging Face model folder: config, safetensors, card.")
@click.argument("model", type=model_input())
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--onnx", "with_onnx", is_flag=True,
              help="Also write model.onnx (fully-convolutional head), checked in ONNX Runtime.")
@click.option("--license", "license_id", metavar="ID",
              help="Licence of the card (default: cc-by-nc-4.0 for an official zoo checkpoint, "
                   "as the video-nonlocal-net release states; 'other' otherwise).")
@arch_option(help="Architecture of a Caffe2 MODEL whose file name and blobs do not say it.")
@click.option("--no-parity", is_flag=True,
              help="Skip the check against the Caffe2 reference (the card then says so).")
@click.option("--frames", type=click.IntRange(min=1), metavar="T",
              help="Frames of the parity clip (default: the training clip).")
@click.option("--size", type=click.IntRange(min=32), metavar="PX",
              help="Height and width of the parity clip (default 224).")
@force_option
@debug_option
def command(model: Path, folder: Path, with_onnx: bool, license_id: str | None, arch: str | None,
            no_parity: bool, frames: int | None, size: int | None, force: bool) -> int:
    """Write FOLDER, ready for `huggingface-cli upload`: config.json (architecture, classes,
    clip, input normalisation, test protocol, heads, provenance, parity), model.safetensors
    and a README.md model card, from MODEL (a Caffe2 .pkl/.pb, a .pt/.safetensors or a hub
    folder). The network is first checked against the Caffe2 reference on a seeded clip; a
    failed check (exit 1) writes nothing. The folder appears whole, or not at all."""
    from .._progress import status
    from ..hub import export_hub

    with status(f"writing {folder}") as st:
        result = export_hub(model, folder, license=license_id, onnx=with_onnx, arch_name=arch,
                            parity=not no_parity,
                            parity_frames=frames, parity_size=size, force=force, log=st.log)
    print(f"wrote {result.path}: {', '.join(result.files)} (license {result.license})")
    return 0
