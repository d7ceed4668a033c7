"""Write pickles the way Python 2.7 ``cPickle`` + numpy 1.x wrote the official checkpoints.

Tests and benchmarks need "official" checkpoints without a Python 2 interpreter. These
writers reproduce the opcode stream of the authentic samples (protocol 2 for
``lib/utils/checkpoints.py``'s ``{'blobs': {...}}``, protocol 0 for the converted flat
files): Python 2 ``str`` keys, ``numpy.core.multiarray._reconstruct`` + BUILD arrays,
and cPickle's memo numbering (from 1; globals, dicts, arrays, dtypes and most keys are
memoized; tuples and raw data are not). Array bytes are written straight from the
array's memory, so 100+ MB checkpoints cost no extra copies.
"""

from __future__ import annotations

import codecs
import os
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._atomic import atomic_output

_CHUNK = 1 << 20


class Zeros:
    """An all-zero array that is written without being allocated (momentum blobs)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any = np.float32) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n


def _memo_all_but_momentum(key: str) -> bool:
    # cPickle memoized only strings referenced elsewhere: parameter names and the
    # 'lr'/'model_iter' literals, but not the freshly built '<param>_momentum' names.
    return not key.endswith("_momentum")


def _py2_repr(data: memoryview | bytes, out: BinaryIO) -> None:
    """Write Python 2's ``repr(str)`` of ``data`` (quotes included), chunk by chunk."""
    chunks = range(0, len(data), _CHUNK)
    has_single = any(b"'" in bytes(data[i : i + _CHUNK]) for i in chunks)
    has_double = any(b'"' in bytes(data[i : i + _CHUNK]) for i in chunks)
    # repr() prefers single quotes; it switches to double quotes to avoid escaping.
    quote = b'"' if has_single and not has_double else b"'"
    out.write(quote)
    for start in chunks:
        piece = codecs.escape_encode(bytes(data[start : start + _CHUNK]))[0]
        if quote == b'"':
            piece = piece.replace(b"\\'", b"'")
        out.write(piece)
    out.write(quote)


