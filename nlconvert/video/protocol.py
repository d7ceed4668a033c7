"""The paper's video test protocol as pure functions (SPEC.md section 6); no decoding here.

Every number follows the official Caffe2 code (``customized_video_io.cc``,
``customized_video_input_op.h``): the scale ratio and the clip starts are computed in float32
as the C++ code does, crop offsets use C integer division, and the bilinear resize follows
OpenCV's ``INTER_LINEAR`` on uint8 (half-pixel centres, 11-bit fixed-point weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..arch import INPUT_MEAN, INPUT_STD
from ..errors import VideoError

SCALE = 256  # TEST.SCALE: the short side after resizing
CROP = 256  # TRAIN.JITTER_SCALES[0]: the fully-convolutional test crop
MAX_FRAMES = 10_000  # MAX_DECODING_FRAMES of customized_video_decoder.h
MIN_FRAMES = 2  # DecodeClipFromVideoFileFlex enforces 1 < number of frames

# The C++ code multiplies by 1.f / std (float32) rather than dividing.
_INV_STD = np.float32(1.0) / np.float32(INPUT_STD)
_COEF_BITS = 11  # INTER_RESIZE_COEF_BITS of OpenCV
_COEF_SCALE = 1 << _COEF_BITS

_VIEWS_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass(frozen=True)
class Views:
    """How many temporal clips and spatial crops to take per video ("10x3" = 10 clips x 3 crops)."""

    clips: int = 10
    crops: int = 3

    @classmethod
    def parse(cls, text: str | Views) -> Views:
        """Parse ``"CxK"`` (K is 1 or 3); raise :class:`VideoError` on anything else."""
        if isinstance(text, Views):
            return text
        m = _VIEWS_RE.match(str(text))
        if not m:
            raise VideoError(f"--views must look like 10x3 (clips x crops), not {text!r}")
        clips, crops = int(m.group(1)), int(m.group(2))
        if clips < 1 or crops not in (1, 3):
            raise VideoError(f"--views {text}: need at least 1 clip and 1 or 3 crops")
        return cls(clips, crops)

    @property
    def count(self) -> int:
        """Number of views per video."""
        return self.clips * self.crops

    def __str__(self) -> str:
        return f"{self.clips}x{self.crops}"


def resized_size(height: int, width: int, side: int = SCALE) -> tuple[int, int]:
    """Size after scaling the short side to `side`, truncated, in float32 like ScaleTransform.

    The float32 product can fall just short of `side` (a short side of 110, 122, 164, ...
    becomes 255); that is what the official code computed, so it is kept.
    """
    if height <= 0 or width <= 0:
        raise VideoError(f"frame of size {height}x{width}")
    short = width if height > width else height
    ratio = np.float32(side) / np.float32(short)
    new_h = int(np.float32(height) * ratio)
    new_w = int(np.float32(width) * ratio)
    return max(new_h, 1), max(new_w, 1)


def clip_starts(num_frames: int, clips: int, frames: int, rate: int) -> list[int]:
    """First frame of each clip.

    Several clips: ``int(float32(N) / float32(C) * j) % N`` as DecodeClipFromVideoFileFlex
    computes it (equal to ``floor(j*N/C)`` for every N up to the 10,000-frame cap). One clip:
    the clip of ``frames * rate`` frames centred in the video (start 0 if it is longer).
    """
    if num_frames < 1:
        raise VideoError("video has no frames")
    if clips == 1:
        return [max(num_frames - frames * rate, 0) // 2]
    gap = np.float32(num_frames) / np.float32(clips)
    return [int(gap * np.float32(j)) % num_frames for j in range(clips)]


def clip_frame_indices(start: int, num_frames: int, frames: int, rate: int) -> list[int]:
    """Frame k of a clip is ``(start + k * rate) mod N``: clips past the end wrap around."""
    return [(start + k * rate) % num_frames for k in range(frames)]


def frame_plan(num_frames: int, views: Views, frames: int, rate: int) -> list[list[int]]:
    """Decoded-frame indices of every clip (clip-major), for a video of `num_frames` frames."""
    return [
        clip_frame_indices(s, num_frames, frames, rate)
        for s in clip_starts(num_frames, views.clips, frames, rate)
    ]


def _c_div2(x: int) -> int:
    """C integer division by 2 (truncates toward zero, unlike Python's //)."""
    return int(x / 2)


def crop_offsets(height: int, width: int, crops: int, size: int = CROP) -> list[tuple[int, int]]:
    """(h_off, w_off) of each crop, as ClipTransformFlex computes them.

    Centre offsets ``(H-size)/2, (W-size)/2``; with 3 crops, crop c multiplies the h offset
    by c if it is positive, else the w offset (left/centre/right, or top/middle/bottom).
    """
    h_off, w_off = _c_div2(height - size), _c_div2(width - size)
    if crops == 1:
        return [(h_off, w_off)]
    if h_off > 0:
        return [(h_off * c, w_off) for c in range(crops)]
    return [(h_off, w_off * c) for c in range(crops)]


def normalize(pixels: np.ndarray) -> np.ndarray:
    """(x - 114.75) * float32(1 / 57.375) on uint8 or float input, as float32."""
    return (pixels.astype(np.float32) - np.float32(INPUT_MEAN)) * _INV_STD


def crop_clip(clip: np.ndarray, h_off: int, w_off: int, size: int = CROP) -> np.ndarray:
    """Cut one view out of a clip of resized frames (T x H x W x 3 uint8): 3 x T x size x size.

    The result stays uint8 (normalise with :func:`normalize`). A frame shorter than `size`
    (a float32-truncated 255) is read the way the C++ loop reads its buffer, by flat index into
    the C x T x H x W clip, so the missing column/row comes from the next row/frame; the few
    indices past the end of that buffer (undefined in C++) repeat its last value.
    """
    t, h, w, _ = clip.shape
    if h_off >= 0 and w_off >= 0 and h_off + size <= h and w_off + size <= w:
        view = clip[:, h_off : h_off + size, w_off : w_off + size, :]
        return np.ascontiguousarray(view.transpose(3, 0, 1, 2))
    flat = np.ascontiguousarray(clip.transpose(3, 0, 1, 2)).reshape(-1)
    c = np.arange(3).reshape(3, 1, 1, 1)
    ll = np.arange(t).reshape(1, t, 1, 1)
    hh = np.arange(size).reshape(1, 1, size, 1)
    ww = np.arange(size).reshape(1, 1, 1, size)
    index = ((c * t + ll) * h + h_off + hh) * w + w_off + ww
    return flat[np.clip(index, 0, flat.size - 1)]


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source index pairs and 11-bit fixed-point weights of OpenCV INTER_LINEAR on one axis.

    Half-pixel centres: ``f = (d + 0.5) * src/dst - 0.5`` in float32, ``s = floor(f)``. At the
    borders both taps are clamped into the image and keep their fractional weights (the
    rounding of OpenCV's vertical pass depends on that; horizontally it makes no difference).
    """
    scale = 1.0 / (dst / src)  # OpenCV: scale_x = 1. / inv_scale_x, in double
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    return np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1), w0, w1


def _vertical_simd_width(width: int) -> int:
    """Elements of a row that OpenCV's vectorised vertical pass handles.

    OpenCV 4/5 run the vector code over the whole row once it holds one 16-byte vector (the
    tail by an overlapping load); shorter rows take the scalar path.
    """
    return width if width >= 16 else 0


def resize_linear(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Bilinear resize of an H x W x C uint8 image, emulating OpenCV's INTER_LINEAR.

    Horizontal pass: exact integer sums of 11-bit weights. Vertical pass: the SIMD rounding
    ``((a>>4)*b0 >> 16) + ((b>>4)*b1 >> 16) + 2 >> 2`` (rows of 16 bytes or more), else the
    scalar ``(a*b0 + b*b1 + 2**21) >> 22``, as OpenCV's uint8 code does.
    """
    h, w, ch = image.shape
    if (h, w) == (new_h, new_w):
        return image
    ys0, ys1, b0, b1 = _linear_taps(h, new_h)
    xs0, xs1, a0, a1 = _linear_taps(w, new_w)
    rows = np.unique(np.concatenate([ys0, ys1]))
    src = image[rows].astype(np.int32)  # only the rows that the output needs
    horiz = src[:, xs0, :] * a0[None, :, None] + src[:, xs1, :] * a1[None, :, None]
    lookup = np.searchsorted(rows, ys0), np.searchsorted(rows, ys1)
    top = horiz[lookup[0]].reshape(new_h, new_w * ch)
    bottom = horiz[lookup[1]].reshape(new_h, new_w * ch)
    bb0, bb1 = b0[:, None], b1[:, None]
    width = new_w * ch
    out = np.empty((new_h, width), dtype=np.int32)
    simd = _vertical_simd_width(width)
    if simd:
        out[:, :simd] = (
            (((top[:, :simd] >> 4) * bb0) >> 16) + (((bottom[:, :simd] >> 4) * bb1) >> 16) + 2
        ) >> 2
    if simd < width:
        out[:, simd:] = (top[:, simd:] * bb0 + bottom[:, simd:] * bb1 + (1 << 21)) >> 22
    return np.clip(out, 0, 255).astype(np.uint8).reshape(new_h, new_w, ch)


def resize_frame(image: np.ndarray, side: int = SCALE) -> np.ndarray:
    """Scale an H x W x 3 uint8 frame so its short side is `side` (see :func:`resized_size`)."""
    new_h, new_w = resized_size(image.shape[0], image.shape[1], side)
    return resize_linear(image, new_h, new_w)


def build_views(
    frames_by_index: dict[int, np.ndarray], plan: list[list[int]], crops: int, size: int = CROP
) -> np.ndarray:
    """Views of resized frames, V x 3 x T x size x size uint8, clip-major and crop-minor."""
    first = frames_by_index[plan[0][0]]
    h, w = first.shape[:2]
    offsets = crop_offsets(h, w, crops, size)
    out = np.empty((len(plan) * len(offsets), 3, len(plan[0]), size, size), np.uint8)
    inside = all(ho >= 0 and ho + size <= h and wo >= 0 and wo + size <= w for ho, wo in offsets)
    planar: dict[int, np.ndarray] = {}
    for j, indices in enumerate(plan):
        if not inside:  # a short frame: read it like the C++ loop (see crop_clip)
            clip = np.stack([frames_by_index[i] for i in indices])
            for c, (ho, wo) in enumerate(offsets):
                out[j * len(offsets) + c] = crop_clip(clip, ho, wo, size)
            continue
        for k, i in enumerate(indices):
            if i not in planar:  # channels first once per frame: the crops then copy rows
                planar[i] = np.ascontiguousarray(frames_by_index[i].transpose(2, 0, 1))
            frame = planar[i]
            for c, (ho, wo) in enumerate(offsets):
                out[j * len(offsets) + c, :, k] = frame[:, ho : ho + size, wo : wo + size]
    return out
