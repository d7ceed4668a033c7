"""Rebuild numpy arrays, dtypes and scalars from the arguments numpy writes into pickles.

Only the exact argument shapes that numpy's ``__reduce__`` produces are accepted, and
only numeric dtypes. Sizes are checked against the bytes actually present before any
array is made, and data is never allocated from a claimed size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointFormatError, UnsafePickleError
from .messages import show

# The "kind + itemsize" codes numpy writes for dtypes (``np.dtype('f4').__reduce__()``).
NUMERIC_CODES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})
MAX_NDIM = 32
MAX_DIM = 1 << 48


@dataclass
class Dropped:
    """Placeholder for a value whose bytes were skipped, not read (see ``keep``).

    ``nbytes`` is the payload size when known; ``shape``/``dtype`` are set when the
    skipped bytes were the data of a numpy array.
    """

    nbytes: int | None = None
    shape: tuple[int, ...] | None = None
    dtype: np.dtype[Any] | None = None


class PartialArray:
    """An array made by ``_reconstruct`` and waiting for its BUILD (the state)."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray[Any, Any] | Dropped | None = None


class PartialDtype:
    """A dtype made by ``numpy.dtype(code, align, copy)``; BUILD may set its byte order."""

    __slots__ = ("dtype", "built")

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self.built = False


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, np.integer)


def _is_flag(v: Any) -> bool:
    """A bool or the int 0/1 (Python 2 pickles write flags as ints)."""
    return isinstance(v, bool | int) and v in (0, 1)


def as_dtype(value: Any, where: str) -> np.dtype[Any]:
    """The numeric dtype a pickle argument stands for, or an error."""
    if isinstance(value, PartialDtype):
        return value.dtype
    if isinstance(value, np.dtype):
        return value
    raise CheckpointFormatError(f"{where}: expected a numpy dtype, got {show(value)}")


def make_dtype(args: Any, where: str) -> PartialDtype:
    """``numpy.dtype(code, align, copy)`` for a numeric ``code`` only."""
    if not (isinstance(args, tuple) and len(args) == 3):
        raise UnsafePickleError(f"{where}: refused numpy.dtype call with arguments {show(args)}")
    code = _text(args[0])
    if code is None or code not in NUMERIC_CODES:
        shown = show(args[0]) if code is None else ascii(code[:20])
        # Object, string and structured dtypes are refused alike: objects can carry code,
        # and nothing but numbers belongs in a checkpoint.
        raise UnsafePickleError(f"{where}: refused numpy dtype {shown} (only numeric arrays are allowed)")
    if not (_is_flag(args[1]) and _is_flag(args[2])):
        raise UnsafePickleError(f"{where}: refused numpy.dtype call with unusual flags")
    return PartialDtype(np.dtype(code))


def build_dtype(holder: PartialDtype, state: Any, where: str) -> None:
    """Apply the BUILD state numpy writes for a plain numeric dtype (its byte order)."""
    ok = (
        isinstance(state, tuple)
        and len(state) in (8, 9)
        and _is_int(state[0])
        and state[0] in (3, 4)
        and state[2] is None
        and state[3] is None
        and state[4] is None
        and all(_is_int(v) for v in state[5:8])
        and (len(state) == 8 or state[8] is None or (isinstance(state[8], dict) and not state[8]))
    )
    order = _text(state[1]) if ok else None
    if not ok or order not in ("<", ">", "|", "="):
        raise UnsafePickleError(f"{where}: refused numpy dtype state {show(state)} (only plain numeric dtypes)")
    if order in ("<", ">") and holder.dtype.itemsize > 1:
        holder.dtype = holder.dtype.newbyteorder("<" if order == "<" else ">")
    holder.built = True


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > MAX_NDIM:
        raise CheckpointFormatError(f"{where}: array shape is not a short tuple of integers")
    for d in value:
        if not _is_int(d) or d < 0 or d > MAX_DIM:
            raise CheckpointFormatError(f"{where}: invalid array dimension {show(d)}")
    return tuple(int(d) for d in value)


