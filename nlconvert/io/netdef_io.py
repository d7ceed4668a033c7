"""Caffe2 protobuf nets: read a ``NetDef``, take the weights out of an init_net, write one.

An init_net creates each weight with a fill operator (``GivenTensorFill`` with ``shape``
and ``values`` arguments, ...). Sizes and counts are checked before anything is
allocated, so a shape claiming 2**40 values is an error, not an out-of-memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes
from ..errors import CheckpointFormatError
from . import caffe2_pb as pb
from .messages import quoted

MAX_NDIM = 32
MAX_CONSTANT_ELEMENTS = 1 << 26  # ConstantFill allocates from its shape alone: cap it (256 MB)

# Fill op -> (dtype, Argument field holding `values`).
GIVEN_FILLS: dict[str, tuple[np.dtype[Any], str]] = {
    "GivenTensorFill": (np.dtype(np.float32), "floats"),
    "GivenTensorDoubleFill": (np.dtype(np.float64), "floats"),
    "GivenTensorIntFill": (np.dtype(np.int32), "ints"),
    "GivenTensorInt64Fill": (np.dtype(np.int64), "ints"),
    "GivenTensorBoolFill": (np.dtype(np.bool_), "ints"),
}

# TensorProto.DataType -> numpy dtype, for ConstantFill's `dtype` argument.
_CONSTANT_DTYPES: dict[int, np.dtype[Any]] = {
    pb.DT_FLOAT: np.dtype(np.float32),
    pb.DT_DOUBLE: np.dtype(np.float64),
    pb.DT_FLOAT16: np.dtype(np.float16),
    pb.DT_INT32: np.dtype(np.int32),
    pb.DT_INT64: np.dtype(np.int64),
    pb.DT_BOOL: np.dtype(np.bool_),
    pb.DT_INT8: np.dtype(np.int8),
    pb.DT_UINT8: np.dtype(np.uint8),
    pb.DT_INT16: np.dtype(np.int16),
    pb.DT_UINT16: np.dtype(np.uint16),
}

# Names a net's input data goes by; exporters write them as tiny dummy fills.
DATA_INPUT_NAMES = frozenset({"data"})


def read_netdef(path: str | os.PathLike[str]) -> Any:
    """Parse a serialized Caffe2 ``NetDef`` file (init_net.pb or predict_net.pb)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointFormatError(f"{name}: no such file") from None
    except OSError as e:
        raise CheckpointFormatError(f"{name}: cannot read: {e.strerror or e}") from None
    return parse_netdef(data, name)


def parse_netdef(data: bytes, name: str = "<bytes>") -> Any:
    """Parse serialized ``NetDef`` bytes (``name`` is used in messages)."""
    net = pb.NetDef()
    try:
        net.ParseFromString(data)
    except Exception as e:  # DecodeError, or the parser's own limits (nesting depth)
        raise CheckpointFormatError(
            f"{name}: not a valid Caffe2 NetDef protobuf ({type(e).__name__}); truncated or not a .pb file"
        ) from None
    return net


def data_placeholders(init_net: Any, predict_net: Any | None = None) -> dict[str, str]:
    """Blobs an init_net fills only as stand-ins for the net's input data -> reason.

    ``data`` always; with a predict_net, also every external input that its ops take only
    as their first (data) input, never as a weight.
    """
    outputs = {o for op in init_net.op for o in op.output}
    found = {n: "data input placeholder" for n in DATA_INPUT_NAMES & outputs}
    if predict_net is not None:
        as_data: set[str] = set()
        as_weight: set[str] = set()
        for op in predict_net.op:
            if len(op.input):
                as_data.add(op.input[0])
            as_weight.update(op.input[1:])
        for name in predict_net.external_input:
            if name in outputs and name in as_data and name not in as_weight:
                found[name] = "data input placeholder"
    return found


