"""Errors of the numpy Caffe2 reference (all :class:`~nlconvert.errors.NLConvertError`)."""

from __future__ import annotations

from ..errors import NLConvertError


class ReferenceExecutionError(NLConvertError):
    """A NetDef cannot be run by the reference: a bad shape, argument or missing blob.

    Raised by the executor with the op index, type and blob names in the message.
    """


class UnsupportedOperatorError(ReferenceExecutionError):
    """The NetDef holds an operator type (or an option of one) the reference does not have."""


class OperatorArgumentError(ReferenceExecutionError):
    """An operator got inputs or arguments that Caffe2 would reject.

    The numeric functions of :mod:`nlconvert.reference.ops` raise it without context; the
    executor re-raises it naming the op.
    """
