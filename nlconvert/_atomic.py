"""Atomic output files: write to a temporary file beside the target, then rename.

A crash or Ctrl-C never leaves a half-written ``.pt``/``.onnx``/report behind, and an existing
output is not replaced unless the caller asks for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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


@contextlib.contextmanager
def atomic_folder(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it becomes `path` on success.

    The whole folder appears at once: a crash leaves no half-written folder, and an existing
    one (replaced only with `force`) is untouched until the new one is complete.
    """
    target = Path(path)
    if target.exists() and not force:
        raise OutputExistsError(f"{target}: output exists; pass --force to overwrite it")
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{target}: output exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        # Writers (mkstemp, safetensors) may create files 0600: give what a plain open() would.
        mask = _umask()
        os.chmod(tmp, 0o777 & ~mask)
        for item in tmp.rglob("*"):
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)
        if target.exists():  # move the old folder aside first: a rename cannot replace a folder
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
