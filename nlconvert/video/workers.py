"""Decoding in worker processes, overlapped with inference in the parent.

:func:`run_tasks` runs ``produce(key, path)`` for every item, in worker processes (``spawn``)
or, with no workers, in this process, and yields the messages each call produces. Each worker
talks to the parent through its own pipe: a message is sent when the parent is ready to read
it, so decoding runs at most one message ahead of the model per worker and memory stays flat.
A worker process that dies (a decoder crash) costs only the video it was on:
:class:`WorkerCrash` reports it, a new worker takes its place, and the job goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mp_connection
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import VideoError
from .decode import DAMAGED_KIND, VideoFileError, strict_reason
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
    warnings: tuple[str, ...] = ()  # signs of a damaged file; empty when clean


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


def decode_views(key: str, path: str, *, frames: int, rate: int, views: str,
                 strict: bool = False) -> list[Decoded]:
    """Decode one video into protocol views; failures become a :class:`Decoded` with a reason.

    With `strict`, a video with decode warnings is a failure (kind ``damaged``), not scored.
    """
    start = time.perf_counter()
    try:
        pixels, plan = load_view_pixels(path, frames, rate, views)
    except VideoFileError as exc:
        return [Decoded(key, None, 0, exc.kind, str(exc), time.perf_counter() - start)]
    except Exception as exc:  # noqa: BLE001 - a broken file must not stop an evaluation
        reason = f"{path}: {type(exc).__name__}: {exc}"
        return [Decoded(key, None, 0, "decode error", reason, time.perf_counter() - start)]
    if strict and plan.warnings:
        return [Decoded(key, None, plan.num_frames, DAMAGED_KIND, strict_reason(path, plan.warnings),
                        time.perf_counter() - start, plan.warnings)]
    return [Decoded(key, pixels, plan.num_frames, None, None, time.perf_counter() - start,
                    plan.warnings)]


class DecodingWorkersError(VideoError):
    """Decoding processes keep dying before they take any work."""


def _worker(conn: Any, produce: Produce) -> None:
    """Worker process body: take a task from the parent, send its messages, say done.

    When the parent is gone (killed: its end of the pipe closes), the worker ends quietly:
    no traceback of a broken pipe on the terminal the parent shared.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        while True:
            item = conn.recv()
            if item is None:
                break
            key, path = item
            for message in produce(key, path):
                conn.send(("message", message))  # blocks until the parent reads: backpressure
            conn.send(("done", key))
    except (EOFError, OSError):  # BrokenPipeError, ConnectionResetError: the parent died
        return


def run_tasks(items: Iterable[tuple[str, str]], produce: Produce, *, workers: int = 0
              ) -> Iterator[Any]:
    """Yield the messages of ``produce(key, path)`` for every item (see the module doc).

    With `workers` > 0, `produce` must be picklable (a module-level function or a
    ``functools.partial`` of one) and messages come in completion order, interleaved across
    videos. Each worker has its own pipe and gets its next video from this process, so a
    worker that dies (its pipe ends) is known to have died on exactly the video it was given.
    Closing the generator (or an exception in the consumer) stops the workers.
    """
    items = list(items)
    if workers <= 0:
        for key, path in items:
            yield from produce(key, path)
        return
    ctx = mp.get_context("spawn")
    todo = list(reversed(items))
    live: dict[Any, tuple[Any, tuple[str, str] | None]] = {}  # parent end -> (process, task)
    restarts_left = len(items) + workers  # a worker that dies on every start must not loop

    def start() -> None:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker, args=(child, produce), daemon=True)
        proc.start()
        child.close()
        live[parent] = (proc, None)
        give(parent)

    def give(conn: Any) -> None:
        proc, _ = live[conn]
        task = todo.pop() if todo else None
        live[conn] = (proc, task)
        conn.send(task)
        if task is None:
            del live[conn]
            proc.join(timeout=5)
            conn.close()

    try:
        for _ in range(min(workers, len(items))):
            start()
        while live:
            ready: list[Any] = mp_connection.wait(list(live))
            for conn in ready:
                proc, task = live[conn]
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):  # the process died (a crash in a decoder)
                    del live[conn]
                    conn.close()
                    proc.join(timeout=5)
                    if task is not None:
                        yield WorkerCrash(task[0], task[1], proc.exitcode)
                    if restarts_left <= 0:
                        raise DecodingWorkersError(
                            f"decoding processes keep dying (exit code {proc.exitcode})") from None
                    restarts_left -= 1
                    if todo:
                        start()
                    continue
                if kind == "done":
                    give(conn)
                else:
                    yield payload
    finally:
        for conn, (proc, _) in list(live.items()):
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)
            conn.close()


def default_workers(requested: int | None) -> int:
    """Decoding processes when the user did not say: one beside inference if the machine has
    more than one core (decoding then overlaps the model), else none."""
    if requested is not None:
        return requested
    import os

    return 1 if (os.cpu_count() or 1) > 1 else 0
