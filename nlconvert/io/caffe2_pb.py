"""Caffe2 protobuf messages (``NetDef``, ``OperatorDef``, ``Argument``, ``TensorProto``), without Caffe2.

The messages are declared here field by field, with the names and numbers of
caffe2/proto/caffe2.proto (proto2), and built at import time with the ``protobuf`` package's
descriptor pool, so no generated code or ``protoc`` is needed. Fields nlconvert does not use
are still declared where a real file may carry them, so they round-trip.

Repeated numeric fields are declared unpacked, as in caffe2.proto; the protobuf parser
accepts packed and unpacked encodings of them alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (name, number, label, type, type_name of a message field or None)
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "TensorProto": [
        ("dims", 1, _REP, _F.TYPE_INT64, None),
        ("data_type", 2, _OPT, _F.TYPE_INT32, None),
        ("float_data", 3, _REP, _F.TYPE_FLOAT, None),
        ("int32_data", 4, _REP, _F.TYPE_INT32, None),
        ("byte_data", 5, _OPT, _F.TYPE_BYTES, None),
        ("string_data", 6, _REP, _F.TYPE_BYTES, None),
        ("name", 7, _OPT, _F.TYPE_STRING, None),
        ("device_detail", 8, _OPT, _F.TYPE_MESSAGE, ".caffe2.DeviceOption"),
        ("double_data", 9, _REP, _F.TYPE_DOUBLE, None),
        ("int64_data", 10, _REP, _F.TYPE_INT64, None),
    ],
    "TensorProtos": [("protos", 1, _REP, _F.TYPE_MESSAGE, ".caffe2.TensorProto")],
    "DeviceOption": [
        ("device_type", 1, _OPT, _F.TYPE_INT32, None),
        ("device_id", 2, _OPT, _F.TYPE_INT32, None),
        ("random_seed", 3, _OPT, _F.TYPE_UINT32, None),
        ("node_name", 4, _OPT, _F.TYPE_STRING, None),
        ("numa_node_id", 5, _OPT, _F.TYPE_INT32, None),
        ("extra_info", 6, _REP, _F.TYPE_STRING, None),
    ],
    "Argument": [
        ("name", 1, _OPT, _F.TYPE_STRING, None),
        ("f", 2, _OPT, _F.TYPE_FLOAT, None),
        ("i", 3, _OPT, _F.TYPE_INT64, None),
        ("s", 4, _OPT, _F.TYPE_BYTES, None),
        ("floats", 5, _REP, _F.TYPE_FLOAT, None),
        ("ints", 6, _REP, _F.TYPE_INT64, None),
        ("strings", 7, _REP, _F.TYPE_BYTES, None),
        ("n", 8, _OPT, _F.TYPE_MESSAGE, ".caffe2.NetDef"),
        ("nets", 9, _REP, _F.TYPE_MESSAGE, ".caffe2.NetDef"),
        ("t", 10, _OPT, _F.TYPE_MESSAGE, ".caffe2.TensorProto"),
        ("tensors", 11, _REP, _F.TYPE_MESSAGE, ".caffe2.TensorProto"),
    ],
    "OperatorDef": [
        ("input", 1, _REP, _F.TYPE_STRING, None),
        ("output", 2, _REP, _F.TYPE_STRING, None),
        ("name", 3, _OPT, _F.TYPE_STRING, None),
        ("type", 4, _OPT, _F.TYPE_STRING, None),
        ("arg", 5, _REP, _F.TYPE_MESSAGE, ".caffe2.Argument"),
        ("device_option", 6, _OPT, _F.TYPE_MESSAGE, ".caffe2.DeviceOption"),
        ("engine", 7, _OPT, _F.TYPE_STRING, None),
        ("control_input", 8, _REP, _F.TYPE_STRING, None),
        ("is_gradient_op", 9, _OPT, _F.TYPE_BOOL, None),
        ("debug_info", 10, _OPT, _F.TYPE_STRING, None),
        ("domain", 11, _OPT, _F.TYPE_STRING, None),
        ("op_version", 12, _OPT, _F.TYPE_INT64, None),
    ],
    "NetDef": [
        ("name", 1, _OPT, _F.TYPE_STRING, None),
        ("op", 2, _REP, _F.TYPE_MESSAGE, ".caffe2.OperatorDef"),
        ("type", 3, _OPT, _F.TYPE_STRING, None),
        ("num_workers", 4, _OPT, _F.TYPE_INT32, None),
        ("device_option", 5, _OPT, _F.TYPE_MESSAGE, ".caffe2.DeviceOption"),
        ("arg", 6, _REP, _F.TYPE_MESSAGE, ".caffe2.Argument"),
        ("external_input", 7, _REP, _F.TYPE_STRING, None),
        ("external_output", 8, _REP, _F.TYPE_STRING, None),
    ],
}

# TensorProto.DataType values.
DT_FLOAT, DT_INT32, DT_BYTE, DT_STRING, DT_BOOL = 1, 2, 3, 4, 5
DT_UINT8, DT_INT8, DT_UINT16, DT_INT16, DT_INT64, DT_FLOAT16, DT_DOUBLE = 6, 7, 8, 9, 10, 12, 13


def _build_classes() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="nlconvert_caffe2.proto", package="caffe2", syntax="proto2"
    )
    for msg_name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, label, ftype, type_name in fields:
            f = msg.field.add(name=name, number=number, label=label, type=ftype)
            if type_name:
                f.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe2.{name}"))
        for name in _MESSAGES
    }


_CLASSES = _build_classes()
NetDef: Any = _CLASSES["NetDef"]
OperatorDef: Any = _CLASSES["OperatorDef"]
Argument: Any = _CLASSES["Argument"]
TensorProto: Any = _CLASSES["TensorProto"]
TensorProtos: Any = _CLASSES["TensorProtos"]
DeviceOption: Any = _CLASSES["DeviceOption"]


def make_arg(name: str, value: Any) -> Any:
    """An ``Argument`` holding an int, float, string, or a list of one of them."""
    arg = Argument(name=name)
    if isinstance(value, bool | int):
        arg.i = int(value)
    elif isinstance(value, float):
        arg.f = value
    elif isinstance(value, str | bytes):
        arg.s = value.encode() if isinstance(value, str) else value
    elif isinstance(value, Sequence | Iterable):
        items = list(value)
        if all(isinstance(v, bool | int) for v in items):
            arg.ints.extend(int(v) for v in items)
        elif all(isinstance(v, int | float) for v in items):
            arg.floats.extend(float(v) for v in items)
        else:
            arg.strings.extend(v.encode() if isinstance(v, str) else v for v in items)
    else:
        raise TypeError(f"cannot store {type(value).__name__} in a Caffe2 Argument")
    return arg


def make_op(
    op_type: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    engine: str = "",
    **args: Any,
) -> Any:
    """An ``OperatorDef`` with the given arguments (None values are left out)."""
    op = OperatorDef(type=op_type, input=list(inputs), output=list(outputs))
    if engine:
        op.engine = engine
    for name, value in args.items():
        if value is not None:
            op.arg.append(make_arg(name, value))
    return op


def arg_dict(op: Any) -> dict[str, Any]:
    """The arguments of an ``OperatorDef`` as a dict of Python values."""
    out: dict[str, Any] = {}
    for a in op.arg:
        if a.HasField("i"):
            out[a.name] = int(a.i)
        elif a.HasField("f"):
            out[a.name] = float(a.f)
        elif a.HasField("s"):
            out[a.name] = bytes(a.s)
        elif len(a.ints):
            out[a.name] = [int(v) for v in a.ints]
        elif len(a.floats):
            out[a.name] = [float(v) for v in a.floats]
        elif len(a.strings):
            out[a.name] = [bytes(v) for v in a.strings]
        elif a.HasField("t"):
            out[a.name] = a.t
        else:
            out[a.name] = []
    return out
