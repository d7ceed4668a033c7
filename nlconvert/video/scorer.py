"""What scores views: a small protocol, and factories for the model files nlconvert knows.

A :class:`Scorer` takes V x 3 x T x H x W float32 views and returns V x classes softmax
probabilities. The factories import torch / onnxruntime / the model code lazily, so video
code and its tests run with any stand-in that has the same shape.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import NLConvertError


@runtime_checkable
class Scorer(Protocol):
    """Anything that turns a batch of views into class probabilities."""

    frames: int  # clip length the model was trained with (L)
    rate: int  # sampling rate (frames x rate = the training clip)
    class_names: list[str] | None  # display names, index = class id; None shows indices

    def __call__(self, views: np.ndarray) -> np.ndarray:
        """V x 3 x T x H x W float32 -> V x classes probabilities (rows sum to 1)."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 then float32 (for clip-head ONNX models)."""
    x = logits.astype(np.float64)
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return (x / x.sum(axis=-1, keepdims=True)).astype(np.float32)


def _class_names(num_classes: int, names: list[str] | None) -> list[str] | None:
    if names:
        return list(names)
    from ..classes import default_class_names

    return default_class_names(num_classes)


class TorchScorer:
    """A loaded nlconvert PyTorch model (mean-softmax fully-convolutional head)."""

    def __init__(self, model: Any, device: str = "cpu", name: str = "") -> None:
        import torch

        self.model = model.to(device).eval()
        self.device = device
        arch = model.arch
        self.arch = arch
        self.frames = int(arch.frames)
        self.rate = int(arch.sample_rate)
        self.class_names = _class_names(arch.num_classes, getattr(model, "class_names", None))
        self.name = name or arch.name
        self._torch = torch

    def __call__(self, views: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()


class OnnxScorer:
    """An nlconvert ONNX file run by onnxruntime (input ``clip``; ``probs`` or ``logits``)."""

    def __init__(self, path: str | Path) -> None:
        from ..arch import ArchSpec

        runtime = _optional_module("nlconvert.onnx_runtime", "ONNX models")
        self.session, self.provider = runtime.open_session(str(path))
        meta = self.session.get_modelmeta().custom_metadata_map
        if "nlconvert.arch" not in meta:
            raise NLConvertError(f"{path}: ONNX file has no nlconvert.arch metadata")
        self.arch = ArchSpec.from_json(meta["nlconvert.arch"])
        outputs = [o.name for o in self.session.get_outputs()]
        self.head = meta.get("nlconvert.head", "")
        self.output = "probs" if "probs" in outputs else outputs[0]
        self.frames = int(self.arch.frames)
        self.rate = int(self.arch.sample_rate)
        names = json.loads(meta.get("nlconvert.class_names", "null") or "null")
        self.class_names = _class_names(self.arch.num_classes, names)
        self.name = self.arch.name

    def __call__(self, views: np.ndarray) -> np.ndarray:
        feed = {"clip": np.ascontiguousarray(views, dtype=np.float32)}
        out = np.asarray(self.session.run([self.output], feed)[0])
        out = out.reshape(out.shape[0], -1)
        return out.astype(np.float32) if self.output == "probs" else softmax(out)


def as_scorer(model: Any) -> Scorer:
    """Wrap a torch module with ``.arch`` as a :class:`TorchScorer`; pass scorers through."""
    if hasattr(model, "arch") and hasattr(model, "parameters"):
        return TorchScorer(model)
    if callable(model) and hasattr(model, "frames") and hasattr(model, "rate"):
        return model
    raise TypeError("expected an nlconvert model (torch module with .arch) or a Scorer")


def open_scorer(path: str | Path, device: str = "cpu") -> Scorer:
    """A scorer for a converted ``.pt``, an ``.onnx`` file, or an original Caffe2 ``.pkl``."""
    p = Path(path)
    if not p.is_file():
        raise NLConvertError(f"{p}: no such model file")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return OnnxScorer(p)
    if suffix in (".pkl", ".pickle", ".pb"):
        convert = _optional_module("nlconvert.convert", "Caffe2 checkpoints")
        model = convert.convert_checkpoint(str(p), head="fully_conv")
        return TorchScorer(model, device, name=p.stem)
    package = _optional_module("nlconvert", "models")
    load_model = getattr(package, "load_model", None)
    if load_model is None:
        load_model = getattr(_optional_module("nlconvert.convert", "models"), "load_model", None)
    if load_model is None:
        raise NLConvertError("nlconvert.load_model is not available in this installation")
    return TorchScorer(load_model(str(p), head="fully_conv"), device)


def _optional_module(name: str, what: str) -> Any:
    """Import a model-side module at run time (kept out of the video code's import graph)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise NLConvertError(f"{what} need {name}, which is not available: {exc}") from None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (identifies the model of an evaluation database)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
