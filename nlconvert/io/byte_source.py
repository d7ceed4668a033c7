"""A bounded, buffered byte reader for untrusted files.

Every read is checked against the bytes the file really has *before* anything is
allocated, so a length field claiming terabytes is reported as truncation instead of
becoming a MemoryError. Large payloads are read straight into one ``bytearray`` (no
intermediate copies), and skipped payloads are seeked over without being read.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import CheckpointFormatError

CHUNK = 1 << 16  # read-ahead for small items (opcodes, keys, short strings)
BIG = 1 << 12  # payloads at least this long bypass the read-ahead buffer


class RawFile(Protocol):
    """What :class:`ByteSource` needs of a file object (FileIO and BytesIO have it)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


class ByteSource:
    """Sequential reader over a file-like object of known size, with exact offsets."""

    def __init__(self, raw: RawFile, size: int, name: str) -> None:
        self._raw = raw
        self._size = size
        self._name = name
        self._buf = b""
        self._pos = 0  # position inside _buf
        self._base = 0  # file offset of _buf[0]

    @property
    def offset(self) -> int:
        """The file offset of the next byte to be read."""
        return self._base + self._pos

    @property
    def size(self) -> int:
        """The size of the file in bytes."""
        return self._size

    def remaining(self) -> int:
        """How many bytes are left after the current offset."""
        return self._size - self.offset

    def truncated(self, what: str = "") -> CheckpointFormatError:
        """The error for running out of data (``what`` says what was being read)."""
        detail = f" while reading {what}" if what else ""
        return CheckpointFormatError(
            f"{self._name}: truncated at byte {self._size}{detail} (the file ends early; download or copy it again)"
        )

    def _need(self, n: int, what: str) -> None:
        if n < 0 or n > self.remaining():
            raise self.truncated(what)

    def _refill(self, n: int) -> None:
        """Make at least ``n`` bytes available in the buffer from the current position."""
        keep = self._buf[self._pos :]
        parts = [keep]
        have = len(keep)
        unread = self._size - (self._base + len(self._buf))  # not yet taken from the file
        target = min(max(CHUNK, n), have + max(unread, 0))
        while have < target:
            piece = self._raw.read(target - have)
            if not piece:
                break
            parts.append(piece)
            have += len(piece)
        self._base += self._pos
        self._buf = b"".join(parts) if len(parts) > 1 else keep
        self._pos = 0
        if have < n:
            raise self.truncated()

    def read(self, n: int, what: str = "") -> bytes:
        """Read exactly ``n`` bytes (meant for small items; see :meth:`read_payload`)."""
        self._need(n, what)
        end = self._pos + n
        if end > len(self._buf):
            self._refill(n)
            end = n
        out = self._buf[self._pos : end]
        self._pos = end
        return out

    def read_byte(self) -> int:
        """Read one byte as an int (-1 at the end of the file)."""
        if self._pos >= len(self._buf):
            if self.remaining() <= 0:
                return -1
            self._refill(1)
        b = self._buf[self._pos]
        self._pos += 1
        return b

    def peek(self, n: int) -> bytes:
        """Up to ``n`` next bytes, without consuming them."""
        n = min(n, self.remaining())
        if self._pos + n > len(self._buf):
            self._refill(n)
        return self._buf[self._pos : self._pos + n]

    def read_payload(self, n: int, what: str = "") -> bytes | bytearray:
        """Read a payload of ``n`` bytes; large ones come back as one fresh ``bytearray``.

        The length is checked against the file first, so the allocation is never larger
        than the data that is really there.
        """
        self._need(n, what)
        if n < BIG:
            return self.read(n, what)
        have = len(self._buf) - self._pos
        if n <= have:  # already buffered: one copy into the bytearray
            out = bytearray(memoryview(self._buf)[self._pos : self._pos + n])
            self._pos += n
            return out
        out = bytearray(n)
        view = memoryview(out)
        view[:have] = self._buf[self._pos :]
        filled = have
        while filled < n:
            got = self._raw.readinto(view[filled:])
            if not got:
                raise self.truncated(what)
            filled += got
        self._base += len(self._buf) + (n - have)
        self._buf = b""
        self._pos = 0
        return out

    def skip(self, n: int, what: str = "") -> None:
        """Move past ``n`` bytes without reading them."""
        self._need(n, what)
        if self._pos + n <= len(self._buf):
            self._pos += n
            return
        target = self.offset + n
        self._raw.seek(target)
        self._base = target
        self._buf = b""
        self._pos = 0

    def _find_newline(self, limit: int | None, what: str) -> int:
        """Make the buffer hold a whole line; return the index of its newline."""
        scanned = 0
        while True:
            idx = self._buf.find(b"\n", self._pos + scanned)
            if idx >= 0:
                if limit is not None and idx - self._pos > limit:
                    break
                return idx
            scanned = len(self._buf) - self._pos
            if limit is not None and scanned > limit:
                break
            if self.remaining() <= scanned:
                raise self.truncated(what)
            # Grow geometrically so a long line costs linear, not quadratic, copying.
            self._refill(min(self.remaining(), max(2 * scanned, scanned + CHUNK)))
        raise CheckpointFormatError(
            f"{self._name}: line longer than {limit} bytes at byte {self.offset}" + (f" ({what})" if what else "")
        )

    def readline(self, limit: int | None, what: str = "") -> bytes:
        """Read one ``\\n``-terminated line (without the newline), at most ``limit`` bytes."""
        idx = self._find_newline(limit, what)
        line = self._buf[self._pos : idx]
        self._pos = idx + 1
        return line

    def line_length(self, what: str = "") -> int:
        """The length of the next line (without its newline); the position does not move.

        Unlike :meth:`readline` this holds at most one chunk in memory, so a huge line can
        be measured and then skipped with :meth:`skip`.
        """
        idx = self._buf.find(b"\n", self._pos)
        if idx >= 0:
            return idx - self._pos
        length = len(self._buf) - self._pos
        resume = self._base + len(self._buf)  # where the file position stands now
        try:
            while True:
                piece = self._raw.read(CHUNK)
                if not piece:
                    raise self.truncated(what)
                i = piece.find(b"\n")
                if i >= 0:
                    return length + i
                length += len(piece)
        finally:
            self._raw.seek(resume)
