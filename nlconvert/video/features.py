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

#: Part-filled batches of windows of different sizes held at most (in batch sizes).
MAX_WAITING_BATCHES = 4


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


class FeatureAssembler:
    """Collects each video's window features (in any order, from any worker) and its summary;
    hands a video out once, when all its windows are in (or as soon as it failed)."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._finished: set[str] = set()
        self._failed: set[str] = set()

    def add_rows(self, key: str, indices: Iterable[int], rows: np.ndarray) -> list[VideoFeatures]:
        """Features of some windows of `key` (window index -> row of `rows`)."""
        if key in self._finished:
            return []  # a retried task's duplicate
        p = self._pending.setdefault(key, _Pending())
        for index, row in zip(indices, rows, strict=True):
            p.rows[int(index)] = row
        return self._finish(key)

    def add_summary(self, summary: VideoSummary) -> list[VideoFeatures]:
        """The end of a video's stream: how many windows it has, or why it failed."""
        if summary.key in self._finished:
            return []
        self._pending.setdefault(summary.key, _Pending()).summary = summary
        return self._finish(summary.key)

    def failed(self, key: str) -> bool:
        """Whether `key` is known to have failed (its windows are then not worth computing)."""
        return key in self._failed

    def unfinished(self) -> list[str]:
        """Keys seen but not handed out yet."""
        return [k for k in self._pending if k not in self._finished]

    def _finish(self, key: str) -> list[VideoFeatures]:
        p = self._pending[key]
        if p.summary is None:
            return []
        if p.summary.ok and len(p.rows) < p.summary.windows:
            return []
        del self._pending[key]
        self._finished.add(key)
        if not p.summary.ok:
            self._failed.add(key)
            return [VideoFeatures(key, None, p.summary)]
        feats = np.stack([p.rows[k] for k in range(p.summary.windows)]).astype(np.float32)
        return [VideoFeatures(key, feats, p.summary)]


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
    assembler = FeatureAssembler()
    batches: dict[tuple[int, ...], list[Window]] = {}  # windows waiting, by pixel shape
    state = {"check": check}

    def run(batch: list[Window]) -> Iterator[VideoFeatures]:
        batch = [w for w in batch if not assembler.failed(w.key)]
        if not batch:
            return
        clips = normalize(np.stack([w.pixels for w in batch]))
        if state["check"]:
            backend.check(clips[:backend.batch_size], "clip")
            state["check"] = False
        values = backend.features(clips, [layer])[layer]
        if on_batch is not None:
            on_batch(len(batch))
        for key in dict.fromkeys(w.key for w in batch):
            rows = [(w.index, v) for w, v in zip(batch, values, strict=True) if w.key == key]
            yield from assembler.add_rows(key, [i for i, _ in rows], np.stack([v for _, v in rows]))

    for message in run_tasks(_as_items(videos), produce, workers=workers):
        if isinstance(message, Window):
            queue = batches.setdefault(message.pixels.shape, [])
            queue.append(message)
            if len(queue) >= backend.batch_size:
                del batches[message.pixels.shape]
                yield from run(queue)
            elif sum(map(len, batches.values())) > MAX_WAITING_BATCHES * backend.batch_size:
                # Windows of many sizes (--crop none): run the fullest part-batch rather than
                # hold windows (and their videos' results) without bound.
                shape = max(batches, key=lambda s: len(batches[s]))
                yield from run(batches.pop(shape))
        elif isinstance(message, VideoSummary):
            yield from assembler.add_summary(message)
        elif isinstance(message, WorkerCrash):
            yield from assembler.add_summary(VideoSummary(
                message.key, message.path, error=message.reason, kind="decoder crash"))
    for queue in batches.values():  # the last, partial batches
        if queue:
            yield from run(queue)
