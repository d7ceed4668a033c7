"""Decode a video the way the official Caffe2 decoder did (customized_video_decoder.cc).

First video stream, every frame decoded in order, at most 10,000; N is the number of frames
actually decoded (container metadata, timestamps and fps are ignored); RGB24 with the BT.601
matrix and limited ("MPEG") range, whatever the stream's colourspace tag says, because the
old swscale context was built without ``sws_setColorspaceDetails``.

Only the frames a caller needs are converted and resized, right after decoding, so memory
holds the needed frames and nothing more. The needed indices depend on N, which is known only
at the end: the stream's frame count (or duration x rate) is used as a guess, and when the
decoded count differs a second pass fetches what is still missing.

A damaged file is never passed off as a clean one: packets that fail to decode, and a
container whose declared frame count or duration disagrees with what decoded (a truncated
download decodes its first part without a single error), give the video's ``warnings``
(:func:`decode_warnings`), which the bulk commands report and ``--strict`` turns into failures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VideoError
from .protocol import MAX_FRAMES, MIN_FRAMES, resize_frame

IndexPlan = Callable[[int], Iterable[int]]


class VideoFileError(VideoError):
    """A video that cannot be used, with a short `kind` for counting failures by reason."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class DecodedFrames:
    """The frames kept from one decode: resized RGB uint8 (H x W x 3) by decoded index."""

    num_frames: int
    frames: dict[int, np.ndarray]
    source_size: tuple[int, int]  # (height, width) of the decoded pictures
    passes: int = 1
    decode_errors: int = 0
    codec: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # see decode_warnings; empty when clean


def _av():  # PyAV is an optional dependency (nlconvert[video])
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise VideoError("decoding videos needs PyAV: pip install 'nlconvert[video]'") from exc
    return av


def _rgb_converter() -> Callable[[Any], np.ndarray]:
    """A frame -> H x W x 3 uint8 RGB function with the official decoder's swscale settings.

    BT.601 matrix whatever the stream's tag; limited range except for the ``yuvj`` formats
    (swscale's handle_jpeg makes those full range); SWS_FAST_BILINEAR as the official
    ``sws_getContext`` call. One reformatter (one SwsContext) serves a whole pass.
    """
    from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

    reformatter = VideoReformatter()

    def to_rgb(frame: Any) -> np.ndarray:
        name = frame.format.name
        if name.startswith("yuvj"):
            src_range = ColorRange.JPEG
        elif name.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "pal8")):
            src_range = None
        else:
            src_range = ColorRange.MPEG
        rgb = reformatter.reformat(
            frame,
            format="rgb24",
            src_colorspace=Colorspace.ITU601,
            src_color_range=src_range,
            dst_color_range=ColorRange.JPEG,
            interpolation=Interpolation.FAST_BILINEAR,
        )
        return rgb.to_ndarray()

    return to_rgb


def check_file(path: str | Path) -> Path:
    """Raise :class:`VideoError` for a missing, non-regular or zero-byte file."""
    p = Path(path)
    if not p.exists():
        raise VideoFileError(f"{p}: no such file", "missing")
    if not p.is_file():
        raise VideoFileError(f"{p}: not a regular file", "missing")
    if os.path.getsize(p) == 0:
        raise VideoFileError(f"{p}: empty file (0 bytes)", "empty file")
    return p


def _open(path: Path):
    av = _av()
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise VideoFileError(f"{path}: not a readable video ({reason})", "unreadable") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoFileError(f"{path}: no video stream ({', '.join(kinds)})", "no video stream")
    return container


def frame_count_hint(path: str | Path) -> int | None:
    """The container's idea of the number of frames (a guess only; None if it has none)."""
    container = _open(check_file(path))
    try:
        return _hint(container)
    finally:
        container.close()


def _hint(container) -> int | None:
    stream = container.streams.video[0]
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if rate and stream.duration and stream.time_base:
        return max(int(round(float(stream.duration * stream.time_base * rate))), 1)
    if rate and container.duration:
        return max(int(round(container.duration / 1e6 * float(rate))), 1)
    return None


@dataclass(frozen=True)
class Declared:
    """What a container says of its first video stream before anything is decoded."""

    frames: int = 0  # the frame count it declares (0: none)
    seconds: float | None = None  # the stream's declared duration
    exact_count: bool = False  # `frames` is the container's own sample count (MP4/MOV)
    rate: float = 0.0  # average frame rate (frames per second; 0 if unknown)


#: Formats whose declared frame count is their sample table, exact for a whole file (AVI
#: counts dropped-frame placeholders, Matroska/WebM declare none: those are checked by duration).
_EXACT_COUNT_FORMATS = ("mov", "mp4")

#: A decoded duration may differ from the declared one by the larger of this many frame
#: periods and this fraction of the declared duration (last-frame durations, edit lists).
DURATION_SLACK_FRAMES = 3
DURATION_SLACK_FRACTION = 0.02


