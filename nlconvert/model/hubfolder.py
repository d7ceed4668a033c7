"""The hub folder: a converted network as a Hugging Face model repository lays it out.

``config.json`` (what the network is and how to feed it), ``model.safetensors`` (the state
dict under this package's parameter names) and, when ``nlconvert export-hub`` wrote it, a
``README.md`` model card and a ``model.onnx``. This module defines the folder's two machine
files once: the model-file reader (:mod:`nlconvert.convert.modelfile`) and
:meth:`NLResNet.from_pretrained <nlconvert.model.NLResNet.from_pretrained>` both read
folders here, and both writers (``save_pretrained``, ``export-hub``) build the config here.
Every way a folder can be wrong is a one-line :class:`~nlconvert.errors.HubError`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..arch import FEATURE_OUTPUTS, INPUT_MEAN, INPUT_STD, ArchSpec, get_arch
from ..errors import ArchitectureError, HubError, MappingError, NLConvertError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
ONNX_NAME = "model.onnx"
#: ``config.json["format"]``: the same tag as the single-file model format.
CONFIG_FORMAT = "nlconvert-model"
CONFIG_FORMAT_VERSION = 1

#: What each head of the network outputs (the ``heads`` entry of config.json).
HEAD_DESCRIPTIONS = {
    "clip": "global mean over (t, h, w) of res5, then the pred FC: logits "
            "(the official train/val head; exact at the training clip size)",
    "fully_conv": "pred as a 1x1x1 conv after the official (T/stride, 7, 7) average pool, softmax "
                  "at every position, mean of the softmaxes: probabilities (TEST.TEST_FULLY_CONV, "
                  "the paper's 30-view test head)",
}


@dataclass
class HubFolder:
    """What a hub folder holds (`state_dict` empty when only the config was read)."""

    path: Path
    config: dict[str, Any]
    arch: ArchSpec
    class_names: list[str] | None
    provenance: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


def hub_config(arch: ArchSpec, class_names: list[str] | None, provenance: Mapping[str, Any],
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` of a network; `extra` (test protocol, parity...) is merged in."""
    names = list(class_names) if class_names else None
    config: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_FORMAT_VERSION,
        "library_name": "nlconvert",
        "architecture": arch.name,
        "description": arch.describe(),
        "arch": arch.to_dict(),
        "num_classes": arch.num_classes,
        "id2label": {str(i): n for i, n in enumerate(names)} if names else None,
        "label2id": {n: i for i, n in enumerate(names)} if names else None,
        "frames": arch.frames,
        "sample_rate": arch.sample_rate,
        "crop_size": arch.crop_size,
        # Per channel, in the network's channel order; the input is (pixel - mean) / std.
        "input": {"channels": "RGB", "value_range": [0, 255], "mean": [INPUT_MEAN] * 3,
                  "std": [INPUT_STD] * 3, "layout": "NCTHW", "dtype": "float32"},
        "heads": dict(HEAD_DESCRIPTIONS),
        "feature_outputs": list(FEATURE_OUTPUTS),
        "provenance": {**dict(provenance), "written_by": f"nlconvert {__version__}"},
    }
    config.update(extra or {})
    return config


def write_weights(state_dict: Mapping[str, torch.Tensor], folder: Path) -> Path:
    """``model.safetensors`` of a state dict in `folder` (a folder being assembled)."""
    save_file = _safetensors_torch().save_file
    # safetensors refuses tensors that share memory or are not contiguous.
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    return folder / WEIGHTS_NAME


def write_config(config: Mapping[str, Any], folder: Path) -> Path:
    """``config.json`` in `folder` (a folder being assembled)."""
    path = folder / CONFIG_NAME
    path.write_text(json.dumps(dict(config), indent=2, default=str) + "\n", encoding="utf-8")
    return path


def is_hub_folder(path: str | Path) -> bool:
    """Whether `path` is a folder (a folder given where a model goes is read as a hub folder)."""
    return Path(path).is_dir()


