"""``nlconvert export-mmaction2``: write a model as an mmaction2 config + checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from .options import arch_option, debug_option, force_option, model_input


@click.command("export-mmaction2", short_help="Write a model as an mmaction2 config + checkpoint.")
@click.argument("model", type=model_input())
@click.argument("output", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", metavar="NAME", help="File stem of DIR/NAME.py and DIR/NAME.pth "
                                             "(default: the model file's stem).")
@arch_option(help="Architecture of a Caffe2 checkpoint whose name does not tell it.")
@click.option("--check", is_flag=True,
              help="Build the files with mmaction2's init_recognizer and compare its logits "
                   "with nlconvert's (needs nlconvert[mmaction2]); exit 1 beyond 1e-5.")
@force_option
@debug_option
def command(model: Path, output: Path, name: str | None, arch: str | None, check: bool,
            force: bool) -> int:
    """Write MODEL (.pt/.safetensors, a hub folder, or a Caffe2 .pkl/.pb converted in memory) as DIR/NAME.py,
    an mmaction2 config that mmaction2's own init_recognizer builds (stock Recognizer3D,
    I3DHead and data preprocessor; nlconvert's exact backbone, imported through the config's
    custom_imports), and DIR/NAME.pth, the weights under mmaction2's key names with the class
    names and provenance in its meta. Writing needs no mmaction2."""
    from ..errors import ParityError
    from ..interop.mmaction2 import export_mmaction2
    from ..interop.mmaction2_check import require_mmaction2

    if check:
        require_mmaction2()  # before anything is written
    done = export_mmaction2(model, output, name=name, arch_name=arch, force=force)
    print(f"architecture: {done.arch.name}")
    print(f"wrote {done.config} and {done.checkpoint} ({done.keys} keys)")
    if check:
        from ..convert.pipeline import load_model
        from ..interop.mmaction2_check import TOLERANCE, check_export

        reference = load_model(model, arch_name=arch) if arch else load_model(model)
        result = check_export(done.config, done.checkpoint, reference)
        shape = "x".join(str(d) for d in result.shape)
        print(f"mmaction2 init_recognizer vs nlconvert, logits at {shape}: max abs diff "
              f"{result.max_abs:.3g}, relative {result.relative:.3g} (tolerance {TOLERANCE:g})")
        if not result.ok:  # files that do not compute the network are not left behind
            done.config.unlink()
            done.checkpoint.unlink()
            raise ParityError(f"{done.config}: mmaction2's logits differ from nlconvert's by "
                              f"{result.relative:.3g} relative (tolerance {TOLERANCE:g}); "
                              "nothing written")
    return 0