def _shape(op: Any, where: str, blob: str) -> tuple[int, ...] | None:
    args = {a.name: a for a in op.arg}
    if "shape" not in args:
        return None
    dims = list(args["shape"].ints)
    if len(dims) > MAX_NDIM or any(d < 0 for d in dims):
        raise CheckpointFormatError(f"{where}: blob {quoted(blob)} has an invalid shape {dims[:8]}")
    return tuple(int(d) for d in dims)


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _fill(op: Any, where: str, blob: str) -> np.ndarray[Any, Any]:
    """The array one fill op creates, validated before allocation."""
    if len(op.input):
        raise CheckpointFormatError(
            f"{where}: blob {quoted(blob)}: {quoted(op.type)} with an input (shape from a blob) is not supported"
        )
    args = {a.name: a for a in op.arg}
    shape = _shape(op, where, blob)
    if op.type in GIVEN_FILLS:
        dtype, field = GIVEN_FILLS[op.type]
        values = getattr(args["values"], field) if "values" in args else []
        if shape is None:
            shape = (len(values),)
        if _numel(shape) != len(values):
            raise CheckpointFormatError(
                f"{where}: blob {quoted(blob)} has shape {list(shape)} ({_numel(shape)} values) "
                f"but {len(values)} values are given"
            )
        return np.array(values, dtype=dtype).reshape(shape)
    if op.type == "ConstantFill":
        shape = shape if shape is not None else ()
        if _numel(shape) > MAX_CONSTANT_ELEMENTS:
            raise CheckpointFormatError(f"{where}: blob {quoted(blob)} has an implausibly large shape {list(shape)}")
        code = args["dtype"].i if "dtype" in args else pb.DT_FLOAT
        if code not in _CONSTANT_DTYPES:
            raise CheckpointFormatError(f"{where}: blob {quoted(blob)}: ConstantFill with unsupported dtype {code}")
        value: float | int = 0.0
        if "value" in args:
            v = args["value"]
            value = v.f if v.HasField("f") else v.i
        return np.full(shape, value, dtype=_CONSTANT_DTYPES[code])
    raise CheckpointFormatError(
        f"{where}: blob {quoted(blob)} is made by an unsupported operator {quoted(op.type)} "
        f"(expected GivenTensorFill, GivenTensor*Fill or ConstantFill)"
    )


def blobs_from_init_net(
    netdef: Any, path: str | os.PathLike[str], predict_net: Any | None = None
) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays an init_net creates, by blob name (``path`` is used in messages).

    Placeholders for the input data (see :func:`data_placeholders`) are left out.
    Raises :class:`CheckpointFormatError` for a value count that does not match the
    shape, negative or huge shapes, duplicate blobs and unknown operators.
    """
    where = str(path)
    skip = data_placeholders(netdef, predict_net)
    blobs: dict[str, np.ndarray[Any, Any]] = {}
    seen: set[str] = set()
    for op in netdef.op:
        if len(op.output) != 1:
            raise CheckpointFormatError(
                f"{where}: a {quoted(op.type)} operator with {len(op.output)} outputs is not a weight fill"
            )
        blob = str(op.output[0])
        if blob in seen:
            raise CheckpointFormatError(f"{where}: blob {quoted(blob)} is filled twice")
        seen.add(blob)
        if blob in skip:
            continue
        blobs[blob] = _fill(op, where, blob)
    return blobs


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _float_values_arg(array: np.ndarray[Any, Any]) -> Any:
    """An ``Argument`` ``values`` holding `array` as float32 ``floats``.

    The floats go in as one packed field (tag 5, wire type 2), which protobuf parsers accept
    for repeated floats; an element-wise ``extend`` is about 10x slower on 25M weights.
    """
    arg = pb.Argument(name="values")
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    arg.MergeFromString(b"\x2a" + _varint(len(data)) + data)
    return arg


def netdef_from_blobs(blobs: Mapping[str, np.ndarray[Any, Any]], name: str = "init") -> Any:
    """An init_net ``NetDef`` creating ``blobs`` (float32/float64/int32/int64/bool arrays)."""
    net = pb.NetDef(name=name)
    for blob, array in blobs.items():
        a = np.asarray(array)
        shape = [int(d) for d in a.shape]
        if a.dtype == np.float32:
            op_type = "GivenTensorFill"
        elif a.dtype == np.float64:
            op_type = "GivenTensorDoubleFill"
        elif a.dtype == np.int32:
            op_type = "GivenTensorIntFill"
        elif a.dtype == np.int64:
            op_type = "GivenTensorInt64Fill"
        elif a.dtype == np.bool_:
            op_type = "GivenTensorBoolFill"
        else:
            raise ValueError(f"blob {quoted(blob)}: cannot write dtype {a.dtype} to an init_net")
        op = pb.OperatorDef(type=op_type, output=[blob])
        op.arg.append(pb.Argument(name="shape", ints=shape))
        if op_type in ("GivenTensorFill", "GivenTensorDoubleFill"):
            op.arg.append(_float_values_arg(a))
        else:
            op.arg.append(pb.Argument(name="values", ints=[int(v) for v in a.ravel().tolist()]))
        net.op.append(op)
    return net


def write_init_net(
    blobs: Mapping[str, np.ndarray[Any, Any]],
    path: str | os.PathLike[str],
    name: str = "init",
    force: bool = False,
) -> Path:
    """Write ``blobs`` as a serialized init_net ``NetDef`` (atomically)."""
    return atomic_write_bytes(Path(path), netdef_from_blobs(blobs, name).SerializeToString(), force)
