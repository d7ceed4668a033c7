"""SHA-256 of files: the identity of a checkpoint or model file (provenance, caches, results).

A helper, not a pipeline step: used by the checkpoint reader, the evaluation database, the
feature index and the ONNX cache.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from .errors import CheckpointFormatError


def file_sha256(path: str | os.PathLike[str], chunk: int = 8 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks into one reused buffer.

    Large chunks matter when this runs on a background thread (:class:`FileHash`): each
    chunk takes the GIL back from a busy main thread twice, at a cost of up to the switch
    interval each time (R101 conversion: about 2.2 s with 1 MiB chunks, 2.0 s with 8 MiB).
    Raises :class:`~nlconvert.errors.CheckpointFormatError` (one line) if the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(max(1, min(chunk, os.fstat(f.fileno()).st_size)))
            view = memoryview(buf)
            while n := f.readinto(view):
                h.update(view[:n])
    except OSError as e:
        raise CheckpointFormatError(f"{path}: cannot read: {e.strerror or e}") from None
    return h.hexdigest()


class FileHash:
    """The SHA-256 of a file, computed on a background thread from the moment it is made.

    hashlib and file reads release the GIL, so the hash runs on another core while the
    caller imports torch or parses the checkpoint; a large file takes about as long to hash
    as to read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._digest = file_sha256(self.path)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> str:
        """Wait for the hash; raise what hashing raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest
