"""A pickle reader that cannot run code: our own virtual machine for pickle opcodes.

``pickle.Unpickler`` imports and calls whatever a file names, so a downloaded ``.pkl``
could run any command. This module interprets the opcodes of protocols 0-5 itself and
rebuilds only dicts, lists, tuples, sets, str, bytes, numbers, None and numpy
arrays/scalars/dtypes. A global is never imported: a fixed list of names maps to inert
markers, and REDUCE/BUILD are accepted only on those markers, with the argument shapes
numpy really writes. Everything else raises :class:`UnsafePickleError`.

Untrusted sizes are checked before anything is allocated, the stack/memo/nesting are
bounded, and any garbled input ends as :class:`CheckpointFormatError` (never IndexError,
struct.error, MemoryError, ...).

Memory: a ``keep(key)`` predicate is asked about every dict key as it is read. When it
says no, the big payloads of that key's value are seeked over instead of read, and a
:class:`Dropped` placeholder takes the value's place. Kept arrays are ``np.frombuffer``
views over one ``bytearray`` filled straight from the file.
"""

from __future__ import annotations

import codecs
import io
import os
import struct
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CheckpointFormatError, NLConvertError, UnsafePickleError
from . import numpy_rebuild as nr
from .byte_source import ByteSource, RawFile
from .messages import show
from .numpy_rebuild import Dropped, PartialArray, PartialDtype

__all__ = ["ALLOWED_GLOBALS", "Dropped", "keep_all", "load_pickle", "loads_pickle"]

REFUSAL = "(only numpy arrays and plain containers are allowed)"

# Fully qualified name -> what the marker stands for. Nothing here is ever imported.
ALLOWED_GLOBALS: dict[tuple[str, str], str] = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("collections", "OrderedDict"): "ordereddict",
    # Python 3 writes bytes as _codecs.encode(text, 'latin1') in protocols 0-2 ...
    ("_codecs", "encode"): "encode",
    # ... and b'' (the data of an empty array) as bytes().
    ("__builtin__", "bytes"): "bytes",
    ("builtins", "bytes"): "bytes",
    # Protocols 0-3 write sets as set([items]) / frozenset([items]).
    ("__builtin__", "set"): "set",
    ("builtins", "set"): "set",
    ("__builtin__", "frozenset"): "frozenset",
    ("builtins", "frozenset"): "frozenset",
}

# Bounds on what a file can make us hold (a real R101 checkpoint is far below each).
MAX_STACK = 1_000_000
MAX_MARKS = 1_000
MAX_MEMO = 1_000_000
MAX_ITEMS = 5_000_000  # container slots in total
MAX_OPS = 50_000_000
MAX_DEPTH = 100  # nesting of containers in the result
MAX_INT_BYTES = 64
SHORT_LINE = 256  # GLOBAL names, INT/FLOAT/PUT/GET arguments
SKIP_MIN = 1024  # payloads of dropped values shorter than this are read anyway
KEY_MAX = 256  # strings longer than this are never taken for dict keys


def keep_all(key: str) -> bool:
    """The default ``keep`` predicate: keep every value."""
    return True


class _Marker:
    """Stands for an allowed global; it can be passed to REDUCE but never called."""

    __slots__ = ("kind", "qualname")

    def __init__(self, kind: str, qualname: str) -> None:
        self.kind = kind
        self.qualname = qualname


_MARKER_TYPES = (_Marker, PartialArray)
_DICT_TYPES = (dict, OrderedDict)

# Opcodes that take from the stack without first pushing a value: after a string they
# show it was not a dict key (used to look ahead before dropping a value).
_CONSUMERS = frozenset(b"aestu\x85\x86\x87Rb.01dl\x90\x91\x81\x92oi\x93")


def _complete(x: Any) -> bool:
    """False for a marker or an array still waiting for its BUILD."""
    t = type(x)
    return not (t is _Marker or (t is PartialArray and x.array is None))


