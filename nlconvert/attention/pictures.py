"""Pictures of a query's attention, as the paper's Figure 3 draws them (Pillow, ``[viz]``).

One PNG per block and query: the clip's frames side by side (one per time step of the
block's grid), the query marked on its frame, and the query's weights over every key
position upsampled (bilinear) to the frame and laid over it as a heat map. One colour
scale for all the frames of a picture (from the query's smallest weight to its largest, so
uniform attention shows no heat), so frames can be compared; frames outside a grouped
block's group get no heat (the query does not see them) and are dimmed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..arch import INPUT_MEAN, INPUT_STD
from ..errors import NLConvertError
from .maps import BlockAttention, Query

#: Colour stops of the heat map (value 0 -> 1): dark blue, cyan, yellow, red.
_STOPS = np.array([[0, 0, 128], [0, 200, 255], [255, 230, 0], [220, 0, 0]], np.float32)


def require_pillow() -> Any:
    """The ``PIL.Image`` module, or a one-line error naming the extra."""
    try:
        from PIL import Image
    except ImportError:
        raise NLConvertError("attention pictures need Pillow: pip install 'nlconvert[viz]'") from None
    return Image


def clip_frames(clip: np.ndarray) -> np.ndarray:
    """A normalised 3 x T x H x W clip back to T x H x W x 3 uint8 pixels."""
    pixels = clip.astype(np.float32) * np.float32(INPUT_STD) + np.float32(INPUT_MEAN)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> RGB float32 (shape + (3,)) on the heat-map scale."""
    v = np.clip(values, 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.minimum(v.astype(np.int64), len(_STOPS) - 2)
    frac = (v - low)[..., None]
    return _STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac


def frame_of_step(step: int, steps: int, frames: int) -> int:
    """The clip frame shown for time step `step` of a block with `steps` steps: the first
    frame of the span of input frames that step covers."""
    return step * frames // steps


def render_query(att: BlockAttention, query: Query, frames: np.ndarray, *, sample: int = 0,
                 tile: int = 224) -> Any:
    """The picture (a ``PIL.Image``) of `query` in block `att` over `frames`
    (T x H x W x 3 uint8 of clip `sample`); each frame drawn `tile` pixels high."""
    image_mod = require_pillow()
    from PIL import ImageDraw

    steps, grid_h, grid_w = att.grid
    weights = np.abs(att.key_map(query, sample)).astype(np.float32)  # T' x H' x W'
    # From the query's smallest weight to its largest: uniform attention shows no heat.
    low, high = float(weights.min()), float(weights.max())
    scaled = (weights - low) / (high - low) if high > low else np.zeros_like(weights)
    group = query.t // att.group_frames
    fh, fw = frames.shape[1:3]
    width = max(1, round(tile * fw / fh))
    banner, gap = 18, 4
    pitch = width + gap
    canvas = image_mod.new("RGB", (pitch * steps - gap, tile + banner), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for step in range(steps):
        frame = image_mod.fromarray(frames[frame_of_step(step, steps, len(frames))])
        base = np.asarray(frame.resize((width, tile), image_mod.BILINEAR), np.float32)
        local = step - group * att.group_frames
        if 0 <= local < att.group_frames:
            small = image_mod.fromarray(np.ascontiguousarray(scaled[local], dtype=np.float32))  # mode F
            heat = np.asarray(small.resize((width, tile), image_mod.BILINEAR), np.float32)
            alpha = (0.25 + 0.6 * np.clip(heat, 0, 1))[..., None]
            shown = base * (1 - alpha) + heat_colours(heat) * alpha
        else:
            shown = base * 0.35 + 255 * 0.1  # outside the query's group: not attended
        canvas.paste(image_mod.fromarray(shown.astype(np.uint8)), (step * pitch, banner))
        if step == query.t:
            cx = step * pitch + (query.x + 0.5) * width / grid_w
            cy = banner + (query.y + 0.5) * tile / grid_h
            r = max(4.0, 0.5 * width / grid_w)
            for colour, grow in (((0, 0, 0), 2), ((255, 255, 255), 0)):
                draw.ellipse((cx - r - grow, cy - r - grow, cx + r + grow, cy + r + grow),
                             outline=colour, width=3)
    draw.text((4, 3), f"{att.name}  query t={query.t} y={query.y} x={query.x}", fill=(0, 0, 0))
    return canvas


def save_png(image: Any, path: Path) -> None:
    """Write a ``PIL.Image`` as PNG to `path` (the caller makes it atomic)."""
    image.save(path, format="PNG", compress_level=1)  # zlib's best is 10x slower on video frames
