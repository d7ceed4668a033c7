"""Conversion: Caffe2 blobs mapped strictly onto the PyTorch NL-ResNet, and the model file format.

:mod:`.mapping` (blob-name rules, strict mapping), :mod:`.pipeline` (read -> choose the
architecture -> map -> model or file), :mod:`.modelfile` (the ``.pt``/``.safetensors``
format), :mod:`.formats` (file kinds by suffix). The names below load on first use, so that
:mod:`.formats` can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .modelfile import ModelFile, read_model_file, save_model
    from .pipeline import Conversion, convert_checkpoint, convert_file, load_model, prepare

_WHERE = {"ModelFile": "modelfile", "read_model_file": "modelfile", "save_model": "modelfile",
          "Conversion": "pipeline", "convert_checkpoint": "pipeline", "convert_file": "pipeline",
          "load_model": "pipeline", "prepare": "pipeline"}

__all__ = ["Conversion", "ModelFile", "convert_checkpoint", "convert_file", "load_model", "prepare",
           "read_model_file", "save_model"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