class Py2Writer:
    """Pickle Python values in Python 2 cPickle style (protocol 0 or 2) to a binary file.

    Supports dict, str (as Python 2 ``str``; keys chosen by ``unicode_key`` as
    ``unicode``), bytes, int, float, bool, None, tuple, list, numpy arrays and
    :class:`Zeros`.
    """

    def __init__(
        self,
        out: BinaryIO,
        protocol: int = 2,
        memo_key: Callable[[str], bool] = _memo_all_but_momentum,
        unicode_key: Callable[[str], bool] = lambda k: False,
    ) -> None:
        if protocol not in (0, 2):
            raise ValueError("only protocols 0 and 2 are written")
        self.out = out
        self.bin = protocol == 2
        self.memo_key = memo_key
        self.unicode_key = unicode_key
        self.next_memo = 1  # cPickle numbers its memo from 1
        self.memo: dict[Any, int] = {}

    def dump(self, obj: Any) -> None:
        """Write one complete pickle of ``obj`` (with PROTO and STOP)."""
        if self.bin:
            self.out.write(b"\x80\x02")
        self.save(obj)
        self.out.write(b".")

    # -- memo
    def put(self, key: Any = None) -> None:
        idx = self.next_memo
        self.next_memo += 1
        if key is not None:
            self.memo[key] = idx
        if self.bin:
            self.out.write(b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx))
        else:
            self.out.write(b"p%d\n" % idx)

    def get(self, idx: int) -> None:
        if self.bin:
            self.out.write(b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx))
        else:
            self.out.write(b"g%d\n" % idx)

    # -- scalars
    def save_int(self, v: int) -> None:
        if self.bin and 0 <= v < 256:
            self.out.write(b"K" + bytes([v]))
        elif self.bin and 0 <= v < 65536:
            self.out.write(b"M" + struct.pack("<H", v))
        elif self.bin and -(2**31) <= v < 2**31:
            self.out.write(b"J" + struct.pack("<i", v))
        else:
            self.out.write(b"I%d\n" % v)

    def save_bool(self, v: bool) -> None:
        if self.bin:
            self.out.write(b"\x88" if v else b"\x89")
        else:
            self.out.write(b"I01\n" if v else b"I00\n")

    def save_float(self, v: float) -> None:
        if self.bin:
            self.out.write(b"G" + struct.pack(">d", v))
        else:
            self.out.write(b"F" + repr(float(v)).encode() + b"\n")

    def save_bytes(self, data: bytes | memoryview) -> None:
        """A Python 2 ``str``."""
        n = len(data)
        if not self.bin:
            self.out.write(b"S")
            _py2_repr(data, self.out)
            self.out.write(b"\n")
        elif n < 256:
            self.out.write(b"U" + bytes([n]))
            self.out.write(data)
        else:
            if n >= 2**31:
                raise ValueError("a Python 2 str cannot hold 2 GiB or more")
            self.out.write(b"T" + struct.pack("<i", n))
            self.out.write(data)

    def save_unicode(self, text: str) -> None:
        if self.bin:
            data = text.encode("utf-8")
            self.out.write(b"X" + struct.pack("<I", len(data)) + data)
        else:
            self.out.write(b"V" + text.encode("raw-unicode-escape") + b"\n")

    def save_key(self, key: str) -> None:
        if self.unicode_key(key):
            self.save_unicode(key)
        else:
            self.save_bytes(key.encode("latin-1"))
        if self.memo_key(key):
            self.put()

    def save_global(self, module: str, name: str) -> None:
        key = ("global", module, name)
        if key in self.memo:
            self.get(self.memo[key])
            return
        self.out.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")
        self.put(key)

    def save_tuple(self, items: tuple[Any, ...]) -> None:
        if self.bin and len(items) <= 3:
            if not items:
                self.out.write(b")")
                return
            for x in items:
                self.save(x)
            self.out.write(bytes([0x84 + len(items)]))  # TUPLE1..TUPLE3
            return
        self.out.write(b"(")
        for x in items:
            self.save(x)
        self.out.write(b"t")

    def save_dict(self, d: Mapping[str, Any]) -> None:
        if self.bin:
            self.out.write(b"}")
            self.put()
            items = list(d.items())
            if len(items) == 1:
                self.save_key(items[0][0])
                self.save(items[0][1])
                self.out.write(b"s")
                return
            # cPickle's batches: MARK ... SETITEMS for up to 1000 items.
            for start in range(0, len(items), 1000):
                batch = items[start : start + 1000]
                if len(batch) == 1:
                    self.save_key(batch[0][0])
                    self.save(batch[0][1])
                    self.out.write(b"s")
                    continue
                self.out.write(b"(")
                for k, v in batch:
                    self.save_key(k)
                    self.save(v)
                self.out.write(b"u")
        else:
            self.out.write(b"(d")
            self.put()
            for k, v in d.items():
                self.save_key(k)
                self.save(v)
                self.out.write(b"s")

    def save_list(self, items: list[Any]) -> None:
        if self.bin:
            self.out.write(b"]")
            self.put()
            if items:
                self.out.write(b"(")
                for x in items:
                    self.save(x)
                self.out.write(b"e")
        else:
            self.out.write(b"(l")
            self.put()
            for x in items:
                self.save(x)
                self.out.write(b"a")

    # -- numpy
    def save_dtype(self, dtype: np.dtype[Any]) -> None:
        if dtype.kind not in "fiub":
            raise ValueError(f"cannot write dtype {dtype}")
        code = f"{dtype.kind}{dtype.itemsize}"
        if dtype.itemsize == 1:
            order = "|"
        elif dtype.byteorder == "=":
            order = "<" if sys.byteorder == "little" else ">"
        else:
            order = dtype.byteorder
        key = ("dtype", code, order)
        if key in self.memo:
            self.get(self.memo[key])
            return
        self.save_global("numpy", "dtype")
        if self.bin:
            self.save_bytes(code.encode())
            self.out.write(b"K\x00K\x01\x87R")
        else:
            self.out.write(b"(")
            self.save_bytes(code.encode())
            self.out.write(b"I0\nI1\ntR")
        self.put(key)
        self.out.write(b"(")
        self.save_int(3)
        self.save_bytes(order.encode())
        self.out.write(b"NNN")
        self.save_int(-1)
        self.save_int(-1)
        self.save_int(0)
        self.out.write(b"tb")

    def save_array(self, a: np.ndarray[Any, Any] | Zeros) -> None:
        self.save_global("numpy.core.multiarray", "_reconstruct")
        if self.bin:
            self.save_global("numpy", "ndarray")
            self.out.write(b"K\x00\x85U\x01b\x87R")
        else:
            self.out.write(b"(")
            self.save_global("numpy", "ndarray")
            self.out.write(b"(I0\ntS'b'\ntR")
        self.put()
        self.out.write(b"(")
        self.save_int(1)
        self.save_tuple(tuple(int(d) for d in a.shape))
        self.save_dtype(a.dtype)
        self.save_bool(False)
        if isinstance(a, Zeros):
            self._save_zeros(a.nbytes)
        else:
            data = np.ascontiguousarray(a).data.cast("B")
            self.save_bytes(data)
        self.out.write(b"tb")

    def _save_zeros(self, n: int) -> None:
        if self.bin:
            self.out.write(b"U" + bytes([n]) if n < 256 else b"T" + struct.pack("<i", n))
            chunk = bytes(min(n, _CHUNK))
            for start in range(0, n, _CHUNK):
                self.out.write(chunk[: min(_CHUNK, n - start)])
        else:
            self.save_bytes(bytes(n))

    def save(self, obj: Any) -> None:
        """Write any supported value."""
        if obj is None:
            self.out.write(b"N")
        elif isinstance(obj, bool | np.bool_):
            self.save_bool(bool(obj))
        elif isinstance(obj, int | np.integer):
            self.save_int(int(obj))
        elif isinstance(obj, float | np.floating) and not isinstance(obj, np.ndarray):
            self.save_float(float(obj))
        elif isinstance(obj, str):
            self.save_bytes(obj.encode("latin-1"))
        elif isinstance(obj, bytes):
            self.save_bytes(obj)
        elif isinstance(obj, np.ndarray | Zeros):
            self.save_array(obj)
        elif isinstance(obj, dict):
            self.save_dict(obj)
        elif isinstance(obj, tuple):
            self.save_tuple(obj)
        elif isinstance(obj, list):
            self.save_list(obj)
        else:
            raise TypeError(f"cannot write a {type(obj).__name__} in Python 2 style")


