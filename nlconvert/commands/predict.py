"""``nlconvert predict``: classify videos with the paper's 30-view test protocol."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..atomic import atomic_output, atomic_write_text, check_writable
from ..errors import EXIT_BAD_INPUT, EXIT_OK, NLConvertError, VideoError


def register(subparsers: Any) -> None:
    """Add the ``predict`` sub-command."""
    p = subparsers.add_parser(
        "predict",
        help="classify videos (10 clips x 3 crops, as the paper tested)",
        description="Classify videos as the paper tested them: every frame decoded (BT.601), "
        "short side 256, 10 clips x 3 crops of 256, sum of the views' softmaxes.",
    )
    p.add_argument("model", help="converted .pt, .onnx, or original Caffe2 .pkl")
    p.add_argument("inputs", nargs="+", help="video files or folders (searched recursively)")
    add_view_options(p)
    p.add_argument("--topk", type=int, default=5, help="classes to show (default 5)")
    p.add_argument("--json", metavar="OUT", help="write the predictions as JSON")
    p.add_argument("--save-clips", metavar="NPY",
                   help="save the normalised views fed to the model (.npy; .npz for several)")
    p.add_argument("--force", action="store_true", help="overwrite --json/--save-clips outputs")
    p.set_defaults(run=run)


def add_view_options(p: argparse.ArgumentParser) -> None:
    """Options shared by predict and evaluate."""
    p.add_argument("--views", default="10x3", help="clips x crops: 10x3 (paper), 10x1, 1x1")
    p.add_argument("--batch", type=int, default=None, help="views per forward pass")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: model's)")
    p.add_argument("--rate", type=int, default=None, help="sampling rate (default: model's)")
    p.add_argument("--device", default="cpu", help="torch device for .pt/.pkl models")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders replaced by the video files under them, sorted."""
    from ..video.datalist import VIDEO_EXTENSIONS

    out: list[Path] = []
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise VideoError(f"{p}: no video files in this folder")
            out.extend(found)
        else:
            out.append(p)
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``nlconvert predict``."""
    import numpy as np

    from ..video import protocol, scorer
    from ..video.predict import predict_video

    views = protocol.Views.parse(args.views)
    if args.topk < 1:
        raise NLConvertError("--topk must be at least 1")
    for out in (args.json, args.save_clips):
        if out:
            check_writable(out, args.force)
    paths = expand_inputs(args.inputs)
    if len(paths) == 1:  # a single bad file fails before the model is loaded
        from ..video.decode import check_file

        check_file(paths[0])
    model = scorer.open_scorer(args.model, device=args.device)
    results: list[dict[str, Any]] = []
    clips: dict[str, Any] = {}
    failures: list[str] = []
    for path in paths:
        try:
            pred, pixels = predict_video(model, path, views, args.batch, args.frames, args.rate,
                                         k=args.topk)
        except VideoError as exc:
            if len(paths) == 1:
                raise
            failures.append(str(exc))
            print(f"nlconvert: error: {exc}", file=sys.stderr)
            results.append({"path": str(path), "error": " ".join(str(exc).split())})
            continue
        print(f"{path}  ({pred.plan.num_frames} frames, {pred.num_views} views)")
        for rank, (index, name, prob) in enumerate(pred.topk, 1):
            print(f"  {rank}. {name:<40s} {prob:.4f}  [{index}]")
        entry = pred.to_dict()
        entry["plan"] = pred.plan.to_dict()
        results.append(entry)
        if args.save_clips:
            clips[str(path)] = protocol.normalize(pixels)
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n", force=args.force)
    if args.save_clips and clips:
        _save_clips(args.save_clips, clips, args.force, np)
    return EXIT_BAD_INPUT if failures else EXIT_OK


def _save_clips(target: str, clips: dict[str, Any], force: bool, np: Any) -> None:
    if len(clips) == 1 and not target.endswith(".npz"):
        with atomic_output(target, force) as tmp, open(tmp, "wb") as f:
            np.save(f, next(iter(clips.values())))
        return
    if not target.endswith(".npz"):
        raise NLConvertError("--save-clips with several videos needs an .npz file name")
    with atomic_output(target, force) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{f"video_{i}": a for i, a in enumerate(clips.values())},
                 paths=np.array(list(clips)))
