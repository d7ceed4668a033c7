"""Atomic output files: write to a temporary file beside the target, then rename.

A crash or Ctrl-C never leaves a half-written ``.pt``/``.onnx``/report behind, and an existing
output is not replaced unless the caller asks for it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputExistsError, option


def check_writable(path: str | Path, force: bool) -> Path:
    """Raise :class:`OutputExistsError` if `path` exists and `force` is False."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p}: output exists; pass {option('force')} to overwrite it")
    if p.is_dir():
        raise OutputExistsError(f"{p}: output path is a directory")
    return p


@contextlib.contextmanager
def atomic_output(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it to `path` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and the
    target is left as it was.
    """
    target = check_writable(path, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the output the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, force: bool = False) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_output(path, force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, force: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), force)
