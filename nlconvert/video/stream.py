"""Cut a video into feature windows as it decodes, holding only the frames still needed.

:func:`stream_windows` yields one :class:`Window` (uint8 pixels) as soon as its last frame is
decoded, then a :class:`VideoSummary` (frame counts, times, or the reason it failed). Frames
are resized when decoded (short side 256, the test protocol's rule) and kept only while a
window not cut yet needs them, so memory holds at most one window span of frames whatever
the video's length (:attr:`VideoSummary.max_kept_frames` reports the peak).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import VideoError
from .crops import CROP_KINDS, CropSpec
from .decode import StreamInfo, TimedFrame, VideoFileError, iter_timed_frames
from .windows import WindowSpec, resample_stream

#: ``--crop`` choices (:mod:`.crops`): ``center`` is the test protocol's centre crop,
#: ``three`` its three crops, ``ten`` the ten-crop of the feature literature, ``none`` the
#: whole resized frame (the network is fully convolutional).
CROPS = CROP_KINDS


@dataclass
class Window:
    """The pixels of one window: 3 x L x H x W uint8 RGB (not normalised), or
    K x 3 x L x S x S for the K crops of ``--crop three|ten``."""

    key: str
    index: int  # k: the window's position in its video
    start: int  # its first frame
    pixels: np.ndarray


@dataclass
class VideoSummary:
    """How a video was cut (sent after its last window), or why it could not be."""

    key: str
    path: str
    windows: int = 0
    frames: int = 0  # N: frames the windows index into (after --fps resampling)
    decoded_frames: int = 0
    fps: float = 0.0  # --fps, else the stream's average frame rate
    starts: list[int] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)
    end_s: list[float] = field(default_factory=list)
    source_size: tuple[int, int] = (0, 0)
    resized_size: tuple[int, int] = (0, 0)
    max_kept_frames: int = 0
    crops: list[dict[str, object]] = field(default_factory=list)  # the CropBox of each crop
    seconds: float = 0.0
    error: str | None = None  # one line
    kind: str | None = None  # failure kind, for counting
    warnings: list[str] = field(default_factory=list)  # decode.decode_warnings; empty if clean

    @property
    def ok(self) -> bool:
        return self.error is None


def _cut(frames: dict[int, np.ndarray], indices: list[int], crop: CropSpec,
         summary: VideoSummary) -> np.ndarray:
    pixels, boxes = crop.cut(np.stack([frames[i] for i in indices]))  # from L x H x W x 3
    if not summary.crops:
        summary.crops = [b.to_dict() for b in boxes]
    return pixels


def stream_windows(key: str, path: str | Path, spec: WindowSpec, *,
                   fps: Fraction | None = None, crop: str | CropSpec = "center"
                   ) -> Iterator[Window | VideoSummary]:
    """The windows of one video, then its summary (see the module doc). A video that cannot
    be decoded yields only a summary with the reason; windows already yielded by a video
    that fails later must be discarded by the consumer (the summary says it failed).
    `crop`: a :class:`~nlconvert.video.crops.CropSpec` or a kind at its default size."""
    crops = CropSpec.make(crop)
    started = time.perf_counter()
    summary = VideoSummary(key, str(path))
    info = StreamInfo(Fraction(0))
    try:
        decoded: Iterator[TimedFrame] = iter_timed_frames(path, info)
        if fps is not None:
            out: Iterator[tuple[int, TimedFrame]] = resample_stream(decoded, lambda f: f.time, fps)
        else:
            out = ((f.index, f) for f in decoded)
        yield from _cut_windows(summary, out, spec, fps, crops)
        summary.decoded_frames = info.frames
        summary.source_size = info.source_size
        summary.warnings = list(info.warnings)
        rate = fps if fps is not None else info.rate
        summary.fps = float(rate)
        period = 1 / rate if rate else 0.0
        summary.end_s = [t + float(period) for t in summary.end_s]
    except VideoFileError as exc:
        summary.error, summary.kind = str(exc), exc.kind
    except VideoError as exc:
        summary.error, summary.kind = str(exc), "unreadable"
    except Exception as exc:  # noqa: BLE001 - a broken file must not stop a long job
        summary.error, summary.kind = f"{path}: {type(exc).__name__}: {exc}", "decode error"
    summary.seconds = time.perf_counter() - started
    yield summary


def _cut_windows(summary: VideoSummary, frames: Iterator[tuple[int, TimedFrame]],
                 spec: WindowSpec, fps: Fraction | None, crop: CropSpec) -> Iterator[Window]:
    """Keep the frames later windows need, cut each window when its last frame arrives."""
    kept: dict[int, np.ndarray] = {}
    times: list[float] = []
    next_k = 0
    last = -1
    for j, frame in frames:
        if j == 0:
            summary.resized_size = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
        last = j
        times.append(float(Fraction(j) / fps) if fps is not None else float(frame.time))
        # Until a first window is complete the video may be short (one wrapped window
        # reading any of its frames): keep them all, at most one span.
        if j < spec.span or spec.needed_after(j, next_k * spec.stride):
            kept[j] = frame.rgb
            summary.max_kept_frames = max(summary.max_kept_frames, len(kept))
        while next_k * spec.stride + spec.span - 1 == j:
            start = next_k * spec.stride
            indices = spec.indices(start, j + 1)
            yield Window(summary.key, next_k, start, _cut(kept, indices, crop, summary))
            _record(summary, start, indices, times)
            next_k += 1
            for index in [i for i in kept if not spec.needed_after(i, next_k * spec.stride)]:
                del kept[index]
    if last < 0:
        raise VideoFileError(f"{summary.path}: no frames decoded (truncated or not a video?)",
                             "too few frames")
    summary.frames = last + 1
    if summary.frames < spec.span:  # a short video: one window at frame 0, wrapping around
        indices = spec.indices(0, summary.frames)
        yield Window(summary.key, 0, 0, _cut(kept, indices, crop, summary))
        _record(summary, 0, indices, times)
    assert summary.starts == spec.starts(summary.frames)


def _record(summary: VideoSummary, start: int, indices: list[int], times: list[float]) -> None:
    summary.windows += 1
    summary.starts.append(start)
    summary.start_s.append(times[start])
    summary.end_s.append(times[max(indices)])