def _settle_soft(x: Any) -> Any:
    """Replace a finished holder by its value (markers stay: REDUCE needs them)."""
    t = type(x)
    if t is PartialArray and x.array is not None:
        return x.array
    if t is PartialDtype:
        return x.dtype
    return x


class _Machine:
    """One run of the pickle virtual machine over one file."""

    def __init__(self, src: ByteSource, name: str, keep: Callable[[str], bool]) -> None:
        self.src = src
        self.name = name
        self.keep = keep
        self.stack: list[Any] = []
        self.meta: list[list[Any]] = []
        # (index, key object) of the dict keys found in the current MARK frame.
        self.keys: list[tuple[int, Any]] = []
        self.meta_keys: list[list[tuple[int, Any]]] = []
        self.memo: dict[int, Any] = {}
        self.items = 0
        # (frame, index, key) of the key whose value is being dropped.
        self.skip: tuple[list[Any], int, Any] | None = None
        self.op_at = 0
        self.result: Any = None
        self.dispatch: dict[int, Callable[[], bool | None]] = self._table()

    # ---- messages -------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.name} (byte {self.op_at})"

    def fail(self, what: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{self.name}: {what} at byte {self.op_at}")

    def refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.name}: refused {what} at byte {self.op_at} {REFUSAL}")

    # ---- main loop ------------------------------------------------------------------

    def run(self) -> Any:
        src = self.src
        dispatch = self.dispatch
        ops = 0
        while True:
            self.op_at = src.offset
            code = src.read_byte()
            if code < 0:
                raise src.truncated("the next pickle opcode (no STOP opcode)")
            handler = dispatch.get(code)
            if handler is None:
                raise self.fail(f"unknown pickle opcode 0x{code:02x} (corrupt file?)")
            if handler():
                break
            ops += 1
            if not ops & 0xFFFF:
                self._check_limits(ops)
        _check_tree(self.result, self)
        return self.result

    def _check_limits(self, ops: int) -> None:
        depth = len(self.stack) + sum(len(f) for f in self.meta)
        if depth > MAX_STACK:
            raise self.fail(f"pickle stack deeper than {MAX_STACK} items")
        if len(self.memo) > MAX_MEMO:
            raise self.fail(f"pickle memo larger than {MAX_MEMO} entries")
        if ops > MAX_OPS:
            raise self.fail(f"more than {MAX_OPS} pickle opcodes")

    # ---- stack helpers ---------------------------------------------------------------

    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("pickle stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("pickle stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.meta:
            raise self.fail("pickle MARK missing")
        items = self.stack
        self.stack = self.meta.pop()
        self.keys = self.meta_keys.pop()
        return items

    def settle(self, x: Any) -> Any:
        """A value about to enter a container: finished, and not an internal marker."""
        t = type(x)
        if t is PartialArray:
            if x.array is None:
                raise self.fail("numpy array used before its BUILD")
            return x.array
        if t is PartialDtype:
            return x.dtype
        if t is _Marker:
            raise self.refuse(f"pickle global '{x.qualname}' used as a value")
        return x

    def count(self, n: int) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise self.fail(f"more than {MAX_ITEMS} container items")

    def setitem(self, d: Any, key: Any, value: Any) -> None:
        if not isinstance(d, _DICT_TYPES):
            raise self.refuse(f"SETITEM on a {type(d).__name__}")
        if isinstance(key, bytes | bytearray):
            key = bytes(key).decode("latin-1")  # Python 2 str keys
        else:
            key = self.settle(key)
            hash(key)  # unhashable keys end as a format error, not a crash
        if key in d:
            raise self.fail(f"duplicate dict key {show(key)}")
        d[key] = self.settle(value)

    # ---- dict keys and dropping --------------------------------------------------------

    def push_str(self, s: Any) -> None:
        """Push a str/bytes; if it sits where a dict key goes, ask ``keep`` about it."""
        stack = self.stack
        p = len(stack)
        if len(s) <= KEY_MAX and self.key_slot(p):
            key = s if isinstance(s, str) else bytes(s).decode("latin-1")
            if self.keep(key):
                self.keys.append((p, s))
                self.skip = None
            elif not self.consumed_next():
                self.keys.append((p, s))
                self.skip = (stack, p, s)
        stack.append(s)

    def key_slot(self, p: int) -> bool:
        stack = self.stack
        # SETITEM form (no MARK): the dict is right below.
        if p and type(stack[p - 1]) in _DICT_TYPES:
            return True
        # SETITEMS form: MARK above the dict, keys at even places, each after a whole value.
        meta = self.meta
        if p & 1 or not meta or not meta[-1] or type(meta[-1][-1]) not in _DICT_TYPES:
            return False
        keys = self.keys
        while keys and (keys[-1][0] >= p or stack[keys[-1][0]] is not keys[-1][1]):
            keys.pop()
        if not keys:
            return p == 0
        return p == keys[-1][0] + 2 and _complete(stack[p - 1])

    def consumed_next(self) -> bool:
        """Look ahead past memo opcodes: does the next opcode consume the string?"""
        data = self.src.peek(24)
        i = 0
        while i < len(data):
            c = data[i]
            if c == 0x71:  # BINPUT
                i += 2
            elif c == 0x72:  # LONG_BINPUT
                i += 5
            elif c == 0x94:  # MEMOIZE
                i += 1
            elif c == 0x70:  # PUT (decimal line)
                j = data.find(b"\n", i)
                if j < 0:
                    return False
                i = j + 1
            else:
                return c in _CONSUMERS
        return False

    def skipping(self) -> bool:
        """True while reading the value of a key that ``keep`` refused."""
        sk = self.skip
        if sk is None:
            return False
        frame, idx, key = sk
        if len(frame) <= idx or frame[idx] is not key:
            self.skip = None
            return False
        if frame is self.stack and len(frame) == idx + 2 and _complete(frame[idx + 1]):
            self.skip = None
            return False
        return True

    def payload(self, n: int, what: str) -> bytes | bytearray | Dropped:
        if n < 0:
            raise self.fail(f"negative length in {what}")
        if n >= SKIP_MIN and self.skip is not None and self.skipping():
            self.src.skip(n, what)
            return Dropped(n)
        return self.src.read_payload(n, what)

    # ---- opcode table ----------------------------------------------------------------

    def _table(self) -> dict[int, Callable[[], bool | None]]:
        t: dict[int, Callable[[], bool | None]] = {}
        for name in dir(self):
            if name.startswith("op_") and len(name) > 3:
                code = _OPCODES.get(name[3:])
                if code is not None:
                    t[code] = getattr(self, name)
        for refused in _REFUSED:
            t[_OPCODES[refused]] = self._refuser(refused)
        return t

    def _refuser(self, opname: str) -> Callable[[], bool | None]:
        def handler() -> bool | None:
            raise self.refuse(f"pickle opcode {opname}")

        return handler

    # -- framing and control
    def op_PROTO(self) -> None:
        version = self.src.read(1, "PROTO")[0]
        if version > 5:
            raise self.fail(f"unsupported pickle protocol {version}")

    def op_FRAME(self) -> None:
        (n,) = struct.unpack("<Q", self.src.read(8, "FRAME"))
        if n > self.src.remaining():
            raise self.src.truncated("a pickle frame")

    def op_STOP(self) -> bool:
        self.result = self.settle(self.pop())
        return True

    def op_MARK(self) -> None:
        if len(self.meta) >= MAX_MARKS:
            raise self.fail(f"more than {MAX_MARKS} nested pickle MARKs")
        self.meta.append(self.stack)
        self.meta_keys.append(self.keys)
        self.stack = []
        self.keys = []

    def op_POP(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_POP_MARK(self) -> None:
        self.pop_mark()

    def op_DUP(self) -> None:
        self.stack.append(self.top())

    # -- numbers and constants
    def _line(self, what: str) -> bytes:
        return self.src.readline(SHORT_LINE, what)

    def _int(self, text: bytes, what: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise self.fail(f"invalid {what} {show(text)}") from None

    def op_NONE(self) -> None:
        self.stack.append(None)

    def op_NEWTRUE(self) -> None:
        self.stack.append(True)

    def op_NEWFALSE(self) -> None:
        self.stack.append(False)

    def op_INT(self) -> None:
        line = self._line("INT")
        if line == b"00":
            self.stack.append(False)
        elif line == b"01":
            self.stack.append(True)
        else:
            self.stack.append(self._int(line, "INT"))

    def op_LONG(self) -> None:
        line = self._line("LONG")
        self.stack.append(self._int(line[:-1] if line.endswith(b"L") else line, "LONG"))

    def op_BININT(self) -> None:
        self.stack.append(struct.unpack("<i", self.src.read(4, "BININT"))[0])

    def op_BININT1(self) -> None:
        self.stack.append(self.src.read(1, "BININT1")[0])

    def op_BININT2(self) -> None:
        self.stack.append(struct.unpack("<H", self.src.read(2, "BININT2"))[0])

    def _long(self, n: int) -> None:
        if n < 0:
            raise self.fail("negative LONG length")
        if n > MAX_INT_BYTES:
            raise self.fail(f"integer of {n} bytes is too large")
        self.stack.append(int.from_bytes(self.src.read(n, "LONG"), "little", signed=True))

    def op_LONG1(self) -> None:
        self._long(self.src.read(1, "LONG1")[0])

    def op_LONG4(self) -> None:
        self._long(struct.unpack("<i", self.src.read(4, "LONG4"))[0])

    def op_FLOAT(self) -> None:
        line = self._line("FLOAT")
        try:
            self.stack.append(float(line))
        except ValueError:
            raise self.fail(f"invalid FLOAT {show(line)}") from None

    def op_BINFLOAT(self) -> None:
        self.stack.append(struct.unpack(">d", self.src.read(8, "BINFLOAT"))[0])

    # -- strings and bytes
    def _text_line(self, what: str) -> bytes | Dropped:
        """A protocol-0 string line; a long one in a dropped value is skipped unread."""
        if self.skip is not None and self.skipping():
            n = self.src.line_length(what)
            if n >= SKIP_MIN:
                self.src.skip(n + 1, what)
                return Dropped(None)
        return self.src.readline(None, what)

    def op_STRING(self) -> None:
        line = self._text_line("STRING")
        if isinstance(line, Dropped):
            self.stack.append(line)
            return
        if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
            raise self.fail("STRING argument is not a quoted string")
        with warnings.catch_warnings():
            # Python 2 never wrote invalid escapes; tolerate them like it would.
            warnings.simplefilter("ignore")
            try:
                value = codecs.escape_decode(line[1:-1])[0]
            except ValueError:
                raise self.fail("invalid escape in STRING") from None
        self.push_str(value)

    def op_UNICODE(self) -> None:
        line = self._text_line("UNICODE")
        if isinstance(line, Dropped):
            self.stack.append(line)
            return
        try:
            value = line.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise self.fail("invalid UNICODE text") from None
        self.push_str(value)

    def _push_payload(self, n: int, what: str) -> None:
        data = self.payload(n, what)
        if isinstance(data, Dropped):
            self.stack.append(data)
        else:
            self.push_str(data)

    def op_SHORT_BINSTRING(self) -> None:
        self._push_payload(self.src.read(1, "SHORT_BINSTRING")[0], "SHORT_BINSTRING")

    def op_BINSTRING(self) -> None:
        self._push_payload(struct.unpack("<i", self.src.read(4, "BINSTRING"))[0], "BINSTRING")

    def op_SHORT_BINBYTES(self) -> None:
        self._push_payload(self.src.read(1, "SHORT_BINBYTES")[0], "SHORT_BINBYTES")

    def op_BINBYTES(self) -> None:
        self._push_payload(struct.unpack("<I", self.src.read(4, "BINBYTES"))[0], "BINBYTES")

    def op_BINBYTES8(self) -> None:
        self._push_payload(struct.unpack("<Q", self.src.read(8, "BINBYTES8"))[0], "BINBYTES8")

    def op_BYTEARRAY8(self) -> None:
        n = struct.unpack("<Q", self.src.read(8, "BYTEARRAY8"))[0]
        data = self.payload(n, "BYTEARRAY8")
        self.stack.append(data if isinstance(data, bytearray | Dropped) else bytearray(data))

    def _unicode(self, n: int, what: str) -> None:
        data = self.payload(n, what)
        if isinstance(data, Dropped):
            self.stack.append(Dropped(None))
            return
        try:
            text = bytes(data).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self.fail(f"invalid UTF-8 in {what}") from None
        self.push_str(text)

    def op_SHORT_BINUNICODE(self) -> None:
        self._unicode(self.src.read(1, "SHORT_BINUNICODE")[0], "SHORT_BINUNICODE")

    def op_BINUNICODE(self) -> None:
        self._unicode(struct.unpack("<I", self.src.read(4, "BINUNICODE"))[0], "BINUNICODE")

    def op_BINUNICODE8(self) -> None:
        self._unicode(struct.unpack("<Q", self.src.read(8, "BINUNICODE8"))[0], "BINUNICODE8")

    # -- containers
    def op_EMPTY_DICT(self) -> None:
        self.stack.append({})

    def op_EMPTY_LIST(self) -> None:
        self.stack.append([])

    def op_EMPTY_TUPLE(self) -> None:
        self.stack.append(())

    def op_EMPTY_SET(self) -> None:
        self.stack.append(set())

    def _tuple(self, items: list[Any]) -> tuple[Any, ...]:
        self.count(len(items))
        return tuple(_settle_soft(x) for x in items)

    def op_TUPLE(self) -> None:
        items = self.pop_mark()
        self.stack.append(self._tuple(items))

    def op_TUPLE1(self) -> None:
        self.stack.append(self._tuple([self.pop()]))

    def op_TUPLE2(self) -> None:
        b = self.pop()
        a = self.pop()
        self.stack.append(self._tuple([a, b]))

    def op_TUPLE3(self) -> None:
        c = self.pop()
        b = self.pop()
        a = self.pop()
        self.stack.append(self._tuple([a, b, c]))

    def op_LIST(self) -> None:
        items = self.pop_mark()
        self.count(len(items))
        self.stack.append([self.settle(x) for x in items])

    def op_DICT(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise self.fail("DICT with an odd number of items")
        d: dict[Any, Any] = {}
        self.count(len(items))
        for i in range(0, len(items), 2):
            self.setitem(d, items[i], items[i + 1])
        self.stack.append(d)

    def op_APPEND(self) -> None:
        value = self.pop()
        lst = self.top()
        if type(lst) is not list:
            raise self.refuse(f"APPEND on a {type(lst).__name__}")
        self.count(1)
        lst.append(self.settle(value))

    def op_APPENDS(self) -> None:
        items = self.pop_mark()
        lst = self.top()
        if type(lst) is not list:
            raise self.refuse(f"APPENDS on a {type(lst).__name__}")
        self.count(len(items))
        lst.extend(self.settle(x) for x in items)

    def op_SETITEM(self) -> None:
        value = self.pop()
        key = self.pop()
        self.count(1)
        self.setitem(self.top(), key, value)

    def op_SETITEMS(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise self.fail("SETITEMS with an odd number of items")
        d = self.top()
        self.count(len(items) // 2)
        for i in range(0, len(items), 2):
            self.setitem(d, items[i], items[i + 1])

    def _set_items(self, target: Any, items: list[Any]) -> None:
        self.count(len(items))
        for x in items:
            target.add(self.settle(x))

    def op_ADDITEMS(self) -> None:
        items = self.pop_mark()
        s = self.top()
        if type(s) is not set:
            raise self.refuse(f"ADDITEMS on a {type(s).__name__}")
        self._set_items(s, items)

    def op_FROZENSET(self) -> None:
        items = self.pop_mark()
        s: set[Any] = set()
        self._set_items(s, items)
        self.stack.append(frozenset(s))

    # -- memo
    def _put(self, idx: int) -> None:
        if idx < 0:
            raise self.fail("negative memo index")
        self.memo[idx] = self.top()

    def op_PUT(self) -> None:
        self._put(self._int(self._line("PUT"), "PUT index"))

    def op_BINPUT(self) -> None:
        self._put(self.src.read(1, "BINPUT")[0])

    def op_LONG_BINPUT(self) -> None:
        self._put(struct.unpack("<I", self.src.read(4, "LONG_BINPUT"))[0])

    def op_MEMOIZE(self) -> None:
        self._put(len(self.memo))

    def _get(self, idx: int) -> None:
        try:
            value = self.memo[idx]
        except KeyError:
            raise self.fail(f"memo index {idx} is not defined") from None
        if isinstance(value, str | bytes):
            self.push_str(value)
        else:
            self.stack.append(value)

    def op_GET(self) -> None:
        self._get(self._int(self._line("GET"), "GET index"))

    def op_BINGET(self) -> None:
        self._get(self.src.read(1, "BINGET")[0])

    def op_LONG_BINGET(self) -> None:
        self._get(struct.unpack("<I", self.src.read(4, "LONG_BINGET"))[0])

    # -- globals and calls
    def _global(self, module: str, qualname: str) -> _Marker:
        kind = ALLOWED_GLOBALS.get((module, qualname))
        if kind is None:
            raise self.refuse(f"pickle global {ascii(module[:80] + '.' + qualname[:80])}")
        return _Marker(kind, f"{module}.{qualname}")

    def _name_line(self, what: str) -> str:
        try:
            return self._line(what).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"invalid {what} name") from None

    def op_GLOBAL(self) -> None:
        module = self._name_line("GLOBAL")
        qualname = self._name_line("GLOBAL")
        self.stack.append(self._global(module, qualname))

    def op_STACK_GLOBAL(self) -> None:
        qualname = self.pop()
        module = self.pop()
        if not (isinstance(module, str) and isinstance(qualname, str)):
            raise self.fail("STACK_GLOBAL needs two strings")
        self.stack.append(self._global(module, qualname))

    def op_INST(self) -> None:
        module = self._name_line("INST")
        qualname = self._name_line("INST")
        raise self.refuse(f"pickle opcode INST ({ascii(module[:80] + '.' + qualname[:80])})")

    def op_REDUCE(self) -> None:
        args = self.pop()
        func = self.top()
        self.stack[-1] = self.call(func, args)

    def call(self, func: Any, args: Any) -> Any:
        if type(func) is not _Marker:
            raise self.refuse(f"REDUCE on a {type(func).__name__}")
        if not isinstance(args, tuple):
            raise self.refuse(f"REDUCE of '{func.qualname}' with {type(args).__name__} arguments")
        kind = func.kind
        where = self.where
        if kind == "reconstruct":
            first = args[0] if args else None
            if type(first) is _Marker and first.kind != "ndarray":
                raise self.refuse(f"numpy _reconstruct of '{first.qualname}'")
            return nr.reconstruct(args, type(first) is _Marker, where)
        if kind == "dtype":
            return nr.make_dtype(args, where)
        if kind == "scalar":
            return nr.scalar(args, where)
        if kind == "frombuffer":
            return nr.frombuffer(args, where)
        if kind == "ordereddict":
            return self.ordered_dict(args)
        if kind == "encode":
            return self.encode(args)
        if kind == "bytes" and args == ():
            return b""
        if kind in ("set", "frozenset") and (args == () or (len(args) == 1 and type(args[0]) is list)):
            items: set[Any] = set()
            self._set_items(items, args[0] if args else [])
            return items if kind == "set" else frozenset(items)
        raise self.refuse(f"call of '{func.qualname}' with these arguments")

    def ordered_dict(self, args: tuple[Any, ...]) -> OrderedDict[Any, Any]:
        d: OrderedDict[Any, Any] = OrderedDict()
        if args == ():
            return d
        # Python 2 wrote OrderedDict([[key, value], ...]).
        if len(args) == 1 and type(args[0]) is list:
            for pair in args[0]:
                if type(pair) not in (list, tuple) or len(pair) != 2:
                    raise self.fail("OrderedDict items are not pairs")
                self.setitem(d, pair[0], pair[1])
            return d
        raise self.refuse("OrderedDict call with these arguments")

    def encode(self, args: tuple[Any, ...]) -> bytes | Dropped:
        if len(args) != 2 or args[1] not in ("latin1", "latin-1"):
            raise self.refuse("_codecs.encode call other than encode(text, 'latin1')")
        text = args[0]
        if isinstance(text, Dropped):
            return Dropped(None)
        if not isinstance(text, str):
            raise self.refuse(f"_codecs.encode of a {type(text).__name__}")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise self.fail("_codecs.encode text is not latin-1") from None

    def op_BUILD(self) -> None:
        state = self.pop()
        obj = self.top()
        if type(obj) is PartialArray:
            self.stack[-1] = nr.build_array(obj, state, self.where)
        elif type(obj) is PartialDtype:
            nr.build_dtype(obj, state, self.where)
        else:
            raise self.refuse(f"BUILD on a {type(obj).__name__}")


_OPCODES: dict[str, int] = {
    "MARK": 0x28, "STOP": 0x2E, "POP": 0x30, "POP_MARK": 0x31, "DUP": 0x32, "FLOAT": 0x46,
    "INT": 0x49, "BININT": 0x4A, "BININT1": 0x4B, "LONG": 0x4C, "BININT2": 0x4D, "NONE": 0x4E,
    "PERSID": 0x50, "BINPERSID": 0x51, "REDUCE": 0x52, "STRING": 0x53, "BINSTRING": 0x54,
    "SHORT_BINSTRING": 0x55, "UNICODE": 0x56, "BINUNICODE": 0x58, "APPEND": 0x61,
    "BUILD": 0x62, "GLOBAL": 0x63, "DICT": 0x64, "EMPTY_DICT": 0x7D, "APPENDS": 0x65,
    "GET": 0x67, "BINGET": 0x68, "INST": 0x69, "LONG_BINGET": 0x6A, "LIST": 0x6C,
    "EMPTY_LIST": 0x5D, "OBJ": 0x6F, "PUT": 0x70, "BINPUT": 0x71, "LONG_BINPUT": 0x72,
    "SETITEM": 0x73, "TUPLE": 0x74, "EMPTY_TUPLE": 0x29, "SETITEMS": 0x75, "BINFLOAT": 0x47,
    "PROTO": 0x80, "NEWOBJ": 0x81, "EXT1": 0x82, "EXT2": 0x83, "EXT4": 0x84, "TUPLE1": 0x85,
    "TUPLE2": 0x86, "TUPLE3": 0x87, "NEWTRUE": 0x88, "NEWFALSE": 0x89, "LONG1": 0x8A,
    "LONG4": 0x8B, "BINBYTES": 0x42, "SHORT_BINBYTES": 0x43, "SHORT_BINUNICODE": 0x8C,
    "BINUNICODE8": 0x8D, "BINBYTES8": 0x8E, "EMPTY_SET": 0x8F, "ADDITEMS": 0x90,
    "FROZENSET": 0x91, "NEWOBJ_EX": 0x92, "STACK_GLOBAL": 0x93, "MEMOIZE": 0x94,
    "FRAME": 0x95, "BYTEARRAY8": 0x96, "NEXT_BUFFER": 0x97, "READONLY_BUFFER": 0x98,
}  # fmt: skip

# Opcodes that build arbitrary objects or need outside state: always refused.
_REFUSED = (
    "PERSID", "BINPERSID", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
    "NEXT_BUFFER", "READONLY_BUFFER",
)  # fmt: skip

_CONTAINERS = (list, tuple, dict, OrderedDict, set, frozenset)


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    return list(obj)


def _check_tree(root: Any, machine: _Machine) -> None:
    """Refuse results nested deeper than MAX_DEPTH, cyclic, or holding internal markers.

    Iterative (no recursion on untrusted depth); each container is visited once.
    """
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    todo: list[tuple[Any, bool]] = [(root, False)]
    while todo:
        obj, leaving = todo.pop()
        oid = id(obj)
        if leaving:
            on_path.discard(oid)
            h = 1 + max(
                (heights.get(id(c), 0) for c in _children(obj) if isinstance(c, _CONTAINERS)),
                default=0,
            )
            if h > MAX_DEPTH:
                raise machine.fail(f"containers nested deeper than {MAX_DEPTH} levels")
            heights[oid] = h
            continue
        if not isinstance(obj, _CONTAINERS):
            if type(obj) in _MARKER_TYPES:
                raise machine.refuse("an unfinished numpy array or a pickle global as a value")
            continue
        if oid in heights:
            continue
        if oid in on_path:
            raise machine.fail("self-referencing containers")
        if len(on_path) > MAX_DEPTH:
            raise machine.fail(f"containers nested deeper than {MAX_DEPTH} levels")
        on_path.add(oid)
        todo.append((obj, True))
        todo.extend((c, False) for c in _children(obj))


def _run(raw: RawFile, size: int, name: str, keep: Callable[[str], bool]) -> Any:
    machine = _Machine(ByteSource(raw, size, name), name, keep)
    try:
        return machine.run()
    except NLConvertError:
        raise
    except OSError as e:
        raise CheckpointFormatError(f"{name}: read error: {e.strerror or e}") from e
    except Exception as e:
        # Last line of defence: garbled input must end as a format error, whatever the cause.
        raise CheckpointFormatError(f"{name}: malformed pickle at byte {machine.op_at} ({type(e).__name__})") from e


def load_pickle(path: str | os.PathLike[str], keep: Callable[[str], bool] = keep_all) -> Any:
    """Read a pickle file safely: plain containers, numbers, strings and numpy arrays only.

    ``keep(key)`` is asked about each dict key; when it returns False, the large payloads
    of that value are skipped unread and a :class:`Dropped` placeholder stands in for
    the value (small values are still read). Python 2 ``str`` dict keys come back as
    latin-1 decoded ``str``; other Python 2 ``str`` values are ``bytes`` (``bytearray``
    when 64 KiB or longer). Raises :class:`UnsafePickleError` for anything that would
    import or call code, :class:`CheckpointFormatError` for truncated or garbled input.
    """
    name = str(path)
    try:
        f = open(Path(path), "rb", buffering=0)  # noqa: SIM115 (closed below)
    except OSError as e:
        raise CheckpointFormatError(f"{name}: cannot open: {e.strerror or e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        return _run(f, size, name, keep)


def loads_pickle(data: bytes, name: str = "<bytes>", keep: Callable[[str], bool] = keep_all) -> Any:
    """:func:`load_pickle` for bytes in memory (``name`` is used in messages)."""
    return _run(io.BytesIO(data), len(data), name, keep)
