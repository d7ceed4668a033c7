"""Decoding in worker processes, overlapped with inference in the parent.

:func:`run_tasks` runs ``produce(key, path)`` for every item, in worker processes (``spawn``)
or, with no workers, in this process, and yields the messages each call produces. Messages
travel through a bounded queue, so decoding runs at most a few messages ahead of the model
and memory stays flat. A worker process that dies (a decoder crash) costs only the video it
was on: :class:`WorkerCrash` reports it, a new worker takes its place, and the job goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .decode import VideoFileError
from .views import load_view_pixels

Produce = Callable[[str, str], Iterable[Any]]


@dataclass
class Decoded:
    """One decoded video's protocol views, or why it could not be decoded."""

    key: str
    pixels: np.ndarray | None  # V x 3 x T x 256 x 256 uint8
    num_frames: int
    kind: str | None  # failure kind, None when decoded
    reason: str | None
    seconds: float


@dataclass
class WorkerCrash:
    """The process decoding `key` died (exit code `exitcode`) before finishing it."""

    key: str
    path: str
    exitcode: int | None

    @property
    def reason(self) -> str:
        return (f"{self.path}: the decoding process crashed on this video (exit code "
                f"{self.exitcode})")


def decode_views(key: str, path: str, *, frames: int, rate: int, views: str) -> list[Decoded]:
    """Decode one video into protocol views; failures become a :class:`Decoded` with a reason."""
    start = time.perf_counter()
    try:
        pixels, plan = load_view_pixels(path, frames, rate, views)
    except VideoFileError as exc:
        return [Decoded(key, None, 0, exc.kind, str(exc), time.perf_counter() - start)]
    except Exception as exc:  # noqa: BLE001 - a broken file must not stop an evaluation
        reason = f"{path}: {type(exc).__name__}: {exc}"
        return [Decoded(key, None, 0, "decode error", reason, time.perf_counter() - start)]
    return [Decoded(key, pixels, plan.num_frames, None, None, time.perf_counter() - start)]


_DONE = "__done__"


def _worker(tasks: Any, results: Any, produce: Produce, slot: int) -> None:
    """Worker process body: run tasks until the None sentinel."""
    while True:
        item = tasks.get()
        if item is None:
            break
        key, path = item
        results.put(("start", slot, key, path))
        for message in produce(key, path):
            results.put(("message", slot, message, None))
        results.put((_DONE, slot, key, None))


def run_tasks(items: Iterable[tuple[str, str]], produce: Produce, *, workers: int = 0,
              prefetch: int | None = None) -> Iterator[Any]:
    """Yield the messages of ``produce(key, path)`` for every item (see the module doc).

    With `workers` > 0, `produce` must be picklable (a module-level function or a
    ``functools.partial`` of one) and messages come in completion order, interleaved across
    videos. Closing the generator (or an exception in the consumer) stops the workers.
    """
    items = list(items)
    if workers <= 0:
        for key, path in items:
            yield from produce(key, path)
        return
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue(maxsize=prefetch or 4 * workers)
    for item in items:
        tasks.put(item)
    count = min(workers, max(len(items), 1))
    for _ in range(count):
        tasks.put(None)

    def start(slot: int) -> Any:
        proc = ctx.Process(target=_worker, args=(tasks, results, produce, slot), daemon=True)
        proc.start()
        return proc

    procs = {slot: start(slot) for slot in range(count)}
    current: dict[int, tuple[str, str]] = {}
    finished = 0
    restarts_left = len(items) + count  # a worker that dies on every start must not loop
    try:
        while finished < len(items):
            try:
                kind, slot, payload, extra = results.get(timeout=1.0)
            except queue.Empty:
                kind = "idle"
            if kind == "idle":
                for slot, proc in list(procs.items()):
                    if proc.is_alive() or proc.exitcode == 0:
                        continue
                    # A crash: report the video it was on, start a replacement worker (it
                    # takes the sentinel the dead one never read).
                    if slot in current:
                        key, path = current.pop(slot)
                        finished += 1
                        yield WorkerCrash(key, path, proc.exitcode)
                    if restarts_left <= 0:
                        raise RuntimeError(f"decoding workers keep dying (exit code {proc.exitcode})")
                    restarts_left -= 1
                    procs[slot] = start(slot)
                if not any(p.is_alive() for p in procs.values()) and finished < len(items):
                    raise RuntimeError("decoding workers exited with work left")
            elif kind == "start":
                current[slot] = (payload, extra)
            elif kind == _DONE:
                current.pop(slot, None)
                finished += 1
            else:
                yield payload
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in procs.values():
            proc.join(timeout=5)
        tasks.cancel_join_thread()
        results.cancel_join_thread()


def default_workers(requested: int | None) -> int:
    """Decoding processes when the user did not say: one beside inference if the machine has
    more than one core (decoding then overlaps the model), else none."""
    if requested is not None:
        return requested
    import os

    return 1 if (os.cpu_count() or 1) > 1 else 0
