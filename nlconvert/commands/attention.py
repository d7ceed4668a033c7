"""``nlconvert attention``: what every non-local block attends to, as arrays and pictures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import (
    arch_option,
    debug_option,
    existing_file,
    force_option,
    frames_option,
    model_input,
    rate_option,
)

if TYPE_CHECKING:
    import numpy as np

#: The protocol's grid a video's clip is taken from (SPEC.md section 6): 10 clips x 3 crops.
PROTOCOL_CLIPS, PROTOCOL_CROPS = 10, 3


@click.command("attention", short_help="Non-local attention maps of a clip: arrays, pictures, HTML.")
@click.argument("model", type=model_input())
@click.argument("video", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "input_path", type=existing_file(), metavar="CLIP.npy",
              help="A normalised clip (N x 3 x T x H x W float32) instead of VIDEO.")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: <block>.npy, pictures, index.html, attention.json.")
@click.option("--block", "blocks", multiple=True, metavar="NAME",
              help="Only this block (official name, e.g. nonlocal_conv3_1); repeatable. "
                   "Default: every non-local block.")
@click.option("--query", "queries", multiple=True, metavar="T,Y,X",
              help="A query position in the block's grid to draw; repeatable. Default: the 3 "
                   "positions with the most concentrated attention (lowest entropy).")
@click.option("--clip", "clip_index", type=int, metavar="J",
              help=f"With VIDEO: the protocol's clip J (0..{PROTOCOL_CLIPS - 1}; default "
                   f"{PROTOCOL_CLIPS // 2}, the middle one).")
@click.option("--crop", "crop_index", type=int, metavar="K",
              help=f"With VIDEO: the protocol's crop K (0..{PROTOCOL_CROPS - 1}; default 1, "
                   "the centre).")
@arch_option(help="Architecture of a Caffe2 .pkl MODEL (default: from the file name or the "
                  "blobs; a converted .pt carries its own).")
@frames_option("With VIDEO: frames per clip (default: the model's training clip).")
@rate_option
@force_option
@debug_option
def command(model: Path, video: Path | None, input_path: Path | None, out_dir: Path,
            blocks: tuple[str, ...], queries: tuple[str, ...], clip_index: int | None,
            crop_index: int | None, arch: str | None, frames: int | None, rate: int | None,
            force: bool) -> int:
    """Record the attention weights of every non-local block for one clip and draw them.
    DIR/<block>.npy holds exactly what the Caffe2 net computes in <block>_affinity_prob
    (float32, N x THW x THW' after the block's max pool; (N*groups) x ... for grouped blocks),
    computed by the exact PyTorch model. For a VIDEO the clip is the test protocol's view
    (clip J, crop K of 10 x 3; default the middle clip's centre crop). For each block and
    query a PNG shows the clip's frames with the query marked and its attention as a heat
    map; DIR/index.html shows them all, DIR/attention.json lists blocks, shapes, queries and
    files. MODEL: a converted .pt/.safetensors, a hub folder or a Caffe2 .pkl."""
    from ..attention.maps import AttentionError, Query, block_attention, check_blocks
    from ..attention.output import write_attention
    from ..attention.pictures import require_pillow
    from ..convert import load_model
    from ..errors import EXIT_OK
    from ..io.clip_file import load_clip_file

    if (video is None) == (input_path is None):
        raise AttentionError("give a VIDEO or --input CLIP.npy (one of them)")
    if input_path is not None and (clip_index is not None or crop_index is not None
                                   or frames is not None or rate is not None):
        raise AttentionError("--clip, --crop, --frames and --rate choose a video's clip; "
                             "--input is the clip itself")
    _check_index("--clip", clip_index, PROTOCOL_CLIPS)
    _check_index("--crop", crop_index, PROTOCOL_CROPS)
    parsed = [Query.parse(q) for q in queries]
    require_pillow()
    if model.suffix.lower() == ".onnx":
        raise AttentionError(f"{model}: attention maps need the PyTorch model (.pt or Caffe2 "
                             ".pkl); an ONNX graph does not form the weights")
    net = load_model(model, head="clip", **({"arch_name": arch} if arch else {}))
    names = check_blocks(net, list(blocks))
    if input_path is not None:
        clip = load_clip_file(input_path)
        source: dict[str, object] = {"clip_file": str(input_path)}
    else:
        assert video is not None
        clip, source = _video_clip(video, frames or net.arch.frames, rate or net.arch.sample_rate,
                                   PROTOCOL_CLIPS // 2 if clip_index is None else clip_index,
                                   1 if crop_index is None else crop_index)
    source["model"] = str(model)
    recorded = block_attention(net, clip, blocks=names)
    manifest = write_attention(out_dir, clip, recorded, queries=parsed, source=source, force=force)
    for block in manifest["blocks"]:
        shown = "; ".join(f"{q['t']},{q['y']},{q['x']} (entropy {q['entropy']:.3f})"
                          for q in block["queries"])
        print(f"{block['name']}: {tuple(block['shape'])} on a "
              f"{'x'.join(map(str, block['query_grid']))} grid; queries {block['queries_chosen']}:"
              f" {shown}")
    print(f"wrote {out_dir / 'index.html'} and {out_dir / 'attention.json'}")
    return EXIT_OK


def _check_index(option: str, value: int | None, count: int) -> None:
    from ..attention.maps import AttentionError

    if value is not None and not 0 <= value < count:
        raise AttentionError(f"{option} must be 0..{count - 1} (the protocol's {PROTOCOL_CLIPS} "
                             f"clips x {PROTOCOL_CROPS} crops), not {value}")


def _video_clip(video: Path, frames: int, rate: int, clip: int, crop: int
                ) -> tuple[np.ndarray, dict[str, object]]:
    """View (clip, crop) of the protocol's 10 x 3 views of `video`, normalised, 1 x 3 x T x H x W."""
    from ..video.protocol import Views, normalize
    from ..video.views import load_view_pixels

    pixels, plan = load_view_pixels(video, frames, rate, Views(PROTOCOL_CLIPS, PROTOCOL_CROPS))
    index = plan.view_index(clip, crop)
    return normalize(pixels[index:index + 1]), {
        "video": str(video), "clip": clip, "crop": crop, "frames": list(plan.clips[clip]),
        "crop_offset": list(plan.crops[crop]), "resized_size": list(plan.resized_size)}
