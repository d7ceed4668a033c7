"""From a video file to the network's input views (the paper's test protocol, end to end)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .decode import decode_frames
from .protocol import CROP, MAX_FRAMES, Views, build_views, crop_offsets, frame_plan, normalize


@dataclass(frozen=True)
class ViewPlan:
    """Which decoded frames and which crop offsets made each view of one video."""

    num_frames: int  # N: frames actually decoded (at most 10,000)
    source_size: tuple[int, int]  # (height, width) as decoded
    resized_size: tuple[int, int]  # (height, width) after scaling the short side to 256
    views: str  # "10x3"
    frames: int  # frames per clip (L)
    rate: int  # sampling rate
    clips: tuple[tuple[int, ...], ...]  # frame indices of each clip, clip-major
    crops: tuple[tuple[int, int], ...]  # (h_off, w_off) of each crop
    passes: int = 1  # decoding passes needed (2 when the container's frame count was wrong)
    warnings: tuple[str, ...] = ()  # signs of a damaged file (decode.decode_warnings)

    def view_index(self, clip: int, crop: int) -> int:
        """Position of (clip, crop) in the V axis: clip-major, crop-minor."""
        return clip * len(self.crops) + crop

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["clips"] = [list(c) for c in self.clips]
        d["crops"] = [list(c) for c in self.crops]
        d["warnings"] = list(self.warnings)
        return d


def load_view_pixels(
    path: str | Path,
    frames: int = 8,
    rate: int = 8,
    views: str | Views = "10x3",
    max_frames: int = MAX_FRAMES,
) -> tuple[np.ndarray, ViewPlan]:
    """Decode `path` and cut its views: V x 3 x T x 256 x 256 uint8 RGB, and the plan used.

    uint8 is a quarter of the float size; :func:`~nlconvert.video.protocol.normalize` gives
    the network's input. Raises :class:`~nlconvert.errors.VideoError` for unusable files.
    """
    v = Views.parse(views)
    if frames < 1 or rate < 1:
        raise ValueError("frames and rate must be positive")

    def wanted(n: int) -> set[int]:
        return {i for clip in frame_plan(n, v, frames, rate) for i in clip}

    decoded = decode_frames(path, wanted, max_frames=max_frames)
    plan = frame_plan(decoded.num_frames, v, frames, rate)
    pixels = build_views(decoded.frames, plan, v.crops)
    any_frame = decoded.frames[plan[0][0]]
    rh, rw = int(any_frame.shape[0]), int(any_frame.shape[1])
    view_plan = ViewPlan(
        num_frames=decoded.num_frames,
        source_size=decoded.source_size,
        resized_size=(rh, rw),
        views=str(v),
        frames=frames,
        rate=rate,
        clips=tuple(tuple(c) for c in plan),
        crops=tuple(crop_offsets(rh, rw, v.crops, CROP)),
        passes=decoded.passes,
        warnings=tuple(decoded.warnings),
    )
    return pixels, view_plan


def load_views_with_plan(
    path: str | Path, frames: int = 8, rate: int = 8, views: str | Views = "10x3"
) -> tuple[np.ndarray, ViewPlan]:
    """Like :func:`load_views`, also returning the :class:`ViewPlan`."""
    pixels, plan = load_view_pixels(path, frames, rate, views)
    return normalize(pixels), plan


def load_views(
    path: str | Path, frames: int = 8, rate: int = 8, views: str | Views = "10x3"
) -> np.ndarray:
    """The network input of a video: V x 3 x T x 256 x 256 float32, normalised RGB.

    Views are clip-major, crop-minor (view ``clip * crops + crop``), per SPEC.md section 6.
    """
    return load_views_with_plan(path, frames, rate, views)[0]
