"""Progress display on a terminal; silence everywhere else (logs, pipes, tests).

A helper, not a pipeline step. Long steps show a live status line with the elapsed time
(:func:`status`), long loops a tqdm bar (:func:`progress`, :class:`StepBar`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def interactive() -> bool:
    """True when stderr is a terminal (progress is shown only then)."""
    return sys.stderr.isatty()


def progress(items: Iterable[T], desc: str, total: int | None = None, **kw: Any) -> Iterable[T]:
    """A tqdm bar over `items` on a terminal; the bare iterable otherwise."""
    if not interactive():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True, **kw)


class Status:
    """A status line ``message ... 12.3s`` redrawn every half second on a terminal.

    :meth:`log` prints a line above it (the status line is cleared first and redrawn after),
    so messages of the step and the ticking time never overwrite each other.
    """

    def __init__(self, message: str, show: bool) -> None:
        self.message = message
        self.show = show
        self.start = time.perf_counter()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if show:
            self._draw()
            self._thread = threading.Thread(target=self._tick, name="status", daemon=True)
            self._thread.start()

    def _draw(self, final: bool = False) -> None:
        elapsed = time.perf_counter() - self.start
        tail = "\n" if final else ""
        sys.stderr.write(f"\r\x1b[K{self.message} ... {elapsed:.1f}s{tail}")
        sys.stderr.flush()

    def _tick(self) -> None:
        while not self._done.wait(0.5):
            with self._lock:
                self._draw()

    def log(self, line: str) -> None:
        """Print `line` on stdout without disturbing the status line."""
        with self._lock:
            if self.show:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            print(line, flush=True)
            if self.show:
                self._draw()

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            with self._lock:
                self._draw(final=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[Status]:
    """Show `message` with a live elapsed time on a terminal while a long step runs."""
    st = Status(message, interactive())
    try:
        yield st
    finally:
        st.close()


class StepBar:
    """A tqdm bar advanced by callbacks (``bar.step``); does nothing off a terminal."""

    def __init__(self, total: int | None, desc: str, unit: str = "op") -> None:
        self._bar: Any = None
        if interactive():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, leave=False, unit=unit, dynamic_ncols=True)

    def step(self, _index: int = 0, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def write(self, line: str, *, err: bool = False) -> None:
        """Print `line` above the bar, on stdout (stderr with `err`)."""
        stream = sys.stderr if err else sys.stdout
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