def _tag_seconds(text: str) -> float | None:
    """Matroska's per-track ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``) in seconds."""
    try:
        h, m, sec = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def declared(container: Any) -> Declared:
    """The frame count and duration `container` declares for its first video stream."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    seconds: float | None = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif stream.metadata.get("DURATION"):
        seconds = _tag_seconds(stream.metadata["DURATION"])
    elif container.duration and len(container.streams) == 1:  # no other stream to be longer
        seconds = container.duration / 1e6
    names = set(str(container.format.name).split(","))
    return Declared(frames=int(stream.frames or 0), seconds=seconds,
                    exact_count=bool(names & set(_EXACT_COUNT_FORMATS)),
                    rate=float(rate) if rate else 0.0)


def decode_warnings(claimed: Declared, *, frames: int, seconds: float | None, errors: int,
                    capped: bool = False) -> list[str]:
    """Why a decoded video may be damaged: one short line per problem, none when clean.

    `frames`, `seconds`: what was decoded (the span from the first frame's start to the last
    frame's end); `errors`: packets that failed to decode; `capped`: decoding stopped at the
    frame cap on purpose (counts and durations are then not compared).
    """
    out = []
    if errors:
        out.append(f"{errors} packet{'s' if errors != 1 else ''} failed to decode (skipped)")
    if capped:
        return out
    if claimed.exact_count and claimed.frames and frames != claimed.frames:
        out.append(f"the container declares {claimed.frames} frames, {frames} decoded "
                   "(truncated or damaged?)")
    if claimed.seconds and seconds is not None:
        # The declared rate can be a time base (variable-rate AVI says 1000 fps): the larger
        # of it and the decoded mean period measures "a few frames".
        period = max(1 / claimed.rate if claimed.rate else 0.0, seconds / max(frames, 1))
        slack = max(DURATION_SLACK_FRAMES * period, DURATION_SLACK_FRACTION * claimed.seconds)
        if abs(seconds - claimed.seconds) > slack:
            out.append(f"the container declares {claimed.seconds:.2f} s, {seconds:.2f} s "
                       "decoded (truncated or damaged?)")
    return out


#: Failure kind of a video refused by ``--strict`` for its warnings.
DAMAGED_KIND = "damaged (--strict)"


def strict_reason(path: str | Path, warnings: Iterable[str]) -> str:
    """The one-line failure reason of a video ``--strict`` refuses for its warnings."""
    return f"{path}: {'; '.join(warnings)} (--strict)"


@dataclass
class PassStats:
    """What one pass over a stream met: decode errors (skipped packets), the first size, and
    the span of the decoded frames' timestamps (seconds)."""

    errors: int = 0
    size: tuple[int, int] = (0, 0)
    first: float | None = None  # start time of the first frame
    end: float | None = None  # end time (start + duration) of the latest-ending frame

    def timed(self, frame: Any, base: float, period: float) -> None:
        """Note the start and end time of a decoded frame."""
        if frame.pts is None or not base:
            return
        start = frame.pts * base
        length = (getattr(frame, "duration", None) or 0) * base or period
        self.first = start if self.first is None else min(self.first, start)
        self.end = start + length if self.end is None else max(self.end, start + length)

    @property
    def seconds(self) -> float | None:
        """Decoded span in seconds (None without timestamps)."""
        return None if self.first is None or self.end is None else self.end - self.first


def _frames(container: Any, stats: PassStats) -> Iterator[Any]:
    """Every decoded frame of the first video stream, in order; a packet that fails to decode
    is counted and skipped, as the official loop logs and goes on."""
    av = _av()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threads: same frames, same order, faster
    base = float(stream.time_base) if stream.time_base else 0.0
    rate = stream.average_rate or stream.guessed_rate
    period = 1 / float(rate) if rate else 0.0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            stats.errors += 1
            continue
        for frame in frames:
            if stats.size == (0, 0):
                stats.size = (frame.height, frame.width)
            stats.timed(frame, base, period)
            yield frame


def _stream_tags(container: Any) -> tuple[str, dict[str, str]]:
    ctx = container.streams.video[0].codec_context
    return ctx.name, {"colorspace": str(ctx.colorspace), "color_range": str(ctx.color_range)}


def _decode_pass(
    path: Path,
    wanted: IndexPlan | None,
    guess: int | None,
    kept: dict[int, np.ndarray],
    max_frames: int,
    resize: bool,
) -> tuple[int, PassStats, list[str], str, dict[str, str]]:
    """One pass over the stream; keeps `wanted(guess)` frames not kept yet. Returns N, what
    the pass met, the warnings (:func:`decode_warnings`), the codec and colour tags."""
    av = _av()
    container = _open(path)
    try:
        codec, tags = _stream_tags(container)
        claimed = declared(container)
        want = set(wanted(guess)) - kept.keys() if (wanted is not None and guess) else set()
        to_rgb = _rgb_converter()
        stats = PassStats()
        count = 0
        for frame in _frames(container, stats):
            if count in want:
                rgb = to_rgb(frame)
                kept[count] = resize_frame(rgb) if resize else rgb
            count += 1
            if count >= max_frames:
                break
        warnings = decode_warnings(claimed, frames=count, seconds=stats.seconds,
                                   errors=stats.errors, capped=count >= max_frames)
        return count, stats, warnings, codec, tags
    except av.error.FFmpegError as exc:
        raise VideoFileError(f"{path}: cannot read the video ({exc})", "unreadable") from None
    finally:
        container.close()


@dataclass
class TimedFrame:
    """A decoded frame, resized (short side 256), with its time from the first frame."""

    index: int  # position in decoding order
    time: Fraction  # seconds since the first frame (from the stream's timestamps)
    rgb: np.ndarray  # H x W x 3 uint8


@dataclass
class StreamInfo:
    """Facts about a stream, known when it opens (`rate`) or when it ends (the rest)."""

    rate: Fraction  # the stream's average frame rate (frames per second); 0 if unknown
    frames: int = 0  # frames decoded
    errors: int = 0
    source_size: tuple[int, int] = (0, 0)
    warnings: list[str] = field(default_factory=list)  # set once the stream has ended


def iter_timed_frames(path: str | Path, info: StreamInfo | None = None,
                      resize: bool = True) -> Iterator[TimedFrame]:
    """Decode `path` frame by frame (BT.601, resized like the test protocol), with times.

    Nothing is held back: each frame is converted when decoded and handed on, so a caller
    that keeps only what it needs decodes a video of any length in bounded memory. Times come
    from each frame's presentation timestamp (exact fractions of the stream's time base); a
    frame without one is placed one average frame period after the previous frame. `info`
    (optional) is filled in as the stream is read. No frame cap: every frame is decoded.
    """
    av = _av()
    p = check_file(path)
    container = _open(p)
    try:
        stream = container.streams.video[0]
        claimed = declared(container)
        rate = stream.average_rate or stream.guessed_rate or 0
        info = info if info is not None else StreamInfo(Fraction(0))
        info.rate = Fraction(rate) if rate else Fraction(0)
        period = 1 / info.rate if info.rate else Fraction(1, 25)
        base = Fraction(stream.time_base) if stream.time_base else Fraction(0)
        to_rgb = _rgb_converter()
        stats = PassStats()
        first: Fraction | None = None
        previous: Fraction | None = None
        for index, frame in enumerate(_frames(container, stats)):
            if frame.pts is not None and base:
                t = frame.pts * base
            else:
                t = (previous + period) if previous is not None else Fraction(0)
            if previous is not None and t <= previous:
                t = previous + Fraction(1, 1_000_000)  # keep times increasing (broken pts)
            if first is None:
                first = t
            previous = t
            rgb = to_rgb(frame)
            info.frames, info.errors, info.source_size = index + 1, stats.errors, stats.size
            yield TimedFrame(index, t - first, resize_frame(rgb) if resize else rgb)
        info.errors = stats.errors
        info.warnings = decode_warnings(claimed, frames=info.frames, seconds=stats.seconds,
                                        errors=stats.errors)
    except av.error.FFmpegError as exc:
        raise VideoFileError(f"{p}: cannot read the video ({exc})", "unreadable") from None
    finally:
        container.close()


def decode_frames(
    path: str | Path,
    wanted: IndexPlan | None,
    max_frames: int = MAX_FRAMES,
    resize: bool = True,
    min_frames: int = MIN_FRAMES,
) -> DecodedFrames:
    """Decode `path`; keep (resized) the frames ``wanted(N)`` names for the true frame count N.

    `wanted` maps a frame count to the indices needed; None keeps nothing (count only).
    Raises :class:`VideoError` if the file cannot be opened, has no video stream, or
    decodes to fewer than `min_frames` frames (the official reader needs 2).
    """
    p = check_file(path)
    container = _open(p)
    try:
        guess = _hint(container)
    finally:
        container.close()
    if guess is not None:
        guess = min(guess, max_frames)
    kept: dict[int, np.ndarray] = {}
    n, stats, warnings, codec, tags = _decode_pass(p, wanted, guess, kept, max_frames, resize)
    if n < min_frames:
        what = "no frames" if n == 0 else f"{n} frame{'s' if n != 1 else ''}"
        raise VideoFileError(
            f"{p}: {what} decoded (truncated or not a video?); need {min_frames}", "too few frames"
        )
    passes = 1
    if wanted is not None:
        needed = set(wanted(n))
        for stale in kept.keys() - needed:
            del kept[stale]
        if needed - kept.keys():
            # The guess was wrong: fetch what the true N needs (kept frames are reused).
            n2, *_ = _decode_pass(p, wanted, n, kept, max_frames, resize)
            passes = 2
            if n2 != n:
                raise VideoFileError(f"{p}: decoded {n}, then {n2} frames", "unreadable")
    return DecodedFrames(n, kept, stats.size, passes, stats.errors, codec, tags, warnings)


def count_frames(path: str | Path, max_frames: int = MAX_FRAMES) -> int:
    """Number of frames the official reader would decode (at most `max_frames`)."""
    return decode_frames(path, None, max_frames=max_frames, min_frames=0).num_frames
