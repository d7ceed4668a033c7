"""Run a Caffe2 ``NetDef`` with the numpy operators of :mod:`nlconvert.reference.ops`.

Ops run in the order of the net, reading and writing a workspace (blob name -> array), as
Caffe2's simple net does. In-place ops (an output named like an input) rebind the name; the
operators never write into an existing array, so the value each op produced stays available
in the run's records even after a later op reuses the blob name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.caffe2_pb import NetDef, arg_dict
from .errors import ReferenceExecutionError, UnsupportedOperatorError
from .ops import OPERATORS, Array


@dataclass(frozen=True)
class OpRecord:
    """The value an op wrote to one of its outputs, at the time it wrote it."""

    index: int
    op_type: str
    output: str
    value: Array


class Workspace(dict[str, Array]):
    """Blob name -> final value after :func:`run_net`, plus the per-op records of the run.

    ``records`` lists every op output in execution order (empty when the run was not
    recorded); it is how in-place blobs are inspected step by step.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[OpRecord] = []

    def history(self, blob: str) -> list[OpRecord]:
        """Every value `blob` took during the run, in order."""
        return [r for r in self.records if r.output == blob]

    def first_value(self, blob: str) -> Array:
        """The value `blob` had right after the first op that wrote it."""
        hist = self.history(blob)
        if not hist:
            raise KeyError(f"no op wrote {blob!r} in this run")
        return hist[0].value


def load_net(path: str | Path) -> Any:
    """A ``NetDef`` read from a serialized protobuf file."""
    net = NetDef()
    try:
        net.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise ReferenceExecutionError(f"{path}: not a serialized Caffe2 NetDef ({exc})") from exc
    return net


# Repeated arguments longer than this are read as numpy arrays (GivenTensorFill values),
# shorter ones as Python lists, like caffe2_pb.arg_dict.
_ARRAY_ARG_MIN = 64


def _op_args(op: Any) -> dict[str, Any]:
    """The op's arguments; long float/int lists come as arrays (a Python list of 25M floats
    costs seconds)."""
    args: dict[str, Any] = {}
    for a in op.arg:
        if len(a.floats) > _ARRAY_ARG_MIN:
            args[a.name] = np.array(a.floats, dtype=np.float32)
        elif len(a.ints) > _ARRAY_ARG_MIN:
            args[a.name] = np.array(a.ints, dtype=np.int64)
    if not args:
        return arg_dict(op)
    rest = type(op)()
    rest.arg.extend(a for a in op.arg if a.name not in args)
    return {**arg_dict(rest), **args}


def _describe(index: int, op: Any) -> str:
    return f"op {index} ({op.type} {list(op.input)} -> {list(op.output)})"


def run_net(net: Any, workspace: Mapping[str, Array] | None = None,
            record: bool = True, on_op: Callable[[int], None] | None = None) -> Workspace:
    """Run every op of `net` on a copy of `workspace`; return the final workspace.

    The caller's mapping and arrays are not modified. With `record`, the returned
    :class:`Workspace` holds an :class:`OpRecord` per op output. Unknown op types raise
    :class:`UnsupportedOperatorError`, missing blobs and bad shapes
    :class:`ReferenceExecutionError`; both name the op index, type and blobs. `on_op` is
    called with each op's index after it ran (progress display).
    """
    ws = Workspace(workspace or {})
    for index, op in enumerate(net.op):
        fn = OPERATORS.get(op.type)
        if fn is None:
            raise UnsupportedOperatorError(
                f"{_describe(index, op)}: operator type {op.type!r} is not implemented by the "
                "numpy reference"
            )
        missing = [name for name in op.input if name not in ws]
        if missing:
            raise ReferenceExecutionError(
                f"{_describe(index, op)}: input blob(s) {missing} not in the workspace"
            )
        inputs = [ws[name] for name in op.input]
        try:
            outputs = fn(inputs, _op_args(op), len(op.output))
        except ReferenceExecutionError as exc:
            raise type(exc)(f"{_describe(index, op)}: {exc}") from exc
        except (ValueError, TypeError, IndexError) as exc:  # numpy's own shape checks
            shapes = [tuple(np.shape(v)) for v in inputs]
            raise ReferenceExecutionError(
                f"{_describe(index, op)}: {exc} (input shapes {shapes})"
            ) from exc
        if len(outputs) != len(op.output):
            raise ReferenceExecutionError(
                f"{_describe(index, op)}: produced {len(outputs)} outputs, the op names "
                f"{len(op.output)}"
            )
        for name, value in zip(op.output, outputs, strict=True):
            ws[name] = value
            if record:
                ws.records.append(OpRecord(index, op.type, name, value))
        if on_op is not None:
            on_op(index)
    return ws


def run_init_and_predict(init_net: Any, predict_net: Any, inputs: Mapping[str, Array],
                         record: bool = True) -> Workspace:
    """Run `init_net` (weights), put `inputs` in the workspace, then run `predict_net`."""
    ws = run_net(init_net, {}, record=False)
    ws.update(inputs)
    return run_net(predict_net, ws, record=record)
