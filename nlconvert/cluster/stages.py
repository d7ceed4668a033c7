"""What runs on the Ray workers: decoding tasks and the model actor.

A decoding task is a Ray generator task, one video each: it yields :class:`Chunk` s of a
few clips (views or windows, uint8, so a 10 x 3 view video is a handful of small objects,
not one 190 MB object) and the last chunk carries the video's record (``meta``: the
:class:`~nlconvert.video.workers.Decoded` without pixels for ``evaluate``, the
:class:`~nlconvert.video.stream.VideoSummary` for ``features``), passed through untouched
so that whatever those records hold reaches the driver. Every Python error of a video is
caught in the task and travels in that record (a failure with its kind): only a dead
process, a lost node or a lost object ever fails a task.

The :class:`ModelActor` turns a chunk into a :class:`ChunkResult` (probabilities or
features per clip, and the seconds spent); a Python error in the model comes back as
``fatal`` (a property of the job, not of one video: the driver stops).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: Clips per chunk a decoding task yields (bounds one object; rounded up to a whole number
#: of model batches so that ``evaluate`` batches views exactly as a local run does).
ROWS_PER_BLOCK = 8

Decoder = Callable[..., Any]


@dataclass
class Chunk:
    """Some clips of one video (``indices`` give their positions); the video's last chunk
    carries `meta` and the decoding seconds."""

    key: str
    indices: list[int]
    clips: list[np.ndarray]
    meta: Any = None
    seconds: float = 0.0

    @property
    def last(self) -> bool:
        return self.meta is not None


@dataclass
class ChunkResult:
    """The model's rows for a chunk's clips (None without clips), the backend that made them,
    and the seconds spent on the chunk (decoding included on the last chunk)."""

    key: str
    indices: list[int]
    values: np.ndarray | None
    meta: Any
    backend: str
    seconds: float
    fatal: str | None = None


@dataclass(frozen=True)
class BackendSpec:
    """How each actor opens its backend (see :func:`nlconvert.runtime.backends.open_backend`).

    The model file must be on storage every node sees.
    """

    model: str
    backend: str = "auto"
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | None = None
    compile: bool = True

    @property
    def rows_per_chunk(self) -> int:
        batch = self.batch_size or 1
        return -(-ROWS_PER_BLOCK // batch) * batch


def _unreadable(path: str) -> tuple[str, str] | None:
    if os.path.isfile(path) and os.access(path, os.R_OK):
        return None
    return ("not on this worker",
            f"{path}: cannot be read on worker node {socket.gethostname()} (inputs must be on "
            "storage every node sees, at the same path)")


def _error_text(path: str, exc: Exception) -> str:
    return f"{path}: {type(exc).__name__}: {' '.join(str(exc).split())}"


def decode_views_task(key: str, path: str, *, frames: int, rate: int, views: str,
                      rows_per_chunk: int = ROWS_PER_BLOCK,
                      decoder: Decoder | None = None, strict: bool = False) -> Iterator[Chunk]:
    """A decoding task of ``evaluate``: one video's protocol views, a few per chunk.

    `decoder` replaces :func:`nlconvert.video.workers.decode_views` (same signature; it must be
    importable on the workers), e.g. to read videos another way. With `strict`, a video with
    decode warnings comes back as a failure (the decoder's ``strict``).
    """
    from ..video.workers import Decoded, decode_views

    problem = _unreadable(path)
    if problem is not None:
        yield Chunk(key, [], [], Decoded(key, None, 0, problem[0], problem[1], 0.0))
        return
    start = time.perf_counter()
    try:
        decode = decoder or decode_views
        # `strict` only when asked: a custom decoder need not know the keyword
        (decoded,) = (decode(key, path, frames=frames, rate=rate, views=views, strict=True)
                      if strict else decode(key, path, frames=frames, rate=rate, views=views))
    except Exception as exc:  # noqa: BLE001 - a video's error is recorded, not a task failure
        decoded = Decoded(key, None, 0, "decode error", _error_text(path, exc),
                          time.perf_counter() - start)
    if decoded.pixels is None:
        yield Chunk(key, [], [], decoded, decoded.seconds)
        return
    pixels, meta = decoded.pixels, replace(decoded, pixels=None)
    total = pixels.shape[0]
    for first in range(0, total, rows_per_chunk):
        end = min(first + rows_per_chunk, total)
        last = end == total
        yield Chunk(key, list(range(first, end)), list(pixels[first:end]),
                    meta if last else None, decoded.seconds if last else 0.0)


def decode_windows_task(key: str, path: str, *, frames: int, rate: int, stride: int,
                        rows_per_chunk: int = ROWS_PER_BLOCK,
                        **stream_options: Any) -> Iterator[Chunk]:
    """A decoding task of ``features``: one video's windows as they are cut, a few per chunk,
    then its summary. `stream_options` go to :func:`nlconvert.video.stream.stream_windows`
    (``fps``, ``crop``, ...)."""
    from ..video.stream import VideoSummary, Window, stream_windows
    from ..video.windows import WindowSpec

    problem = _unreadable(path)
    if problem is not None:
        yield Chunk(key, [], [], VideoSummary(key, path, error=problem[1], kind=problem[0]))
        return
    spec = WindowSpec(frames, rate, stride)
    start = time.perf_counter()
    indices: list[int] = []
    clips: list[np.ndarray] = []
    try:
        for message in stream_windows(key, path, spec, **stream_options):
            if isinstance(message, Window):
                indices.append(message.index)
                clips.append(message.pixels)
                if len(clips) >= rows_per_chunk:
                    yield Chunk(key, indices, clips)
                    indices, clips = [], []
            elif isinstance(message, VideoSummary):
                yield Chunk(key, indices, clips, message, time.perf_counter() - start)
                return
    except Exception as exc:  # noqa: BLE001 - a video's error is recorded, not a task failure
        yield Chunk(key, [], [], VideoSummary(key, path, error=_error_text(path, exc),
                                              kind="decode error"))
        return
    yield Chunk(key, [], [], VideoSummary(key, path, error=f"{path}: the decoder ended without "
                                          "a summary", kind="decode error"))


class ModelActor:
    """The model in an actor, loaded once in ``__init__``; turns chunks into results.

    `task` is ``"scores"`` (the protocol's probabilities) or ``"features"`` (`layer`, its
    maps with `spatial`; a window of several crops gives one row of all of them).
    """

    def __init__(self, spec: BackendSpec, task: str, layer: str = "pool5",
                 spatial: bool = False) -> None:
        from ..runtime.backends import open_backend

        device = spec.device
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():  # a GPU resource without CUDA (e.g. a test)
                device = "cpu"
        self.backend = open_backend(spec.model, spec.backend, device=device,
                                    threads=spec.threads, batch_size=spec.batch_size,
                                    compile=spec.compile)
        self.tag = f"{self.backend.info.name}/{self.backend.info.precision}"
        self.task = task
        self.layer = layer
        self.spatial = spatial

    def ready(self) -> tuple[str, str]:
        """The node this actor runs on and its backend tag (answered once it is loaded)."""
        import ray

        return ray.get_runtime_context().get_node_id(), self.tag

    def run(self, chunk: Chunk) -> ChunkResult:
        """The chunk's rows. A Python error here is a property of the job (a wrong shape, a
        bug), not of a worker: it travels to the driver as ``fatal`` and stops the job."""
        start = time.perf_counter()
        try:
            values = self._values(chunk.clips) if chunk.clips else None
        except Exception as exc:  # noqa: BLE001 - reported, then raised by the driver
            return ChunkResult(chunk.key, chunk.indices, None, chunk.meta, self.tag, 0.0,
                               fatal=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        return ChunkResult(chunk.key, chunk.indices, values, chunk.meta, self.tag,
                           chunk.seconds + time.perf_counter() - start)

    def _values(self, clips: list[np.ndarray]) -> np.ndarray:
        from ..video.features import window_features
        from ..video.protocol import normalize

        out: list[np.ndarray | None] = [None] * len(clips)
        by_shape: dict[tuple[int, ...], list[int]] = {}  # clip shape -> positions
        for i, clip in enumerate(clips):
            by_shape.setdefault(clip.shape, []).append(i)
        for shape, positions in by_shape.items():
            # a window of K crops is K clips: about batch_size clips per forward, as locally
            size = max(1, self.backend.batch_size // (shape[0] if len(shape) == 5 else 1))
            for first in range(0, len(positions), size):
                batch = positions[first:first + size]
                pixels = np.stack([clips[i] for i in batch])
                if self.task == "scores":
                    rows = self.backend.scores(normalize(pixels))
                else:
                    rows = window_features(self.backend, pixels, self.layer, spatial=self.spatial)
                for i, row in zip(batch, rows, strict=True):
                    out[i] = row
        return np.stack(out)  # type: ignore[arg-type]
