"""Decoding in worker processes, overlapped with inference in the parent.

Workers are started with the ``spawn`` method and run the top-level :func:`_decode_worker`;
each result (uint8 views, a quarter of float32's size, or a failure) travels back through a
bounded queue, so decoding runs at most a few videos ahead of the model and memory stays flat.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .decode import VideoFileError
from .views import load_view_pixels


@dataclass
class Decoded:
    """One decoded video, or why it could not be decoded."""

    key: str
    pixels: np.ndarray | None  # V x 3 x T x 256 x 256 uint8
    num_frames: int
    kind: str | None  # failure kind, None when decoded
    reason: str | None
    seconds: float


def decode_one(key: str, path: str, frames: int, rate: int, views: str) -> Decoded:
    """Decode one video into views; failures become a :class:`Decoded` with a reason."""
    start = time.perf_counter()
    try:
        pixels, plan = load_view_pixels(path, frames, rate, views)
    except VideoFileError as exc:
        return Decoded(key, None, 0, exc.kind, str(exc), time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a broken file must not stop an evaluation
        reason = f"{path}: {type(exc).__name__}: {exc}"
        return Decoded(key, None, 0, "decode error", reason, time.perf_counter() - start)
    return Decoded(key, pixels, plan.num_frames, None, None, time.perf_counter() - start)


def _decode_worker(tasks, results, frames: int, rate: int, views: str) -> None:
    """Worker process body: decode tasks until the None sentinel."""
    while True:
        item = tasks.get()
        if item is None:
            break
        key, path = item
        results.put(decode_one(key, path, frames, rate, views))


def decode_all(
    items: Iterable[tuple[str, str]],
    frames: int,
    rate: int,
    views: str,
    workers: int = 0,
    prefetch: int | None = None,
) -> Iterator[Decoded]:
    """Decode (key, path) items; with `workers` > 0 in processes, results in completion order.

    Closing the generator (or an exception in the consumer) terminates the workers.
    """
    items = list(items)
    if workers <= 0:
        for key, path in items:
            yield decode_one(key, path, frames, rate, views)
        return
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue(maxsize=prefetch or 2 * workers)
    for item in items:
        tasks.put(item)
    procs = [
        ctx.Process(target=_decode_worker, args=(tasks, results, frames, rate, views), daemon=True)
        for _ in range(min(workers, max(len(items), 1)))
    ]
    for _ in procs:
        tasks.put(None)
    for p in procs:
        p.start()
    try:
        received = 0
        while received < len(items):
            try:
                yield_item = results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    raise RuntimeError("decoding workers died") from None
                continue
            received += 1
            yield yield_item
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
        tasks.cancel_join_thread()
        results.cancel_join_thread()
