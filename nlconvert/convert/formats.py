"""The file kinds nlconvert reads and writes, by suffix (torch-free: the CLI reads it)."""

from __future__ import annotations

from pathlib import Path

#: Converted model files (:mod:`nlconvert.convert.modelfile`).
MODEL_SUFFIXES = (".pt", ".pth", ".safetensors")
#: Original Caffe2 checkpoints: pickles and init_net protobufs (converted in memory on load).
CHECKPOINT_SUFFIXES = (".pkl", ".pickle", ".pb")
#: Exported ONNX files.
ONNX_SUFFIX = ".onnx"


def is_model_path(path: str | Path) -> bool:
    """A converted model: a model file by its suffix, or a folder (read as a hub folder:
    ``config.json`` + ``model.safetensors``)."""
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in MODEL_SUFFIXES


def default_output(source: str | Path, suffix: str = ".pt") -> Path:
    """``model.pkl`` -> ``model.pt`` beside it (``init_net.pb`` -> ``init_net.pt``)."""
    return Path(source).with_suffix(suffix)