def _array(
    raw: Any, dtype: np.dtype[Any], shape: tuple[int, ...], fortran: bool, where: str
) -> np.ndarray[Any, Any] | Dropped:
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    if isinstance(raw, Dropped):
        if raw.nbytes is not None and raw.nbytes != nbytes:
            raise CheckpointFormatError(
                f"{where}: array data has {raw.nbytes} bytes but shape {shape} of {dtype} needs {nbytes} bytes"
            )
        return Dropped(nbytes, shape, dtype)
    if not isinstance(raw, bytes | bytearray):
        raise UnsafePickleError(f"{where}: array data is a {type(raw).__name__}, not bytes")
    if len(raw) != nbytes:
        raise CheckpointFormatError(
            f"{where}: array data has {len(raw)} bytes but shape {shape} of {dtype} needs {nbytes} bytes"
        )
    # A bytearray gives a writable array with no copy; immutable bytes are copied once.
    buf = raw if isinstance(raw, bytearray) else bytearray(raw)
    flat = np.frombuffer(buf, dtype=dtype, count=count) if count else np.empty(0, dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


def reconstruct(args: Any, is_ndarray: bool, where: str) -> PartialArray:
    """``_reconstruct(ndarray, shape, b'b')``: the empty array numpy's BUILD fills in.

    ``is_ndarray`` says whether the first argument is the ``numpy.ndarray`` marker.
    """
    ok = (
        is_ndarray
        and isinstance(args, tuple)
        and len(args) == 3
        and isinstance(args[1], tuple)
        and all(_is_int(v) for v in args[1])
        and _text(args[2]) == "b"
    )
    if not ok:
        raise UnsafePickleError(
            f"{where}: refused numpy _reconstruct with arguments {show(args)} (only numpy.ndarray is allowed)"
        )
    return PartialArray()


def build_array(holder: PartialArray, state: Any, where: str) -> np.ndarray[Any, Any] | Dropped:
    """Apply ``(version, shape, dtype, is_fortran, rawdata)`` (or the 4-tuple form)."""
    if holder.array is not None:
        raise UnsafePickleError(f"{where}: refused a second BUILD on the same array")
    if isinstance(state, tuple) and len(state) == 5 and _is_int(state[0]):
        state = state[1:]
    if not (isinstance(state, tuple) and len(state) == 4):
        raise UnsafePickleError(f"{where}: refused numpy array state {show(state)}")
    shape = _shape(state[0], where)
    dtype = as_dtype(state[1], where)
    if not _is_flag(state[2]):
        raise CheckpointFormatError(f"{where}: invalid array order flag {show(state[2])}")
    holder.array = _array(state[3], dtype, shape, bool(state[2]), where)
    return holder.array


def frombuffer(args: Any, where: str) -> np.ndarray[Any, Any] | Dropped:
    """``_frombuffer(buffer, dtype, shape, order)`` as written by protocol-5 numpy pickles."""
    if not (isinstance(args, tuple) and len(args) == 4):
        raise UnsafePickleError(f"{where}: refused numpy _frombuffer with {show(args)}")
    order = _text(args[3])
    if order not in ("C", "F"):
        raise CheckpointFormatError(f"{where}: invalid array order {show(args[3])}")
    return _array(args[0], as_dtype(args[1], where), _shape(args[2], where), order == "F", where)


def scalar(args: Any, where: str) -> Any:
    """``scalar(dtype, rawbytes)``: a numpy scalar of a numeric dtype."""
    if not (isinstance(args, tuple) and len(args) == 2):
        raise UnsafePickleError(f"{where}: refused numpy scalar with {show(args)}")
    dtype = as_dtype(args[0], where)
    raw = args[1]
    if isinstance(raw, Dropped):
        return Dropped(raw.nbytes, (), dtype)
    if not isinstance(raw, bytes | bytearray) or len(raw) != dtype.itemsize:
        raise CheckpointFormatError(f"{where}: numpy scalar data does not match {dtype}")
    return np.frombuffer(bytes(raw), dtype=dtype)[0]
