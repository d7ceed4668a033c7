"""nlconvert: the Caffe2 Non-local Neural Network video models in PyTorch and ONNX.

The public API (importing ``nlconvert`` is cheap: each name loads its module on first use)::

    import nlconvert
    nlconvert.list_archs()                                    # the zoo
    model = nlconvert.load_model("model.pt")                  # or a Caffe2 .pkl, converted
    model = nlconvert.convert_checkpoint("model.pkl")         # in memory
    nlconvert.convert_file("model.pkl", "model.pt")           # to a file
    nlconvert.export_hub("model.pkl", "hub/my-model")         # a Hugging Face model folder
    model = nlconvert.NLResNet.from_pretrained("hub/my-model")  # or "owner/repo" (the [hub] extra)
    result = nlconvert.run_parity("model.pkl", onnx_path="model.onnx")
    report = nlconvert.export_onnx(model, "model.onnx", head="fully_conv")
    backend = nlconvert.open_backend("model.pt", backend="auto")
    scores = nlconvert.predict(backend, "video.mp4")           # the paper's 30 views
    summary = nlconvert.evaluate(backend, entries, db)         # see nlconvert.video.evaluate
    for video, feats, windows in nlconvert.extract_features(backend, ["a.mp4"], stride=16): ...
    maps = nlconvert.attention_maps(model, clip)    # {"nonlocal_conv3_1": N x THW x THW', ...}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .arch import ArchSpec, get_arch
    from .attention import attention_maps
    from .convert import convert_checkpoint, convert_file, load_model, save_model
    from .hub import export_hub
    from .interop.mmaction2 import export_mmaction2
    from .model import NLResNet
    from .parity import run_parity
    from .runtime.backends import Backend, open_backend
    from .runtime.onnx_export import export_onnx
    from .training import create_model, param_groups
    from .video.evaluate import evaluate
    from .video.features import extract_features
    from .video.predict import predict, predict_video

# Public name -> the module that defines it.
_API = {
    "ArchSpec": "arch",
    "get_arch": "arch",
    "attention_maps": "attention",
    "convert_checkpoint": "convert",
    "convert_file": "convert",
    "load_model": "convert",
    "save_model": "convert",
    "run_parity": "parity",
    "NLResNet": "model",
    "export_hub": "hub",
    "Backend": "runtime.backends",
    "open_backend": "runtime.backends",
    "export_onnx": "runtime.onnx_export",
    "export_mmaction2": "interop.mmaction2",
    "create_model": "training",
    "param_groups": "training",
    "evaluate": "video.evaluate",
    "extract_features": "video.features",
    "predict": "video.predict",
    "predict_video": "video.predict",
}

__all__ = [
    "ArchSpec",
    "Backend",
    "NLResNet",
    "__version__",
    "attention_maps",
    "convert_checkpoint",
    "convert_file",
    "create_model",
    "evaluate",
    "export_hub",
    "export_mmaction2",
    "export_onnx",
    "extract_features",
    "get_arch",
    "list_archs",
    "load_model",
    "open_backend",
    "param_groups",
    "predict",
    "predict_video",
    "run_parity",
    "save_model",
]


def list_archs(*, video_only: bool = False) -> list[str]:
    """Names of the zoo's architectures (`video_only`: leave out the ImageNet 2D sources)."""
    from .arch import arch_names, get_arch

    return [n for n in arch_names() if not (video_only and get_arch(n).is_2d)]


def __getattr__(name: str) -> Any:
    # Lazy: `import nlconvert` stays cheap (no torch import) until the API is used.
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    if name in ("video", "runtime", "arch", "io", "convert", "model", "parity", "reference",
                "synthetic", "hub", "training", "attention", "interop", "cluster", "keymap"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nlconvert' has no attribute {name!r}")
