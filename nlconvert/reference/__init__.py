"""An independent numpy reference of the Caffe2 networks of video-nonlocal-net.

:mod:`~nlconvert.reference.ops` implements the Caffe2 operators the official nets use,
:mod:`~nlconvert.reference.executor` runs a ``NetDef`` with them, and
:mod:`~nlconvert.reference.netdef_builder` writes the ``NetDef`` the official code builds for
an :class:`~nlconvert.arch.ArchSpec`. numpy only: nothing here imports torch or
:mod:`nlconvert.model`, which is what this package checks.
"""

from __future__ import annotations

from .errors import OperatorArgumentError, ReferenceExecutionError, UnsupportedOperatorError
from .executor import OpRecord, Workspace, load_net, run_init_and_predict, run_net
from .netdef_builder import build_predict_net, expected_blob_names, expected_blob_shapes

__all__ = [
    "OpRecord",
    "build_predict_net",
    "expected_blob_names",
    "expected_blob_shapes",
    "OperatorArgumentError",
    "ReferenceExecutionError",
    "UnsupportedOperatorError",
    "Workspace",
    "load_net",
    "run_init_and_predict",
    "run_net",
]
