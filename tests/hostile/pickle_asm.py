"""A small pickle assembler: opcodes by their ``pickletools`` names, arguments encoded
from ``pickletools``' argument descriptors, plus helpers that emit values the way each
protocol's pickler does. Used to generate hostile and broken pickles (no hand-pasted bytes).
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

OPS = {op.name: op for op in pickletools.opcodes}


def _encode_arg(kind: str, value: Any) -> bytes:
    if kind == "uint1":
        return bytes([value])
    if kind == "uint2":
        return struct.pack("<H", value)
    if kind == "uint4":
        return struct.pack("<I", value)
    if kind == "uint8":
        return struct.pack("<Q", value)
    if kind == "int4":
        return struct.pack("<i", value)
    if kind == "decimalnl_short":
        return (value if isinstance(value, str) else str(int(value))).encode() + b"\n"
    if kind == "decimalnl_long":
        return str(int(value)).encode() + b"L\n"
    if kind == "floatnl":
        return repr(float(value)).encode() + b"\n"
    if kind == "float8":
        return struct.pack(">d", value)
    if kind in ("stringnl", "stringnl_noescape"):
        if kind == "stringnl":  # a quoted, escaped Python 2 str literal
            return repr(bytes(value))[1:].encode("ascii") + b"\n"
        return value.encode() + b"\n"
    if kind == "stringnl_noescape_pair":
        module, name = value
        return module.encode() + b"\n" + name.encode() + b"\n"
    if kind == "string1" or kind == "bytes1":
        return bytes([len(value)]) + bytes(value)
    if kind == "string4":
        return struct.pack("<i", len(value)) + bytes(value)
    if kind == "bytes4":
        return struct.pack("<I", len(value)) + bytes(value)
    if kind in ("bytes8", "bytearray8"):
        return struct.pack("<Q", len(value)) + bytes(value)
    if kind == "unicodestringnl":
        return value.encode("raw-unicode-escape") + b"\n"
    if kind == "unicodestring1":
        data = value.encode("utf-8")
        return bytes([len(data)]) + data
    if kind == "unicodestring4":
        data = value.encode("utf-8")
        return struct.pack("<I", len(data)) + data
    if kind == "unicodestring8":
        data = value.encode("utf-8")
        return struct.pack("<Q", len(data)) + data
    if kind == "long1":
        data = pickle.encode_long(value)
        return bytes([len(data)]) + data
    if kind == "long4":
        data = pickle.encode_long(value)
        return struct.pack("<i", len(data)) + data
    raise ValueError(f"no encoder for pickle argument kind {kind}")


class Asm:
    """Assemble a pickle opcode by opcode; ``op('GLOBAL', ('os', 'system'))``."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def op(self, name: str, arg: Any = None) -> Asm:
        info = OPS[name]
        self.parts.append(info.code.encode("latin-1"))
        if info.arg is not None:
            self.parts.append(_encode_arg(info.arg.name, arg))
        return self

    def raw(self, data: bytes) -> Asm:
        """Append bytes that are not a well-formed opcode (for broken files)."""
        self.parts.append(data)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class Emit:
    """Emit values the way a pickler of ``protocol`` would (Python 3 style for p>=3)."""

    def __init__(self, protocol: int, stack_global: bool = False) -> None:
        self.a = Asm()
        self.p = protocol
        self.stack_global = stack_global and protocol >= 4
        if protocol >= 2:
            self.a.op("PROTO", protocol)

    def op(self, name: str, arg: Any = None) -> Emit:
        self.a.op(name, arg)
        return self

    def glob(self, module: str, name: str) -> Emit:
        if self.stack_global:
            return self.text(module).text(name).op("STACK_GLOBAL")
        return self.op("GLOBAL", (module, name))

    def text(self, s: str) -> Emit:
        if self.p == 0:
            return self.op("UNICODE", s)
        if self.p >= 4 and len(s.encode()) < 256:
            return self.op("SHORT_BINUNICODE", s)
        return self.op("BINUNICODE", s)

    def py2str(self, b: bytes) -> Emit:
        """A Python 2 ``str`` (what the official checkpoints hold)."""
        if self.p == 0:
            return self.op("STRING", b)
        return self.op("SHORT_BINSTRING" if len(b) < 256 else "BINSTRING", b)

    def data(self, b: bytes) -> Emit:
        """Raw bytes: a py2 str up to protocol 2, bytes from protocol 3."""
        if self.p < 3:
            return self.py2str(b)
        return self.op("SHORT_BINBYTES" if len(b) < 256 else "BINBYTES", b)

    def int(self, v: int) -> Emit:
        if self.p == 0:
            return self.op("INT", v)
        if 0 <= v < 256:
            return self.op("BININT1", v)
        if -(2**31) <= v < 2**31:
            return self.op("BININT", v)
        return self.op("LONG1", v)

    def false(self) -> Emit:
        return self.op("INT", "00") if self.p < 2 else self.op("NEWFALSE")

    def true(self) -> Emit:
        return self.op("INT", "01") if self.p < 2 else self.op("NEWTRUE")

    @contextmanager
    def tuple(self, n: int) -> Iterator[None]:
        """Emit a tuple of the ``n`` values emitted in the ``with`` body."""
        short = self.p >= 2 and n <= 3
        if not short:
            self.op("MARK")
        yield
        if short:
            self.op(("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3")[n])
        else:
            self.op("TUPLE")

    def list_of(self, items: list[Callable[[], Any]]) -> Emit:
        if self.p == 0:
            self.op("MARK").op("LIST")
            for item in items:
                item()
                self.op("APPEND")
            return self
        self.op("EMPTY_LIST").op("MARK")
        for item in items:
            item()
        return self.op("APPENDS")

    def call(self, module: str, name: str, args: list[Callable[[], Any]]) -> Emit:
        """``module.name(*args)`` with GLOBAL/STACK_GLOBAL + REDUCE."""
        self.glob(module, name)
        with self.tuple(len(args)):
            for arg in args:
                arg()
        return self.op("REDUCE")

    def dtype(self, code: str = "f4", state: tuple[Any, ...] | None = None) -> Emit:
        self.glob("numpy", "dtype")
        with self.tuple(3):
            self.py2str(code.encode()) if self.p < 3 else self.text(code)
            self.int(0)
            self.int(1)
        self.op("REDUCE")
        state = state or (3, "<", None, None, None, -1, -1, 0)
        with self.tuple(len(state)):
            for v in state:
                self.value(v)
        return self.op("BUILD")

    def value(self, v: Any) -> Emit:
        if v is None:
            return self.op("NONE")
        if isinstance(v, bool):
            return self.true() if v else self.false()
        if isinstance(v, int):
            return self.op("INT", v) if self.p == 0 or v < 0 else self.int(v)
        if isinstance(v, str):
            return self.py2str(v.encode()) if self.p < 3 else self.text(v)
        if isinstance(v, bytes):
            return self.data(v)
        if isinstance(v, tuple):
            with self.tuple(len(v)):
                for x in v:
                    self.value(x)
            return self
        raise TypeError(type(v))

    def array(self, arr: np.ndarray[Any, Any], module: str = "numpy.core.multiarray") -> Emit:
        """A numpy array as numpy's ``__reduce__`` writes it (``_reconstruct`` + BUILD)."""
        arr = np.ascontiguousarray(arr)
        code = f"{arr.dtype.kind}{arr.dtype.itemsize}"
        self.glob(module, "_reconstruct")
        with self.tuple(3):
            self.glob("numpy", "ndarray")
            self.value((0,))
            self.data(b"b")
        self.op("REDUCE")
        with self.tuple(5):
            self.int(1)
            self.value(tuple(arr.shape))
            self.dtype(code, (3, "|" if arr.dtype.itemsize == 1 else "<") + (None,) * 3 + (-1, -1, 0))
            self.false()
            self.data(arr.tobytes())
        return self.op("BUILD")

    def getvalue(self) -> bytes:
        return self.a.getvalue()


def checkpoint(
    protocol: int,
    entries: list[tuple[str, Callable[[Emit], Any]]],
    stack_global: bool = False,
) -> bytes:
    """``{'blobs': {key: value, ...}}`` with each value emitted by its callback."""
    e = Emit(protocol, stack_global)
    if protocol == 0:
        e.op("MARK").op("DICT")
    else:
        e.op("EMPTY_DICT")
    e.text("blobs")
    if protocol == 0:
        e.op("MARK").op("DICT")
        for key, emit in entries:
            e.py2str(key.encode())
            emit(e)
            e.op("SETITEM")
    else:
        e.op("EMPTY_DICT").op("MARK")
        for key, emit in entries:
            e.py2str(key.encode()) if protocol < 3 else e.text(key)
            emit(e)
        e.op("SETITEMS")
    e.op("SETITEM").op("STOP")
    data = e.getvalue()
    # The assembly must be a well-formed pickle; pickletools cannot show protocol-0
    # strings of binary data, so those stop the check early.
    with contextlib.suppress(UnicodeDecodeError):
        pickletools.dis(data, out=_Null())
    return data


class _Null:
    def write(self, s: str) -> int:
        return len(s)
