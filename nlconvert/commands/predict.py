"""``nlconvert predict``: classify videos with the paper's 30-view test protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._bulk import exit_code, print_failure, print_warnings, strict_option
from ._runner import get_runner, print_check
from .options import (
    batch_size_option,
    debug_option,
    force_option,
    frames_option,
    human_stream,
    json_option,
    model_input,
    output_path,
    plural,
    rate_option,
    runner_options,
    views_option,
)


@click.command("predict", short_help="Classify videos (10 clips x 3 crops, as the paper tested).")
@click.argument("model", type=model_input())
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@views_option
@batch_size_option(help="Views per forward pass (default 6).")
@frames_option()
@rate_option
@runner_options
@click.option("--topk", type=click.IntRange(min=1), default=5, show_default=True,
              help="Classes to show.")
@json_option
@click.option("--save-clips", callback=output_path((".npy", ".npz")), metavar="NPY",
              help="Save the normalised views fed to the model (.npy; .npz for several videos).")
@strict_option
@force_option
@debug_option
def command(model: Path, inputs: tuple[Path, ...], views: str, batch_size: int | None,
            frames: int | None, rate: int | None, backend: str, device: str,
            threads: int | None, no_compile: bool, check: bool, topk: int,
            json_path: str | None, save_clips: Path | None, strict: bool, force: bool) -> int:
    """Classify videos as the paper tested them: every frame decoded (BT.601), short side 256,
    10 clips x 3 crops of 256, the fully-convolutional head, sum of the views' softmaxes.
    MODEL: a converted .pt, an .onnx exported with --head fully_conv, or a Caffe2 .pkl.
    INPUTS: video files or folders (searched recursively). A video that decoded with warnings
    (maybe truncated or damaged) is named on stderr and in the JSON; --strict fails it. With
    several videos, failed ones are named on stderr and the run goes on (exit 3)."""
    from .._atomic import atomic_output, atomic_write_text, check_writable
    from ..errors import VideoError
    from ..video.datalist import expand_inputs
    from ..video.decode import DAMAGED_KIND, VideoFileError, check_file, strict_reason
    from ..video.predict import predict_video
    from ..video.protocol import Views, normalize

    v = Views.parse(views)
    human = human_stream(json_path)
    for out in (json_path if json_path != "-" else None, save_clips):
        if out:
            check_writable(out, force)
    paths = [p for p, _ in expand_inputs(list(inputs))]
    if len(paths) == 1:  # a single bad file fails before the model is loaded
        check_file(paths[0])
    runner, _ = get_runner(model, backend, head="fully_conv", device=device, threads=threads,
                           batch_size=batch_size, compile=not no_compile, out=human)
    results: list[dict[str, Any]] = []
    clips: dict[str, Any] = {}
    failures = warned = 0
    for path in paths:
        try:
            pred, pixels = predict_video(runner, path, v, frames=frames, rate=rate, k=topk,
                                         show_progress=True, check=check)
            check = False
            if strict and pred.plan.warnings:
                raise VideoFileError(strict_reason(path, pred.plan.warnings), DAMAGED_KIND)
        except VideoError as exc:
            if len(paths) == 1:
                raise  # one video: the command failed (exit 2), not a bulk run
            failures += 1
            print_failure(str(exc))
            results.append({"path": str(path), "error": " ".join(str(exc).split()),
                            "kind": getattr(exc, "kind", "unreadable")})
            continue
        warned += bool(pred.plan.warnings)
        print_warnings(str(path), pred.plan.warnings)
        flag = "  WARNING: see stderr" if pred.plan.warnings else ""
        print(f"{path}  ({plural(pred.plan.num_frames, 'frame')}, "
              f"{plural(pred.num_views, 'view')}){flag}", file=human)
        for rank, (index, name, prob) in enumerate(pred.topk, 1):
            print(f"  {rank}. {name:<40s} {prob:.4f}  [{index}]", file=human)
        entry = pred.to_dict()
        entry["backend"] = runner.info.name
        entry["precision"] = runner.info.precision
        entry["plan"] = pred.plan.to_dict()
        results.append(entry)
        if save_clips:
            clips[str(path)] = normalize(pixels)
    text = json.dumps(results, indent=2) + "\n"
    if json_path == "-":
        print(text, end="")
    elif json_path:
        atomic_write_text(json_path, text, force=force)
    if save_clips and clips:
        _save_clips(save_clips, clips, force, atomic_output)
    print_check(runner, human)
    if len(paths) > 1 or warned:
        print(f"{plural(len(paths), 'video')}: {len(paths) - failures} classified "
              f"({warned} with decode warnings), {failures} failed", file=human)
    return exit_code(failures)


def _save_clips(target: Path, clips: dict[str, Any], force: bool, atomic_output: Any) -> None:
    import numpy as np

    from ..errors import NLConvertError

    if len(clips) == 1 and target.suffix != ".npz":
        with atomic_output(target, force) as tmp, open(tmp, "wb") as f:
            np.save(f, next(iter(clips.values())))
        return
    if target.suffix != ".npz":
        raise NLConvertError("--save-clips with several videos needs an .npz file name")
    with atomic_output(target, force) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{f"video_{i}": a for i, a in enumerate(clips.values())},
                 paths=np.array(list(clips)))
