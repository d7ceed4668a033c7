"""Progress display that stays quiet when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def interactive() -> bool:
    """True when stderr is a terminal (progress bars are shown only then)."""
    return sys.stderr.isatty()


def progress(items: Iterable[T], desc: str, total: int | None = None, **kw: Any) -> Iterable[T]:
    """A tqdm bar over `items` on a terminal; the bare iterable otherwise."""
    if not interactive():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, leave=False, **kw)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """Show `message` with its elapsed time on a terminal while a long step runs."""
    if not interactive():
        yield
        return
    start = time.perf_counter()
    sys.stderr.write(f"{message} ...")
    sys.stderr.flush()
    try:
        yield
    finally:
        sys.stderr.write(f"\r{message}: {time.perf_counter() - start:.1f}s\n")
        sys.stderr.flush()


class StepBar:
    """A tqdm bar advanced by callbacks (``bar.step``); does nothing off a terminal."""

    def __init__(self, total: int, desc: str) -> None:
        self._bar: Any = None
        if interactive():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, leave=False, unit="op")

    def step(self, _index: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
