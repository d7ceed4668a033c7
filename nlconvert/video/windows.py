"""Which frames each feature window takes, and frame-rate resampling: pure rules, no decoding.

The contract of ``nlconvert features`` (README, "Features"):

* Window k starts at frame ``k * stride`` and takes frames ``start + i * rate`` for
  ``i < frames`` (L x R, the model's training clip by default). Windows are emitted while
  their last frame is inside the video: ``start + (L - 1) * R <= N - 1``.
* A video shorter than one window (``N < (L - 1) * R + 1``) gives exactly one window, at frame
  0, whose frames wrap around: ``(i * R) mod N``, as the test protocol's clips do.
* ``--fps F`` first resamples the decoded frames by their timestamps: output frame j stands
  at ``j / F`` seconds after the first frame and is the last decoded frame whose time is
  ``<=`` that; there are ``floor(t_last * F) + 1`` output frames (``t_last``: the time of the
  last decoded frame). Frame indices then count output frames.
* Times: a window's ``start_s`` is the time of its first frame; ``end_s`` the time of the
  latest frame it takes plus one frame period (``1 / F``, or ``1 /`` the stream's average rate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

from ..errors import VideoError

T = TypeVar("T")

DEFAULT_STRIDE = 16


@dataclass(frozen=True)
class WindowSpec:
    """Window length L (frames), sampling rate R and stride S (frames between starts)."""

    frames: int
    rate: int
    stride: int = DEFAULT_STRIDE

    def __post_init__(self) -> None:
        if self.frames < 1 or self.rate < 1 or self.stride < 1:
            raise VideoError(f"window frames, rate and stride must be positive, got "
                             f"{self.frames}, {self.rate}, {self.stride}")

    @property
    def span(self) -> int:
        """Frames from a window's first to its last frame, both included: (L - 1) * R + 1."""
        return (self.frames - 1) * self.rate + 1

    def starts(self, num_frames: int) -> list[int]:
        """Start frame of every window of a video of `num_frames` frames."""
        if num_frames < 1:
            raise VideoError("video has no frames")
        if num_frames < self.span:
            return [0]
        return list(range(0, num_frames - self.span + 1, self.stride))

    def indices(self, start: int, num_frames: int) -> list[int]:
        """Frame indices of the window starting at `start` (wrapping only in a short video)."""
        return [(start + i * self.rate) % num_frames for i in range(self.frames)]

    def needed_after(self, index: int, next_start: int) -> bool:
        """Whether frame `index` belongs to a window starting at `next_start` or later
        (the frames of the windows not cut yet; the streaming cutter keeps only these)."""
        if index < next_start:
            return False
        first_window = max(0, -(-(index - self.span + 1) // self.stride))
        k = max(first_window, -(-next_start // self.stride))
        while k * self.stride <= index:
            if (index - k * self.stride) % self.rate == 0:
                return True
            k += 1
        return False


def parse_fps(text: str | float | Fraction | None) -> Fraction | None:
    """``--fps`` as an exact fraction (``"29.97"`` -> 2997/100); None keeps every frame."""
    if text is None:
        return None
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        raise VideoError(f"--fps must be a positive number, not {text!r}") from None
    if value <= 0:
        raise VideoError(f"--fps must be a positive number, not {text!r}")
    return value


def resample(times: Sequence[Fraction], fps: Fraction) -> list[int]:
    """Decoded-frame index of each output frame at `fps` (see the module doc).

    `times`: increasing times of the decoded frames, the first being 0.
    """
    return [source for _, source in resample_stream(iter(range(len(times))), times.__getitem__, fps)]


def resample_stream(items: Iterator[T], time_of: Callable[[T], Fraction], fps: Fraction
                    ) -> Iterator[tuple[int, T]]:
    """Streaming :func:`resample` over decoded items: ``(output index, item)`` pairs, each
    produced as soon as the next item's time shows which item an output time takes."""
    j = 0
    previous: T | None = None
    last_time = Fraction(0)
    for item in items:
        time = time_of(item)
        while previous is not None and Fraction(j) / fps < time:
            yield j, previous
            j += 1
        previous, last_time = item, time
    if previous is not None:
        while Fraction(j) / fps <= last_time:
            yield j, previous
            j += 1
