"""Dense clip features of whole videos: windows from every video batched through a backend.

:func:`extract_features` decodes videos (in worker processes when asked), cuts their windows
(:mod:`.stream`), normalises them, fills batches of ``backend.batch_size`` windows across
videos (windows of one shape per batch) and yields each video's features as soon as all its
windows have gone through the network::

    backend = nlconvert.open_backend("model.pt", backend="fast")
    for video, feats, windows in extract_features(backend, paths, stride=16):
        ...  # feats: windows x channels float32 (None if the video failed: windows.error)

``crop="three"|"ten"`` gives ``windows x crops x channels`` (:mod:`.crops`), ``spatial=True``
(``res4``/``res5``) keeps the positions: ``windows x (crops x) channels x t x h x w``.

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

from ..arch import FEATURE_LAYERS, SPATIAL_LAYERS
from ..errors import VideoError
from ..runtime.backends import Backend
from .crops import CropSpec
from .protocol import CROP, normalize
from .stream import VideoSummary, Window, stream_windows
from .windows import DEFAULT_STRIDE, WindowSpec, parse_fps
from .workers import WorkerCrash, run_tasks

#: Part-filled batches of windows of different sizes held at most (in batch sizes).
MAX_WAITING_BATCHES = 4


class VideoFeatures(NamedTuple):
    """One video's result: its key, ``windows x [crops x] channels [x t x h x w]`` float32
    (None if it failed) and
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


def check_window_shape(backend: Backend, spec: WindowSpec, crop: str | CropSpec) -> None:
    """Raise :class:`~nlconvert.errors.InputShapeError` if the network cannot take a window
    (e.g. too few frames for the architecture), before any video is decoded."""
    crops = CropSpec.make(crop)
    size = crops.size or CROP
    backend.arch.check_clip((1, 3, spec.frames, size, size), "clip")


def check_layer(layer: str, *, spatial: bool = False) -> None:
    """Raise a one-line :class:`~nlconvert.errors.VideoError` for a layer that cannot be written."""
    if layer not in FEATURE_LAYERS:
        raise VideoError(f"unknown layer {layer!r}; layers: {', '.join(FEATURE_LAYERS)}")
    if spatial and layer not in SPATIAL_LAYERS:
        raise VideoError(f"--spatial keeps the positions of {' or '.join(SPATIAL_LAYERS)}; "
                         f"--layer {layer} is pooled (or has no positions)")


def window_features(backend: Backend, pixels: np.ndarray, layer: str, *,
                    spatial: bool = False) -> np.ndarray:
    """Features of a batch of windows' uint8 pixels: ``B x 3 x L x H x W`` gives
    ``B x C`` (``B x C x t x h x w`` with `spatial`); ``B x K x 3 x L x S x S`` (K crops) gives
    ``B x K x C`` (``B x K x C x t x h x w``). The crops of all windows go through the network
    together, in batches of ``backend.batch_size`` clips."""
    lead = pixels.shape[:-4]  # (B,) or (B, K)
    clips = normalize(pixels.reshape(-1, *pixels.shape[-4:]))
    if spatial:
        values = backend.feature_maps(clips, layer)
    else:
        values = backend.features(clips, [layer])[layer]
    return values.reshape(*lead, *values.shape[1:])


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
    crop: str | CropSpec = "center",
    spatial: bool = False,
    workers: int = 0,
    check: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[VideoFeatures]:
    """Features of every video (paths, or ``(key, path)`` pairs), in completion order.

    `layer`: one of ``FEATURE_LAYERS``. `frames`/`rate`: the window (default: the model's
    training clip); `stride`: frames between window starts; `fps`: resample first; `crop`:
    ``center`` (the protocol's 256 x 256), ``three``, ``ten`` or ``none``, or a
    :class:`~nlconvert.video.crops.CropSpec` with another size: ``three``/``ten`` add a crops
    axis after the windows. `spatial`: keep the positions of ``res4``/``res5``
    (``C x t x h x w`` per clip). `workers`: decoding processes (0: decode here). `check`:
    run the first batch on the torch backend too and stop beyond the backend's stated
    tolerance. `on_batch(n)` is called after each batch of n windows.
    """
    check_layer(layer, spatial=spatial)
    crops = CropSpec.make(crop)
    spec = window_spec(backend, frames=frames, rate=rate, stride=stride)
    check_window_shape(backend, spec, crops)
    produce = partial(stream_windows, spec=spec, fps=parse_fps(fps), crop=crops)
    assembler = FeatureAssembler()
    batches: dict[tuple[int, ...], list[Window]] = {}  # windows waiting, by pixel shape
    state = {"check": check}
    # Crops are batched with windows: a batch holds about batch_size clips.
    per_batch = max(1, backend.batch_size // crops.count)

    def run(batch: list[Window]) -> Iterator[VideoFeatures]:
        batch = [w for w in batch if not assembler.failed(w.key)]
        if not batch:
            return
        pixels = np.stack([w.pixels for w in batch])
        if state["check"]:
            first = normalize(pixels.reshape(-1, *pixels.shape[-4:])[:backend.batch_size])
            backend.check(first, "clip")
            state["check"] = False
        values = window_features(backend, pixels, layer, spatial=spatial)
        if on_batch is not None:
            on_batch(len(batch))
        for key in dict.fromkeys(w.key for w in batch):
            rows = [(w.index, v) for w, v in zip(batch, values, strict=True) if w.key == key]
            yield from assembler.add_rows(key, [i for i, _ in rows], np.stack([v for _, v in rows]))

    for message in run_tasks(_as_items(videos), produce, workers=workers):
        if isinstance(message, Window):
            queue = batches.setdefault(message.pixels.shape, [])
            queue.append(message)
            if len(queue) >= per_batch:
                del batches[message.pixels.shape]
                yield from run(queue)
            elif sum(map(len, batches.values())) > MAX_WAITING_BATCHES * per_batch:
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
