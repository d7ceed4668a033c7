"""``nlconvert demo``: the main job end to end on a generated official-format checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from .options import arch_option, debug_option, force_option, size_option


@click.command("demo", short_help="Generate an official-format checkpoint, convert, export, prove parity.")
@click.option("--out", "out_dir", default="nlconvert_demo", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@arch_option(default="i3d_nonlocal_8x8", help="Architecture of the generated checkpoint.")
@size_option(default=224, help="Height and width of the parity clip.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random weights and of the parity clip.")
@force_option
@debug_option
def command(out_dir: Path, arch: str, size: int, seed: int, force: bool) -> int:
    """Write a seeded checkpoint in the official Caffe2 pickle format (random weights, the
    official blob names and shapes), convert it to PyTorch, export it to ONNX, and write a
    parity report comparing the numpy Caffe2 reference, PyTorch and ONNX. Rerun over an
    existing folder with --force."""
    from ..demo import run_demo
    from ..errors import EXIT_CHECK_FAILED, EXIT_OK
    from ..parity.report import summary_lines

    result = run_demo(out_dir, arch_name=arch, size=size, seed=seed, force=force)
    print("\n".join(summary_lines(result.parity)))
    print(f"done: open {result.report_html}")
    return EXIT_OK if result.parity.ok else EXIT_CHECK_FAILED