def weights_file(folder: str | Path) -> Path:
    """The folder's ``model.safetensors``; a one-line error when it is not there."""
    weights = Path(folder) / WEIGHTS_NAME
    if not weights.is_file():
        raise HubError(f"{folder}: no {WEIGHTS_NAME} in the hub folder")
    return weights


def read_hub_config(folder: str | Path) -> HubFolder:
    """The architecture, class names and provenance of a hub folder (weights not read)."""
    path = Path(folder)
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise HubError(f"{path}: not a hub folder (no {CONFIG_NAME}; write one with nlconvert export-hub)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HubError(f"{cfg_path}: not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(config, dict):
        raise HubError(f"{cfg_path}: expected a JSON object")
    arch = _arch_of(config, cfg_path)
    return HubFolder(path, config, arch, _class_names(config, arch, cfg_path),
                     dict(config.get("provenance") or {}), {})


def read_hub_folder(folder: str | Path) -> HubFolder:
    """Everything in a hub folder, the weights included (shapes are checked by the caller,
    which knows the module: :func:`check_shapes`)."""
    info = read_hub_config(folder)
    weights = weights_file(info.path)
    load_file = _safetensors_torch().load_file
    try:
        info.state_dict = dict(load_file(str(weights)))
    except Exception as exc:  # safetensors raises its own error types for a broken file
        raise HubError(f"{weights}: not a readable safetensors file ({exc.__class__.__name__})") from None
    return info


def _safetensors_torch() -> Any:
    """``safetensors.torch``, or a one-line error naming the extra to install."""
    try:
        import safetensors.torch
    except ImportError:
        raise HubError("hub folders need safetensors: pip install 'nlconvert[hub]'") from None
    return safetensors.torch


def check_shapes(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor],
                 source: str | Path, arch_name: str) -> None:
    """A one-line :class:`MappingError` naming the first missing, unexpected or wrongly
    shaped tensor of a state dict (`expected`: a meta-device model's state dict)."""
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    if missing or extra:
        what = (f"missing {missing[0]}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                if missing else f"unexpected {extra[0]}" + (f" (+{len(extra) - 1} more)" if len(extra) > 1 else ""))
        raise MappingError(f"{source}: the weights do not fit {arch_name}: {what}")
    for key, ref in expected.items():
        got = tuple(state_dict[key].shape)
        if got != tuple(ref.shape):
            raise MappingError(f"{source}: {key} has shape {list(got)}, {arch_name} needs {list(ref.shape)}")


def _arch_of(config: Mapping[str, Any], where: Path) -> ArchSpec:
    """The full description when the config has one, else the zoo architecture it names."""
    name = config.get("architecture")
    try:
        if isinstance(config.get("arch"), dict):
            arch = ArchSpec.from_dict(config["arch"])
            if name is not None and name != arch.name:
                raise HubError(f"{where}: architecture {name!r} does not match its description "
                               f"({arch.name!r})")
            return arch
        if not isinstance(name, str):
            raise HubError(f"{where}: names no architecture (an 'architecture' entry is needed)")
        arch = get_arch(name)
        classes = config.get("num_classes", arch.num_classes)
        if classes != arch.num_classes:
            arch = dataclasses.replace(arch, num_classes=int(classes))
        return arch
    except HubError:
        raise
    except ArchitectureError as exc:
        raise HubError(f"{where}: {exc}") from None
    except (NLConvertError, TypeError, ValueError, KeyError) as exc:
        raise HubError(f"{where}: not a valid architecture description ({exc})") from None


def _class_names(config: Mapping[str, Any], arch: ArchSpec, where: Path) -> list[str] | None:
    id2label = config.get("id2label")
    if not id2label:
        return None
    try:
        names = [str(id2label[str(i)]) for i in range(len(id2label))]
    except (KeyError, TypeError):
        raise HubError(f"{where}: id2label must map 0..N-1 to names") from None
    if len(names) != arch.num_classes:
        raise HubError(f"{where}: id2label has {len(names)} names for {arch.num_classes} classes")
    return names
