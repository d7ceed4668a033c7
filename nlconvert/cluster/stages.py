"""What runs on the Ray workers: decoding tasks and the model actor.

Rows travel as one column ``msg`` of pickled tuples (our own messages between our own
processes, never a user's file): a decoding task turns one video into one row per view or
window (uint8 pixels, so a 10 x 3 view video is 30 small rows, not one 190 MB row) and a
closing row; the model actor turns pixel rows into result rows and passes the others on.

Messages: ``("view", key, index, total, pixels, num_frames, warnings)``, ``("window", key, index, pixels)``,
``("summary", key, VideoSummary)``, ``("error", key, path, kind, reason)`` from decoding;
``("probs", key, index, total, probs, backend, num_frames, warnings)`` and ``("feat", key, index, row, backend)``
from the model, or ``("fatal", reason)`` when the model cannot run (the driver stops).
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..video.crops import CropSpec

#: Views or windows per row batch a decoding task yields (bounds a task's output blocks).
ROWS_PER_BLOCK = 8

Decoder = Callable[..., Any]


def pack(message: tuple[Any, ...]) -> bytes:
    return pickle.dumps(message, protocol=5)


def unpack(data: bytes) -> tuple[Any, ...]:
    return pickle.loads(data)  # noqa: S301 - rows written by pack() in our own workers


def _rows(messages: list[tuple[Any, ...]]) -> dict[str, np.ndarray]:
    out = np.empty(len(messages), dtype=object)
    out[:] = [pack(m) for m in messages]
    return {"msg": out}


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


def _unreadable(key: str, path: str) -> tuple[Any, ...] | None:
    if os.path.isfile(path) and os.access(path, os.R_OK):
        return None
    return ("error", key, path, "not on this worker",
            f"{path}: cannot be read on worker node {socket.gethostname()} (inputs must be on "
            "storage every node sees, at the same path)")


def decode_views_task(batch: dict[str, np.ndarray], *, frames: int, rate: int, views: str,
                      decoder: Decoder | None = None, strict: bool = False
                      ) -> Iterator[dict[str, np.ndarray]]:
    """A decoding task of ``evaluate``: each video's protocol views, a few rows at a time.

    `decoder` replaces :func:`nlconvert.video.workers.decode_views` (same signature; it must be
    importable on the workers), e.g. to read videos another way.
    """
    from ..video.workers import decode_views

    decode = decoder or decode_views
    for key, path in zip(batch["key"], batch["path"], strict=True):
        key, path = str(key), str(path)
        problem = _unreadable(key, path)
        if problem is not None:
            yield _rows([problem])
            continue
        (decoded,) = (decode(key, path, frames=frames, rate=rate, views=views, strict=True)
                      if strict else decode(key, path, frames=frames, rate=rate, views=views))
        if decoded.pixels is None:
            yield _rows([("error", key, path, decoded.kind or "error", decoded.reason or "")])
            continue
        total = decoded.pixels.shape[0]
        for start in range(0, total, ROWS_PER_BLOCK):
            yield _rows([("view", key, i, total, decoded.pixels[i], decoded.num_frames,
                          tuple(getattr(decoded, "warnings", ())))
                         for i in range(start, min(start + ROWS_PER_BLOCK, total))])


def decode_windows_task(batch: dict[str, np.ndarray], *, frames: int, rate: int, stride: int,
                        fps: Fraction | None, crop: str | CropSpec
                        ) -> Iterator[dict[str, np.ndarray]]:
    """A decoding task of ``features``: each video's windows as they are cut, then its summary."""
    from ..video.stream import VideoSummary, Window, stream_windows
    from ..video.windows import WindowSpec

    spec = WindowSpec(frames, rate, stride)
    for key, path in zip(batch["key"], batch["path"], strict=True):
        key, path = str(key), str(path)
        problem = _unreadable(key, path)
        if problem is not None:
            yield _rows([("summary", key, VideoSummary(key, path, error=problem[4],
                                                       kind=problem[3]))])
            continue
        pending: list[tuple[Any, ...]] = []
        for message in stream_windows(key, path, spec, fps=fps, crop=crop):
            if isinstance(message, Window):
                pending.append(("window", key, message.index, message.pixels))
                if len(pending) >= ROWS_PER_BLOCK:
                    yield _rows(pending)
                    pending = []
            else:
                assert isinstance(message, VideoSummary)
                yield _rows([*pending, ("summary", key, message)])
                pending = []


class ModelActor:
    """The model in an actor, loaded once in ``__init__``; turns pixel rows into results.

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

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # A Python error here is a property of the job (a wrong shape, a bug), not of a
        # worker: it travels to the driver as a row and stops the job there, so Ray's
        # error budget only ever counts dead workers and lost nodes.
        try:
            return self._run(batch)
        except Exception as exc:  # noqa: BLE001 - reported, then raised by the driver
            return _rows([("fatal", f"{type(exc).__name__}: {' '.join(str(exc).split())}")])

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..video.features import window_features
        from ..video.protocol import normalize

        messages = [unpack(b) for b in batch["msg"]]
        out = [m for m in messages if m[0] not in ("view", "window")]
        pixel_rows = [m for m in messages if m[0] in ("view", "window")]
        by_shape: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
        for m in pixel_rows:
            pixels = m[4] if m[0] == "view" else m[3]
            by_shape.setdefault(pixels.shape, []).append(m)
        for group in by_shape.values():
            pixels = np.stack([m[4] if m[0] == "view" else m[3] for m in group])
            if self.task == "scores":
                probs = self.backend.scores(normalize(pixels))
                out += [("probs", m[1], m[2], m[3], probs[i], self.tag, *m[5:])
                        for i, m in enumerate(group)]
            else:
                feats = window_features(self.backend, pixels, self.layer, spatial=self.spatial)
                out += [("feat", m[1], m[2], feats[i], self.tag) for i, m in enumerate(group)]
        return _rows(out)


def model_actor_class(spec: BackendSpec, task: str, layer: str = "pool5",
                      spatial: bool = False) -> type:
    """A :class:`ModelActor` with its settings built in, so Ray creates (and re-creates, after
    a lost node) the actor without constructor arguments held in the object store."""

    class BoundModelActor(ModelActor):
        def __init__(self) -> None:
            super().__init__(spec, task, layer, spatial)

    BoundModelActor.__name__ = BoundModelActor.__qualname__ = "ModelActor"
    return BoundModelActor