def write_py2_pickle(
    path: str | os.PathLike[str],
    obj: Any,
    protocol: int = 2,
    memo_key: Callable[[str], bool] = _memo_all_but_momentum,
    unicode_key: Callable[[str], bool] = lambda k: False,
    force: bool = False,
) -> Path:
    """Write ``obj`` as Python 2.7 cPickle would have (atomically); see :class:`Py2Writer`."""
    with atomic_output(Path(path), force) as tmp, open(tmp, "wb", buffering=_CHUNK) as f:
        Py2Writer(f, protocol, memo_key, unicode_key).dump(obj)
    return Path(path)


def _is_trainable(name: str) -> bool:
    # BN running statistics are computed, not trained: no momentum.
    return not name.endswith(("_rm", "_riv"))


def official_entries(
    blobs: Mapping[str, np.ndarray[Any, Any]], model_iter: int, lr: float, momentum: bool = True
) -> dict[str, Any]:
    """The ``blobs`` dict of an official checkpoint: parameters, momentum, lr, model_iter."""
    entries: dict[str, Any] = {}
    for name, array in blobs.items():
        entries[name] = array
        if momentum and _is_trainable(name):
            entries[f"{name}_momentum"] = Zeros(np.shape(array), np.float32)
    entries["lr"] = np.array(lr, dtype=np.float32)
    entries["model_iter"] = int(model_iter)
    return entries


def write_official_pkl(
    path: str | os.PathLike[str],
    blobs: Mapping[str, np.ndarray[Any, Any]],
    model_iter: int,
    lr: float,
    momentum: bool = True,
    *,
    unicode_meta_keys: bool = False,
    force: bool = False,
) -> Path:
    """Write an official training checkpoint: protocol 2, ``{'blobs': {...}}``.

    ``momentum`` adds a zero ``<param>_momentum`` for every parameter except BN running
    statistics. All keys are Python 2 ``str`` as in the authentic sample; with
    ``unicode_meta_keys`` the ``lr``/``model_iter``/``*_momentum`` keys are ``unicode``
    instead, as ``lib/utils/checkpoints.py`` (``unicode_literals``) writes them.
    """
    entries = official_entries(blobs, model_iter, lr, momentum)

    def unicode_key(key: str) -> bool:
        return unicode_meta_keys and (key in ("lr", "model_iter") or key.endswith("_momentum"))

    return write_py2_pickle(path, {"blobs": entries}, 2, unicode_key=unicode_key, force=force)


def write_flat_pkl(
    path: str | os.PathLike[str],
    blobs: Mapping[str, np.ndarray[Any, Any]],
    lr: float | None = 0.00125,
    *,
    force: bool = False,
) -> Path:
    """Write a converted/pretrained checkpoint: protocol 0, a flat dict of blobs (+ ``lr``)."""
    entries: dict[str, Any] = dict(blobs)
    if lr is not None:
        entries["lr"] = float(lr)
    return write_py2_pickle(path, entries, 0, memo_key=lambda k: True, force=force)
