"""nlconvert: the Caffe2 Non-local Neural Network video models in PyTorch and ONNX."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .convert import convert_checkpoint, load_model

__all__ = ["__version__", "convert_checkpoint", "load_model", "predict"]


def __getattr__(name: str) -> Any:
    # Lazy: `import nlconvert` stays cheap (no torch import) until the API is used.
    if name in ("load_model", "convert_checkpoint"):
        from . import convert

        return getattr(convert, name)
    if name == "predict":
        from .video.predict import predict

        return predict
    if name == "video":
        import importlib

        return importlib.import_module(".video", __name__)
    raise AttributeError(f"module 'nlconvert' has no attribute {name!r}")
