"""``nlconvert run``: run a model on a clip saved with numpy and print the top classes."""

from __future__ import annotations

from pathlib import Path

import click

from ..arch import HEADS
from .options import (
    backend_option,
    debug_option,
    device_option,
    existing_file,
    force_option,
    model_input,
    no_compile_option,
    output_path,
    threads_option,
)


@click.command("run", short_help="Run a model (.onnx, .pt, .pkl) on a clip saved as .npy; print the top classes.")
@click.argument("model", type=model_input())
@click.argument("clip", type=existing_file())
@click.option("--head", type=click.Choice(HEADS), default=None,
              help="clip (logits) or fully_conv (probabilities); default: an .onnx file's own "
                   "head, else clip.")
@click.option("--topk", type=click.IntRange(min=1), default=5, show_default=True,
              help="Classes to print per clip.")
@backend_option
@device_option
@threads_option
@no_compile_option
@click.option("--save", callback=output_path((".npy",)), metavar="NPY",
              help="Write the N x classes output to this .npy.")
@force_option
@debug_option
def command(model: Path, clip: Path, head: str | None, topk: int, backend: str, device: str,
            threads: int | None, no_compile: bool, save: Path | None, force: bool) -> int:
    """Run MODEL on CLIP (a normalised float32 .npy of N x 3 x T x H x W, or 3 x T x H x W)
    and print the top-k classes of each clip (Kinetics-400 names for 400-class models)."""
    import numpy as np

    from .._atomic import atomic_output, check_writable
    from ..arch import top_k
    from ..io.clip_file import load_clip_file
    from ..runtime.backends import describe_choice, open_backend

    if save:
        check_writable(save, force)
    clips = load_clip_file(clip)
    runner = open_backend(model, backend, device=device, threads=threads, compile=not no_compile)
    if head is None:
        head = runner.heads[0] if len(runner.heads) == 1 else "clip"
    key = "logits" if head == "clip" else "probs"
    kind = "logit" if head == "clip" else "prob"
    scores = runner.run(clips, head)[key]  # type: ignore[arg-type]
    print(f"{runner.arch.name} ({head} head); {describe_choice(backend, runner)}")
    for n, row in enumerate(scores):
        print(f"clip {n}:")
        for rank, (index, name, score) in enumerate(top_k(row, topk, runner.class_names), 1):
            print(f"  {rank}. {name} ({index})  {kind} {score:.4f}")
    if save:
        with atomic_output(save, force) as tmp, open(tmp, "wb") as f:
            np.save(f, scores)
        print(f"wrote {save}")
    return 0
