"""Dense clip features of whole videos: windows from every video batched through a backend.

:func:`extract_features` decodes videos (in worker processes when asked), cuts their windows
(:mod:`.stream`), normalises them, fills batches of ``backend.batch_size`` windows across
videos (windows of one shape per batch) and yields each video's features as soon as all its
windows have gone through the network::

    backend = nlconvert.open_backend("model.pt", backend="fast")
    for video, feats, windows in extract_features(backend, paths, stride=16):
        ...  # feats: windows x channels float32 (None if the video failed: windows.error)

The window rules are those of :mod:`.windows`; the layers those of
:data:`nlconvert.arch.FEATURE_LAYERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..arch import FEATURE_LAYERS
from ..errors import VideoError
from ..runtime.backends import Backend
from .protocol import normalize
from .stream import CROPS, VideoSummary, Window, stream_windows
from .windows import DEFAULT_STRIDE, WindowSpec, parse_fps
from .workers import WorkerCrash, run_tasks


class VideoFeatures(NamedTuple):
    """One video's result: its key, ``windows x channels`` float32 (None if it failed) and
    the :class:`~nlconvert.video.stream.VideoSummary` (window starts and times, or the error)."""

    video: str
    features: np.ndarray | None
    windows: VideoSummary


@dataclass
class _Pending:
    """A video whose windows are on their way through the network."""

    rows: dict[int, np.ndarray] = field(default_factory=dict)  # window index -> features
    summary: VideoSummary | None = None
    failed: bool = False


def window_spec(backend: Backend, *, frames: int | None = None, rate: int | None = None,
                stride: int = DEFAULT_STRIDE) -> WindowSpec:
    """The windows of a model: its training clip (L x R) unless overridden."""
    return WindowSpec(frames or backend.arch.frames, rate or backend.arch.sample_rate, stride)


def check_window_shape(backend: Backend, spec: WindowSpec, crop: str) -> None:
    """Raise :class:`~nlconvert.errors.InputShapeError` if the network cannot take a window
    (e.g. too few frames for the architecture), before any video is decoded."""
    backend.arch.check_clip((1, 3, spec.frames, 256, 256), "clip")
    if crop not in CROPS:
        raise VideoError(f"--crop must be one of {', '.join(CROPS)}, not {crop!r}")


def _as_items(videos: Iterable[str | Path | tuple[str, str | Path]]) -> list[tuple[str, str]]:
    items = []
    for v in videos:
        if isinstance(v, tuple):
            items.append((str(v[0]), str(v[1])))
        else:
            items.append((str(v), str(v)))
    return items


def extract_features(
    backend: Backend,
    videos: Iterable[str | Path | tuple[str, str | Path]],
    *,
    layer: str = "pool5",
    stride: int = DEFAULT_STRIDE,
    frames: int | None = None,
    rate: int | None = None,
    fps: str | float | Fraction | None = None,
    crop: str = "center",
    workers: int = 0,
    check: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[VideoFeatures]:
    """Features of every video (paths, or ``(key, path)`` pairs), in completion order.

    `layer`: one of ``FEATURE_LAYERS``. `frames`/`rate`: the window (default: the model's
    training clip); `stride`: frames between window starts; `fps`: resample first; `crop`:
    ``center`` (the protocol's 256 x 256) or ``none``. `workers`: decoding processes (0:
    decode here). `check`: run the first batch on the torch backend too and stop beyond the
    backend's stated tolerance. `on_batch(n)` is called after each batch of n windows.
    """
    if layer not in FEATURE_LAYERS:
        raise VideoError(f"unknown layer {layer!r}; layers: {', '.join(FEATURE_LAYERS)}")
    spec = window_spec(backend, frames=frames, rate=rate, stride=stride)
    check_window_shape(backend, spec, crop)
    produce = partial(stream_windows, spec=spec, fps=parse_fps(fps), crop=crop)
    pending: dict[str, _Pending] = {}
    batches: dict[tuple[int, ...], list[Window]] = {}  # windows waiting, by pixel shape
    state = {"check": check}

    def run(batch: list[Window]) -> Iterator[VideoFeatures]:
        clips = normalize(np.stack([w.pixels for w in batch]))
        if state["check"]:
            backend.check(clips[:backend.batch_size], "clip")
            state["check"] = False
        values = backend.features(clips, [layer])[layer]
        for w, row in zip(batch, values, strict=True):
            if w.key in pending:
                pending[w.key].rows[w.index] = row
        if on_batch is not None:
            on_batch(len(batch))
        for w in batch:
            yield from finish(w.key)

    def finish(key: str) -> Iterator[VideoFeatures]:
        p = pending.get(key)
        if p is None or p.summary is None:
            return
        if p.failed or not p.summary.ok:
            del pending[key]
            yield VideoFeatures(key, None, p.summary)
        elif len(p.rows) == p.summary.windows:
            del pending[key]
            feats = np.stack([p.rows[k] for k in range(p.summary.windows)]).astype(np.float32)
            yield VideoFeatures(key, feats, p.summary)

    for message in run_tasks(_as_items(videos), produce, workers=workers):
        if isinstance(message, Window):
            pending.setdefault(message.key, _Pending())
            queue = batches.setdefault(message.pixels.shape, [])
            queue.append(message)
            if len(queue) >= backend.batch_size:
                del batches[message.pixels.shape]
                yield from run(queue)
        elif isinstance(message, VideoSummary):
            p = pending.setdefault(message.key, _Pending())
            p.summary = message
            if not message.ok:  # windows of a video that failed later are dropped
                p.failed = True
                for shape, queue in list(batches.items()):
                    batches[shape] = [w for w in queue if w.key != message.key]
            yield from finish(message.key)
        elif isinstance(message, WorkerCrash):
            summary = VideoSummary(message.key, message.path, error=message.reason,
                                   kind="decoder crash")
            pending[message.key] = _Pending(summary=summary, failed=True)
            for shape, queue in list(batches.items()):
                batches[shape] = [w for w in queue if w.key != message.key]
            yield from finish(message.key)
    for queue in batches.values():  # the last, partial batches
        if queue:
            yield from run(queue)
